from typing import Optional

from pydantic import Field

from .base_model import BaseModel
from .fragments import ErrorFields, SubscriptionFields


class SuspendSubscription(BaseModel):
    suspend_subscription: "SuspendSubscriptionSuspendSubscription" = Field(
        alias="suspendSubscription"
    )


class SuspendSubscriptionSuspendSubscription(BaseModel):
    user_errors: list["SuspendSubscriptionSuspendSubscriptionUserErrors"] = Field(
        alias="userErrors"
    )
    subscription: Optional["SuspendSubscriptionSuspendSubscriptionSubscription"]


SuspendSubscriptionSuspendSubscriptionUserErrors = ErrorFields
SuspendSubscriptionSuspendSubscriptionSubscription = SubscriptionFields
SuspendSubscription.model_rebuild()
SuspendSubscriptionSuspendSubscription.model_rebuild()
