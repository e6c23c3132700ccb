from decimal import Decimal
from typing import Annotated, Optional

from pydantic import Field, PlainSerializer

from .base_model import BaseModel
from .enums import (
    GatewayMode,
    IntervalUnit,
    OrderDirection,
    RenewalType,
    RenewNowMode,
    SubscriptionOrderField,
    SubscriptionStatus,
)
from .scalars import Date, amount_to_string


class ActivateSubscriptionInput(BaseModel):
    """The input of activateSubscription."""

    subscription_id: str = Field(alias="subscriptionId")
    "The subscription to change"
    expected_version: Optional[int] = Field(alias="expectedVersion", default=None)
    "Refused with VERSION_CONFLICT when stale"
    reason: Optional[str] = None
    "Kept in the history entry"
    idempotency_key: Optional[str] = Field(alias="idempotencyKey", default=None)
    "A retry with the same key and input replays the first response"
    dry_run: Optional[bool] = Field(alias="dryRun", default=False)
    "Check and compute everything, store nothing"


class CancelSubscriptionInput(BaseModel):
    """The input of cancelSubscription."""

    subscription_id: str = Field(alias="subscriptionId")
    "The subscription to change"
    expected_version: Optional[int] = Field(alias="expectedVersion", default=None)
    "Refused with VERSION_CONFLICT when stale"
    reason: Optional[str] = None
    "Kept in the history entry"
    idempotency_key: Optional[str] = Field(alias="idempotencyKey", default=None)
    "A retry with the same key and input replays the first response"
    dry_run: Optional[bool] = Field(alias="dryRun", default=False)
    "Check and compute everything, store nothing"
    at_period_end: bool = Field(alias="atPeriodEnd", default=False)
    "Cancel when the current period ends rather than now"
    refund_last_renewal: bool = Field(alias="refundLastRenewal", default=False)
    "Refund the last renewal paid by card"
    cancel_fulfillment: bool = Field(alias="cancelFulfillment", default=False)
    "Cancel the last renewal's shipment if it has not shipped"
    override_contract: bool = Field(alias="overrideContract", default=False)
    "Cancel now although a contract commits the subscription: bills its early termination fee"


class ChangeNextRenewalDateInput(BaseModel):
    """The input of changeNextRenewalDate."""

    subscription_id: str = Field(alias="subscriptionId")
    "The subscription to change"
    expected_version: Optional[int] = Field(alias="expectedVersion", default=None)
    "Refused with VERSION_CONFLICT when stale"
    reason: Optional[str] = None
    "Kept in the history entry"
    idempotency_key: Optional[str] = Field(alias="idempotencyKey", default=None)
    "A retry with the same key and input replays the first response"
    dry_run: Optional[bool] = Field(alias="dryRun", default=False)
    "Check and compute everything, store nothing"
    date: Optional[Date] = None
    "The new date"
    shift: Optional["ShiftInput"] = None
    "Or a shift of the current date (negative counts move it earlier)"


class CreateWebhookEndpointInput(BaseModel):
    """A new endpoint"""

    url: str
    "An http or https URL that accepts POST, on a public address, without user:password@ (URL_NOT_ALLOWED otherwise)"
    events: Optional[list[str]] = None
    "Event types to receive (subscription.created, renewal.paid, …); empty or absent: all"
    description: Optional[str] = None
    "A note for the people who run it"


class DeleteWebhookEndpointInput(BaseModel):
    """The endpoint to delete, with its deliveries"""

    endpoint_id: str = Field(alias="endpointId")
    "The endpoint"


class ForceBillInput(BaseModel):
    """The input of forceBill."""

    subscription_id: str = Field(alias="subscriptionId")
    "The subscription to change"
    expected_version: Optional[int] = Field(alias="expectedVersion", default=None)
    "Refused with VERSION_CONFLICT when stale"
    reason: Optional[str] = None
    "Kept in the history entry"
    idempotency_key: Optional[str] = Field(alias="idempotencyKey", default=None)
    "A retry with the same key and input replays the first response"
    dry_run: Optional[bool] = Field(alias="dryRun", default=False)
    "Check and compute everything, store nothing"
    allow_repeat: bool = Field(alias="allowRepeat", default=False)
    "Bill again although a force bill already billed a period starting today (else ALREADY_BILLED)"


class MoneyInput(BaseModel):
    """An amount as a decimal string in major units ("62.96"), never a float."""

    amount: Annotated[Decimal, PlainSerializer(amount_to_string)]
    'A decimal string in major units ("62.96")'
    currency: str
    "The ISO 4217 currency code"


class RefundRenewalInput(BaseModel):
    """The input of refundRenewal."""

    renewal_id: str = Field(alias="renewalId")
    "The paid renewal"
    expected_version: Optional[int] = Field(alias="expectedVersion", default=None)
    "Refused with VERSION_CONFLICT when the subscription's version differs"
    reason: Optional[str] = None
    "Kept in the history entry"
    idempotency_key: Optional[str] = Field(alias="idempotencyKey", default=None)
    "A retry with the same key and input returns the first response"
    dry_run: Optional[bool] = Field(alias="dryRun", default=False)
    "Check and compute everything, store nothing"
    amount: Optional["MoneyInput"] = None
    "Absent = all that was paid and not refunded"


class RenewNowInput(BaseModel):
    """The input of renewNow."""

    subscription_id: str = Field(alias="subscriptionId")
    "The subscription to change"
    expected_version: Optional[int] = Field(alias="expectedVersion", default=None)
    "Refused with VERSION_CONFLICT when stale"
    reason: Optional[str] = None
    "Kept in the history entry"
    idempotency_key: Optional[str] = Field(alias="idempotencyKey", default=None)
    "A retry with the same key and input replays the first response"
    dry_run: Optional[bool] = Field(alias="dryRun", default=False)
    "Check and compute everything, store nothing"
    mode: RenewNowMode = RenewNowMode.EXTEND
    "EXTEND the current period or RESTART billing from today"
    unit_price: Optional["MoneyInput"] = Field(alias="unitPrice", default=None)
    "Charge this unit price for the renewal (an upgrade or a downgrade)"
    product_id: Optional[str] = Field(alias="productId", default=None)
    "Upgrade or downgrade the item as part of the renewal"
    consent_reference: Optional[str] = Field(alias="consentReference", default=None)
    "The customer's consent to pay more (required when the change raises the bill)"


class ResumeSubscriptionInput(BaseModel):
    """Undo a scheduled cancellation or end date before it happens."""

    subscription_id: str = Field(alias="subscriptionId")
    "The subscription to change"
    expected_version: Optional[int] = Field(alias="expectedVersion", default=None)
    "Refused with VERSION_CONFLICT when stale"
    reason: Optional[str] = None
    "Kept in the history entry"
    idempotency_key: Optional[str] = Field(alias="idempotencyKey", default=None)
    "A retry with the same key and input replays the first response"
    dry_run: Optional[bool] = Field(alias="dryRun", default=False)
    "Check and compute everything, store nothing"


class RetryRenewalInput(BaseModel):
    """The input of retryRenewal."""

    renewal_id: str = Field(alias="renewalId")
    "The failed renewal"
    expected_version: Optional[int] = Field(alias="expectedVersion", default=None)
    "Refused with VERSION_CONFLICT when the subscription's version differs"
    reason: Optional[str] = None
    "Kept in the history entry"
    idempotency_key: Optional[str] = Field(alias="idempotencyKey", default=None)
    "A retry with the same key and input returns the first response"
    dry_run: Optional[bool] = Field(alias="dryRun", default=False)
    "Check and compute everything, store nothing"


class RotateWebhookSecretInput(BaseModel):
    """The endpoint whose secret to replace"""

    endpoint_id: str = Field(alias="endpointId")
    "The endpoint"


class ShiftInput(BaseModel):
    """A relative duration such as 3 MONTH or -14 DAY."""

    unit: IntervalUnit
    "The calendar unit"
    count: int
    "How many units between renewals"


class SubscriptionFilter(BaseModel):
    """Filters for the subscription list and for bulk plans (ANDed)."""

    ids: Optional[list[str]] = None
    "Only these subscriptions (at most 1,000 ids)"
    status: Optional[list[SubscriptionStatus]] = None
    "Only these statuses"
    renewal_type: Optional[RenewalType] = Field(alias="renewalType", default=None)
    "Only this renewal type"
    profile_ids: Optional[list[str]] = Field(alias="profileIds", default=None)
    "Only subscriptions following these profiles"
    product_ids: Optional[list[str]] = Field(alias="productIds", default=None)
    "Only subscriptions with an item of these products"
    customer_email: Optional[str] = Field(alias="customerEmail", default=None)
    "Only the subscriptions of the customer with this e-mail"
    customer_search: Optional[str] = Field(alias="customerSearch", default=None)
    "Only the subscriptions of customers whose name or e-mail contains every word of this text, in any letter case (as customers(filter: { search }); at most 320 characters)"
    next_renewal_from: Optional[Date] = Field(alias="nextRenewalFrom", default=None)
    "Inclusive; a TRIAL matches by its trial end"
    next_renewal_to: Optional[Date] = Field(alias="nextRenewalTo", default=None)
    "Inclusive; a TRIAL matches by its trial end"
    in_trial: Optional[bool] = Field(alias="inTrial", default=None)
    "Only subscriptions in (true) or out of (false) their trial"
    amount_min: Optional[str] = Field(alias="amountMin", default=None)
    "Only subscriptions whose next renewal bills at least this (a decimal string)"
    amount_max: Optional[str] = Field(alias="amountMax", default=None)
    "Only subscriptions whose next renewal bills at most this (a decimal string)"
    currency: Optional[str] = None
    "Only subscriptions billing in this currency"
    gateway_mode: Optional[list[GatewayMode]] = Field(alias="gatewayMode", default=None)
    "Only these gateway modes"
    gateway_ids: Optional[list[str]] = Field(alias="gatewayIds", default=None)
    "Only subscriptions set to these gateways"
    has_gateway: Optional[bool] = Field(alias="hasGateway", default=None)
    "Only subscriptions with (true) or without (false) a gateway of their own"


class SubscriptionOrder(BaseModel):
    """How subscriptions(orderBy:) sorts: a field, then the id, in one direction."""

    field: SubscriptionOrderField
    "The sort key"
    direction: OrderDirection = OrderDirection.ASC
    "ASC (the default) or DESC"


class SuspendSubscriptionInput(BaseModel):
    """The input of suspendSubscription."""

    subscription_id: str = Field(alias="subscriptionId")
    "The subscription to change"
    expected_version: Optional[int] = Field(alias="expectedVersion", default=None)
    "Refused with VERSION_CONFLICT when stale"
    reason: Optional[str] = None
    "Kept in the history entry"
    idempotency_key: Optional[str] = Field(alias="idempotencyKey", default=None)
    "A retry with the same key and input replays the first response"
    dry_run: Optional[bool] = Field(alias="dryRun", default=False)
    "Check and compute everything, store nothing"


class UpdateWebhookEndpointInput(BaseModel):
    """Changes to an endpoint; absent fields stay as they are"""

    endpoint_id: str = Field(alias="endpointId")
    "The endpoint to change"
    url: Optional[str] = None
    "A new URL, under the same rules as at creation"
    events: Optional[list[str]] = None
    "Event types; empty: all"
    description: Optional[str] = None
    "A new note (null clears it)"
    enabled: Optional[bool] = None
    "Turn delivery off or back on (clears the disabled reason)"


ChangeNextRenewalDateInput.model_rebuild()
RefundRenewalInput.model_rebuild()
RenewNowInput.model_rebuild()
