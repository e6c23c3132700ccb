from typing import Optional

from pydantic import Field

from .base_model import BaseModel
from .fragments import ErrorFields, MoneyFields, SubscriptionFields


class CancelSubscription(BaseModel):
    cancel_subscription: "CancelSubscriptionCancelSubscription" = Field(
        alias="cancelSubscription"
    )


class CancelSubscriptionCancelSubscription(BaseModel):
    user_errors: list["CancelSubscriptionCancelSubscriptionUserErrors"] = Field(
        alias="userErrors"
    )
    subscription: Optional["CancelSubscriptionCancelSubscriptionSubscription"]
    refund: Optional["CancelSubscriptionCancelSubscriptionRefund"]


CancelSubscriptionCancelSubscriptionUserErrors = ErrorFields
CancelSubscriptionCancelSubscriptionSubscription = SubscriptionFields


class CancelSubscriptionCancelSubscriptionRefund(BaseModel):
    id: str
    amount: "CancelSubscriptionCancelSubscriptionRefundAmount"


CancelSubscriptionCancelSubscriptionRefundAmount = MoneyFields
CancelSubscription.model_rebuild()
CancelSubscriptionCancelSubscription.model_rebuild()
CancelSubscriptionCancelSubscriptionRefund.model_rebuild()
