from typing import Optional

from pydantic import Field

from .base_model import BaseModel
from .fragments import ErrorFields, SubscriptionFields


class ChangeNextRenewalDate(BaseModel):
    change_next_renewal_date: "ChangeNextRenewalDateChangeNextRenewalDate" = Field(
        alias="changeNextRenewalDate"
    )


class ChangeNextRenewalDateChangeNextRenewalDate(BaseModel):
    user_errors: list["ChangeNextRenewalDateChangeNextRenewalDateUserErrors"] = Field(
        alias="userErrors"
    )
    subscription: Optional["ChangeNextRenewalDateChangeNextRenewalDateSubscription"]


ChangeNextRenewalDateChangeNextRenewalDateUserErrors = ErrorFields
ChangeNextRenewalDateChangeNextRenewalDateSubscription = SubscriptionFields
ChangeNextRenewalDate.model_rebuild()
ChangeNextRenewalDateChangeNextRenewalDate.model_rebuild()
