from typing import Optional

from pydantic import Field

from .base_model import BaseModel
from .fragments import ErrorFields, RenewalFields, SubscriptionFields


class ForceBill(BaseModel):
    force_bill: "ForceBillForceBill" = Field(alias="forceBill")


class ForceBillForceBill(BaseModel):
    user_errors: list["ForceBillForceBillUserErrors"] = Field(alias="userErrors")
    subscription: Optional["ForceBillForceBillSubscription"]
    renewal: Optional["ForceBillForceBillRenewal"]


ForceBillForceBillUserErrors = ErrorFields
ForceBillForceBillSubscription = SubscriptionFields
ForceBillForceBillRenewal = RenewalFields
ForceBill.model_rebuild()
ForceBillForceBill.model_rebuild()
