"""Customers: staff edits, and what a customer may do to their own account (seed 004).

Self-service is not a second set of rules. Each customer action checks what
seed 004 lets a customer do (their own subscriptions only; a later billing
date only; cancel now, without the merchant's refund and fulfillment
options; renew a manual subscription awaiting reinstatement), then calls the
same service as a staff change, with the customer as the actor. The portal
pages and the customer-scoped API both come through here.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import date
from typing import Any

from sqlalchemy import select, update

from rebill.db import tables as t
from rebill.domain import contract as contract_rules
from rebill.domain import lifecycle, updates
from rebill.domain.cadence import local_today, validate_time_zone
from rebill.domain.errors import NotFound, RebillError, SubscriptionError, ValidationError
from rebill.domain.subscription import PaymentKind, RenewalType, SubscriptionState, SubscriptionStatus
from rebill.ids import decode_id, to_global_id
from rebill.services.catalog import CatalogService
from rebill.services.runtime import Actor, Common, Result, Services
from rebill.services.subscriptions import SubscriptionService, Unit, run_in_transaction

CU = t.table_of(t.Customer)
S = t.table_of(t.Subscription)
R = t.table_of(t.Renewal)
TX = t.table_of(t.Transaction)
IR = t.table_of(t.IdempotencyRecord)

CUSTOMER_SCOPE = "customer"
ADDRESS_FIELDS = ("line1", "line2", "city", "region", "postalCode", "country")


class Flow(enum.StrEnum):
    """What a portal link is for: the overview, or one task on a subscription (its page's section)."""

    OVERVIEW = "OVERVIEW"
    PAYMENT_METHOD = "PAYMENT_METHOD"
    POSTPONE = "POSTPONE"
    CANCEL = "CANCEL"
    RENEW = "RENEW"


def customer_actor(customer_id: int) -> Actor:
    """The actor of a customer's own changes: ``customer:<global id>`` in the history.

    ``api_key_id`` is the customer's id negated, so idempotency keys (kept per
    key owner) of one customer never meet another's or a staff key's.
    """
    return Actor(
        name=f"customer:{to_global_id('Customer', customer_id)}",
        api_key_id=-customer_id,
        scopes=frozenset({CUSTOMER_SCOPE}),
    )


def customer_of(actor: Actor | None) -> int | None:
    """The customer an actor acts for, or None for staff keys, the engine and bulk runs."""
    if actor is None or CUSTOMER_SCOPE not in actor.scopes or not actor.name.startswith("customer:"):
        return None
    try:
        return decode_id(actor.name.removeprefix("customer:"), "Customer")
    except RebillError:
        return None


def clean_address(raw: Mapping[str, Any] | None, field: str = "billingAddress") -> dict[str, Any] | None:
    """An address as stored (camelCase keys, trimmed); line1, city and country are required."""
    if raw is None:
        return None
    address: dict[str, Any] = {}
    for key in ADDRESS_FIELDS:
        value = raw.get(key)
        if value is None:
            continue
        text = str(value).strip()
        if len(text) > 200:
            raise ValidationError(f"{key} is longer than 200 characters", code="INVALID_ADDRESS", field=[field, key])
        if text:
            address[key] = text
    for key in ("line1", "city", "country"):
        if key not in address:
            raise ValidationError(f"an address needs {key}", code="INVALID_ADDRESS", field=[field, key])
    return address


class CustomerService:
    """Staff changes to a customer."""

    def __init__(self, services: Services) -> None:
        self.services = services

    async def update_customer(
        self,
        actor: Actor,
        request: Any,
        customer_id: int,
        *,
        email: str | None = None,
        name: str | None = None,
        time_zone: str | None = None,
        billing_address: Mapping[str, Any] | None = None,
        clear_billing_address: bool = False,
        tax_id: str | None = None,
        tax_exempt: bool | None = None,
        tax_exempt_reason: str | None = None,
        common: Common | None = None,
    ) -> Result:
        """Change the fields given; the others stay. A customer's own subscriptions keep their time zone.

        Tax fields reach invoices issued after the change, never an issued one.
        """

        async def body(unit: Unit) -> Result:
            # FOR NO KEY UPDATE: concurrent changes of this customer queue here, while a charge being settled
            # (which holds its subscription and checks its rows' keys against this customer) is never blocked.
            row = (
                await unit.session.execute(select(CU).where(CU.c.id == customer_id).with_for_update(key_share=True))
            ).first()
            if row is None:
                raise NotFound(f"customer {to_global_id('Customer', customer_id)} does not exist", field=["customerId"])
            values: dict[str, Any] = {}
            if email is not None:
                clean = email.strip()
                if "@" not in clean or clean.startswith("@") or clean.endswith("@") or " " in clean or len(clean) > 320:
                    raise ValidationError(f"{email!r} is not an email address", code="INVALID_EMAIL", field=["email"])
                values["email"] = clean
            if name is not None:
                values["name"] = name.strip() or None
            if time_zone is not None:
                values["time_zone"] = validate_time_zone(time_zone)
            if billing_address is not None:
                values["billing_address"] = clean_address(billing_address)
            elif clear_billing_address:
                values["billing_address"] = None
            if tax_id is not None:
                cleaned = tax_id.strip()
                if len(cleaned) > 64:
                    raise ValidationError("taxId is at most 64 characters", code="INVALID_TAX_ID", field=["taxId"])
                values["tax_id"] = cleaned or None
            if tax_exempt_reason is not None:
                reason = tax_exempt_reason.strip()
                if len(reason) > 200:
                    raise ValidationError(
                        "taxExemptReason is at most 200 characters",
                        code="INVALID_TAX_EXEMPTION",
                        field=["taxExemptReason"],
                    )
                values["tax_exempt_reason"] = reason or None
            if tax_exempt is not None:
                values["tax_exempt"] = tax_exempt
            exempt = values.get("tax_exempt", row.tax_exempt)
            if exempt and not values.get("tax_exempt_reason", row.tax_exempt_reason):
                raise ValidationError(
                    "an exempt customer needs a taxExemptReason (such as 'Reverse charge'): invoices print it",
                    code="INVALID_TAX_EXEMPTION",
                    field=["taxExemptReason"],
                )
            if values:
                await unit.session.execute(update(CU).where(CU.c.id == customer_id).values(**values))
            return Result(extra={"customerId": customer_id})

        return await run_in_transaction(self.services, "updateCustomer", actor, common or Common(), request, body)


class SelfService:
    """What a customer may do to their own account, through the one service path."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.subscriptions = SubscriptionService(services)

    async def own_subscription(self, customer_id: int, subscription_id: int) -> SubscriptionState:
        """The customer's subscription; another customer's is NOT_FOUND exactly like one that does not exist."""
        from rebill.db.repositories import SubscriptionRepository

        async with self.services.sessions() as session:
            owner = (await session.execute(select(S.c.customer_id).where(S.c.id == subscription_id))).scalar()
            if owner is None or owner != customer_id:
                raise NotFound(
                    f"subscription {to_global_id('Subscription', subscription_id)} does not exist",
                    field=["subscriptionId"],
                )
            return await SubscriptionRepository(session).get(subscription_id)

    @staticmethod
    def _pinned(common: Common, state: SubscriptionState) -> Common:
        """The checks below read the subscription first: the change applies to that version or is refused."""
        if common.expected_version is not None:
            return common
        return Common(
            expected_version=state.version,
            reason=common.reason,
            idempotency_key=common.idempotency_key,
            dry_run=common.dry_run,
        )

    async def _answered(self, customer_id: int, common: Common) -> bool:
        """Whether this idempotency key already has its answer: a resubmitted form gets it, not the checks again."""
        if not common.idempotency_key or common.dry_run:
            return False
        async with self.services.sessions() as session:
            found = (
                await session.execute(
                    select(IR.c.id).where(
                        IR.c.api_key_id == customer_actor(customer_id).api_key_id,
                        IR.c.key == common.idempotency_key,
                        IR.c.response.isnot(None),
                    )
                )
            ).scalar()
        return found is not None

    async def _guard(self, call: Any) -> Result:
        try:
            result: Result = await call()
        except RebillError as exc:
            return Result(errors=[exc])
        return result

    async def postpone(
        self,
        customer_id: int,
        common: Common,
        request: Any,
        subscription_id: int,
        *,
        date_: date | None = None,
        shift: updates.Shift | None = None,
    ) -> Result:
        """Move the next billing date later (seed 004: "not a date prior to the current renewal date")."""

        async def call() -> Result:
            state = await self.own_subscription(customer_id, subscription_id)
            current = state.next_renewal_date
            target = date_
            if target is None and shift is not None and current is not None:
                target = shift.apply(current)
            replay = await self._answered(customer_id, common)
            if not replay and current is not None and target is not None and target < current:
                raise SubscriptionError(
                    f"the billing date can move later, not earlier than the current renewal date "
                    f"({current.isoformat()})",
                    code="DATE_BEFORE_CURRENT_RENEWAL",
                    field=["date"] if date_ is not None else ["shift"],
                )
            return await self.subscriptions.change_next_renewal_date(
                customer_actor(customer_id),
                self._pinned(common, state),
                request,
                subscription_id,
                date_=date_,
                shift=shift,
            )

        return await self._guard(call)

    async def cancel(self, customer_id: int, common: Common, request: Any, subscription_id: int) -> Result:
        """Cancel now; refunds and fulfillment are the merchant's to decide.

        Under contract the cancellation is kept for the date it takes effect (DOMAIN.md "Contract terms").
        """

        async def call() -> Result:
            state = await self.own_subscription(customer_id, subscription_id)
            today = local_today(self.services.clock.now(), state.time_zone)
            return await self.subscriptions.cancel(
                customer_actor(customer_id),
                self._pinned(common, state),
                request,
                subscription_id,
                at_period_end=contract_rules.commitment(state, today) is not None,
                refund_last_renewal=False,
                cancel_fulfillment=False,
            )

        return await self._guard(call)

    async def renew(self, customer_id: int, common: Common, request: Any, subscription_id: int) -> Result:
        """Renew a manual subscription that awaits reinstatement (seed 002, 004)."""

        async def call() -> Result:
            state = await self.own_subscription(customer_id, subscription_id)
            awaiting = state.status is SubscriptionStatus.AWAITING_REINSTATE
            if state.renewal_type is not RenewalType.MANUAL or not (
                awaiting or await self._answered(customer_id, common)
            ):
                raise SubscriptionError(
                    "only a manual subscription awaiting reinstatement can be renewed here; "
                    "this one renews by itself on its billing date",
                    code="INVALID_STATUS",
                    field=["subscriptionId"],
                )
            return await self.subscriptions.renew_now(
                customer_actor(customer_id),
                self._pinned(common, state),
                request,
                subscription_id,
                mode=lifecycle.RenewNowMode.EXTEND,
                unit_price=None,
                product_id=None,
                consent_reference=None,
            )

        return await self._guard(call)

    async def set_payment_method(
        self, customer_id: int, common: Common, request: Any, subscription_id: int, *, payment_method_id: int
    ) -> Result:
        async def call() -> Result:
            state = await self.own_subscription(customer_id, subscription_id)
            return await self.subscriptions.set_payment_method(
                customer_actor(customer_id),
                self._pinned(common, state),
                request,
                subscription_id,
                payment_method_id=payment_method_id,
            )

        return await self._guard(call)

    async def add_card(
        self,
        customer_id: int,
        common: Common,
        request: Any,
        *,
        gateway_token: str,
        exp_month: int | None = None,
        exp_year: int | None = None,
        make_default: bool = True,
    ) -> Result:
        """Add a card to the customer's own account; as the default, it retries renewals in dunning at once."""
        return await self._guard(
            lambda: CatalogService(self.services).add_payment_method(
                customer_actor(customer_id),
                request,
                customer_id=customer_id,
                kind=PaymentKind.CARD,
                gateway_token=gateway_token,
                make_default=make_default,
                exp_month=exp_month,
                exp_year=exp_year,
                common=common,
            )
        )

    async def replace_card(
        self,
        customer_id: int,
        common: Common,
        request: Any,
        subscription_id: int,
        *,
        gateway_token: str,
        exp_month: int | None = None,
        exp_year: int | None = None,
    ) -> Result:
        """The portal's "update the payment method" of one subscription (seed 004), in existing operations.

        The card is added as the customer's default, which moves every
        subscription that follows the default to it and retries their
        renewals in dunning at once. A subscription pinned to another method
        is set to the new card too, and its renewal in dunning retried, as a
        new default card's would be. Each step has an idempotency key derived
        from the form's, so a double submit acts once. A charge the new card
        declines is reported (the card stays saved).
        """
        await self.own_subscription(customer_id, subscription_id)
        added = await self.add_card(
            customer_id, common, request, gateway_token=gateway_token, exp_month=exp_month, exp_year=exp_year
        )
        if not added.ok:
            return added
        card = int(added.extra["paymentMethodId"])

        def step(name: str) -> Common:
            key = f"{common.idempotency_key}:{name}" if common.idempotency_key else None
            return Common(idempotency_key=key, reason=common.reason)

        state = await self.own_subscription(customer_id, subscription_id)
        if state.payment_method is not None and state.payment_method.id != card:
            pinned = await self.set_payment_method(
                customer_id, step("pin"), {**request, "pin": subscription_id}, subscription_id, payment_method_id=card
            )
            if not pinned.ok:
                return pinned
            failed = await self._renewal_in_dunning(subscription_id)
            if failed is not None:
                retried = await self._guard(
                    lambda: self.subscriptions.retry_renewal(
                        customer_actor(customer_id), step("retry"), {**request, "retry": failed}, failed
                    )
                )
                if not retried.ok and retried.errors[0].code != "PAYMENT_DECLINED":
                    return retried
        decline = await self._declined(subscription_id)
        if decline is not None:
            return Result(
                errors=[
                    SubscriptionError(
                        f"your card is saved, but the payment was declined ({decline}): try another card",
                        code="PAYMENT_DECLINED",
                        field=["gatewayToken"],
                        details={"declineCode": decline, "paymentMethodId": card},
                    )
                ],
                extra={"paymentMethodId": card},
            )
        return added

    async def _renewal_in_dunning(self, subscription_id: int) -> int | None:
        async with self.services.sessions() as session:
            found = (
                await session.execute(
                    select(R.c.id)
                    .where(
                        R.c.subscription_id == subscription_id, R.c.status == "FAILED", R.c.next_retry_date.isnot(None)
                    )
                    .order_by(R.c.id.desc())
                    .limit(1)
                )
            ).scalar()
        return int(found) if found is not None else None

    async def _declined(self, subscription_id: int) -> str | None:
        """The decline code when the subscription is still in dunning after its last charge (the new card's)."""
        if await self._renewal_in_dunning(subscription_id) is None:
            return None
        async with self.services.sessions() as session:
            last = (
                await session.execute(
                    select(TX.c.status, TX.c.decline_code)
                    .where(TX.c.subscription_id == subscription_id, TX.c.kind == "CHARGE")
                    .order_by(TX.c.id.desc())
                    .limit(1)
                )
            ).first()
        if last is None or last.status != "FAILED":
            return None
        return str(last.decline_code or "declined")

    async def update_billing_address(
        self, customer_id: int, common: Common, request: Any, *, address: Mapping[str, Any]
    ) -> Result:
        return await self._guard(
            lambda: CustomerService(self.services).update_customer(
                customer_actor(customer_id), request, customer_id, billing_address=address, common=common
            )
        )


__all__ = ["CustomerService", "Flow", "SelfService", "clean_address", "customer_actor", "customer_of"]
