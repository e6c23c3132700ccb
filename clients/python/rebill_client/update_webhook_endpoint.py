from typing import Optional

from pydantic import Field

from .base_model import BaseModel
from .fragments import ErrorFields, WebhookEndpointFields


class UpdateWebhookEndpoint(BaseModel):
    update_webhook_endpoint: "UpdateWebhookEndpointUpdateWebhookEndpoint" = Field(
        alias="updateWebhookEndpoint"
    )


class UpdateWebhookEndpointUpdateWebhookEndpoint(BaseModel):
    user_errors: list["UpdateWebhookEndpointUpdateWebhookEndpointUserErrors"] = Field(
        alias="userErrors"
    )
    endpoint: Optional["UpdateWebhookEndpointUpdateWebhookEndpointEndpoint"]


UpdateWebhookEndpointUpdateWebhookEndpointUserErrors = ErrorFields
UpdateWebhookEndpointUpdateWebhookEndpointEndpoint = WebhookEndpointFields
UpdateWebhookEndpoint.model_rebuild()
UpdateWebhookEndpointUpdateWebhookEndpoint.model_rebuild()
