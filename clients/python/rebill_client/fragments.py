from decimal import Decimal
from typing import Any, Optional

from pydantic import Field

from .base_model import BaseModel
from .enums import RenewalKind, RenewalStatus, RenewalType, SubscriptionStatus
from .scalars import Date, DateTime


class ErrorFields(BaseModel):
    field: Optional[list[str]]
    code: str
    message: str


class MoneyFields(BaseModel):
    amount: Decimal
    currency: str


class PageFields(BaseModel):
    has_next_page: bool = Field(alias="hasNextPage")
    has_previous_page: bool = Field(alias="hasPreviousPage")
    start_cursor: Optional[str] = Field(alias="startCursor")
    end_cursor: Optional[str] = Field(alias="endCursor")


class RenewalFields(BaseModel):
    id: str
    cycle: int
    kind: RenewalKind
    status: RenewalStatus
    period_start: Date = Field(alias="periodStart")
    period_end: Date = Field(alias="periodEnd")
    amount: "RenewalFieldsAmount"
    refunded_amount: "RenewalFieldsRefundedAmount" = Field(alias="refundedAmount")
    attempts: int
    created_at: DateTime = Field(alias="createdAt")


class RenewalFieldsAmount(MoneyFields):
    pass


class RenewalFieldsRefundedAmount(MoneyFields):
    pass


class SubscriptionFields(BaseModel):
    id: str
    status: SubscriptionStatus
    renewal_type: RenewalType = Field(alias="renewalType")
    version: int
    currency: str
    start_date: Date = Field(alias="startDate")
    next_renewal_date: Optional[Date] = Field(alias="nextRenewalDate")
    trial_end_date: Optional[Date] = Field(alias="trialEndDate")
    end_date: Optional[Date] = Field(alias="endDate")
    cancel_at_period_end: bool = Field(alias="cancelAtPeriodEnd")
    metadata: Optional[Any]
    created_at: DateTime = Field(alias="createdAt")
    updated_at: DateTime = Field(alias="updatedAt")
    amount: "SubscriptionFieldsAmount"
    customer: "SubscriptionFieldsCustomer"
    profile: "SubscriptionFieldsProfile"
    items: list["SubscriptionFieldsItems"]


class SubscriptionFieldsAmount(MoneyFields):
    pass


class SubscriptionFieldsCustomer(BaseModel):
    id: str
    email: str
    name: Optional[str]


class SubscriptionFieldsProfile(BaseModel):
    id: str
    name: str


class SubscriptionFieldsItems(BaseModel):
    id: str
    quantity: int
    unit_price: "SubscriptionFieldsItemsUnitPrice" = Field(alias="unitPrice")
    total: "SubscriptionFieldsItemsTotal"
    product: "SubscriptionFieldsItemsProduct"


class SubscriptionFieldsItemsUnitPrice(MoneyFields):
    pass


class SubscriptionFieldsItemsTotal(MoneyFields):
    pass


class SubscriptionFieldsItemsProduct(BaseModel):
    id: str
    sku: str
    name: str


class WebhookEndpointFields(BaseModel):
    id: str
    url: str
    description: Optional[str]
    events: list[str]
    enabled: bool
    disabled_reason: Optional[str] = Field(alias="disabledReason")
    created_at: DateTime = Field(alias="createdAt")


ErrorFields.model_rebuild()
MoneyFields.model_rebuild()
PageFields.model_rebuild()
RenewalFields.model_rebuild()
SubscriptionFields.model_rebuild()
WebhookEndpointFields.model_rebuild()
