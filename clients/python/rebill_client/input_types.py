from decimal import Decimal
from typing import Annotated, Any, Optional

from pydantic import Field, PlainSerializer

from .base_model import BaseModel
from .enums import (
    AnchorPolicy,
    CouponDuration,
    Effective,
    FulfillmentStatus,
    GatewayMode,
    IntervalUnit,
    OrderDirection,
    PaymentMethodKind,
    PortalFlow,
    ProductKind,
    Proration,
    RenewalType,
    RenewNowMode,
    SubscriptionOrderField,
    SubscriptionStatus,
)
from .scalars import Date, DateTime, amount_to_string


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


class AddItemInput(BaseModel):
    """The input of addItem."""

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
    product_id: str = Field(alias="productId")
    "The product to add"
    unit_price: Optional["MoneyInput"] = Field(alias="unitPrice", default=None)
    "The price of one unit (default: from the product's tiers)"
    quantity: int = 1
    "How many units"
    effective: Effective = Effective.IMMEDIATE
    "Now or from the next renewal"
    proration: Proration = Proration.NONE
    "How the rest of the current period is billed"
    consent_reference: Optional[str] = Field(alias="consentReference", default=None)
    "The customer's consent to pay more (required when the change raises the bill)"


class AddPaymentMethodInput(BaseModel):
    """The input of addPaymentMethod."""

    customer_id: str = Field(alias="customerId")
    "The customer it belongs to"
    kind: PaymentMethodKind
    "Card, external or offline"
    gateway_token: Optional[str] = Field(alias="gatewayToken", default=None)
    "For the sandbox: a test card number"
    make_default: bool = Field(alias="makeDefault", default=False)
    "Make it the customer's default payment method"
    exp_month: Optional[int] = Field(alias="expMonth", default=None)
    "The card's expiry month (1-12)"
    exp_year: Optional[int] = Field(alias="expYear", default=None)
    "The card's expiry year"


class AddressInput(BaseModel):
    """The input of address."""

    line_1: str = Field(alias="line1")
    "Street and number"
    line_2: Optional[str] = Field(alias="line2", default=None)
    "Apartment, suite, building"
    city: str
    "City or town"
    region: Optional[str] = None
    "State, province or region"
    postal_code: Optional[str] = Field(alias="postalCode", default=None)
    "Postal code"
    country: str
    "ISO 3166-1 alpha-2 country code"


class ApplyCouponInput(BaseModel):
    """The input of applyCoupon."""

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
    code: str
    "The coupon's code"


class BulkActionInput(BaseModel):
    """One action: exactly one field. Flags (suspend, activate…) take true."""

    shift_next_renewal: Optional["ShiftInput"] = Field(
        alias="shiftNextRenewal", default=None
    )
    "Move the next renewal date by a duration"
    set_next_renewal_date: Optional["BulkSetNextRenewalDateInput"] = Field(
        alias="setNextRenewalDate", default=None
    )
    "Set the next renewal date"
    set_unit_price: Optional["BulkSetUnitPriceInput"] = Field(
        alias="setUnitPrice", default=None
    )
    "Set items' unit price"
    adjust_price: Optional["BulkAdjustPriceInput"] = Field(
        alias="adjustPrice", default=None
    )
    "Raise or lower items' unit price by a percentage or an amount"
    set_quantity: Optional["BulkSetQuantityInput"] = Field(
        alias="setQuantity", default=None
    )
    "Set items' quantity"
    change_profile: Optional["BulkChangeProfileInput"] = Field(
        alias="changeProfile", default=None
    )
    "Move to another profile"
    set_renewal_type: Optional["BulkSetRenewalTypeInput"] = Field(
        alias="setRenewalType", default=None
    )
    "Set the renewal type"
    set_gateway: Optional["BulkSetGatewayInput"] = Field(
        alias="setGateway", default=None
    )
    "Set the payment gateway"
    clear_gateway: Optional[bool] = Field(alias="clearGateway", default=None)
    "Go back to the default gateway"
    apply_coupon: Optional["BulkCouponInput"] = Field(alias="applyCoupon", default=None)
    "Apply a coupon"
    remove_coupon: Optional["BulkCouponInput"] = Field(
        alias="removeCoupon", default=None
    )
    "Remove a coupon"
    suspend: Optional[bool] = None
    "Suspend"
    activate: Optional[bool] = None
    "Activate"
    cancel: Optional["BulkCancelInput"] = None
    "Cancel"
    set_metadata: Optional["BulkSetMetadataInput"] = Field(
        alias="setMetadata", default=None
    )
    "Replace or merge metadata"


class BulkAdjustPriceInput(BaseModel):
    """percent ("-10" is ten percent off) or a signed amount per unit, not both."""

    percent: Optional[str] = None
    'A percentage as a decimal string ("-10")'
    amount: Optional["MoneyInput"] = None
    "Or an amount to add (negative to take off)"
    product_id: Optional[str] = Field(alias="productId", default=None)
    "Only items of this product"
    consent_reference: Optional[str] = Field(alias="consentReference", default=None)
    "The customer's consent to pay more (required when the change raises the bill)"


class BulkCancelInput(BaseModel):
    """The input of bulkCancel."""

    at_period_end: bool = Field(alias="atPeriodEnd", default=False)
    "Cancel when the current period ends rather than now"


class BulkChangeProfileInput(BaseModel):
    """The input of bulkChangeProfile."""

    profile_id: str = Field(alias="profileId")
    "The profile to follow"


class BulkCouponInput(BaseModel):
    """The input of bulkCoupon."""

    code: str
    "The coupon's code"


class BulkPlanInput(BaseModel):
    """The same shape as a `rebill bulk` plan file."""

    filter_: Optional["SubscriptionFilter"] = Field(alias="filter", default=None)
    "Which subscriptions the plan considers"
    segments: list["BulkSegmentInput"]
    "Segments in order: each subscription goes to the first whose when matches"
    limit: Optional[int] = None
    "Change at most this many subscriptions"


class BulkSegmentInput(BaseModel):
    """A further filter; a segment without one takes every subscription left."""

    name: str
    "The segment's name, shown in previews and run items"
    when: Optional["SubscriptionFilter"] = None
    "Which of the filtered subscriptions belong here; absent = every one not yet taken"
    actions: list["BulkActionInput"]
    "What to do to each, in order"


class BulkSetGatewayInput(BaseModel):
    """The input of bulkSetGateway."""

    gateway_id: str = Field(alias="gatewayId")
    "The gateway"
    mode: GatewayMode = GatewayMode.PREFERRED
    "How firmly to keep to it"


class BulkSetMetadataInput(BaseModel):
    """The input of bulkSetMetadata."""

    metadata: Any
    "The data"
    merge: bool = True
    "Merge into the existing keys (true) or replace them all (false)"


class BulkSetNextRenewalDateInput(BaseModel):
    """The input of bulkSetNextRenewalDate."""

    date: Date
    "The new date"


class BulkSetQuantityInput(BaseModel):
    """The input of bulkSetQuantity."""

    quantity: int
    "The new quantity"
    product_id: Optional[str] = Field(alias="productId", default=None)
    "Only items of this product"
    consent_reference: Optional[str] = Field(alias="consentReference", default=None)
    "The customer's consent to pay more (required when the change raises the bill)"


class BulkSetRenewalTypeInput(BaseModel):
    """The input of bulkSetRenewalType."""

    renewal_type: RenewalType = Field(alias="renewalType")
    "AUTOMATIC or MANUAL"


class BulkSetUnitPriceInput(BaseModel):
    """The input of bulkSetUnitPrice."""

    unit_price: "MoneyInput" = Field(alias="unitPrice")
    "The new unit price"
    product_id: Optional[str] = Field(alias="productId", default=None)
    "Only items of this product"
    consent_reference: Optional[str] = Field(alias="consentReference", default=None)
    "Needed when the price goes up"


class CadenceInput(BaseModel):
    """The input of cadence."""

    unit: IntervalUnit
    "The calendar unit"
    count: int = 1
    "How many units between renewals"


class CancelBulkRunInput(BaseModel):
    """The input of cancelBulkRun."""

    run_id: str = Field(alias="runId")
    "The run to stop"


class CancelPhaseInput(BaseModel):
    """The input of cancelPhase."""

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
    phase_id: str = Field(alias="phaseId")
    "The phase to drop"


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


class ChangeProductInput(BaseModel):
    """The input of changeProduct."""

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
    item_id: str = Field(alias="itemId")
    "The item whose product changes"
    product_id: str = Field(alias="productId")
    "The new product"
    unit_price: Optional["MoneyInput"] = Field(alias="unitPrice", default=None)
    "The new product's unit price"
    quantity: Optional[int] = None
    "The new quantity (default: the item's)"
    transfer_coupons: bool = Field(alias="transferCoupons", default=False)
    "Carry the coupons over to the replacement"
    consent_reference: Optional[str] = Field(alias="consentReference", default=None)
    "The customer's consent to pay more (required when the change raises the bill)"


class ChangeProfileInput(BaseModel):
    """The input of changeProfile."""

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
    profile_id: Optional[str] = Field(alias="profileId", default=None)
    "The profile to follow"
    custom_profile: Optional["CreateProfileInput"] = Field(
        alias="customProfile", default=None
    )
    "Or terms of its own (the createProfile fields)"


class ChronologicalOrder(BaseModel):
    """The order of a subscription's history or renewals: newest first unless ASC."""

    direction: OrderDirection = OrderDirection.DESC
    "DESC (newest first, the default) or ASC (oldest first)"


class CreateCouponInput(BaseModel):
    """The input of createCoupon."""

    code: str
    "What customers type"
    name: Optional[str] = None
    "A name for people"
    percent_off: Optional[str] = Field(alias="percentOff", default=None)
    'A percentage off, as a decimal string ("10"); null for an amount off'
    amount_off: Optional["MoneyInput"] = Field(alias="amountOff", default=None)
    "An amount off each renewal; null for a percentage"
    duration: CouponDuration = CouponDuration.FOREVER
    "For how many renewals it discounts"
    duration_cycles: Optional[int] = Field(alias="durationCycles", default=None)
    "How many renewals, for REPEATING"
    product_ids: Optional[list[str]] = Field(alias="productIds", default=None)
    "The products it discounts; absent or empty for all"


class CreateCustomerInput(BaseModel):
    """The input of createCustomer."""

    email: str
    "Where notifications go"
    name: Optional[str] = None
    "The customer's name"
    time_zone: Optional[str] = Field(alias="timeZone", default="UTC")
    "IANA time zone (default UTC)"


class CreateCustomerPortalSessionInput(BaseModel):
    """The input of createCustomerPortalSession."""

    customer_id: str = Field(alias="customerId")
    "The customer who will use the portal"
    return_url: Optional[str] = Field(alias="returnUrl", default=None)
    "The store's page the portal links back to (absolute http or https URL)"
    flow: PortalFlow = PortalFlow.OVERVIEW
    "The page the link opens on"
    subscription_id: Optional[str] = Field(alias="subscriptionId", default=None)
    "Open this subscription's page (one of the customer's); default: the overview"


class CreateProductInput(BaseModel):
    """The input of createProduct."""

    name: str
    "The product's name"
    sku: str
    "The stock-keeping unit, unique"
    kind: ProductKind = ProductKind.STANDARD
    "How the product is billed"
    tiers: Optional[list["PriceTierInput"]] = None
    "Volume tiers, lowest quantities first; the last one's upTo is null"


class CreateProfileInput(BaseModel):
    """The input of createProfile."""

    name: str
    "The plan's name"
    description: Optional[str] = None
    "What the plan is, for people"
    cadence: "CadenceInput"
    "How often subscriptions renew"
    anchor_policy: AnchorPolicy = Field(
        alias="anchorPolicy", default=AnchorPolicy.ANCHORED
    )
    "How billing dates keep to the anchor day"
    trial_days: int = Field(alias="trialDays", default=0)
    "Days of free trial before the first charge (0 = none)"
    max_occurrences: Optional[int] = Field(alias="maxOccurrences", default=None)
    "Renewals billed before the subscription expires; null = unlimited"
    overdue_limit: int = Field(alias="overdueLimit", default=0)
    "Unpaid renewals tolerated before the final failure action; 0 = no limit"
    retry_schedule_days: Optional[list[int]] = Field(
        alias="retryScheduleDays", default=None
    )
    "Days after a failed charge on which it is tried again"
    final_failure_action: str = Field(alias="finalFailureAction", default="CANCEL")
    "CANCEL or SUSPEND when the retries are exhausted"
    default_renewal_type: RenewalType = Field(
        alias="defaultRenewalType", default=RenewalType.AUTOMATIC
    )
    "The renewal type new subscriptions get"
    force_last_gateway: bool = Field(alias="forceLastGateway", default=False)
    "Charge renewals through the gateway that charged the last one"
    reminder_days_before: int = Field(alias="reminderDaysBefore", default=7)
    "Days before a manual renewal to remind the customer (0 = no reminder)"
    active: bool = True
    "New subscriptions may use the profile"


class CreateSubscriptionInput(BaseModel):
    """The input of createSubscription."""

    customer_id: str = Field(alias="customerId")
    "Who subscribes"
    profile_id: str = Field(alias="profileId")
    "The plan to follow"
    items: list["SubscriptionItemInput"]
    "What to bill for: products at unit prices and quantities"
    start_date: Optional[Date] = Field(alias="startDate", default=None)
    "The first day (default today; a later day makes it FUTURE)"
    trial_days: Optional[int] = Field(alias="trialDays", default=None)
    "Days of trial (default: the profile's)"
    payment_method_id: Optional[str] = Field(alias="paymentMethodId", default=None)
    "Pin one of the customer's payment methods (default: theirs)"
    renewal_type: Optional[RenewalType] = Field(alias="renewalType", default=None)
    "AUTOMATIC or MANUAL (default: the profile's)"
    metadata: Optional[Any] = None
    "Free-form data of the merchant's"
    bill_first_period: bool = Field(alias="billFirstPeriod", default=True)
    "Charge the first period now (false to import running subscriptions)"
    reason: Optional[str] = None
    "Kept in the history entry"
    idempotency_key: Optional[str] = Field(alias="idempotencyKey", default=None)
    "A retry with the same key and input returns the first response"
    dry_run: Optional[bool] = Field(alias="dryRun", default=False)
    "Check and compute everything, store nothing"


class CreateWebhookEndpointInput(BaseModel):
    """A new endpoint"""

    url: str
    "An http or https URL that accepts POST"
    events: Optional[list[str]] = None
    "Event types to receive (subscription.created, renewal.paid, …); empty or absent: all"
    description: Optional[str] = None
    "A note for the people who run it"


class CustomerFilter(BaseModel):
    """Which customers customers(filter:) lists; every field given must match."""

    email: Optional[str] = None
    "This e-mail address exactly, in any letter case"
    email_contains: Optional[str] = Field(alias="emailContains", default=None)
    "E-mail addresses containing this text, in any letter case"
    search: Optional[str] = None
    "Words that must each appear in the customer's name or e-mail address, in any letter case"


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


class ItemChangeInput(BaseModel):
    """The input of itemChange."""

    item_id: str = Field(alias="itemId")
    "The item to change"
    unit_price: Optional["MoneyInput"] = Field(alias="unitPrice", default=None)
    "Its new unit price"
    quantity: Optional[int] = None
    "Its new quantity"


class MoneyInput(BaseModel):
    """An amount as a decimal string in major units ("62.96"), never a float."""

    amount: Annotated[Decimal, PlainSerializer(amount_to_string)]
    'A decimal string in major units ("62.96")'
    currency: str
    "The ISO 4217 currency code"


class NewItemInput(BaseModel):
    """The input of newItem."""

    product_id: str = Field(alias="productId")
    "The product"
    unit_price: Optional["MoneyInput"] = Field(alias="unitPrice", default=None)
    "The price of one unit (default: from the product's tiers)"
    quantity: int = 1
    "How many units"


class PriceTierInput(BaseModel):
    """The input of priceTier."""

    up_to: Optional[int] = Field(alias="upTo", default=None)
    "The highest quantity this tier prices; null for the last tier"
    unit_price: "MoneyInput" = Field(alias="unitPrice")
    "The unit price within the tier"


class RedeliverWebhookInput(BaseModel):
    """The delivery to send again"""

    delivery_id: str = Field(alias="deliveryId")
    "The delivery"


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


class RemoveCouponInput(BaseModel):
    """The input of removeCoupon."""

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
    code: str
    "The coupon's code"


class RemoveItemInput(BaseModel):
    """The input of removeItem."""

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
    item_id: str = Field(alias="itemId")
    "The item to remove"
    effective: Effective = Effective.IMMEDIATE
    "Now or from the next renewal"
    proration: Proration = Proration.NONE
    "How the rest of the current period is credited"


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


class RevertBulkRunInput(BaseModel):
    """The input of revertBulkRun."""

    run_id: str = Field(alias="runId")
    "The run to revert"


class RotateWebhookSecretInput(BaseModel):
    """The endpoint whose secret to replace"""

    endpoint_id: str = Field(alias="endpointId")
    "The endpoint"


class SetEndDateInput(BaseModel):
    """The input of setEndDate."""

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
    end_date: Optional[Date] = Field(alias="endDate", default=None)
    "null (and no after) = forever"
    after: Optional["ShiftInput"] = None
    "A duration from the start date"


class SetGatewayInput(BaseModel):
    """The input of setGateway."""

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
    gateway_id: Optional[str] = Field(alias="gatewayId", default=None)
    "null clears the gateway preference"
    mode: Optional[GatewayMode] = None
    "How firmly to keep to it"


class SetMetadataInput(BaseModel):
    """The input of setMetadata."""

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
    metadata: Optional[Any] = None
    "The data; null clears it"
    merge: bool = True
    "Merge into the existing keys (true) or replace them all (false)"


class SetPaymentMethodInput(BaseModel):
    """The input of setPaymentMethod."""

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
    payment_method_id: str = Field(alias="paymentMethodId")
    "One of the subscription's customer's payment methods"


class SetRenewalTypeInput(BaseModel):
    """The input of setRenewalType."""

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
    renewal_type: RenewalType = Field(alias="renewalType")
    "AUTOMATIC or MANUAL"
    item_ids: Optional[list[str]] = Field(alias="itemIds", default=None)
    "Only these items (default: the whole subscription)"


class ShiftInput(BaseModel):
    """A relative duration such as 3 MONTH or -14 DAY."""

    unit: IntervalUnit
    "The calendar unit"
    count: int
    "How many units between renewals"


class StartBulkRunInput(BaseModel):
    """The input of startBulkRun."""

    plan: "BulkPlanInput"
    "The plan: a filter, segments and their actions"
    limit: Optional[int] = None
    "Change at most this many (overrides the plan's)"
    dry_run: Optional[bool] = Field(alias="dryRun", default=False)
    "Record every would-be outcome, change nothing"
    as_of: Optional[DateTime] = Field(alias="asOf", default=None)
    "The preview's previewedAt: subscriptions changed since are CONFLICT"


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


class SubscriptionItemInput(BaseModel):
    """The input of subscriptionItem."""

    product_id: str = Field(alias="productId")
    "The product"
    unit_price: Optional["MoneyInput"] = Field(alias="unitPrice", default=None)
    "Omit to price by the product's volume tiers"
    quantity: int = 1
    "How many units"


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


class UpdateCustomerInput(BaseModel):
    """The input of updateCustomer."""

    customer_id: str = Field(alias="customerId")
    "The customer to change"
    email: Optional[str] = None
    "Where notifications go"
    name: Optional[str] = None
    "The customer's name"
    time_zone: Optional[str] = Field(alias="timeZone", default=None)
    "IANA time zone: billing days are the customer's days"
    billing_address: Optional["AddressInput"] = Field(
        alias="billingAddress", default=None
    )
    "The address on invoices"
    idempotency_key: Optional[str] = Field(alias="idempotencyKey", default=None)
    "A retry with the same key and input returns the first response"


class UpdateFulfillmentInput(BaseModel):
    """The input of updateFulfillment."""

    renewal_id: str = Field(alias="renewalId")
    "The renewal whose shipment changes"
    expected_version: Optional[int] = Field(alias="expectedVersion", default=None)
    "Refused with VERSION_CONFLICT when the subscription's version differs"
    reason: Optional[str] = None
    "Kept in the history entry"
    idempotency_key: Optional[str] = Field(alias="idempotencyKey", default=None)
    "A retry with the same key and input returns the first response"
    dry_run: Optional[bool] = Field(alias="dryRun", default=False)
    "Check and compute everything, store nothing"
    status: FulfillmentStatus
    "SHIPPED or CANCELLED"


class UpdateItemInput(BaseModel):
    """The input of updateItem."""

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
    item_id: str = Field(alias="itemId")
    "The item to change"
    unit_price: Optional["MoneyInput"] = Field(alias="unitPrice", default=None)
    "Its new unit price"
    quantity: Optional[int] = None
    "Its new quantity"
    effective: Effective = Effective.IMMEDIATE
    "Now or from the next renewal"
    proration: Proration = Proration.NONE
    "How the rest of the current period is billed"
    consent_reference: Optional[str] = Field(alias="consentReference", default=None)
    "The customer's consent to pay more (required when the change raises the bill)"


class UpdatePhaseInput(BaseModel):
    """The input of updatePhase."""

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
    next_renewal_date: Optional[Date] = Field(alias="nextRenewalDate", default=None)
    "A new next renewal date"
    items: Optional[list["ItemChangeInput"]] = None
    "Changes to existing items"
    add_items: Optional[list["NewItemInput"]] = Field(alias="addItems", default=None)
    "Products to add"
    remove_item_ids: Optional[list[str]] = Field(alias="removeItemIds", default=None)
    "Items to remove"
    apply_coupons: Optional[list[str]] = Field(alias="applyCoupons", default=None)
    "Coupon codes to apply"
    remove_coupons: Optional[list[str]] = Field(alias="removeCoupons", default=None)
    "Coupon codes to remove"
    profile_id: Optional[str] = Field(alias="profileId", default=None)
    "A profile to follow"
    shipping_address: Optional["AddressInput"] = Field(
        alias="shippingAddress", default=None
    )
    "A new shipping address"
    payment_method_id: Optional[str] = Field(alias="paymentMethodId", default=None)
    "A payment method of the customer's to pin"
    gateway_id: Optional[str] = Field(alias="gatewayId", default=None)
    "A gateway to charge through"
    gateway_mode: Optional[GatewayMode] = Field(alias="gatewayMode", default=None)
    "How firmly to keep to it"
    clear_gateway: bool = Field(alias="clearGateway", default=False)
    "Go back to the default gateway"
    renewal_type: Optional[RenewalType] = Field(alias="renewalType", default=None)
    "AUTOMATIC or MANUAL"
    end_date: Optional[Date] = Field(alias="endDate", default=None)
    "A new end date"
    clear_end_date: bool = Field(alias="clearEndDate", default=False)
    "Renew forever"
    metadata: Optional[Any] = None
    "Metadata to merge in"
    consent_reference: Optional[str] = Field(alias="consentReference", default=None)
    "The customer's consent to pay more (required when the change raises the bill)"
    effective_date: Optional[Date] = Field(alias="effectiveDate", default=None)
    "Apply the changes on this future day (a phase) rather than now"
    at_next_renewal: bool = Field(alias="atNextRenewal", default=False)
    "Apply the changes at the next renewal (a phase)"
    phase_id: str = Field(alias="phaseId")
    "The phase to change"


class UpdateProfileInput(BaseModel):
    """The input of updateProfile."""

    profile_id: str = Field(alias="profileId")
    "The profile to change"
    name: Optional[str] = None
    "The plan's name"
    description: Optional[str] = None
    "What the plan is, for people"
    cadence: Optional["CadenceInput"] = None
    "How often subscriptions renew"
    anchor_policy: Optional[AnchorPolicy] = Field(alias="anchorPolicy", default=None)
    "How billing dates keep to the anchor day"
    trial_days: Optional[int] = Field(alias="trialDays", default=None)
    "Days of free trial before the first charge (0 = none)"
    max_occurrences: Optional[int] = Field(alias="maxOccurrences", default=None)
    "Renewals billed before the subscription expires; null = unlimited"
    clear_max_occurrences: bool = Field(alias="clearMaxOccurrences", default=False)
    "Make the number of renewals unlimited again"
    overdue_limit: Optional[int] = Field(alias="overdueLimit", default=None)
    "Unpaid renewals tolerated before the final failure action; 0 = no limit"
    retry_schedule_days: Optional[list[int]] = Field(
        alias="retryScheduleDays", default=None
    )
    "Days after a failed charge on which it is tried again"
    final_failure_action: Optional[str] = Field(
        alias="finalFailureAction", default=None
    )
    "CANCEL or SUSPEND when the retries are exhausted"
    default_renewal_type: Optional[RenewalType] = Field(
        alias="defaultRenewalType", default=None
    )
    "The renewal type new subscriptions get"
    force_last_gateway: Optional[bool] = Field(alias="forceLastGateway", default=None)
    "Charge renewals through the gateway that charged the last one"
    reminder_days_before: Optional[int] = Field(
        alias="reminderDaysBefore", default=None
    )
    "Days before a manual renewal to remind the customer (0 = no reminder)"
    active: Optional[bool] = None
    "New subscriptions may use the profile"


class UpdateShippingAddressInput(BaseModel):
    """The input of updateShippingAddress."""

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
    address: "AddressInput"
    "The new address"


class UpdateSubscriptionInput(BaseModel):
    """Any set of settings at once; effectiveDate in the future (or atNextRenewal) stores a phase."""

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
    next_renewal_date: Optional[Date] = Field(alias="nextRenewalDate", default=None)
    "A new next renewal date"
    items: Optional[list["ItemChangeInput"]] = None
    "Changes to existing items"
    add_items: Optional[list["NewItemInput"]] = Field(alias="addItems", default=None)
    "Products to add"
    remove_item_ids: Optional[list[str]] = Field(alias="removeItemIds", default=None)
    "Items to remove"
    apply_coupons: Optional[list[str]] = Field(alias="applyCoupons", default=None)
    "Coupon codes to apply"
    remove_coupons: Optional[list[str]] = Field(alias="removeCoupons", default=None)
    "Coupon codes to remove"
    profile_id: Optional[str] = Field(alias="profileId", default=None)
    "A profile to follow"
    shipping_address: Optional["AddressInput"] = Field(
        alias="shippingAddress", default=None
    )
    "A new shipping address"
    payment_method_id: Optional[str] = Field(alias="paymentMethodId", default=None)
    "A payment method of the customer's to pin"
    gateway_id: Optional[str] = Field(alias="gatewayId", default=None)
    "A gateway to charge through"
    gateway_mode: Optional[GatewayMode] = Field(alias="gatewayMode", default=None)
    "How firmly to keep to it"
    clear_gateway: bool = Field(alias="clearGateway", default=False)
    "Go back to the default gateway"
    renewal_type: Optional[RenewalType] = Field(alias="renewalType", default=None)
    "AUTOMATIC or MANUAL"
    end_date: Optional[Date] = Field(alias="endDate", default=None)
    "A new end date"
    clear_end_date: bool = Field(alias="clearEndDate", default=False)
    "Renew forever"
    metadata: Optional[Any] = None
    "Metadata to merge in"
    consent_reference: Optional[str] = Field(alias="consentReference", default=None)
    "The customer's consent to pay more (required when the change raises the bill)"
    effective_date: Optional[Date] = Field(alias="effectiveDate", default=None)
    "Apply the changes on this future day (a phase) rather than now"
    at_next_renewal: bool = Field(alias="atNextRenewal", default=False)
    "Apply the changes at the next renewal (a phase)"


class UpdateWebhookEndpointInput(BaseModel):
    """Changes to an endpoint; absent fields stay as they are"""

    endpoint_id: str = Field(alias="endpointId")
    "The endpoint to change"
    url: Optional[str] = None
    "A new URL"
    events: Optional[list[str]] = None
    "Event types; empty: all"
    description: Optional[str] = None
    "A new note (null clears it)"
    enabled: Optional[bool] = None
    "Turn delivery off or back on (clears the disabled reason)"


AddItemInput.model_rebuild()
BulkActionInput.model_rebuild()
BulkAdjustPriceInput.model_rebuild()
BulkPlanInput.model_rebuild()
BulkSegmentInput.model_rebuild()
BulkSetUnitPriceInput.model_rebuild()
ChangeNextRenewalDateInput.model_rebuild()
ChangeProductInput.model_rebuild()
ChangeProfileInput.model_rebuild()
CreateCouponInput.model_rebuild()
CreateProductInput.model_rebuild()
CreateProfileInput.model_rebuild()
CreateSubscriptionInput.model_rebuild()
ItemChangeInput.model_rebuild()
NewItemInput.model_rebuild()
PriceTierInput.model_rebuild()
RefundRenewalInput.model_rebuild()
RenewNowInput.model_rebuild()
SetEndDateInput.model_rebuild()
StartBulkRunInput.model_rebuild()
SubscriptionItemInput.model_rebuild()
UpdateCustomerInput.model_rebuild()
UpdateItemInput.model_rebuild()
UpdatePhaseInput.model_rebuild()
UpdateProfileInput.model_rebuild()
UpdateShippingAddressInput.model_rebuild()
UpdateSubscriptionInput.model_rebuild()
