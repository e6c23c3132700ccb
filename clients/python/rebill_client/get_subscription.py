from typing import Optional

from .base_model import BaseModel
from .fragments import (  # noqa: F401
    RenewalFields,
    SubscriptionFields,
    SubscriptionFieldsAmount,
    SubscriptionFieldsCustomer,
    SubscriptionFieldsItems,
    SubscriptionFieldsProfile,
)


class GetSubscription(BaseModel):
    subscription: Optional["GetSubscriptionSubscription"]


class GetSubscriptionSubscription(SubscriptionFields):
    renewals: "GetSubscriptionSubscriptionRenewals"


class GetSubscriptionSubscriptionRenewals(BaseModel):
    edges: list["GetSubscriptionSubscriptionRenewalsEdges"]


class GetSubscriptionSubscriptionRenewalsEdges(BaseModel):
    node: "GetSubscriptionSubscriptionRenewalsEdgesNode"


GetSubscriptionSubscriptionRenewalsEdgesNode = RenewalFields
GetSubscription.model_rebuild()
GetSubscriptionSubscription.model_rebuild()
GetSubscriptionSubscriptionRenewals.model_rebuild()
GetSubscriptionSubscriptionRenewalsEdges.model_rebuild()
