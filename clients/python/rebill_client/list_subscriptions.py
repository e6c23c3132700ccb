from pydantic import Field

from .base_model import BaseModel
from .fragments import PageFields, SubscriptionFields


class ListSubscriptions(BaseModel):
    subscriptions: "ListSubscriptionsSubscriptions"


class ListSubscriptionsSubscriptions(BaseModel):
    total_count: int = Field(alias="totalCount")
    page_info: "ListSubscriptionsSubscriptionsPageInfo" = Field(alias="pageInfo")
    edges: list["ListSubscriptionsSubscriptionsEdges"]


ListSubscriptionsSubscriptionsPageInfo = PageFields


class ListSubscriptionsSubscriptionsEdges(BaseModel):
    cursor: str
    node: "ListSubscriptionsSubscriptionsEdgesNode"


ListSubscriptionsSubscriptionsEdgesNode = SubscriptionFields
ListSubscriptions.model_rebuild()
ListSubscriptionsSubscriptions.model_rebuild()
ListSubscriptionsSubscriptionsEdges.model_rebuild()
