from typing import Optional

from pydantic import Field

from .base_model import BaseModel
from .fragments import ErrorFields, WebhookEndpointFields


class CreateWebhookEndpoint(BaseModel):
    create_webhook_endpoint: "CreateWebhookEndpointCreateWebhookEndpoint" = Field(
        alias="createWebhookEndpoint"
    )


class CreateWebhookEndpointCreateWebhookEndpoint(BaseModel):
    user_errors: list["CreateWebhookEndpointCreateWebhookEndpointUserErrors"] = Field(
        alias="userErrors"
    )
    endpoint: Optional["CreateWebhookEndpointCreateWebhookEndpointEndpoint"]
    secret: Optional[str]


CreateWebhookEndpointCreateWebhookEndpointUserErrors = ErrorFields
CreateWebhookEndpointCreateWebhookEndpointEndpoint = WebhookEndpointFields
CreateWebhookEndpoint.model_rebuild()
CreateWebhookEndpointCreateWebhookEndpoint.model_rebuild()
