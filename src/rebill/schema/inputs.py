"""Mutation inputs and payloads, and the list filter input."""

from __future__ import annotations

import dataclasses
from datetime import date
from typing import Any

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from rebill.domain.money import Money as DomainMoney
from rebill.schema.catalog import Coupon, Customer, PaymentMethod, Product, SubscriptionProfile
from rebill.schema.common import Money, MoneyInput, Node, UserError, to_global_id
from rebill.schema.enums import (
    AnchorPolicy,
    CouponDuration,
    Effective,
    FulfillmentStatus,
    GatewayMode,
    IntervalUnit,
    PaymentMethodKind,
    ProductKind,
    Proration,
    RenewalType,
    RenewNowMode,
    SubscriptionStatus,
)
from rebill.schema.invoices import CreditNote, DocumentType, Invoice, InvoicePreview, InvoicingSettingsInput
from rebill.schema.subscriptions import Phase, Renewal, Subscription

# -- filter ------------------------------------------------------------------


@strawberry.input(description="Filters for the subscription list and for bulk plans (ANDed).")
class SubscriptionFilter:
    ids: list[strawberry.ID] | None = None
    status: list[SubscriptionStatus] | None = None
    renewal_type: RenewalType | None = None
    profile_ids: list[strawberry.ID] | None = None
    product_ids: list[strawberry.ID] | None = None
    customer_email: str | None = None
    customer_search: str | None = None
    next_renewal_from: date | None = strawberry.field(
        default=None, description="Inclusive; a TRIAL matches by its trial end"
    )
    next_renewal_to: date | None = strawberry.field(
        default=None, description="Inclusive; a TRIAL matches by its trial end"
    )
    in_trial: bool | None = None
    amount_min: str | None = None
    amount_max: str | None = None
    currency: str | None = None
    gateway_mode: list[GatewayMode] | None = None
    gateway_ids: list[str] | None = None
    has_gateway: bool | None = None


# -- shared pieces -----------------------------------------------------------


@strawberry.input
class CadenceInput:
    unit: IntervalUnit
    count: int = 1


@strawberry.input(description="A relative duration such as 3 MONTH or -14 DAY.")
class ShiftInput:
    unit: IntervalUnit
    count: int


@strawberry.input
class AddressInput:
    line1: str
    line2: str | None = None
    city: str
    region: str | None = None
    postal_code: str | None = None
    country: str


@strawberry.input
class PriceTierInput:
    up_to: int | None
    unit_price: MoneyInput


@strawberry.input(description="The options every subscription mutation takes.")
class SubscriptionMutationInput:
    subscription_id: strawberry.ID
    expected_version: int | None = strawberry.field(
        default=None, description="Refused with VERSION_CONFLICT when stale"
    )
    reason: str | None = strawberry.field(default=None, description="Kept in the history entry")
    idempotency_key: str | None = strawberry.field(
        default=None, description="A retry with the same key and input replays the first response"
    )
    dry_run: bool | None = strawberry.field(default=False, description="Check and compute everything, store nothing")


@strawberry.type
class Payload:
    user_errors: list[UserError]


@strawberry.type
class SubscriptionPayload(Payload):
    subscription: Subscription | None
    dry_run: bool = False
    replayed: bool = False


@strawberry.type
class ChargePayload(SubscriptionPayload):
    """A mutation that may charge: the renewal it recorded, its invoice, and what that invoice bills."""

    renewal: Renewal | None = None
    invoice_document: strawberry.Private[Any] = None
    credit_note_pks: strawberry.Private[list[int]] = dataclasses.field(default_factory=list)

    @strawberry.field(
        description="The credit note of a proration credit to the customer's balance (null on a dry run and when "
        "nothing was credited)"
    )
    async def credit_note(self, info: Info) -> CreditNote | None:
        return await credit_note_of(info, self.credit_note_pks)

    @strawberry.field(description="The invoice issued for the charge (null on a dry run and when nothing was charged)")
    async def invoice(self, info: Info) -> Invoice | None:
        if self.dry_run or self.renewal is None:
            return None
        row = await info.context.loaders.invoice_by_renewal.load(self.renewal.pk)
        return Invoice.of(row) if row is not None else None

    @strawberry.field(description="What the charge's invoice bills, line by line (on a dry run: what it would bill)")
    async def invoice_preview(self, info: Info) -> InvoicePreview | None:
        if self.invoice_document is not None:
            return InvoicePreview.of(self.invoice_document)
        if self.dry_run or self.renewal is None:
            return None
        row = await info.context.loaders.invoice_by_renewal.load(self.renewal.pk)
        if row is None:
            return None
        lines = await info.context.loaders.invoice_lines_by_invoice.load(row.id)
        return InvoicePreview.of_invoice(row, lines)


# -- creating ----------------------------------------------------------------


@strawberry.input
class CreateProductInput:
    name: str
    sku: str
    kind: ProductKind = ProductKind.STANDARD
    tiers: list[PriceTierInput] | None = None


@strawberry.type
class CreateProductPayload(Payload):
    product: Product | None


@strawberry.input
class CreateProfileInput:
    name: str
    description: str | None = None
    cadence: CadenceInput
    anchor_policy: AnchorPolicy = AnchorPolicy.ANCHORED
    trial_days: int = 0
    max_occurrences: int | None = None
    overdue_limit: int = 0
    retry_schedule_days: list[int] | None = None
    final_failure_action: str = "CANCEL"
    default_renewal_type: RenewalType = RenewalType.AUTOMATIC
    force_last_gateway: bool = False
    reminder_days_before: int = 7
    active: bool = True
    shipping_profile_id: strawberry.ID | None = strawberry.field(
        default=None, description="The shipping profile its subscriptions ship with (seed 003)"
    )


@strawberry.type
class CreateProfilePayload(Payload):
    profile: SubscriptionProfile | None


@strawberry.input
class UpdateProfileInput:
    profile_id: strawberry.ID
    name: str | None = None
    description: str | None = None
    cadence: CadenceInput | None = None
    anchor_policy: AnchorPolicy | None = None
    trial_days: int | None = None
    max_occurrences: int | None = None
    clear_max_occurrences: bool = False
    overdue_limit: int | None = None
    retry_schedule_days: list[int] | None = None
    final_failure_action: str | None = None
    default_renewal_type: RenewalType | None = None
    force_last_gateway: bool | None = None
    reminder_days_before: int | None = None
    active: bool | None = None
    shipping_profile_id: strawberry.ID | None = strawberry.field(
        default=None, description="The shipping profile its subscriptions ship with (each must have a rate in it)"
    )
    clear_shipping_profile: bool = strawberry.field(default=False, description="Ship with no profile any more")


@strawberry.type
class UpdateProfilePayload(Payload):
    profile: SubscriptionProfile | None


@strawberry.input
class CreateCustomerInput:
    email: str
    name: str | None = None
    time_zone: str | None = "UTC"


@strawberry.type
class CreateCustomerPayload(Payload):
    customer: Customer | None


@strawberry.input
class AddPaymentMethodInput:
    customer_id: strawberry.ID
    kind: PaymentMethodKind
    gateway_token: str | None = strawberry.field(default=None, description="For the sandbox: a test card number")
    make_default: bool = False
    exp_month: int | None = None
    exp_year: int | None = None


@strawberry.type
class AddPaymentMethodPayload(Payload):
    payment_method: PaymentMethod | None
    retried_renewal_pks: strawberry.Private[list[int]] = dataclasses.field(default_factory=list)

    @strawberry.field(
        description="The invoices of the renewals in dunning that a new default method was charged for at once "
        "(paid, or still open when it was declined too)"
    )
    async def invoices(self, info: Info) -> list[Invoice]:
        rows = await info.context.loaders.invoice_by_renewal.load_many(self.retried_renewal_pks)
        return [Invoice.of(row) for row in rows if row is not None]


@strawberry.input
class CreateCouponInput:
    code: str
    name: str | None = None
    percent_off: str | None = None
    amount_off: MoneyInput | None = None
    duration: CouponDuration = CouponDuration.FOREVER
    duration_cycles: int | None = None
    product_ids: list[strawberry.ID] | None = None


@strawberry.type
class CreateCouponPayload(Payload):
    coupon: Coupon | None


@strawberry.input
class SubscriptionItemInput:
    product_id: strawberry.ID
    unit_price: MoneyInput | None = strawberry.field(
        default=None, description="Omit to price by the product's volume tiers"
    )
    quantity: int = 1


@strawberry.input
class CreateSubscriptionInput:
    customer_id: strawberry.ID
    profile_id: strawberry.ID
    items: list[SubscriptionItemInput]
    start_date: date | None = None
    trial_days: int | None = None
    payment_method_id: strawberry.ID | None = None
    renewal_type: RenewalType | None = None
    metadata: JSON | None = None
    bill_first_period: bool = True
    reason: str | None = None
    idempotency_key: str | None = None
    dry_run: bool | None = False


@strawberry.type
class CreateSubscriptionPayload(ChargePayload):
    pass


# -- local updates -----------------------------------------------------------


@strawberry.input
class ChangeNextRenewalDateInput(SubscriptionMutationInput):
    date: date | None = None
    shift: ShiftInput | None = None


@strawberry.input
class UpdateItemInput(SubscriptionMutationInput):
    item_id: strawberry.ID
    unit_price: MoneyInput | None = None
    quantity: int | None = None
    effective: Effective = Effective.IMMEDIATE
    proration: Proration = Proration.NONE
    consent_reference: str | None = None


@strawberry.type(description="renewal: the charge or credit when one was made")
class UpdateItemPayload(ChargePayload):
    pass


@strawberry.type
class AddItemPayload(ChargePayload):
    pass


@strawberry.type
class RemoveItemPayload(ChargePayload):
    pass


@strawberry.input
class AddItemInput(SubscriptionMutationInput):
    product_id: strawberry.ID
    unit_price: MoneyInput | None = None
    quantity: int = 1
    effective: Effective = Effective.IMMEDIATE
    proration: Proration = Proration.NONE
    consent_reference: str | None = None


@strawberry.input
class RemoveItemInput(SubscriptionMutationInput):
    item_id: strawberry.ID
    effective: Effective = Effective.IMMEDIATE
    proration: Proration = Proration.NONE


@strawberry.input
class ApplyCouponInput(SubscriptionMutationInput):
    code: str


@strawberry.input
class RemoveCouponInput(SubscriptionMutationInput):
    code: str


@strawberry.input
class ChangeProfileInput(SubscriptionMutationInput):
    profile_id: strawberry.ID | None = None
    custom_profile: CreateProfileInput | None = None


@strawberry.input
class ChangeProductInput(SubscriptionMutationInput):
    item_id: strawberry.ID
    product_id: strawberry.ID
    unit_price: MoneyInput | None = None
    quantity: int | None = None
    transfer_coupons: bool = False
    consent_reference: str | None = None
    override_contract: bool = strawberry.field(
        default=False,
        description="End the old subscription although a contract commits it; the contract moves to the replacement",
    )


@strawberry.type
class ChangeProductPayload(ChargePayload):
    replaced: Subscription | None


@strawberry.input
class UpdateShippingAddressInput(SubscriptionMutationInput):
    address: AddressInput


@strawberry.input
class SetPaymentMethodInput(SubscriptionMutationInput):
    payment_method_id: strawberry.ID


@strawberry.input
class SetGatewayInput(SubscriptionMutationInput):
    gateway_id: str | None = strawberry.field(default=None, description="null clears the gateway preference")
    mode: GatewayMode | None = None


@strawberry.input
class SetRenewalTypeInput(SubscriptionMutationInput):
    renewal_type: RenewalType
    item_ids: list[strawberry.ID] | None = None


@strawberry.input
class SetEndDateInput(SubscriptionMutationInput):
    end_date: date | None = strawberry.field(default=None, description="null (and no after) = forever")
    after: ShiftInput | None = strawberry.field(default=None, description="A duration from the start date")
    override_contract: bool = strawberry.field(
        default=False,
        description="End before a contract's term ends: ends the contract and bills its early termination fee",
    )


@strawberry.input(description="Change a subscription's invoicing settings; fields left out keep their value.")
class UpdateInvoicingInput(SubscriptionMutationInput):
    purchase_order: str | None = strawberry.field(default=strawberry.UNSET, description="A purchase order (null: none)")
    memo: str | None = strawberry.field(default=strawberry.UNSET, description="A memo (null: none)")
    document_type: DocumentType | None = strawberry.field(default=strawberry.UNSET, description="INVOICE or PRO_FORMA")
    draft_invoices: bool | None = strawberry.field(default=strawberry.UNSET, description="Review renewals as drafts")
    draft_days: int | None = strawberry.field(default=strawberry.UNSET, description="Days a draft waits (0 to 365)")
    payment_terms_days: int | None = strawberry.field(
        default=strawberry.UNSET, description="Days after issue an invoice is due (0 to 365; null: the default)"
    )

    def changes(self) -> dict[str, Any]:
        return InvoicingSettingsInput(
            purchase_order=self.purchase_order,
            memo=self.memo,
            document_type=self.document_type,
            draft_invoices=self.draft_invoices,
            draft_days=self.draft_days,
            payment_terms_days=self.payment_terms_days,
        ).changes()


@strawberry.type(description="The subscription with its new invoicing settings.")
class UpdateInvoicingPayload(SubscriptionPayload):
    pass


@strawberry.input
class SetMetadataInput(SubscriptionMutationInput):
    metadata: JSON | None = None
    merge: bool = True


# -- global update -----------------------------------------------------------


@strawberry.input
class ItemChangeInput:
    item_id: strawberry.ID
    unit_price: MoneyInput | None = None
    quantity: int | None = None


@strawberry.input
class NewItemInput:
    product_id: strawberry.ID
    unit_price: MoneyInput | None = None
    quantity: int = 1


@strawberry.input(
    description="Any set of settings at once; effectiveDate in the future (or atNextRenewal) stores a phase."
)
class UpdateSubscriptionInput(SubscriptionMutationInput):
    start_date: date | None = strawberry.field(
        default=None, description="A FUTURE subscription's start date; once started it is START_DATE_LOCKED"
    )
    next_renewal_date: date | None = None
    items: list[ItemChangeInput] | None = None
    add_items: list[NewItemInput] | None = None
    remove_item_ids: list[strawberry.ID] | None = None
    apply_coupons: list[str] | None = None
    remove_coupons: list[str] | None = None
    profile_id: strawberry.ID | None = None
    shipping_address: AddressInput | None = None
    payment_method_id: strawberry.ID | None = None
    gateway_id: str | None = None
    gateway_mode: GatewayMode | None = None
    clear_gateway: bool = False
    renewal_type: RenewalType | None = None
    end_date: date | None = None
    clear_end_date: bool = False
    metadata: JSON | None = None
    invoicing: InvoicingSettingsInput | None = strawberry.field(
        default=None, description="Invoicing settings to change (applied to invoices issued after it)"
    )
    consent_reference: str | None = None
    effective_date: date | None = None
    at_next_renewal: bool = False


@strawberry.type
class UpdateSubscriptionPayload(ChargePayload):
    phase: Phase | None


@strawberry.type
class UpdatePhasePayload(UpdateSubscriptionPayload):
    pass


@strawberry.type
class CancelPhasePayload(UpdateSubscriptionPayload):
    pass


@strawberry.input
class UpdatePhaseInput(UpdateSubscriptionInput):
    phase_id: strawberry.ID


@strawberry.input
class CancelPhaseInput(SubscriptionMutationInput):
    phase_id: strawberry.ID


# -- lifecycle ---------------------------------------------------------------


@strawberry.input
class SuspendSubscriptionInput(SubscriptionMutationInput):
    pass


@strawberry.input
class ActivateSubscriptionInput(SubscriptionMutationInput):
    pass


@strawberry.input
class ForceBillInput(SubscriptionMutationInput):
    allow_repeat: bool = strawberry.field(
        default=False,
        description="Bill again although a force bill already billed a period starting today (else ALREADY_BILLED)",
    )


@strawberry.input(description="Undo a scheduled cancellation or end date before it happens.")
class ResumeSubscriptionInput(SubscriptionMutationInput):
    pass


@strawberry.input
class CancelSubscriptionInput(SubscriptionMutationInput):
    at_period_end: bool = False
    refund_last_renewal: bool = False
    cancel_fulfillment: bool = False
    override_contract: bool = strawberry.field(
        default=False,
        description="Cancel now although a contract commits the subscription: bills its early termination fee",
    )


@strawberry.type(description="Money sent back through the gateway that took the payment.")
class Refund(Node):
    renewal_id: strawberry.ID
    amount: Money
    gateway_reference: str | None

    @classmethod
    def of(cls, pk: int, renewal_id: str, amount: DomainMoney, gateway_reference: str | None) -> Refund:
        """A refund transaction (``transactions`` row of kind REFUND) under its global id."""
        return cls(
            id=strawberry.ID(to_global_id("Refund", pk)),
            renewal_id=strawberry.ID(renewal_id),
            amount=Money.of(amount),
            gateway_reference=gateway_reference,
        )


@strawberry.type
class CancelSubscriptionPayload(SubscriptionPayload):
    refund: Refund | None
    credit_note_pks: strawberry.Private[list[int]] = dataclasses.field(default_factory=list)
    fee_renewal_pk: strawberry.Private[int | None] = None

    @strawberry.field(description="The invoice of the early termination fee an override of a contract billed")
    async def invoice(self, info: Info) -> Invoice | None:
        if self.dry_run or self.fee_renewal_pk is None:
            return None
        row = await info.context.loaders.invoice_by_renewal.load(self.fee_renewal_pk)
        return Invoice.of(row) if row is not None else None

    @strawberry.field(description="The credit note of the refund, when the last renewal was refunded")
    async def credit_note(self, info: Info) -> CreditNote | None:
        return await credit_note_of(info, self.credit_note_pks)


@strawberry.input
class RenewNowInput(SubscriptionMutationInput):
    mode: RenewNowMode = RenewNowMode.EXTEND
    unit_price: MoneyInput | None = None
    product_id: strawberry.ID | None = strawberry.field(
        default=None, description="Upgrade or downgrade the item as part of the renewal"
    )
    consent_reference: str | None = None


@strawberry.input
class RenewalMutationInput:
    renewal_id: strawberry.ID
    expected_version: int | None = None
    reason: str | None = None
    idempotency_key: str | None = None
    dry_run: bool | None = False


@strawberry.input
class RetryRenewalInput(RenewalMutationInput):
    pass


@strawberry.input
class RefundRenewalInput(RenewalMutationInput):
    amount: MoneyInput | None = strawberry.field(
        default=None, description="Absent = all that was paid and not refunded"
    )


@strawberry.input
class UpdateFulfillmentInput(RenewalMutationInput):
    status: FulfillmentStatus


@strawberry.type
class RenewNowPayload(ChargePayload):
    pass


@strawberry.type
class ForceBillPayload(ChargePayload):
    pass


@strawberry.type
class RetryRenewalPayload(ChargePayload):
    pass


@strawberry.type
class RefundRenewalPayload(SubscriptionPayload):
    renewal: Renewal | None
    credit_note_pks: strawberry.Private[list[int]] = dataclasses.field(default_factory=list)

    @strawberry.field(description="The credit note that documents the refund (null on a dry run)")
    async def credit_note(self, info: Info) -> CreditNote | None:
        return await credit_note_of(info, self.credit_note_pks)


async def credit_note_of(info: Info, pks: list[int]) -> CreditNote | None:
    if not pks:
        return None
    from rebill.resolvers.invoices import credit_note_by_pk

    return await credit_note_by_pk(info, pks[-1])


@strawberry.type
class UpdateFulfillmentPayload(SubscriptionPayload):
    renewal: Renewal | None


@strawberry.type
class ChangeNextRenewalDatePayload(SubscriptionPayload):
    pass


@strawberry.type
class ApplyCouponPayload(SubscriptionPayload):
    pass


@strawberry.type
class RemoveCouponPayload(SubscriptionPayload):
    pass


@strawberry.type
class ChangeProfilePayload(SubscriptionPayload):
    pass


@strawberry.type
class UpdateShippingAddressPayload(SubscriptionPayload):
    pass


@strawberry.type
class SetPaymentMethodPayload(SubscriptionPayload):
    pass


@strawberry.type
class SetGatewayPayload(SubscriptionPayload):
    pass


@strawberry.type
class SetRenewalTypePayload(SubscriptionPayload):
    pass


@strawberry.type
class SetEndDatePayload(ChargePayload):
    pass


@strawberry.type
class SetMetadataPayload(SubscriptionPayload):
    pass


@strawberry.type
class SuspendSubscriptionPayload(SubscriptionPayload):
    pass


@strawberry.type
class ResumeSubscriptionPayload(SubscriptionPayload):
    pass


@strawberry.type
class ActivateSubscriptionPayload(ChargePayload):
    pass
