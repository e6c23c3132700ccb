from typing import Optional

from pydantic import Field

from .base_model import BaseModel
from .fragments import ErrorFields, SubscriptionFields


class ActivateSubscription(BaseModel):
    activate_subscription: "ActivateSubscriptionActivateSubscription" = Field(
        alias="activateSubscription"
    )


class ActivateSubscriptionActivateSubscription(BaseModel):
    user_errors: list["ActivateSubscriptionActivateSubscriptionUserErrors"] = Field(
        alias="userErrors"
    )
    subscription: Optional["ActivateSubscriptionActivateSubscriptionSubscription"]


ActivateSubscriptionActivateSubscriptionUserErrors = ErrorFields
ActivateSubscriptionActivateSubscriptionSubscription = SubscriptionFields
ActivateSubscription.model_rebuild()
ActivateSubscriptionActivateSubscription.model_rebuild()
