from typing import Optional

from pydantic import Field

from .base_model import BaseModel
from .fragments import ErrorFields, RenewalFields, SubscriptionFields


class RefundRenewal(BaseModel):
    refund_renewal: "RefundRenewalRefundRenewal" = Field(alias="refundRenewal")


class RefundRenewalRefundRenewal(BaseModel):
    user_errors: list["RefundRenewalRefundRenewalUserErrors"] = Field(
        alias="userErrors"
    )
    subscription: Optional["RefundRenewalRefundRenewalSubscription"]
    renewal: Optional["RefundRenewalRefundRenewalRenewal"]


RefundRenewalRefundRenewalUserErrors = ErrorFields
RefundRenewalRefundRenewalSubscription = SubscriptionFields
RefundRenewalRefundRenewalRenewal = RenewalFields
RefundRenewal.model_rebuild()
RefundRenewalRefundRenewal.model_rebuild()
