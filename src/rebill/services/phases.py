"""Global updates and phases: many settings at once, now or on a future date (seed 001).

A global update is a list of the local operations applied in one go, so it
obeys exactly their rules. With a future effective date it is stored as a
*phase*: listed on the subscription, editable and removable until it starts,
and applied by the worker (``apply_due_phases``) on its date in the
subscription's time zone, whether or not it renews that day, and before a
renewal of that date bills.
The phase's changes are kept as the same JSON a client sent, with ids
decoded, so what is applied later is what was validated now.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import insert, select, update

from rebill.db import tables as t
from rebill.db.repositories import history_row, write_history
from rebill.domain import creation, updates
from rebill.domain import invoice as invoice_rules
from rebill.domain.errors import NotFound, RebillError, SubscriptionError, ValidationError
from rebill.domain.money import Money
from rebill.domain.outcome import OpContext, Outcome, changeable, require_consent
from rebill.domain.phasing import due_through
from rebill.domain.proration import Proration
from rebill.domain.subscription import GatewayMode, RenewalType, SubscriptionState
from rebill.services.runtime import Actor, Common, Result, Services
from rebill.services.subscriptions import SubscriptionService, Unit, apply_outcome, run_in_transaction

PH = t.table_of(t.Phase)

KNOWN_KEYS = {
    "startDate",
    "nextRenewalDate",
    "invoicing",
    "items",
    "addItems",
    "removeItemIds",
    "applyCoupons",
    "removeCoupons",
    "profileId",
    "shippingAddress",
    "paymentMethodId",
    "gatewayId",
    "gatewayMode",
    "clearGateway",
    "renewalType",
    "endDate",
    "clearEndDate",
    "metadata",
    "consentReference",
}


def _money(raw: Any, *field: str) -> Money | None:
    if raw is None:
        return None
    try:
        return Money.parse(raw["amount"], raw["currency"])
    except RebillError as exc:
        exc.field = list(field)
        raise


async def apply_changes(unit: Unit, state: SubscriptionState, ctx: OpContext, changes: dict[str, Any]) -> Outcome:
    """Apply a global update's changes to a state, each through its local operation."""
    changeable(state, "update")
    unknown = set(changes) - KNOWN_KEYS
    if unknown:
        raise ValidationError(f"unknown setting {sorted(unknown)[0]!r}", code="INVALID_INPUT")
    if not any(changes.get(k) not in (None, False, [], {}) for k in KNOWN_KEYS - {"consentReference"}):
        raise ValidationError("give at least one setting to change", code="INVALID_INPUT")
    consent = changes.get("consentReference")
    before = state
    charges = []

    def step(outcome: Outcome) -> SubscriptionState:
        if outcome.charge is not None:
            charges.append(outcome.charge)
        return outcome.state

    try:
        if changes.get("profileId") is not None:
            profile = await unit.catalog.profile(int(changes["profileId"]))
            if profile.id != state.profile.id:
                state = step(updates.change_profile(state, ctx, profile=profile))
        for n, item in enumerate(changes.get("items") or []):
            try:
                state = step(
                    updates.update_item(
                        state,
                        ctx,
                        item_id=int(item["itemId"]),
                        unit_price=_money(item.get("unitPrice"), "unitPrice"),
                        quantity=item.get("quantity"),
                        proration=Proration.NONE,
                        consent_reference=consent,
                    )
                )
            except RebillError as exc:
                raise exc.with_field("items", str(n)) from None
        for n, item in enumerate(changes.get("addItems") or []):
            try:
                product = await unit.catalog.product(int(item["productId"]))
                state = step(
                    updates.add_item(
                        state,
                        ctx,
                        product=product,
                        unit_price=_money(item.get("unitPrice"), "unitPrice"),
                        quantity=int(item.get("quantity", 1)),
                        consent_reference=consent,
                    )
                )
            except RebillError as exc:
                raise exc.with_field("addItems", str(n)) from None
        for n, item_id in enumerate(changes.get("removeItemIds") or []):
            try:
                state = step(updates.remove_item(state, ctx, item_id=int(item_id)))
            except RebillError as exc:
                raise exc.with_field("removeItemIds", str(n)) from None
        for code in changes.get("applyCoupons") or []:
            coupon, active = await unit.catalog.coupon_by_code(code)
            state = step(updates.apply_coupon(state, ctx, coupon=coupon, active=active))
        for code in changes.get("removeCoupons") or []:
            state = step(updates.remove_coupon(state, ctx, code=code))
        if changes.get("startDate") is not None:
            try:
                state = creation.change_start_date(state, ctx, date.fromisoformat(changes["startDate"]))
            except RebillError as exc:
                exc.field = ["startDate"]
                raise
        if changes.get("nextRenewalDate") is not None:
            state = step(
                updates.change_next_renewal_date(state, ctx, date_=date.fromisoformat(changes["nextRenewalDate"]))
            )
        if changes.get("shippingAddress") is not None:
            state = step(updates.update_shipping_address(state, ctx, address=changes["shippingAddress"]))
        if changes.get("paymentMethodId") is not None:
            pm = await unit.catalog.payment_method(int(changes["paymentMethodId"]))
            state = step(updates.set_payment_method(state, ctx, payment_method=pm))
        if changes.get("clearGateway"):
            state = step(
                updates.set_gateway(state, ctx, gateway_id=None, mode=None, known_gateways=unit.services.gateways.names)
            )
        elif changes.get("gatewayId") is not None:
            mode = GatewayMode(changes["gatewayMode"]) if changes.get("gatewayMode") else None
            state = step(
                updates.set_gateway(
                    state, ctx, gateway_id=changes["gatewayId"], mode=mode, known_gateways=unit.services.gateways.names
                )
            )
        if changes.get("renewalType") is not None:
            state = step(updates.set_renewal_type(state, ctx, renewal_type=RenewalType(changes["renewalType"])))
        if changes.get("clearEndDate"):
            state = step(updates.set_end_date(state, ctx, end_date=None))
        elif changes.get("endDate") is not None:
            state = step(updates.set_end_date(state, ctx, end_date=date.fromisoformat(changes["endDate"])))
        if changes.get("metadata") is not None:
            state = step(updates.set_metadata(state, ctx, metadata=changes["metadata"]))
        if changes.get("invoicing") is not None:
            try:
                state = step(
                    updates.update_invoicing(state, ctx, **invoice_rules.invoicing_changes(changes["invoicing"]))
                )
            except RebillError as exc:
                raise exc.with_field("invoicing") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise ValidationError(f"malformed setting: {exc}", code="INVALID_INPUT") from None
    require_consent(before, state, consent)
    if charges:
        raise SubscriptionError("a global update never charges", code="INVALID_INPUT")
    return Outcome(state, "updated")


class PhaseService:
    def __init__(self, services: Services) -> None:
        self.services = services

    async def update_subscription(
        self,
        actor: Actor,
        common: Common,
        request: Any,
        subscription_id: int,
        *,
        changes: dict[str, Any],
        effective_date: date | None,
        at_next_renewal: bool,
    ) -> Result:
        """Apply now, or keep as a phase when it takes effect later."""

        async def body(unit: Unit) -> Result:
            state = await unit.repo.get(subscription_id, for_update=True)
            SubscriptionService.check_version(state, common)
            ctx = unit.ctx(state)
            when = effective_date
            if at_next_renewal:
                if state.next_renewal_date is None:
                    raise SubscriptionError("the subscription has no next renewal", code="INVALID_STATUS")
                when = state.next_renewal_date
            if when is not None and when < ctx.today:
                raise SubscriptionError(
                    f"effectiveDate {when.isoformat()} is in the past", code="DATE_IN_PAST", field=["effectiveDate"]
                )
            if when is None or when == ctx.today:
                outcome = await apply_changes(unit, state, ctx, changes)
                return await apply_outcome(unit, state, outcome, consent_reference=changes.get("consentReference"))
            # Check the changes now, as they would apply on their date.
            await apply_changes(unit, state, OpContext(now=unit.now, today=when), changes)
            phase_id = (
                await unit.session.execute(
                    insert(PH)
                    .values(
                        subscription_id=subscription_id,
                        effective_date=when,
                        changes=changes,
                        created_by=actor.name,
                        reason=common.reason,
                        created_at=unit.now,
                    )
                    .returning(PH.c.id)
                )
            ).scalar_one()
            note = {
                "field": f"phases.{phase_id}",
                "before": None,
                "after": {"effectiveDate": when.isoformat(), **changes},
            }
            result = await apply_outcome(unit, state, Outcome(state, "phase_scheduled"), notes=[note])
            result.extra["phaseId"] = phase_id
            return result

        return await run_in_transaction(self.services, "updateSubscription", actor, common, request, body)

    async def edit_phase(
        self,
        actor: Actor,
        common: Common,
        request: Any,
        phase_id: int,
        *,
        changes: dict[str, Any] | None,
        effective_date: date | None,
        cancel: bool = False,
    ) -> Result:
        """Change or drop a phase that has not started yet."""

        async def body(unit: Unit) -> Result:
            # The subscription is locked before its phase, in the worker's order, so the two never deadlock.
            owner = (await unit.session.execute(select(PH.c.subscription_id).where(PH.c.id == phase_id))).scalar()
            if owner is None:
                raise NotFound(f"phase {phase_id} does not exist", field=["phaseId"])
            state = await unit.repo.get(owner, for_update=True)
            row = (await unit.session.execute(select(PH).where(PH.c.id == phase_id).with_for_update())).one()
            SubscriptionService.check_version(state, common)
            ctx = unit.ctx(state)
            if row.status != "PENDING" or row.effective_date <= ctx.today:
                raise SubscriptionError(
                    f"phase {phase_id} has already started ({row.status}); it can no longer be changed",
                    code="PHASE_STARTED",
                    field=["phaseId"],
                )
            field = f"phases.{phase_id}"
            before = {"effectiveDate": row.effective_date.isoformat(), **row.changes}
            if cancel:
                await unit.session.execute(update(PH).where(PH.c.id == phase_id).values(status="CANCELLED"))
                note = {"field": field, "before": before, "after": None}
                return await apply_outcome(unit, state, Outcome(state, "phase_cancelled"), notes=[note])
            when = effective_date or row.effective_date
            if when <= ctx.today:
                raise SubscriptionError("a phase must start after today", code="DATE_IN_PAST", field=["effectiveDate"])
            new_changes = changes if changes is not None else row.changes
            await apply_changes(unit, state, OpContext(now=unit.now, today=when), new_changes)
            await unit.session.execute(
                update(PH).where(PH.c.id == phase_id).values(changes=new_changes, effective_date=when)
            )
            note = {"field": field, "before": before, "after": {"effectiveDate": when.isoformat(), **new_changes}}
            result = await apply_outcome(unit, state, Outcome(state, "phase_updated"), notes=[note])
            result.extra["phaseId"] = phase_id
            return result

        operation = "cancelPhase" if cancel else "updatePhase"
        return await run_in_transaction(self.services, operation, actor, common, request, body)


async def apply_due_phases(unit: Unit, state: SubscriptionState) -> SubscriptionState:
    """Apply the subscription's phases that are due, oldest first, in the caller's transaction.

    Due means dated today or earlier in the subscription's time zone, and not
    after a renewal it still owes: a cycle caught up late bills the settings
    of its own date, and the phases after it follow once it is billed
    (:func:`due_through`). Phases never prorate; they change what later
    renewals bill. A phase whose changes are refused by the rules on its
    date is marked ``FAILED`` with the reason in the history; the others
    still apply. The phase rows are locked and read ``PENDING`` here, so
    two workers that reach the same subscription apply each phase once.
    """
    assert state.id is not None
    ctx = unit.ctx(state)
    rows = list(
        await unit.session.execute(
            select(PH)
            .where(
                PH.c.subscription_id == state.id,
                PH.c.status == "PENDING",
                PH.c.effective_date <= due_through(state, ctx.today),
            )
            .order_by(PH.c.effective_date, PH.c.id)
            .with_for_update()
        )
    )
    for row in rows:
        phase_ctx = OpContext(now=unit.now, today=max(row.effective_date, ctx.today))
        try:
            async with unit.session.begin_nested():
                outcome = await apply_changes(unit, state, phase_ctx, row.changes)
                result = await apply_outcome(unit, state, Outcome(outcome.state, "phase_applied"))
                assert result.subscription is not None
                state = result.subscription
                await unit.session.execute(
                    update(PH).where(PH.c.id == row.id).values(status="APPLIED", applied_at=unit.now)
                )
        except RebillError as exc:
            await unit.session.execute(update(PH).where(PH.c.id == row.id).values(status="FAILED", applied_at=unit.now))
            await write_history(
                unit.session,
                [
                    history_row(
                        state.id or 0,
                        at=unit.now,
                        actor=unit.actor.name,
                        action="phase_failed",
                        reason=f"{exc.code}: {exc.message}",
                        changes=[{"field": f"phases.{row.id}", "before": "PENDING", "after": "FAILED"}],
                    )
                ],
            )
    return state
