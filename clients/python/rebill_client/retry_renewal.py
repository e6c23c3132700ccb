from typing import Optional

from pydantic import Field

from .base_model import BaseModel
from .fragments import ErrorFields, RenewalFields, SubscriptionFields


class RetryRenewal(BaseModel):
    retry_renewal: "RetryRenewalRetryRenewal" = Field(alias="retryRenewal")


class RetryRenewalRetryRenewal(BaseModel):
    user_errors: list["RetryRenewalRetryRenewalUserErrors"] = Field(alias="userErrors")
    subscription: Optional["RetryRenewalRetryRenewalSubscription"]
    renewal: Optional["RetryRenewalRetryRenewalRenewal"]


RetryRenewalRetryRenewalUserErrors = ErrorFields
RetryRenewalRetryRenewalSubscription = SubscriptionFields
RetryRenewalRetryRenewalRenewal = RenewalFields
RetryRenewal.model_rebuild()
RetryRenewalRetryRenewal.model_rebuild()
