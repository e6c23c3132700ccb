from typing import Optional

from pydantic import Field

from .base_model import BaseModel
from .fragments import ErrorFields


class DeleteWebhookEndpoint(BaseModel):
    delete_webhook_endpoint: "DeleteWebhookEndpointDeleteWebhookEndpoint" = Field(
        alias="deleteWebhookEndpoint"
    )


class DeleteWebhookEndpointDeleteWebhookEndpoint(BaseModel):
    user_errors: list["DeleteWebhookEndpointDeleteWebhookEndpointUserErrors"] = Field(
        alias="userErrors"
    )
    deleted_endpoint_id: Optional[str] = Field(alias="deletedEndpointId")


DeleteWebhookEndpointDeleteWebhookEndpointUserErrors = ErrorFields
DeleteWebhookEndpoint.model_rebuild()
DeleteWebhookEndpointDeleteWebhookEndpoint.model_rebuild()
