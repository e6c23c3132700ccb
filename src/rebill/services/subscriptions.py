"""The one path every change to a subscription takes.

Load the subscription ``FOR UPDATE``, check ``expectedVersion``, run the pure
domain operation, charge when it bills something, save with ``version + 1``,
write the history entry and the outbox rows, all in one transaction. A dry
run takes the same path and rolls back; an idempotency key is claimed in the
same transaction, so a retried request replays the first response.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from rebill.db import tables as t
from rebill.db.repositories import Catalog, SubscriptionRepository, history_row, renewal_from_row, write_history
from rebill.domain import creation, cycle, lifecycle, updates
from rebill.domain.cadence import local_today
from rebill.domain.errors import NotFound, PaymentDeclined, RebillError, VersionConflict
from rebill.domain.money import Money
from rebill.domain.outcome import OpContext, Outcome
from rebill.domain.proration import Proration
from rebill.domain.renewal import Event, RenewalInfo
from rebill.domain.subscription import (
    GatewayMode,
    ProfileTerms,
    RenewalType,
    SubscriptionState,
    diff,
)
from rebill.services import idempotency, payments
from rebill.services.runtime import Actor, Common, Result, Services

R = t.table_of(t.Renewal)
OUTBOX = t.table_of(t.OutboxMessage)
CUSTOMERS = t.table_of(t.Customer)


class _Rollback(Exception):
    def __init__(self, result: Result) -> None:
        self.result = result


@dataclass
class Unit:
    """One transaction's worth of collaborators."""

    session: AsyncSession
    repo: SubscriptionRepository
    catalog: Catalog
    services: Services
    now: datetime
    actor: Actor
    common: Common

    def ctx(self, state_or_tz: SubscriptionState | str = "UTC") -> OpContext:
        tz = state_or_tz if isinstance(state_or_tz, str) else state_or_tz.time_zone
        return OpContext(now=self.now, today=local_today(self.now, tz))


Build = Callable[[Unit, SubscriptionState, OpContext], Awaitable[Outcome]]


async def run_in_transaction(
    services: Services,
    operation: str,
    actor: Actor,
    common: Common,
    request: Any,
    body: Callable[[Unit], Awaitable[Result]],
) -> Result:
    """Run ``body`` in one transaction with idempotency, what-if and error handling."""
    now = services.clock.now()
    async with services.sessions() as session:
        try:
            async with session.begin():
                catalog = Catalog(session)
                unit = Unit(session, SubscriptionRepository(session, catalog), catalog, services, now, actor, common)
                record_id = None
                if common.idempotency_key and not common.dry_run:
                    try:
                        record_id, replay = await idempotency.claim(
                            session,
                            actor,
                            common.idempotency_key,
                            operation,
                            idempotency.fingerprint(operation, request),
                            now,
                        )
                    except RebillError as exc:
                        raise _Rollback(Result(errors=[exc])) from None
                    if replay is not None:
                        return replay
                try:
                    async with session.begin_nested():
                        result = await body(unit)
                except RebillError as exc:
                    result = Result(errors=[exc])
                result.dry_run = common.dry_run
                if common.dry_run:
                    raise _Rollback(result)
                if record_id is not None:
                    await idempotency.store(session, record_id, result)
            return result
        except _Rollback as rollback:
            return rollback.result


async def apply_outcome(
    unit: Unit,
    before: SubscriptionState,
    outcome: Outcome,
    *,
    notes: Sequence[dict[str, Any]] = (),
    renewal: RenewalInfo | None = None,
) -> Result:
    """Charge, save, and write history and outbox for one operation's outcome.

    ``renewal`` is the renewal the outcome is about when it charges nothing
    itself (a declined first charge), so notifications can point at it.
    """
    session, now = unit.session, unit.now
    after = outcome.state
    extra_notes: list[dict[str, Any]] = list(notes) + list(outcome.notes)
    if outcome.charge is not None:
        charge = outcome.charge
        key = payments.new_renewal_key(before.id, charge.cycle)
        if charge.renewal_id is not None:
            existing = (
                await session.execute(select(R.c.idempotency_key, R.c.attempts).where(R.c.id == charge.renewal_id))
            ).one()
            key = f"{existing.idempotency_key}:retry{existing.attempts + 1}"
        if charge.amount.is_negative:
            credit = (after.credit or Money.zero(after.currency)) - charge.amount
            after = after.evolve(credit=credit)
            settled = payments.ChargeOutcome(collected_outside=True)
        elif unit.common.dry_run:
            settled = payments.ChargeOutcome(collected_outside=True)
        else:
            settled = await payments.charge(unit.services.gateways, after, charge.amount, key)
        if not settled.succeeded:
            renewal = await payments.record_renewal(session, after, charge, settled, key, now)
            await write_history(
                session,
                [
                    history_row(
                        before.id or 0,
                        at=now,
                        actor=unit.actor.name,
                        action="payment_declined",
                        reason=unit.common.reason,
                        changes=[
                            {
                                "field": f"renewals.{renewal.id}",
                                "before": None,
                                "after": _renewal_note(renewal, settled.decline_code),
                            }
                        ],
                        bulk_run_id=unit.actor.bulk_run_id,
                    )
                ],
            )
            return Result(
                subscription=before,
                renewal=renewal,
                errors=[
                    PaymentDeclined(
                        f"the payment of {charge.amount.amount_str} {charge.amount.currency} was declined "
                        f"({settled.decline_code}); the failed attempt is recorded on renewal {renewal.id}",
                        details={"declineCode": settled.decline_code, "renewalId": renewal.id},
                    )
                ],
            )
        after = lifecycle.paid(after, charge, settled.gateway)
        renewal = await payments.record_renewal(session, after, charge, settled, key, now)
        extra_notes.append({"field": f"renewals.{renewal.id}", "before": None, "after": _renewal_note(renewal, None)})
    saved = await unit.repo.save(before, after, now)
    refund_info = None
    if outcome.refund is not None:
        refunded, refund_info = await payments.refund(
            session, unit.services.gateways, outcome.refund, now, dry_run=unit.common.dry_run
        )
        extra_notes.append(
            {
                "field": f"renewals.{refunded.id}.refunded",
                "before": outcome.refund.renewal.refunded.amount_str,
                "after": refunded.refunded.amount_str,
            }
        )
        renewal = refunded
    for info, fields in outcome.renewal_updates:
        values = {k: (v.value if hasattr(v, "value") else v) for k, v in fields.items()}
        await session.execute(update(R).where(R.c.id == info.id).values(**values, updated_at=now))
        for k, v in values.items():
            old = getattr(info, k)
            extra_notes.append({"field": f"renewals.{info.id}.{k}", "before": getattr(old, "value", old), "after": v})
    changes = diff(before, saved) + extra_notes
    await write_history(
        session,
        [
            history_row(
                saved.id or 0,
                at=now,
                actor=unit.actor.name,
                action=outcome.action,
                reason=unit.common.reason,
                changes=changes,
                bulk_run_id=unit.actor.bulk_run_id,
            )
        ],
    )
    await emit(
        session,
        saved,
        outcome.events,
        now,
        base_url=unit.services.settings.public_base_url,
        renewal_id=renewal.id if renewal is not None else None,
    )
    return Result(subscription=saved, renewal=renewal, refund=refund_info)


def _renewal_note(renewal: RenewalInfo, decline_code: str | None) -> dict[str, Any]:
    note: dict[str, Any] = {
        "cycle": renewal.cycle,
        "kind": renewal.kind.value,
        "status": renewal.status.value,
        "amount": renewal.amount.amount_str,
        "periodStart": renewal.period_start.isoformat(),
        "periodEnd": renewal.period_end.isoformat(),
    }
    if decline_code:
        note["declineCode"] = decline_code
    return note


def notification_payload(
    base_url: str, state: SubscriptionState, event: Event, renewal_id: int | None = None
) -> dict[str, Any]:
    """An outbox payload: the event's own, plus ids and the links the customer needs."""
    base = base_url.rstrip("/")
    body: dict[str, Any] = {"subscriptionId": state.id, **event.payload}
    if renewal_id is not None and event.kind in ("RENEWAL_RECEIPT", "PAYMENT_DECLINED"):
        body["renewalId"] = renewal_id
    if event.kind == "PAYMENT_DECLINED":
        body["updatePaymentMethodUrl"] = f"{base}/customers/{state.customer_id}/payment-methods?subscription={state.id}"
    if event.kind in ("AWAITING_REINSTATE", "RENEWAL_REMINDER"):
        body["renewUrl"] = f"{base}/subscriptions/{state.id}/renew"
    return body


async def emit(
    session: AsyncSession,
    state: SubscriptionState,
    events: Sequence[Event],
    now: datetime,
    *,
    base_url: str,
    renewal_id: int | None = None,
) -> None:
    """Outbox rows for an operation's events, in the caller's transaction."""
    if not events:
        return
    email = (await session.execute(select(CUSTOMERS.c.email).where(CUSTOMERS.c.id == state.customer_id))).scalar()
    await session.execute(
        insert(OUTBOX),
        [
            {
                "kind": e.kind,
                "subscription_id": state.id,
                "recipient": email,
                "payload": notification_payload(base_url, state, e, renewal_id),
                "created_at": now,
            }
            for e in events
        ],
    )


class SubscriptionService:
    """Use cases on one subscription; each is a thin wrapper over a domain operation."""

    def __init__(self, services: Services) -> None:
        self.services = services

    @staticmethod
    def check_version(state: SubscriptionState, common: Common) -> None:
        """Optimistic concurrency: a stale ``expectedVersion`` changes nothing."""
        if common.expected_version is not None and state.version != common.expected_version:
            raise VersionConflict(
                f"subscription {state.id} is at version {state.version}, not "
                f"{common.expected_version}: it changed since you read it",
                field=["expectedVersion"],
            )

    async def mutate(
        self,
        operation: str,
        subscription_id: int,
        actor: Actor,
        common: Common,
        request: Any,
        build: Build,
    ) -> Result:
        async def body(unit: Unit) -> Result:
            state = await unit.repo.get(subscription_id, for_update=True)
            self.check_version(state, common)
            outcome = await build(unit, state, unit.ctx(state))
            result = await apply_outcome(unit, state, outcome)
            if outcome.replacement is not None and result.ok:
                result = await self._finish_replacement(unit, result, outcome.replacement)
            return result

        return await run_in_transaction(self.services, operation, actor, common, request, body)

    async def _finish_replacement(self, unit: Unit, result: Result, replacement: SubscriptionState) -> Result:
        old = result.subscription
        assert old is not None and old.id is not None
        created = await unit.repo.insert(replacement.evolve(replaces_id=old.id), unit.now)
        linked = await unit.repo.save(old, old.evolve(replaced_by_id=created.id), unit.now)
        await write_history(
            unit.session,
            [
                history_row(
                    created.id or 0,
                    at=unit.now,
                    actor=unit.actor.name,
                    action="created_as_replacement",
                    reason=unit.common.reason,
                    changes=diff(None, created),
                    bulk_run_id=unit.actor.bulk_run_id,
                ),
                history_row(
                    old.id,
                    at=unit.now,
                    actor=unit.actor.name,
                    action="replacement_linked",
                    reason=unit.common.reason,
                    changes=[{"field": "replacedById", "before": None, "after": created.id}],
                    bulk_run_id=unit.actor.bulk_run_id,
                ),
            ],
        )
        return Result(subscription=created, replaced=linked)

    # -- creation --------------------------------------------------------

    async def create(
        self,
        actor: Actor,
        common: Common,
        request: Any,
        *,
        customer_id: int,
        profile_id: int,
        items: Sequence[tuple[int, Money | None, int]],
        start_date: date | None = None,
        trial_days: int | None = None,
        payment_method_id: int | None = None,
        renewal_type: RenewalType | None = None,
        metadata: Mapping[str, Any] | None = None,
        bill_first_period: bool = True,
    ) -> Result:
        async def body(unit: Unit) -> Result:
            customer = (await unit.session.execute(select(CUSTOMERS).where(CUSTOMERS.c.id == customer_id))).first()
            if customer is None:
                raise NotFound(f"customer {customer_id} does not exist", field=["customerId"])
            profile = await unit.catalog.profile(profile_id)
            new_items = []
            for index, (product_id, price, quantity) in enumerate(items):
                try:
                    product = await unit.catalog.product(product_id)
                except NotFound as exc:
                    raise exc.with_field("items", str(index)) from None
                new_items.append(creation.NewItem(product, price, quantity))
            pm_id = payment_method_id or customer.default_payment_method_id
            pm = await unit.catalog.payment_method(pm_id) if pm_id else None
            ctx = unit.ctx(customer.time_zone)
            outcome = creation.start_subscription(
                ctx,
                customer_id=customer_id,
                profile=profile,
                items=new_items,
                start_date=start_date,
                trial_days=trial_days,
                payment_method=pm,
                renewal_type=renewal_type,
                metadata=metadata,
                bill_first_period=bill_first_period,
                time_zone=customer.time_zone,
            )
            created = await unit.repo.insert(outcome.state, unit.now)
            await write_history(
                unit.session,
                [
                    history_row(
                        created.id or 0,
                        at=unit.now,
                        actor=actor.name,
                        action="created",
                        reason=common.reason,
                        changes=diff(None, created),
                    )
                ],
            )
            if outcome.charge is None:
                return Result(subscription=created)
            # The first period is billed as the INITIAL renewal, through the one path.
            charged = await apply_outcome(unit, created, Outcome(created, "initial_charge", charge=outcome.charge))
            if charged.errors:
                # A declined first charge leaves the subscription overdue, to be retried.
                overdue = await self._first_charge_failed(unit, created, charged)
                return Result(subscription=overdue, renewal=charged.renewal)
            return charged

        return await run_in_transaction(self.services, "createSubscription", actor, common, request, body)

    async def _first_charge_failed(self, unit: Unit, created: SubscriptionState, charged: Result) -> SubscriptionState:
        """A declined first charge leaves the subscription in dunning, as a declined renewal would."""
        assert charged.renewal is not None
        declined = charged.errors[0].details.get("declineCode") if charged.errors else None
        dunning = cycle.cycle_failed(
            created, charged.renewal, unit.ctx(created), decline_code=str(declined) if declined else None
        )
        await unit.session.execute(
            update(R).where(R.c.id == charged.renewal.id).values(next_retry_date=dunning.retry_date)
        )
        result = await apply_outcome(unit, created, dunning.outcome, renewal=charged.renewal)
        return result.subscription or dunning.outcome.state

    # -- local updates ----------------------------------------------------

    async def change_next_renewal_date(
        self,
        actor: Actor,
        common: Common,
        request: Any,
        subscription_id: int,
        *,
        date_: date | None,
        shift: updates.Shift | None,
    ) -> Result:
        async def build(unit: Unit, state: SubscriptionState, ctx: OpContext) -> Outcome:
            return updates.change_next_renewal_date(state, ctx, date_=date_, shift=shift)

        return await self.mutate("changeNextRenewalDate", subscription_id, actor, common, request, build)

    async def update_item(
        self,
        actor: Actor,
        common: Common,
        request: Any,
        subscription_id: int,
        *,
        item_id: int,
        unit_price: Money | None,
        quantity: int | None,
        effective: updates.Effective,
        proration: Proration,
        consent_reference: str | None,
    ) -> Result:
        async def build(unit: Unit, state: SubscriptionState, ctx: OpContext) -> Outcome:
            return updates.update_item(
                state,
                ctx,
                item_id=item_id,
                unit_price=unit_price,
                quantity=quantity,
                effective=effective,
                proration=proration,
                consent_reference=consent_reference,
            )

        return await self.mutate("updateItem", subscription_id, actor, common, request, build)

    async def add_item(
        self,
        actor: Actor,
        common: Common,
        request: Any,
        subscription_id: int,
        *,
        product_id: int,
        unit_price: Money | None,
        quantity: int,
        effective: updates.Effective,
        proration: Proration,
        consent_reference: str | None,
    ) -> Result:
        async def build(unit: Unit, state: SubscriptionState, ctx: OpContext) -> Outcome:
            product = await unit.catalog.product(product_id)
            return updates.add_item(
                state,
                ctx,
                product=product,
                unit_price=unit_price,
                quantity=quantity,
                effective=effective,
                proration=proration,
                consent_reference=consent_reference,
            )

        return await self.mutate("addItem", subscription_id, actor, common, request, build)

    async def remove_item(
        self,
        actor: Actor,
        common: Common,
        request: Any,
        subscription_id: int,
        *,
        item_id: int,
        effective: updates.Effective,
        proration: Proration,
    ) -> Result:
        async def build(unit: Unit, state: SubscriptionState, ctx: OpContext) -> Outcome:
            return updates.remove_item(state, ctx, item_id=item_id, effective=effective, proration=proration)

        return await self.mutate("removeItem", subscription_id, actor, common, request, build)

    async def apply_coupon(
        self, actor: Actor, common: Common, request: Any, subscription_id: int, *, code: str
    ) -> Result:
        async def build(unit: Unit, state: SubscriptionState, ctx: OpContext) -> Outcome:
            coupon, active = await unit.catalog.coupon_by_code(code)
            return updates.apply_coupon(state, ctx, coupon=coupon, active=active)

        return await self.mutate("applyCoupon", subscription_id, actor, common, request, build)

    async def remove_coupon(
        self, actor: Actor, common: Common, request: Any, subscription_id: int, *, code: str
    ) -> Result:
        async def build(unit: Unit, state: SubscriptionState, ctx: OpContext) -> Outcome:
            return updates.remove_coupon(state, ctx, code=code)

        return await self.mutate("removeCoupon", subscription_id, actor, common, request, build)

    async def change_profile(
        self,
        actor: Actor,
        common: Common,
        request: Any,
        subscription_id: int,
        *,
        profile_id: int | None,
        custom_profile: ProfileTerms | None,
    ) -> Result:
        from rebill.services.catalog import insert_profile

        async def build(unit: Unit, state: SubscriptionState, ctx: OpContext) -> Outcome:
            if (profile_id is None) == (custom_profile is None):
                raise RebillError("give profileId or customProfile", code="INVALID_INPUT", field=["profileId"])
            if custom_profile is not None:
                profile = await insert_profile(unit.session, custom_profile, custom=True, now=unit.now)
            else:
                assert profile_id is not None
                profile = await unit.catalog.profile(profile_id)
            return updates.change_profile(state, ctx, profile=profile)

        return await self.mutate("changeProfile", subscription_id, actor, common, request, build)

    async def change_product(
        self,
        actor: Actor,
        common: Common,
        request: Any,
        subscription_id: int,
        *,
        item_id: int,
        product_id: int,
        unit_price: Money | None,
        quantity: int | None,
        transfer_coupons: bool,
        consent_reference: str | None,
    ) -> Result:
        async def build(unit: Unit, state: SubscriptionState, ctx: OpContext) -> Outcome:
            product = await unit.catalog.product(product_id)
            return creation.change_product(
                state,
                ctx,
                item_id=item_id,
                product=product,
                unit_price=unit_price,
                quantity=quantity,
                transfer_coupons=transfer_coupons,
                consent_reference=consent_reference,
            )

        return await self.mutate("changeProduct", subscription_id, actor, common, request, build)

    async def update_shipping_address(
        self, actor: Actor, common: Common, request: Any, subscription_id: int, *, address: Mapping[str, Any]
    ) -> Result:
        async def build(unit: Unit, state: SubscriptionState, ctx: OpContext) -> Outcome:
            return updates.update_shipping_address(state, ctx, address=address)

        return await self.mutate("updateShippingAddress", subscription_id, actor, common, request, build)

    async def set_payment_method(
        self, actor: Actor, common: Common, request: Any, subscription_id: int, *, payment_method_id: int
    ) -> Result:
        async def build(unit: Unit, state: SubscriptionState, ctx: OpContext) -> Outcome:
            pm = await unit.catalog.payment_method(payment_method_id)
            return updates.set_payment_method(state, ctx, payment_method=pm)

        return await self.mutate("setPaymentMethod", subscription_id, actor, common, request, build)

    async def set_gateway(
        self,
        actor: Actor,
        common: Common,
        request: Any,
        subscription_id: int,
        *,
        gateway_id: str | None,
        mode: GatewayMode | None,
    ) -> Result:
        async def build(unit: Unit, state: SubscriptionState, ctx: OpContext) -> Outcome:
            return updates.set_gateway(
                state, ctx, gateway_id=gateway_id, mode=mode, known_gateways=self.services.gateways.names
            )

        return await self.mutate("setGateway", subscription_id, actor, common, request, build)

    async def set_renewal_type(
        self,
        actor: Actor,
        common: Common,
        request: Any,
        subscription_id: int,
        *,
        renewal_type: RenewalType,
        item_ids: Sequence[int] | None,
    ) -> Result:
        async def build(unit: Unit, state: SubscriptionState, ctx: OpContext) -> Outcome:
            return updates.set_renewal_type(state, ctx, renewal_type=renewal_type, item_ids=item_ids)

        return await self.mutate("setRenewalType", subscription_id, actor, common, request, build)

    async def set_end_date(
        self,
        actor: Actor,
        common: Common,
        request: Any,
        subscription_id: int,
        *,
        end_date: date | None,
        after: updates.Shift | None,
    ) -> Result:
        async def build(unit: Unit, state: SubscriptionState, ctx: OpContext) -> Outcome:
            return updates.set_end_date(state, ctx, end_date=end_date, after=after)

        return await self.mutate("setEndDate", subscription_id, actor, common, request, build)

    async def set_metadata(
        self, actor: Actor, common: Common, request: Any, subscription_id: int, *, metadata: Mapping[str, Any] | None
    ) -> Result:
        async def build(unit: Unit, state: SubscriptionState, ctx: OpContext) -> Outcome:
            return updates.set_metadata(state, ctx, metadata=metadata)

        return await self.mutate("setMetadata", subscription_id, actor, common, request, build)

    # -- lifecycle --------------------------------------------------------

    async def suspend(self, actor: Actor, common: Common, request: Any, subscription_id: int) -> Result:
        async def build(unit: Unit, state: SubscriptionState, ctx: OpContext) -> Outcome:
            return lifecycle.suspend(state, ctx)

        return await self.mutate("suspendSubscription", subscription_id, actor, common, request, build)

    async def activate(self, actor: Actor, common: Common, request: Any, subscription_id: int) -> Result:
        async def build(unit: Unit, state: SubscriptionState, ctx: OpContext) -> Outcome:
            return lifecycle.activate(state, ctx)

        result = await self.mutate("activateSubscription", subscription_id, actor, common, request, build)
        if (
            result.ok
            and not common.dry_run
            and not result.replayed
            and result.subscription
            and result.subscription.renew_due
        ):
            from rebill.billing.engine import RenewalEngine

            # A next renewal date that passed while suspended renews at once (seed 003).
            await RenewalEngine(self.services).renew_subscription(subscription_id)
            async with self.services.sessions() as session:
                result.subscription = await SubscriptionRepository(session).get(subscription_id)
        return result

    async def cancel(
        self,
        actor: Actor,
        common: Common,
        request: Any,
        subscription_id: int,
        *,
        at_period_end: bool,
        refund_last_renewal: bool,
        cancel_fulfillment: bool,
    ) -> Result:
        async def build(unit: Unit, state: SubscriptionState, ctx: OpContext) -> Outcome:
            last = await last_period_renewal(unit.session, subscription_id)
            return lifecycle.cancel(
                state,
                ctx,
                at_period_end=at_period_end,
                refund_last_renewal=refund_last_renewal,
                cancel_fulfillment=cancel_fulfillment,
                last_renewal=last,
            )

        return await self.mutate("cancelSubscription", subscription_id, actor, common, request, build)

    async def renew_now(
        self,
        actor: Actor,
        common: Common,
        request: Any,
        subscription_id: int,
        *,
        mode: lifecycle.RenewNowMode,
        unit_price: Money | None,
        product_id: int | None,
        consent_reference: str | None,
    ) -> Result:
        async def build(unit: Unit, state: SubscriptionState, ctx: OpContext) -> Outcome:
            product = await unit.catalog.product(product_id) if product_id is not None else None
            return lifecycle.renew_now(
                state, ctx, mode=mode, unit_price=unit_price, product=product, consent_reference=consent_reference
            )

        return await self.mutate("renewNow", subscription_id, actor, common, request, build)

    async def force_bill(self, actor: Actor, common: Common, request: Any, subscription_id: int) -> Result:
        async def build(unit: Unit, state: SubscriptionState, ctx: OpContext) -> Outcome:
            return lifecycle.force_bill(state, ctx)

        return await self.mutate("forceBill", subscription_id, actor, common, request, build)

    async def retry_renewal(self, actor: Actor, common: Common, request: Any, renewal_id: int) -> Result:
        subscription_id = await self._renewal_subscription(renewal_id)
        if subscription_id is None:
            return Result(errors=[NotFound(f"renewal {renewal_id} does not exist", field=["renewalId"])])

        async def build(unit: Unit, state: SubscriptionState, ctx: OpContext) -> Outcome:
            renewal = await get_renewal(unit.session, renewal_id, for_update=True)
            return lifecycle.retry_renewal(state, ctx, renewal=renewal)

        return await self.mutate("retryRenewal", subscription_id, actor, common, request, build)

    async def refund_renewal(
        self, actor: Actor, common: Common, request: Any, renewal_id: int, *, amount: Money | None
    ) -> Result:
        subscription_id = await self._renewal_subscription(renewal_id)
        if subscription_id is None:
            return Result(errors=[NotFound(f"renewal {renewal_id} does not exist", field=["renewalId"])])

        async def build(unit: Unit, state: SubscriptionState, ctx: OpContext) -> Outcome:
            renewal = await get_renewal(unit.session, renewal_id, for_update=True)
            return lifecycle.refund_renewal(state, ctx, renewal=renewal, amount=amount)

        return await self.mutate("refundRenewal", subscription_id, actor, common, request, build)

    async def mark_fulfillment(
        self, actor: Actor, common: Common, request: Any, renewal_id: int, *, status: Any
    ) -> Result:
        subscription_id = await self._renewal_subscription(renewal_id)
        if subscription_id is None:
            return Result(errors=[NotFound(f"renewal {renewal_id} does not exist", field=["renewalId"])])

        async def build(unit: Unit, state: SubscriptionState, ctx: OpContext) -> Outcome:
            renewal = await get_renewal(unit.session, renewal_id, for_update=True)
            return lifecycle.mark_fulfillment(state, ctx, renewal=renewal, status=status)

        result = await self.mutate("updateFulfillment", subscription_id, actor, common, request, build)
        if result.ok and result.renewal is None:
            async with self.services.sessions() as session:
                result.renewal = await get_renewal(session, renewal_id)
        return result

    async def _renewal_subscription(self, renewal_id: int) -> int | None:
        async with self.services.sessions() as session:
            sid = (await session.execute(select(R.c.subscription_id).where(R.c.id == renewal_id))).scalar()
        return int(sid) if sid is not None else None


async def get_renewal(session: AsyncSession, renewal_id: int, *, for_update: bool = False) -> RenewalInfo:
    stmt = select(R).where(R.c.id == renewal_id)
    if for_update:
        stmt = stmt.with_for_update()
    row = (await session.execute(stmt)).first()
    if row is None:
        raise NotFound(f"renewal {renewal_id} does not exist", field=["renewalId"])
    return renewal_from_row(row)


async def last_period_renewal(session: AsyncSession, subscription_id: int) -> RenewalInfo | None:
    """The latest renewal that billed a period (proration adjustments aside)."""
    row = (
        await session.execute(
            select(R)
            .where(R.c.subscription_id == subscription_id, R.c.adjustment.is_(False))
            .order_by(R.c.cycle.desc(), R.c.id.desc())
            .limit(1)
        )
    ).first()
    return renewal_from_row(row) if row is not None else None
