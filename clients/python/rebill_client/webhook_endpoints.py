from pydantic import Field

from .base_model import BaseModel
from .fragments import PageFields, WebhookEndpointFields


class WebhookEndpoints(BaseModel):
    webhook_endpoints: "WebhookEndpointsWebhookEndpoints" = Field(
        alias="webhookEndpoints"
    )


class WebhookEndpointsWebhookEndpoints(BaseModel):
    total_count: int = Field(alias="totalCount")
    page_info: "WebhookEndpointsWebhookEndpointsPageInfo" = Field(alias="pageInfo")
    edges: list["WebhookEndpointsWebhookEndpointsEdges"]


WebhookEndpointsWebhookEndpointsPageInfo = PageFields


class WebhookEndpointsWebhookEndpointsEdges(BaseModel):
    node: "WebhookEndpointsWebhookEndpointsEdgesNode"


WebhookEndpointsWebhookEndpointsEdgesNode = WebhookEndpointFields
WebhookEndpoints.model_rebuild()
WebhookEndpointsWebhookEndpoints.model_rebuild()
WebhookEndpointsWebhookEndpointsEdges.model_rebuild()
