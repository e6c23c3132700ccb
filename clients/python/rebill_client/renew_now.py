from typing import Optional

from pydantic import Field

from .base_model import BaseModel
from .fragments import ErrorFields, RenewalFields, SubscriptionFields


class RenewNow(BaseModel):
    renew_now: "RenewNowRenewNow" = Field(alias="renewNow")


class RenewNowRenewNow(BaseModel):
    user_errors: list["RenewNowRenewNowUserErrors"] = Field(alias="userErrors")
    subscription: Optional["RenewNowRenewNowSubscription"]
    renewal: Optional["RenewNowRenewNowRenewal"]


RenewNowRenewNowUserErrors = ErrorFields
RenewNowRenewNowSubscription = SubscriptionFields
RenewNowRenewNowRenewal = RenewalFields
RenewNow.model_rebuild()
RenewNowRenewNow.model_rebuild()
