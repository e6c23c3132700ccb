"""Mutation resolvers: parse the input, call the service, build the payload."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

import strawberry
from strawberry.types import Info

from rebill.domain import invoice as invoice_rules
from rebill.domain.cadence import AnchorPolicy as DomainAnchorPolicy
from rebill.domain.cadence import Cadence, IntervalUnit
from rebill.domain.errors import RebillError, ValidationError
from rebill.domain.money import Money as DomainMoney
from rebill.domain.pricing import PriceTier
from rebill.domain.subscription import FinalFailureAction, ProfileTerms
from rebill.domain.subscription import RenewalType as DomainRenewalType
from rebill.domain.updates import Shift
from rebill.ids import to_global_id
from rebill.schema import inputs
from rebill.schema.catalog import Coupon, Customer, PaymentMethod, Product, SubscriptionProfile
from rebill.schema.common import MoneyInput, UserError, decode_id
from rebill.schema.subscriptions import Phase, Renewal, Subscription
from rebill.services.catalog import CatalogService
from rebill.services.phases import PhaseService
from rebill.services.runtime import Actor, Common, Result
from rebill.services.subscriptions import SubscriptionService

P = TypeVar("P")

COMMON_KEYS = {"idempotency_key", "dry_run"}


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return getattr(value, "value", value)


def request_of(data: Any) -> dict[str, Any]:
    """The input as plain JSON for the idempotency fingerprint (key and dryRun excluded)."""
    plain = _plain(data)
    return {k: v for k, v in plain.items() if k not in COMMON_KEYS}


def common_of(data: Any) -> Common:
    return Common(
        expected_version=getattr(data, "expected_version", None),
        reason=getattr(data, "reason", None),
        idempotency_key=getattr(data, "idempotency_key", None),
        dry_run=bool(getattr(data, "dry_run", False)),
    )


def money(value: MoneyInput | None, *field: str) -> DomainMoney | None:
    if value is None:
        return None
    try:
        return value.parse()
    except RebillError as exc:
        exc.field = list(field)
        raise


def pk(gid: strawberry.ID | str, type_name: str, *field: str) -> int:
    return decode_id(str(gid), type_name, list(field))


def actor_of(info: Info) -> Actor:
    actor = info.context.actor
    assert actor is not None  # the permission classes ran first
    return actor


def errors_of(result: Result) -> list[UserError]:
    return [UserError.of(e) for e in result.errors]


async def guarded(call: Callable[[], Awaitable[Result]]) -> Result:
    try:
        return await call()
    except RebillError as exc:
        return Result(errors=[exc])


def subscription_payload(cls: type[P], result: Result, **extra: Any) -> P:
    fields: dict[str, Any] = {
        "user_errors": errors_of(result),
        "subscription": Subscription.of(result.subscription) if result.subscription is not None else None,
        "dry_run": result.dry_run,
        "replayed": result.replayed,
    }
    if "renewal" in cls.__dataclass_fields__:  # type: ignore[attr-defined]
        fields["renewal"] = Renewal.of(result.renewal) if result.renewal is not None else None
    if "invoice_document" in cls.__dataclass_fields__:  # type: ignore[attr-defined]
        fields["invoice_document"] = result.invoice_preview
    if "credit_note_pks" in cls.__dataclass_fields__:  # type: ignore[attr-defined]
        fields["credit_note_pks"] = list(result.extra.get("creditNoteIds", []))
    fields.update(extra)
    return cls(**fields)


def service(info: Info) -> SubscriptionService:
    return SubscriptionService(info.context.services)


def catalog(info: Info) -> CatalogService:
    return CatalogService(info.context.services)


# -- creating ----------------------------------------------------------------


def profile_terms(data: inputs.CreateProfileInput, custom: bool = False) -> ProfileTerms:
    try:
        action = FinalFailureAction(data.final_failure_action)
    except ValueError:
        raise ValidationError(
            "finalFailureAction must be CANCEL or SUSPEND", code="INVALID_PROFILE", field=["finalFailureAction"]
        ) from None
    return ProfileTerms(
        id=None,
        name=data.name,
        description=data.description,
        cadence=Cadence(IntervalUnit(data.cadence.unit), data.cadence.count),
        anchor_policy=DomainAnchorPolicy(data.anchor_policy),
        trial_days=data.trial_days,
        max_occurrences=data.max_occurrences,
        overdue_limit=data.overdue_limit,
        retry_schedule_days=tuple(data.retry_schedule_days) if data.retry_schedule_days is not None else (5, 5),
        final_failure_action=action,
        default_renewal_type=DomainRenewalType(data.default_renewal_type),
        force_last_gateway=data.force_last_gateway,
        custom=custom,
        reminder_days_before=data.reminder_days_before,
        active=data.active,
    )


async def create_profile(info: Info, input: inputs.CreateProfileInput) -> inputs.CreateProfilePayload:
    async def call() -> Result:
        terms = profile_terms(input)
        shipping = input.shipping_profile_id
        return await catalog(info).create_profile(
            actor_of(info),
            request_of(input),
            terms,
            shipping_profile_id=pk(shipping, "ShippingProfile", "shippingProfileId") if shipping else None,
        )

    result = await guarded(call)
    created = result.extra.get("profile")
    return inputs.CreateProfilePayload(
        user_errors=errors_of(result), profile=SubscriptionProfile.of(created) if created else None
    )


async def update_profile(info: Info, input: inputs.UpdateProfileInput) -> inputs.UpdateProfilePayload:
    async def call() -> Result:
        profile_pk = pk(input.profile_id, "SubscriptionProfile", "profileId")
        changes: dict[str, Any] = {}
        for name in (
            "name",
            "description",
            "trial_days",
            "overdue_limit",
            "force_last_gateway",
            "reminder_days_before",
            "active",
        ):
            value = getattr(input, name)
            if value is not None:
                changes[name] = value
        if input.cadence is not None:
            changes["cadence"] = Cadence(IntervalUnit(input.cadence.unit), input.cadence.count)
        if input.anchor_policy is not None:
            changes["anchor_policy"] = DomainAnchorPolicy(input.anchor_policy)
        if input.max_occurrences is not None:
            changes["max_occurrences"] = input.max_occurrences
        if input.clear_max_occurrences:
            changes["max_occurrences"] = None
        if input.retry_schedule_days is not None:
            changes["retry_schedule_days"] = tuple(input.retry_schedule_days)
        if input.final_failure_action is not None:
            try:
                changes["final_failure_action"] = FinalFailureAction(input.final_failure_action)
            except ValueError:
                raise ValidationError(
                    "finalFailureAction must be CANCEL or SUSPEND", code="INVALID_PROFILE", field=["finalFailureAction"]
                ) from None
        if input.default_renewal_type is not None:
            changes["default_renewal_type"] = DomainRenewalType(input.default_renewal_type)
        if input.shipping_profile_id is not None:
            changes["shipping_profile_id"] = pk(input.shipping_profile_id, "ShippingProfile", "shippingProfileId")
        elif input.clear_shipping_profile:
            changes["shipping_profile_id"] = None
        return await catalog(info).update_profile(actor_of(info), request_of(input), profile_pk, changes)

    result = await guarded(call)
    updated = result.extra.get("profile")
    return inputs.UpdateProfilePayload(
        user_errors=errors_of(result), profile=SubscriptionProfile.of(updated) if updated else None
    )


async def create_product(info: Info, input: inputs.CreateProductInput) -> inputs.CreateProductPayload:
    async def call() -> Result:
        tiers = []
        for n, tier in enumerate(input.tiers or []):
            price = money(tier.unit_price, "tiers", str(n), "unitPrice")
            assert price is not None
            tiers.append(PriceTier(tier.up_to, price))
        return await catalog(info).create_product(
            actor_of(info), request_of(input), name=input.name, sku=input.sku, kind=input.kind, tiers=tiers
        )

    result = await guarded(call)
    product = result.extra.get("product")
    return inputs.CreateProductPayload(user_errors=errors_of(result), product=Product.of(product) if product else None)


async def create_customer(info: Info, input: inputs.CreateCustomerInput) -> inputs.CreateCustomerPayload:
    async def call() -> Result:
        return await catalog(info).create_customer(
            actor_of(info), request_of(input), email=input.email, name=input.name, time_zone=input.time_zone
        )

    result = await guarded(call)
    customer = None
    if result.ok:
        row = await info.context.loaders.customer_by_id.load(result.extra["customerId"])
        customer = Customer.of(row)
    return inputs.CreateCustomerPayload(user_errors=errors_of(result), customer=customer)


async def add_payment_method(info: Info, input: inputs.AddPaymentMethodInput) -> inputs.AddPaymentMethodPayload:
    async def call() -> Result:
        return await catalog(info).add_payment_method(
            actor_of(info),
            request_of(input),
            customer_id=pk(input.customer_id, "Customer", "customerId"),
            kind=input.kind,
            gateway_token=input.gateway_token,
            make_default=input.make_default,
            exp_month=input.exp_month,
            exp_year=input.exp_year,
        )

    result = await guarded(call)
    pm = None
    if result.ok:
        row = await info.context.loaders.payment_method_by_id.load(result.extra["paymentMethodId"])
        pm = PaymentMethod.of(row)
    return inputs.AddPaymentMethodPayload(
        user_errors=errors_of(result),
        payment_method=pm,
        retried_renewal_pks=list(result.extra.get("retriedRenewalIds", [])) if result.ok else [],
    )


async def create_coupon(info: Info, input: inputs.CreateCouponInput) -> inputs.CreateCouponPayload:
    async def call() -> Result:
        return await catalog(info).create_coupon(
            actor_of(info),
            request_of(input),
            code=input.code,
            name=input.name,
            percent_off=input.percent_off,
            amount_off=money(input.amount_off, "amountOff"),
            duration=input.duration,
            duration_cycles=input.duration_cycles,
            product_ids=[pk(p, "Product", "productIds") for p in input.product_ids or []],
        )

    result = await guarded(call)
    coupon = result.extra.get("coupon")
    return inputs.CreateCouponPayload(user_errors=errors_of(result), coupon=Coupon.of(coupon) if coupon else None)


async def create_subscription(info: Info, input: inputs.CreateSubscriptionInput) -> inputs.CreateSubscriptionPayload:
    async def call() -> Result:
        items = []
        for n, item in enumerate(input.items):
            items.append(
                (
                    pk(item.product_id, "Product", "items", str(n), "productId"),
                    money(item.unit_price, "items", str(n), "unitPrice"),
                    item.quantity,
                )
            )
        return await service(info).create(
            actor_of(info),
            common_of(input),
            request_of(input),
            customer_id=pk(input.customer_id, "Customer", "customerId"),
            profile_id=pk(input.profile_id, "SubscriptionProfile", "profileId"),
            items=items,
            start_date=input.start_date,
            trial_days=input.trial_days,
            payment_method_id=pk(input.payment_method_id, "PaymentMethod", "paymentMethodId")
            if input.payment_method_id
            else None,
            renewal_type=DomainRenewalType(input.renewal_type) if input.renewal_type else None,
            metadata=cast(dict[str, Any] | None, input.metadata),
            bill_first_period=input.bill_first_period,
        )

    return subscription_payload(inputs.CreateSubscriptionPayload, await guarded(call))


# -- one subscription -------------------------------------------------------


def sub_pk(data: inputs.SubscriptionMutationInput) -> int:
    return pk(data.subscription_id, "Subscription", "subscriptionId")


def shift_of(value: inputs.ShiftInput | None, field: str) -> Shift | None:
    if value is None:
        return None
    try:
        return Shift(IntervalUnit(value.unit), value.count)
    except RebillError as exc:
        raise exc.with_field(field) from None


async def change_next_renewal_date(
    info: Info, input: inputs.ChangeNextRenewalDateInput
) -> inputs.ChangeNextRenewalDatePayload:
    async def call() -> Result:
        return await service(info).change_next_renewal_date(
            actor_of(info),
            common_of(input),
            request_of(input),
            sub_pk(input),
            date_=input.date,
            shift=shift_of(input.shift, "shift"),
        )

    return subscription_payload(inputs.ChangeNextRenewalDatePayload, await guarded(call))


async def update_item(info: Info, input: inputs.UpdateItemInput) -> inputs.UpdateItemPayload:
    async def call() -> Result:
        return await service(info).update_item(
            actor_of(info),
            common_of(input),
            request_of(input),
            sub_pk(input),
            item_id=pk(input.item_id, "SubscriptionItem", "itemId"),
            unit_price=money(input.unit_price, "unitPrice"),
            quantity=input.quantity,
            effective=input.effective,
            proration=input.proration,
            consent_reference=input.consent_reference,
        )

    return subscription_payload(inputs.UpdateItemPayload, await guarded(call))


async def add_item(info: Info, input: inputs.AddItemInput) -> inputs.AddItemPayload:
    async def call() -> Result:
        return await service(info).add_item(
            actor_of(info),
            common_of(input),
            request_of(input),
            sub_pk(input),
            product_id=pk(input.product_id, "Product", "productId"),
            unit_price=money(input.unit_price, "unitPrice"),
            quantity=input.quantity,
            effective=input.effective,
            proration=input.proration,
            consent_reference=input.consent_reference,
        )

    return subscription_payload(inputs.AddItemPayload, await guarded(call))


async def remove_item(info: Info, input: inputs.RemoveItemInput) -> inputs.RemoveItemPayload:
    async def call() -> Result:
        return await service(info).remove_item(
            actor_of(info),
            common_of(input),
            request_of(input),
            sub_pk(input),
            item_id=pk(input.item_id, "SubscriptionItem", "itemId"),
            effective=input.effective,
            proration=input.proration,
        )

    return subscription_payload(inputs.RemoveItemPayload, await guarded(call))


async def apply_coupon(info: Info, input: inputs.ApplyCouponInput) -> inputs.ApplyCouponPayload:
    async def call() -> Result:
        return await service(info).apply_coupon(
            actor_of(info), common_of(input), request_of(input), sub_pk(input), code=input.code
        )

    return subscription_payload(inputs.ApplyCouponPayload, await guarded(call))


async def remove_coupon(info: Info, input: inputs.RemoveCouponInput) -> inputs.RemoveCouponPayload:
    async def call() -> Result:
        return await service(info).remove_coupon(
            actor_of(info), common_of(input), request_of(input), sub_pk(input), code=input.code
        )

    return subscription_payload(inputs.RemoveCouponPayload, await guarded(call))


async def change_profile(info: Info, input: inputs.ChangeProfileInput) -> inputs.ChangeProfilePayload:
    async def call() -> Result:
        return await service(info).change_profile(
            actor_of(info),
            common_of(input),
            request_of(input),
            sub_pk(input),
            profile_id=pk(input.profile_id, "SubscriptionProfile", "profileId") if input.profile_id else None,
            custom_profile=profile_terms(input.custom_profile, custom=True) if input.custom_profile else None,
        )

    return subscription_payload(inputs.ChangeProfilePayload, await guarded(call))


async def change_product(info: Info, input: inputs.ChangeProductInput) -> inputs.ChangeProductPayload:
    async def call() -> Result:
        return await service(info).change_product(
            actor_of(info),
            common_of(input),
            request_of(input),
            sub_pk(input),
            item_id=pk(input.item_id, "SubscriptionItem", "itemId"),
            product_id=pk(input.product_id, "Product", "productId"),
            unit_price=money(input.unit_price, "unitPrice"),
            quantity=input.quantity,
            transfer_coupons=input.transfer_coupons,
            consent_reference=input.consent_reference,
            override_contract=input.override_contract,
        )

    result = await guarded(call)
    replaced = Subscription.of(result.replaced) if result.replaced is not None else None
    return subscription_payload(inputs.ChangeProductPayload, result, replaced=replaced)


async def update_shipping_address(
    info: Info, input: inputs.UpdateShippingAddressInput
) -> inputs.UpdateShippingAddressPayload:
    async def call() -> Result:
        address = {
            "line1": input.address.line1,
            "line2": input.address.line2,
            "city": input.address.city,
            "region": input.address.region,
            "postalCode": input.address.postal_code,
            "country": input.address.country,
        }
        return await service(info).update_shipping_address(
            actor_of(info), common_of(input), request_of(input), sub_pk(input), address=address
        )

    return subscription_payload(inputs.UpdateShippingAddressPayload, await guarded(call))


async def set_payment_method(info: Info, input: inputs.SetPaymentMethodInput) -> inputs.SetPaymentMethodPayload:
    async def call() -> Result:
        return await service(info).set_payment_method(
            actor_of(info),
            common_of(input),
            request_of(input),
            sub_pk(input),
            payment_method_id=pk(input.payment_method_id, "PaymentMethod", "paymentMethodId"),
        )

    return subscription_payload(inputs.SetPaymentMethodPayload, await guarded(call))


async def set_gateway(info: Info, input: inputs.SetGatewayInput) -> inputs.SetGatewayPayload:
    async def call() -> Result:
        return await service(info).set_gateway(
            actor_of(info),
            common_of(input),
            request_of(input),
            sub_pk(input),
            gateway_id=input.gateway_id,
            mode=input.mode,
        )

    return subscription_payload(inputs.SetGatewayPayload, await guarded(call))


async def set_renewal_type(info: Info, input: inputs.SetRenewalTypeInput) -> inputs.SetRenewalTypePayload:
    async def call() -> Result:
        item_ids = [pk(i, "SubscriptionItem", "itemIds") for i in input.item_ids] if input.item_ids else None
        return await service(info).set_renewal_type(
            actor_of(info),
            common_of(input),
            request_of(input),
            sub_pk(input),
            renewal_type=DomainRenewalType(input.renewal_type),
            item_ids=item_ids,
        )

    return subscription_payload(inputs.SetRenewalTypePayload, await guarded(call))


async def set_end_date(info: Info, input: inputs.SetEndDateInput) -> inputs.SetEndDatePayload:
    async def call() -> Result:
        return await service(info).set_end_date(
            actor_of(info),
            common_of(input),
            request_of(input),
            sub_pk(input),
            end_date=input.end_date,
            after=shift_of(input.after, "after"),
            override_contract=input.override_contract,
        )

    return subscription_payload(inputs.SetEndDatePayload, await guarded(call))


async def set_metadata(info: Info, input: inputs.SetMetadataInput) -> inputs.SetMetadataPayload:
    async def call() -> Result:
        if input.metadata is not None and not isinstance(input.metadata, dict):
            raise ValidationError("metadata must be a JSON object", code="INVALID_METADATA", field=["metadata"])
        return await service(info).set_metadata(
            actor_of(info), common_of(input), request_of(input), sub_pk(input), metadata=input.metadata
        )

    return subscription_payload(inputs.SetMetadataPayload, await guarded(call))


async def update_invoicing(info: Info, input: inputs.UpdateInvoicingInput) -> inputs.UpdateInvoicingPayload:
    async def call() -> Result:
        return await service(info).update_invoicing(
            actor_of(info),
            common_of(input),
            request_of(input),
            sub_pk(input),
            changes=invoice_rules.invoicing_changes(input.changes()),
        )

    return subscription_payload(inputs.UpdateInvoicingPayload, await guarded(call))


# -- lifecycle ---------------------------------------------------------------


async def suspend_subscription(info: Info, input: inputs.SuspendSubscriptionInput) -> inputs.SuspendSubscriptionPayload:
    async def call() -> Result:
        return await service(info).suspend(actor_of(info), common_of(input), request_of(input), sub_pk(input))

    return subscription_payload(inputs.SuspendSubscriptionPayload, await guarded(call))


async def activate_subscription(
    info: Info, input: inputs.ActivateSubscriptionInput
) -> inputs.ActivateSubscriptionPayload:
    async def call() -> Result:
        return await service(info).activate(actor_of(info), common_of(input), request_of(input), sub_pk(input))

    return subscription_payload(inputs.ActivateSubscriptionPayload, await guarded(call))


async def cancel_subscription(info: Info, input: inputs.CancelSubscriptionInput) -> inputs.CancelSubscriptionPayload:
    async def call() -> Result:
        if input.refund_last_renewal and not actor_of(info).has("refund"):
            raise RebillError("refunding needs the 'refund' scope", code="FORBIDDEN", field=["refundLastRenewal"])
        return await service(info).cancel(
            actor_of(info),
            common_of(input),
            request_of(input),
            sub_pk(input),
            at_period_end=input.at_period_end,
            refund_last_renewal=input.refund_last_renewal,
            cancel_fulfillment=input.cancel_fulfillment,
            override_contract=input.override_contract,
        )

    result = await guarded(call)
    refund = None
    if result.refund is not None:
        refund = inputs.Refund.of(
            result.refund["id"],
            _renewal_gid(result.refund["renewalId"]),
            result.refund["amount"],
            result.refund.get("gatewayReference"),
        )
    return subscription_payload(
        inputs.CancelSubscriptionPayload, result, refund=refund, fee_renewal_pk=result.extra.get("feeRenewalId")
    )


def _renewal_gid(renewal_id: object) -> str:
    """The renewal's global id, whether the service reports its key or its global id."""
    raw = str(renewal_id)
    return to_global_id("Renewal", raw) if raw.isdigit() else raw


async def renew_now(info: Info, input: inputs.RenewNowInput) -> inputs.RenewNowPayload:
    async def call() -> Result:
        return await service(info).renew_now(
            actor_of(info),
            common_of(input),
            request_of(input),
            sub_pk(input),
            mode=input.mode,
            unit_price=money(input.unit_price, "unitPrice"),
            product_id=pk(input.product_id, "Product", "productId") if input.product_id else None,
            consent_reference=input.consent_reference,
        )

    return subscription_payload(inputs.RenewNowPayload, await guarded(call))


async def force_bill(info: Info, input: inputs.ForceBillInput) -> inputs.ForceBillPayload:
    async def call() -> Result:
        return await service(info).force_bill(
            actor_of(info), common_of(input), request_of(input), sub_pk(input), allow_repeat=input.allow_repeat
        )

    return subscription_payload(inputs.ForceBillPayload, await guarded(call))


async def resume_subscription(info: Info, input: inputs.ResumeSubscriptionInput) -> inputs.ResumeSubscriptionPayload:
    async def call() -> Result:
        return await service(info).resume(actor_of(info), common_of(input), request_of(input), sub_pk(input))

    return subscription_payload(inputs.ResumeSubscriptionPayload, await guarded(call))


async def retry_renewal(info: Info, input: inputs.RetryRenewalInput) -> inputs.RetryRenewalPayload:
    async def call() -> Result:
        return await service(info).retry_renewal(
            actor_of(info), common_of(input), request_of(input), pk(input.renewal_id, "Renewal", "renewalId")
        )

    return subscription_payload(inputs.RetryRenewalPayload, await guarded(call))


async def refund_renewal(info: Info, input: inputs.RefundRenewalInput) -> inputs.RefundRenewalPayload:
    async def call() -> Result:
        return await service(info).refund_renewal(
            actor_of(info),
            common_of(input),
            request_of(input),
            pk(input.renewal_id, "Renewal", "renewalId"),
            amount=money(input.amount, "amount"),
        )

    return subscription_payload(inputs.RefundRenewalPayload, await guarded(call))


async def update_fulfillment(info: Info, input: inputs.UpdateFulfillmentInput) -> inputs.UpdateFulfillmentPayload:
    async def call() -> Result:
        return await service(info).mark_fulfillment(
            actor_of(info),
            common_of(input),
            request_of(input),
            pk(input.renewal_id, "Renewal", "renewalId"),
            status=input.status,
        )

    return subscription_payload(inputs.UpdateFulfillmentPayload, await guarded(call))


# -- global update and phases -------------------------------------------------


def global_changes(data: inputs.UpdateSubscriptionInput) -> dict[str, Any]:
    """The settings of a global update as plain JSON with ids decoded (what a phase stores)."""

    def price(value: MoneyInput | None) -> dict[str, str] | None:
        return {"amount": value.amount, "currency": value.currency} if value is not None else None

    changes: dict[str, Any] = {}
    if data.start_date is not None:
        changes["startDate"] = data.start_date.isoformat()
    if data.next_renewal_date is not None:
        changes["nextRenewalDate"] = data.next_renewal_date.isoformat()
    if data.items:
        changes["items"] = [
            {
                "itemId": pk(i.item_id, "SubscriptionItem", "items", str(n), "itemId"),
                "unitPrice": price(i.unit_price),
                "quantity": i.quantity,
            }
            for n, i in enumerate(data.items)
        ]
    if data.add_items:
        changes["addItems"] = [
            {
                "productId": pk(i.product_id, "Product", "addItems", str(n), "productId"),
                "unitPrice": price(i.unit_price),
                "quantity": i.quantity,
            }
            for n, i in enumerate(data.add_items)
        ]
    if data.remove_item_ids:
        changes["removeItemIds"] = [pk(i, "SubscriptionItem", "removeItemIds") for i in data.remove_item_ids]
    if data.apply_coupons:
        changes["applyCoupons"] = list(data.apply_coupons)
    if data.remove_coupons:
        changes["removeCoupons"] = list(data.remove_coupons)
    if data.profile_id is not None:
        changes["profileId"] = pk(data.profile_id, "SubscriptionProfile", "profileId")
    if data.shipping_address is not None:
        a = data.shipping_address
        changes["shippingAddress"] = {
            "line1": a.line1,
            "line2": a.line2,
            "city": a.city,
            "region": a.region,
            "postalCode": a.postal_code,
            "country": a.country,
        }
    if data.payment_method_id is not None:
        changes["paymentMethodId"] = pk(data.payment_method_id, "PaymentMethod", "paymentMethodId")
    if data.clear_gateway:
        changes["clearGateway"] = True
    elif data.gateway_id is not None:
        changes["gatewayId"] = data.gateway_id
        if data.gateway_mode is not None:
            changes["gatewayMode"] = data.gateway_mode.value
    if data.renewal_type is not None:
        changes["renewalType"] = data.renewal_type.value
    if data.clear_end_date:
        changes["clearEndDate"] = True
    elif data.end_date is not None:
        changes["endDate"] = data.end_date.isoformat()
    if data.metadata is not None:
        if not isinstance(data.metadata, dict):
            raise ValidationError("metadata must be a JSON object", code="INVALID_METADATA", field=["metadata"])
        changes["metadata"] = data.metadata
    if data.invoicing is not None:
        changes["invoicing"] = data.invoicing.changes()
    if data.consent_reference is not None:
        changes["consentReference"] = data.consent_reference
    return changes


async def _phase_payload(info: Info, result: Result, cls: type[P]) -> P:
    phase = None
    phase_id = result.extra.get("phaseId")
    if result.ok and phase_id is not None and result.subscription is not None and not result.dry_run:
        assert result.subscription.id is not None
        rows = await info.context.loaders.phases_by_subscription.load(result.subscription.id)
        phase = next((Phase.of(r) for r in rows if r.id == phase_id), None)
    return subscription_payload(cls, result, phase=phase)


async def update_subscription(info: Info, input: inputs.UpdateSubscriptionInput) -> inputs.UpdateSubscriptionPayload:
    async def call() -> Result:
        return await PhaseService(info.context.services).update_subscription(
            actor_of(info),
            common_of(input),
            request_of(input),
            sub_pk(input),
            changes=global_changes(input),
            effective_date=input.effective_date,
            at_next_renewal=input.at_next_renewal,
        )

    return await _phase_payload(info, await guarded(call), inputs.UpdateSubscriptionPayload)


async def update_phase(info: Info, input: inputs.UpdatePhaseInput) -> inputs.UpdatePhasePayload:
    async def call() -> Result:
        changes = global_changes(input)
        return await PhaseService(info.context.services).edit_phase(
            actor_of(info),
            common_of(input),
            request_of(input),
            pk(input.phase_id, "Phase", "phaseId"),
            changes=changes or None,
            effective_date=input.effective_date,
        )

    return await _phase_payload(info, await guarded(call), inputs.UpdatePhasePayload)


async def cancel_phase(info: Info, input: inputs.CancelPhaseInput) -> inputs.CancelPhasePayload:
    async def call() -> Result:
        return await PhaseService(info.context.services).edit_phase(
            actor_of(info),
            common_of(input),
            request_of(input),
            pk(input.phase_id, "Phase", "phaseId"),
            changes=None,
            effective_date=None,
            cancel=True,
        )

    result = await guarded(call)
    if result.ok:  # the payload shows the phase as cancelled
        result.extra.setdefault("phaseId", pk(input.phase_id, "Phase", "phaseId"))
    return await _phase_payload(info, result, inputs.CancelPhasePayload)
