from typing import Any, Optional

from pydantic import Field

from .base_model import BaseModel
from .fragments import PageFields
from .scalars import DateTime


class SubscriptionHistory(BaseModel):
    subscription: Optional["SubscriptionHistorySubscription"]


class SubscriptionHistorySubscription(BaseModel):
    id: str
    history: "SubscriptionHistorySubscriptionHistory"


class SubscriptionHistorySubscriptionHistory(BaseModel):
    page_info: "SubscriptionHistorySubscriptionHistoryPageInfo" = Field(
        alias="pageInfo"
    )
    edges: list["SubscriptionHistorySubscriptionHistoryEdges"]


SubscriptionHistorySubscriptionHistoryPageInfo = PageFields


class SubscriptionHistorySubscriptionHistoryEdges(BaseModel):
    node: "SubscriptionHistorySubscriptionHistoryEdgesNode"


class SubscriptionHistorySubscriptionHistoryEdgesNode(BaseModel):
    id: str
    occurred_at: DateTime = Field(alias="occurredAt")
    actor: str
    action: str
    reason: Optional[str]
    changes: list["SubscriptionHistorySubscriptionHistoryEdgesNodeChanges"]


class SubscriptionHistorySubscriptionHistoryEdgesNodeChanges(BaseModel):
    field: str
    before: Optional[Any]
    after: Optional[Any]


SubscriptionHistory.model_rebuild()
SubscriptionHistorySubscription.model_rebuild()
SubscriptionHistorySubscriptionHistory.model_rebuild()
SubscriptionHistorySubscriptionHistoryEdges.model_rebuild()
SubscriptionHistorySubscriptionHistoryEdgesNode.model_rebuild()
