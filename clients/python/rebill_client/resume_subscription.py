from typing import Optional

from pydantic import Field

from .base_model import BaseModel
from .fragments import ErrorFields, SubscriptionFields


class ResumeSubscription(BaseModel):
    resume_subscription: "ResumeSubscriptionResumeSubscription" = Field(
        alias="resumeSubscription"
    )


class ResumeSubscriptionResumeSubscription(BaseModel):
    user_errors: list["ResumeSubscriptionResumeSubscriptionUserErrors"] = Field(
        alias="userErrors"
    )
    subscription: Optional["ResumeSubscriptionResumeSubscriptionSubscription"]


ResumeSubscriptionResumeSubscriptionUserErrors = ErrorFields
ResumeSubscriptionResumeSubscriptionSubscription = SubscriptionFields
ResumeSubscription.model_rebuild()
ResumeSubscriptionResumeSubscription.model_rebuild()
