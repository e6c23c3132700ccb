"""The one path every change to a subscription takes.

Load the subscription ``FOR UPDATE``, check ``expectedVersion``, run the pure
domain operation, charge when it bills something, save with ``version + 1``,
write the history entry and the outbox rows, all in one transaction. A dry
run takes the same path and rolls back; an idempotency key is claimed in the
same transaction, so a retried request replays the first response.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from secrets import token_hex
from typing import Any

from sqlalchemy import insert, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from rebill.db import tables as t
from rebill.db.repositories import (
    Catalog,
    SubscriptionRepository,
    customer_tax_rate,
    history_row,
    renewal_from_row,
    write_history,
)
from rebill.domain import creation, cycle, lifecycle, updates
from rebill.domain.cadence import local_today
from rebill.domain.errors import NotFound, PaymentDeclined, RebillError, SubscriptionError, VersionConflict
from rebill.domain.invoice import Document, LineKind
from rebill.domain.money import Money
from rebill.domain.outcome import OpContext, Outcome
from rebill.domain.proration import Proration
from rebill.domain.renewal import Event, FulfillmentStatus, RenewalInfo, RenewalKind, RenewalStatus
from rebill.domain.subscription import (
    GatewayMode,
    ProfileTerms,
    RenewalType,
    SubscriptionState,
    diff,
)
from rebill.ids import to_global_id
from rebill.invoicing import credit as crediting
from rebill.invoicing.follow import drop_drafts, follow_renewals
from rebill.invoicing.issue import document_of, issue_for_charges
from rebill.services import charging, idempotency, outbox, payments
from rebill.services.charging import InFlight, Job
from rebill.services.outbox import notification_payload
from rebill.services.runtime import Actor, Common, Result, Services

log = logging.getLogger(__name__)

R = t.table_of(t.Renewal)
S = t.table_of(t.Subscription)
OUTBOX = t.table_of(t.OutboxMessage)
CUSTOMERS = t.table_of(t.Customer)

__all__ = ["SubscriptionService", "Unit", "apply_outcome", "notification_payload", "run_in_transaction"]

#: How long a retried request waits for the same request's charge, in flight in another process.
IN_FLIGHT_WAIT_SECONDS = 30.0


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
    # Charges recorded in this transaction, sent to the gateway once it commits.
    pending: list[Job] = field(default_factory=list)
    # Whether in-flight locks were taken on this request's connection (released at its end).
    holds_locks: bool = False
    # What a dry run's charge would be invoiced.
    invoice_preview: Document | None = None
    # The draft a charge of this transaction finalizes (its row becomes the invoice).
    draft_invoice_id: int | None = None

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
    *,
    declined_is_error: bool = True,
) -> Result:
    """Run ``body`` in one transaction with idempotency, what-if and error handling.

    A charge the body records is sent to the gateway after the commit, and
    settled in a second transaction (:mod:`rebill.services.charging`); the
    idempotency record is completed then. A client that retries a request
    whose process died in between gets the charge settled (asked of the
    gateway, never charged twice) and the final answer.
    """
    now = services.clock.now()
    # One connection for the whole request: a charge's in-flight lock is a
    # session-level advisory lock on it, held from before the commit that
    # records the charge until the charge is settled (no second connection,
    # so a burst of charging requests cannot exhaust the pool on itself).
    async with services.engine.connect() as conn:
        session = services.sessions(bind=conn)
        catalog = Catalog(session)
        unit = Unit(session, SubscriptionRepository(session, catalog), catalog, services, now, actor, common)
        record_id: int | None = None
        replay: Result | None = None
        try:
            try:
                async with session.begin():
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
                    if replay is None:
                        try:
                            async with session.begin_nested():
                                result = await body(unit)
                        except RebillError as exc:
                            result = Result(errors=[exc])
                            unit.pending.clear()
                        result.dry_run = common.dry_run
                        if common.dry_run:
                            result.invoice_preview = unit.invoice_preview
                            raise _Rollback(result)
                        if unit.pending:
                            # In flight from before the commit: recovery leaves these alone while we live.
                            unit.holds_locks = True
                            await InFlight(conn).take([job.renewal_id for job in unit.pending])
                            result.pending = [job.renewal_id for job in unit.pending]
                        if record_id is not None:
                            await idempotency.store(session, record_id, result)
            except _Rollback as rollback:
                return rollback.result
            if replay is not None:
                if replay.pending:
                    unit.holds_locks = True
                    return await _finish_replay(services, session, actor, common, replay, declined_is_error)
                return replay
            if unit.pending:
                result = await _charge_pending(services, unit, result, record_id, declined_is_error)
            return result
        finally:
            await session.close()
            if unit.holds_locks and not conn.closed and not conn.invalidated:
                try:
                    await InFlight(conn, commits=True).release_all()
                except BaseException:
                    # A lock that cannot be released must not go back to the pool with its connection.
                    await conn.invalidate()
                    raise


async def _charge_pending(
    services: Services, unit: Unit, result: Result, record_id: int | None, declined_is_error: bool
) -> Result:
    """Send the charges recorded by a committed mutation, and settle them."""
    jobs = unit.pending
    session = unit.session
    try:
        await charging.charge_jobs(services.gateways, jobs)
        async with session.begin():
            await charging.settle_jobs(
                session, services.settings, jobs, unit.now, unit.actor.name, bulk_run_id=unit.actor.bulk_run_id
            )
            result = await _final_result(session, result, declined_is_error)
            if record_id is not None:
                await idempotency.store(session, record_id, result)
        return result
    except (DBAPIError, OSError) as exc:
        log.error("a charge could not be settled, it stays pending for recovery: %s", exc)
        result.errors.append(_still_pending(result.pending))
        return result


def _still_pending(renewal_ids: Sequence[int]) -> RebillError:
    return RebillError(
        f"the payment of renewal {', '.join(to_global_id('Renewal', i) for i in renewal_ids)} is still being "
        "processed: send the request "
        "again with the same idempotencyKey to get its outcome (it is never charged twice)",
        code="PAYMENT_PENDING",
    )


async def _final_result(session: AsyncSession, result: Result, declined_is_error: bool) -> Result:
    """The mutation's answer once its charges are settled: the subscription and renewal as they are now."""
    ids = list(result.pending)
    rows = {row.id: renewal_from_row(row) for row in await session.execute(select(R).where(R.c.id.in_(ids)))}
    renewals = [rows[i] for i in ids if i in rows]
    final = replace(result, pending=[], errors=list(result.errors))
    if result.subscription is not None and result.subscription.id is not None:
        final.subscription = await SubscriptionRepository(session).get(result.subscription.id)
    if renewals:
        final.renewal = renewals[0]
    if any(r.status is RenewalStatus.PENDING for r in renewals):
        final.pending = [r.id for r in renewals if r.status is RenewalStatus.PENDING]
        final.errors.append(_still_pending(final.pending))
        return final
    for renewal in renewals:
        if renewal.status is RenewalStatus.FAILED and declined_is_error:
            decline = (
                await session.execute(
                    text(
                        "SELECT decline_code FROM transactions WHERE renewal_id = :id AND status = 'FAILED' "
                        "ORDER BY id DESC LIMIT 1"
                    ),
                    {"id": renewal.id},
                )
            ).scalar()
            final.errors.append(
                PaymentDeclined(
                    f"the payment of {renewal.amount.amount_str} {renewal.amount.currency} was declined "
                    f"({decline}); renewal {to_global_id('Renewal', renewal.id)} is in dunning: retry it, "
                    "or add a new default card",
                    details={"declineCode": decline, "renewalId": renewal.id},
                )
            )
    return final


async def _finish_replay(
    services: Services, session: AsyncSession, actor: Actor, common: Common, replay: Result, declined_is_error: bool
) -> Result:
    """A retried request whose first attempt's charge was not settled when it answered (or never answered)."""
    now = services.clock.now()
    conn = await session.connection()
    await session.commit()
    locks = InFlight(conn, commits=True)
    for renewal_id in replay.pending:
        free = await locks.take([renewal_id])
        if not free and not await locks.wait(renewal_id, IN_FLIGHT_WAIT_SECONDS):
            replay.errors = [*replay.errors, _still_pending([renewal_id])]
            return replay
    async with session.begin():
        rows = list(
            await session.execute(
                select(R).where(R.c.id.in_(list(replay.pending)), text("renewals.status = 'PENDING'"))
            )
        )
        jobs = await charging.jobs_for_rows(session, rows) if rows else []
        for job in jobs:
            job.recovered = True
        await charging.recheck(session, jobs)
    try:
        if jobs:
            log.warning("settling %d charges of a request that did not get its answer", len(jobs))
            await charging.charge_jobs(services.gateways, jobs)
        async with session.begin():
            if jobs:
                await charging.settle_jobs(session, services.settings, jobs, now, actor.name)
            final = await _final_result(session, replay, declined_is_error)
            final.replayed = True
            if common.idempotency_key:
                await idempotency.store_by_key(session, actor, common.idempotency_key, final)
        return final
    except (DBAPIError, OSError) as exc:
        log.error("a charge could not be settled, it stays pending for recovery: %s", exc)
        replay.errors = [*replay.errors, _still_pending(replay.pending)]
        return replay


async def record_pending_charge(
    unit: Unit, before: SubscriptionState, after: SubscriptionState, outcome: Outcome
) -> tuple[RenewalInfo, Job]:
    """Record an outcome's charge as a PENDING renewal with its deterministic key (step 1 of charging)."""
    charge = outcome.charge
    assert charge is not None and before.id is not None
    key = (
        charging.adjustment_key(before.id, before.version)
        if charge.adjustment
        else charging.renewal_key(before.id, charge.cycle)
    )
    pm = after.payment_method
    row = (
        await unit.session.execute(
            insert(R)
            .values(
                subscription_id=before.id,
                cycle=charge.cycle,
                kind=charge.kind.value,
                adjustment=charge.adjustment,
                status=RenewalStatus.PENDING.value,
                period_start=charge.period_start,
                period_end=charge.period_end,
                amount_minor=charge.amount.minor,
                currency=charge.amount.currency,
                attempts=1,
                fulfillment=charge.fulfillment.value,
                payment_method_id=pm.id if pm else None,
                payment_kind=pm.kind.value if pm else None,
                idempotency_key=key,
                created_at=unit.now,
                updated_at=unit.now,
            )
            .returning(R)
        )
    ).one()
    renewal = renewal_from_row(row)
    charge = replace(charge, renewal_id=renewal.id)
    email = await outbox.customer_email(unit.session, before.customer_id)
    job = Job(renewal.id, charge, key, 1, False, after, email, offline_ok=True)
    return renewal, job


async def retry_pending_charge(unit: Unit, state: SubscriptionState, renewal_id: int) -> tuple[RenewalInfo, Job]:
    """Turn a FAILED renewal into a new PENDING attempt (a retry asked for by hand, recorded before it is sent)."""
    previous = (
        await unit.session.execute(select(R.c.next_retry_date).where(R.c.id == renewal_id).with_for_update())
    ).scalar()
    row = (
        await unit.session.execute(
            update(R)
            .where(R.c.id == renewal_id, text("renewals.status = 'FAILED'"))
            .values(
                status=RenewalStatus.PENDING.value, attempts=R.c.attempts + 1, next_retry_date=None, updated_at=unit.now
            )
            .returning(R)
        )
    ).first()
    if row is None:
        raise SubscriptionError(f"renewal {renewal_id} is no longer FAILED", code="INVALID_STATUS", field=["renewalId"])
    email = await outbox.customer_email(unit.session, state.customer_id)
    job = charging.job_from_row(row, state, email)
    job.retry = True
    job.offline_ok = True
    job.manual_retry = True
    job.previous_retry = previous
    return renewal_from_row(row), job


async def apply_outcome(
    unit: Unit,
    before: SubscriptionState,
    outcome: Outcome,
    *,
    notes: Sequence[dict[str, Any]] = (),
    renewal: RenewalInfo | None = None,
    consent_reference: str | None = None,
) -> Result:
    """Save one operation's outcome with its history and outbox rows; record its charge, if any.

    A charge is only recorded here (a PENDING renewal); it is sent after the
    transaction commits (:func:`run_in_transaction`). A credit, and the
    what-if of a dry run, never reach a gateway and are settled at once.
    ``renewal`` is the renewal the outcome is about when it charges nothing
    itself, so notifications can point at it.
    """
    session, now = unit.session, unit.now
    after = outcome.state
    extra_notes: list[dict[str, Any]] = list(notes) + list(outcome.notes)
    job: Job | None = None
    credit_notes: list[int] = []
    credit_preview: tuple[Any, list[Any]] | None = None
    if outcome.charge is not None:
        charge = outcome.charge
        if charge.renewal_id is not None and not unit.common.dry_run:
            # A retry: the settlement decides what the subscription becomes.
            renewal, job = await retry_pending_charge(unit, before, charge.renewal_id)
            unit.pending.append(job)
            return Result(subscription=before, renewal=renewal)
        if unit.common.dry_run and not charge.amount.is_negative:
            unit.invoice_preview = document_of(charge)
        if charge.amount.is_negative:
            # A proration credit goes to the balance, which later invoices apply, documented by a credit
            # note against the invoice it gives back from: no renewal, nothing for a gateway.
            after = lifecycle.paid(
                after.evolve(credit=(after.credit or Money.zero(after.currency)) - charge.amount), charge, None
            )
            credited = await crediting.latest_creditable_invoice(session, before.id or 0, -charge.amount)
            if credited is not None and not unit.common.dry_run:
                note = await crediting.issue_credit_note(
                    session,
                    unit.services.settings,
                    credited,
                    -charge.amount,
                    now,
                    reason=unit.common.reason or "proration credit to the balance",
                    refunded=False,
                )
                credit_notes.append(note.id)
                extra_notes.append(credit_note_note(note))
            elif credited is None:
                # No paid invoice has room for it (its period was billed before invoices, or credited
                # already): the credit is recorded as a renewal of its own, as it always was.
                settled = payments.ChargeOutcome(collected_outside=True)
                key = f"credit_{before.id}_v{before.version}"
                renewal = await payments.record_renewal(session, after, charge, settled, key, now)
                extra_notes.append(charging.renewal_note(renewal.id, charge, renewal.status))
        elif unit.common.dry_run:
            settled = payments.ChargeOutcome(collected_outside=True)
            after = lifecycle.paid(after, charge, settled.gateway)
            renewal = await payments.record_renewal(session, after, charge, settled, f"whatif_{token_hex(8)}", now)
            extra_notes.append(charging.renewal_note(renewal.id, charge, renewal.status))
        else:
            renewal, job = await record_pending_charge(unit, before, after, outcome)
            extra_notes.append(charging.renewal_note(renewal.id, charge, RenewalStatus.PENDING))
    after = await _credit_cancelled_shipping(unit, outcome, after, credit_notes, extra_notes)
    saved = await unit.repo.save(before, after, now)
    if job is not None:
        job.state = saved
        unit.pending.append(job)
    refund_info = None
    if outcome.refund is not None:
        # Before the gateway is asked: a refund its invoice cannot credit any more is refused.
        await crediting.check_room(session, outcome.refund.renewal.id, outcome.refund.amount)
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
        refunded_invoice = await crediting.invoice_of_renewal(session, refunded.id)
        if refunded_invoice is not None:  # a dry run's too: it is rolled back, after it was read back
            note = await crediting.issue_credit_note(
                session,
                unit.services.settings,
                refunded_invoice,
                outcome.refund.amount,
                now,
                reason=unit.common.reason or "refund",
                refunded=True,
                transaction_id=refund_info["id"],
            )
            credit_notes.append(note.id)
            extra_notes.append(credit_note_note(note))
            if unit.common.dry_run:
                credit_preview = await crediting.read_back(session, note.id)
    for info, fields in outcome.renewal_updates:
        values = {k: (v.value if hasattr(v, "value") else v) for k, v in fields.items()}
        await session.execute(update(R).where(R.c.id == info.id).values(**values, updated_at=now))
        for k, v in values.items():
            old = getattr(info, k)
            extra_notes.append({"field": f"renewals.{info.id}.{k}", "before": getattr(old, "value", old), "after": v})
    changes = diff(before, saved) + extra_notes
    events = list(outcome.events)
    if outcome.refund is not None and refund_info is not None:
        events.append(
            Event(
                "RENEWAL_REFUNDED",
                {
                    "renewalId": outcome.refund.renewal.id,
                    "amount": outcome.refund.amount.amount_str,
                    "currency": outcome.refund.amount.currency,
                },
            )
        )
    if not any(e.kind.startswith("SUBSCRIPTION_") for e in events) and diff(before, saved):
        # Partners hear of every other change to the subscription itself.
        events.append(Event("SUBSCRIPTION_UPDATED", {"action": outcome.action}))
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
                consent_reference=consent_reference,
            )
        ],
    )
    await outbox.emit(
        session, unit.services.settings, saved, events, now, renewal_id=renewal.id if renewal is not None else None
    )
    if job is not None:
        # The charge's invoice, numbered before the gateway is called (a charge voided later keeps its
        # number); last in the transaction, so its series stays locked only until the commit.
        drafts = {job.renewal_id: unit.draft_invoice_id} if unit.draft_invoice_id is not None else None
        await issue_for_charges(
            session, unit.services.settings, [(saved.id or 0, job.renewal_id, job.charge)], now, drafts=drafts
        )
    if saved.is_final and not before.is_final:
        # Nothing more is billed: an open draft goes with the subscription.
        await drop_drafts(session, [saved.id or 0])
    # A cancellation, suspension or refund can change what its open invoices are.
    await follow_renewals(session, unit.services.settings, [saved.id or 0], now)
    result = Result(subscription=saved, renewal=renewal, refund=refund_info)
    if credit_notes:
        result.extra["creditNoteIds"] = credit_notes
    if credit_preview is not None:
        result.extra["creditNotePreview"] = credit_preview
    return result


async def _credit_cancelled_shipping(
    unit: Unit,
    outcome: Outcome,
    after: SubscriptionState,
    credit_notes: list[int],
    extra_notes: list[dict[str, Any]],
) -> SubscriptionState:
    """A paid renewal whose delivery is cancelled gets its shipping back, to the customer's balance.

    Not when the same change refunds that renewal: the refund gives back what was paid.
    """
    refunded = outcome.refund.renewal.id if outcome.refund is not None else None
    for info, fields in outcome.renewal_updates:
        if fields.get("fulfillment") is not FulfillmentStatus.CANCELLED or info.id == refunded:
            continue
        found = await crediting.shipping_to_credit(unit.session, info.id)
        if found is None:
            continue
        invoice_id, amount = found
        if not unit.common.dry_run:
            note = await crediting.issue_credit_note(
                unit.session,
                unit.services.settings,
                invoice_id,
                amount,
                unit.now,
                reason=unit.common.reason or "shipping of a cancelled delivery",
                refunded=False,
                kinds=frozenset({LineKind.SHIPPING}),
            )
            credit_notes.append(note.id)
            extra_notes.append(credit_note_note(note))
        after = after.evolve(credit=(after.credit or Money.zero(after.currency)) + amount)
    return after


def credit_note_note(note: crediting.Issued) -> dict[str, Any]:
    """The history line of a credit note issued by a change."""
    return {
        "field": f"creditNotes.{note.id}",
        "before": None,
        "after": {"number": note.number, "invoiceId": note.invoice_id, "total": note.total.amount_str},
    }


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
        *,
        consent_reference: str | None = None,
        settle_orphans: bool = False,
        declined_is_error: bool = True,
    ) -> Result:
        """Load under lock, check the version, run the operation, save it.

        ``settle_orphans`` first settles the charges a dead process left in
        flight (for operations after which nothing may be charged: cancel,
        suspend): what the gateway took is recorded, the rest is voided.
        """

        async def body(unit: Unit) -> Result:
            state = await unit.repo.get(subscription_id, for_update=True)
            self.check_version(state, common)
            if settle_orphans and not common.dry_run and await _has_pending(unit.session, subscription_id):
                unit.holds_locks = True
                locks = InFlight(await unit.session.connection())
                settled = await charging.settle_orphans(
                    unit.session,
                    self.services.gateways,
                    locks,
                    self.services.settings,
                    subscription_id,
                    unit.now,
                    unit.actor.name,
                )
                if settled:
                    state = await unit.repo.get(subscription_id, for_update=True)
            outcome = await build(unit, state, unit.ctx(state))
            result = await apply_outcome(unit, state, outcome, consent_reference=consent_reference)
            if outcome.replacement is not None and result.ok:
                result = await self._finish_replacement(unit, result, outcome.replacement)
            return result

        return await run_in_transaction(
            self.services, operation, actor, common, request, body, declined_is_error=declined_is_error
        )

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
                tax_rate=customer_tax_rate(customer, None, await unit.catalog.tax_rates()),
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
            await outbox.emit(
                unit.session,
                unit.services.settings,
                created,
                [Event("SUBSCRIPTION_CREATED", {"status": created.status.value})],
                unit.now,
            )
            if payment_method_id is not None:
                # Chosen for this subscription: it does not follow the customer's default.
                await unit.session.execute(update(S).where(S.c.id == created.id).values(payment_method_pinned=True))
            if outcome.charge is None:
                return Result(subscription=created)
            # The first period is billed as the INITIAL renewal, through the one path; a
            # decline leaves the subscription overdue, in dunning, as a declined renewal would.
            return await apply_outcome(unit, created, Outcome(created, "initial_charge", charge=outcome.charge))

        return await run_in_transaction(
            self.services, "createSubscription", actor, common, request, body, declined_is_error=False
        )

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

        return await self.mutate(
            "updateItem", subscription_id, actor, common, request, build, consent_reference=consent_reference
        )

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

        return await self.mutate(
            "addItem", subscription_id, actor, common, request, build, consent_reference=consent_reference
        )

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
        override_contract: bool = False,
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
                override_contract=override_contract,
            )

        return await self.mutate(
            "changeProduct", subscription_id, actor, common, request, build, consent_reference=consent_reference
        )

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
            outcome = updates.set_payment_method(state, ctx, payment_method=pm)
            # Pinned: a later change of the customer's default card does not move it.
            await unit.session.execute(update(S).where(S.c.id == subscription_id).values(payment_method_pinned=True))
            return outcome

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
        override_contract: bool = False,
    ) -> Result:
        async def build(unit: Unit, state: SubscriptionState, ctx: OpContext) -> Outcome:
            return updates.set_end_date(state, ctx, end_date=end_date, after=after, override_contract=override_contract)

        return await self.mutate(
            "setEndDate", subscription_id, actor, common, request, build, declined_is_error=not override_contract
        )

    async def set_metadata(
        self, actor: Actor, common: Common, request: Any, subscription_id: int, *, metadata: Mapping[str, Any] | None
    ) -> Result:
        async def build(unit: Unit, state: SubscriptionState, ctx: OpContext) -> Outcome:
            return updates.set_metadata(state, ctx, metadata=metadata)

        return await self.mutate("setMetadata", subscription_id, actor, common, request, build)

    async def update_invoicing(
        self, actor: Actor, common: Common, request: Any, subscription_id: int, *, changes: Mapping[str, Any]
    ) -> Result:
        async def build(unit: Unit, state: SubscriptionState, ctx: OpContext) -> Outcome:
            return updates.update_invoicing(state, ctx, **changes)

        return await self.mutate("updateInvoicing", subscription_id, actor, common, request, build)

    # -- lifecycle --------------------------------------------------------

    async def suspend(self, actor: Actor, common: Common, request: Any, subscription_id: int) -> Result:
        async def build(unit: Unit, state: SubscriptionState, ctx: OpContext) -> Outcome:
            return lifecycle.suspend(state, ctx)

        return await self.mutate(
            "suspendSubscription", subscription_id, actor, common, request, build, settle_orphans=True
        )

    async def activate(self, actor: Actor, common: Common, request: Any, subscription_id: int) -> Result:
        """Resume renewals; a next renewal date that passed while suspended renews at once (seed 003).

        That renewal is charged through the same path as any other charge,
        after the activation commits.
        """

        async def body(unit: Unit) -> Result:
            state = await unit.repo.get(subscription_id, for_update=True)
            self.check_version(state, common)
            result = await apply_outcome(unit, state, lifecycle.activate(state, unit.ctx(state)))
            active = result.subscription
            if active is not None and active.overdue_count > 0:
                # Renewals left unpaid when it was suspended are owed: retried at once, with the card it has now.
                unpaid = await unit.session.execute(
                    select(R.c.id)
                    .where(R.c.subscription_id == subscription_id, text("renewals.status = 'FAILED'"))
                    .order_by(R.c.cycle, R.c.id)
                )
                for row in unpaid:
                    _, job = await retry_pending_charge(unit, active, row.id)
                    unit.pending.append(job)
            if active is None or not active.renew_due:
                return result
            from rebill.services.phases import apply_due_phases

            active = await apply_due_phases(unit, active)
            due = cycle.begin_cycle(active, unit.ctx(active))
            if due is None:
                return Result(subscription=active)
            return await apply_outcome(unit, active, due)

        return await run_in_transaction(self.services, "activateSubscription", actor, common, request, body)

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
        override_contract: bool = False,
    ) -> Result:
        """Cancel now or at period end; under contract see ``lifecycle.cancel``.

        An override's early termination fee is charged through the one charge path, on an invoice of
        its own (``Result.extra["feeRenewalId"]``); a declined fee is no error of the cancellation.
        """
        fee: list[bool] = []

        async def build(unit: Unit, state: SubscriptionState, ctx: OpContext) -> Outcome:
            last = await last_period_renewal(unit.session, subscription_id)
            outcome = lifecycle.cancel(
                state,
                ctx,
                at_period_end=at_period_end,
                refund_last_renewal=refund_last_renewal,
                cancel_fulfillment=cancel_fulfillment,
                last_renewal=last,
                override_contract=override_contract,
            )
            fee[:] = [outcome.charge is not None]
            return outcome

        result = await self.mutate(
            "cancelSubscription",
            subscription_id,
            actor,
            common,
            request,
            build,
            settle_orphans=not at_period_end,
            declined_is_error=not override_contract,
        )
        return with_fee(result, fee)

    async def resume(self, actor: Actor, common: Common, request: Any, subscription_id: int) -> Result:
        async def build(unit: Unit, state: SubscriptionState, ctx: OpContext) -> Outcome:
            return lifecycle.resume(state, ctx)

        return await self.mutate("resumeSubscription", subscription_id, actor, common, request, build)

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
            unpaid = await unpaid_period_renewal(unit.session, subscription_id)
            if unpaid is not None:
                # Settle the declined period rather than open another (DOMAIN.md "Charges that fail").
                if unit_price is not None or product_id is not None:
                    raise SubscriptionError(
                        f"renewal {unpaid.id} (cycle {unpaid.cycle}) is unpaid: renew now without a new price or "
                        "product to settle it first",
                        code="UNPAID_RENEWAL",
                        field=["unitPrice" if unit_price is not None else "productId"],
                    )
                return lifecycle.retry_renewal(state, ctx, renewal=unpaid)
            product = await unit.catalog.product(product_id) if product_id is not None else None
            return lifecycle.renew_now(
                state, ctx, mode=mode, unit_price=unit_price, product=product, consent_reference=consent_reference
            )

        return await self.mutate(
            "renewNow", subscription_id, actor, common, request, build, consent_reference=consent_reference
        )

    async def force_bill(
        self, actor: Actor, common: Common, request: Any, subscription_id: int, *, allow_repeat: bool = False
    ) -> Result:
        async def build(unit: Unit, state: SubscriptionState, ctx: OpContext) -> Outcome:
            lifecycle.ensure_force_billable(state)
            unpaid = await unpaid_period_renewal(unit.session, subscription_id)
            if unpaid is not None:
                # Settle the declined period rather than open another (DOMAIN.md "Charges that fail").
                return lifecycle.retry_renewal(state, ctx, renewal=unpaid)
            already = await forced_today(unit.session, subscription_id, ctx.today)
            if already is not None and not allow_repeat:
                raise SubscriptionError(
                    f"renewal {already.id} already force-billed a period starting {ctx.today} "
                    f"({already.status.value}): pass allowRepeat to bill another one",
                    code="ALREADY_BILLED",
                    field=["allowRepeat"],
                    details={"renewalId": already.id},
                )
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


def with_fee(result: Result, charged: Sequence[bool]) -> Result:
    """A result whose renewal is an early termination fee's: its id kept for the payload's invoice."""
    if any(charged) and result.renewal is not None and result.renewal.adjustment:
        result.extra["feeRenewalId"] = result.renewal.id
    return result


async def _has_pending(session: AsyncSession, subscription_id: int) -> bool:
    found = await session.execute(
        select(R.c.id).where(R.c.subscription_id == subscription_id, text("renewals.status = 'PENDING'")).limit(1)
    )
    return found.first() is not None


async def unpaid_period_renewal(session: AsyncSession, subscription_id: int) -> RenewalInfo | None:
    """The latest declined renewal of a billing period, still unpaid: a force bill or renew now settles it."""
    row = (
        await session.execute(
            select(R)
            .where(
                R.c.subscription_id == subscription_id,
                R.c.adjustment.is_(False),
                text("renewals.status = 'FAILED'"),
            )
            .order_by(R.c.cycle.desc(), R.c.id.desc())
            .limit(1)
            .with_for_update()
        )
    ).first()
    return renewal_from_row(row) if row is not None else None


async def forced_today(session: AsyncSession, subscription_id: int, today: date) -> RenewalInfo | None:
    """A force bill already made (or being made) for a period that starts today."""
    row = (
        await session.execute(
            select(R)
            .where(
                R.c.subscription_id == subscription_id,
                R.c.kind == RenewalKind.FORCED.value,
                R.c.period_start == today,
                R.c.status.in_(["PENDING", "PAID", "PARTIALLY_REFUNDED"]),
            )
            .order_by(R.c.id.desc())
            .limit(1)
        )
    ).first()
    return renewal_from_row(row) if row is not None else None


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
