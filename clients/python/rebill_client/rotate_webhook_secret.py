from typing import Optional

from pydantic import Field

from .base_model import BaseModel
from .fragments import ErrorFields, WebhookEndpointFields


class RotateWebhookSecret(BaseModel):
    rotate_webhook_secret: "RotateWebhookSecretRotateWebhookSecret" = Field(
        alias="rotateWebhookSecret"
    )


class RotateWebhookSecretRotateWebhookSecret(BaseModel):
    user_errors: list["RotateWebhookSecretRotateWebhookSecretUserErrors"] = Field(
        alias="userErrors"
    )
    endpoint: Optional["RotateWebhookSecretRotateWebhookSecretEndpoint"]
    secret: Optional[str]


RotateWebhookSecretRotateWebhookSecretUserErrors = ErrorFields
RotateWebhookSecretRotateWebhookSecretEndpoint = WebhookEndpointFields
RotateWebhookSecret.model_rebuild()
RotateWebhookSecretRotateWebhookSecret.model_rebuild()
