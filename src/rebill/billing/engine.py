"""The renewal engine: the worker's loop over everything due, exactly once.

Each batch goes through three steps, and no database transaction stays open
while a gateway is called:

1. **Claim and record** (one short transaction). Due subscriptions are
   claimed with ``SELECT … FOR UPDATE SKIP LOCKED``, so concurrent workers
   take disjoint rows. Due phases apply first, then the pure rules of
   :mod:`rebill.domain.cycle` decide (a ``FUTURE`` subscription whose start
   date has come starts); the ``PENDING`` renewal is inserted with its
   deterministic charge key (the partial unique index on
   ``(subscription_id, cycle)`` makes a second renewal of a cycle
   impossible) and the subscription advances (version, history, outbox)
   before the commit.
2. **Charge** and 3. **Settle** are :mod:`rebill.services.charging`, the
   path every charge takes (mutations too): the subscription's status is
   checked again right before the gateway is called, and the answer is
   recorded in one short transaction with the payment or dunning rules.

A worker that dies between 1 and 3 leaves ``PENDING`` renewals. While a
worker works on a renewal it holds a session-level advisory lock on it
(taken before step 1 commits), so another process can tell an orphan (lock
free) from a renewal in flight (lock held) without any lease or clock.
Recovery asks the gateway what it did with an orphan's key and charges only
what it never saw; an orphan whose subscription can no longer be charged is
settled by that answer or voided: no cycle is billed twice and none is lost.

Throughput comes from doing each step for a whole batch at once: one claim
query, one query per related table, and one ``INSERT … SELECT FROM unnest``
or ``UPDATE … FROM unnest`` per table written.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Date, bindparam, func, select, text, union
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from rebill.db import tables as t
from rebill.db.outage import Outage, is_database_outage, is_outage_now, wait_out
from rebill.db.repositories import Catalog, SubscriptionRepository, any_of
from rebill.db.sets import insert_rows
from rebill.domain import contract as contract_rules
from rebill.domain import cycle
from rebill.domain.cadence import local_today
from rebill.domain.errors import RebillError
from rebill.domain.invoice import terms_of
from rebill.domain.outcome import OpContext, Outcome
from rebill.domain.renewal import Charge, RenewalKind, RenewalStatus
from rebill.domain.status import SubscriptionStatus
from rebill.domain.subscription import SubscriptionState
from rebill.invoicing.drafts import create_drafts, drafted_subscriptions, due_drafts
from rebill.invoicing.issue import Facts, issue_for_charges
from rebill.services import charging
from rebill.services.charging import LOCK_CLASS, InFlight, Job, Settled, Writer, renewal_note, save_states
from rebill.services.outbox import notification_payload
from rebill.services.phases import apply_due_phases
from rebill.services.runtime import ENGINE, Actor, Common, Services

log = logging.getLogger(__name__)

S = t.table_of(t.Subscription)
R = t.table_of(t.Renewal)
OUTBOX = t.table_of(t.OutboxMessage)
CUSTOMERS = t.table_of(t.Customer)

__all__ = ["LOCK_CLASS", "EngineReport", "RenewalEngine"]

# The latest and earliest local dates anywhere on earth, for index-friendly bounds.
_AHEAD = timedelta(hours=14)
_BEHIND = timedelta(hours=12)


@dataclass
class EngineReport:
    """What one run did."""

    renewed: int = 0
    failed: int = 0
    retried: int = 0
    retries_paid: int = 0
    recovered: int = 0
    expired: int = 0
    cancelled: int = 0
    suspended: int = 0
    awaiting_reinstate: int = 0
    voided: int = 0
    drafted: int = 0
    finalized: int = 0
    started: int = 0
    reminders: int = 0
    phases: int = 0
    skipped: int = 0
    # Contract terms that ended (renewed, ended or cancelled) and scheduled cancellations that took effect.
    contract_terms: int = 0
    elapsed: float = 0.0

    @property
    def renewals(self) -> int:
        """Renewals created and charged (paid or declined)."""
        return self.renewed + self.failed

    @property
    def busy(self) -> bool:
        return any(getattr(self, f.name) for f in fields(self) if f.name != "elapsed")

    def summary(self) -> str:
        text = (
            f"renewed {self.renewed}, failed {self.failed}, retried {self.retried} "
            f"({self.retries_paid} paid), recovered {self.recovered}, expired {self.expired}, "
            f"cancelled {self.cancelled}, suspended {self.suspended}, "
            f"awaiting reinstate {self.awaiting_reinstate}, reminders {self.reminders}"
        )
        if self.started:
            text += f", started {self.started}"
        if self.phases:
            text += f", phases applied to {self.phases}"
        if self.drafted or self.finalized:
            text += f", draft invoices created {self.drafted}, finalized {self.finalized}"
        if self.voided:
            text += f", voided {self.voided} (their subscription stopped before the charge was sent)"
        if self.skipped:
            text += f", skipped after an error {self.skipped} (see the log)"
        return text


# -- the engine ----------------------------------------------------------------


#: Drafts finalized before a batch at most (each through the one charge path).
DRAFTS_AT_ONCE = 100


class RenewalEngine:
    """Renews, retries and reminds, as of ``services.clock.now()``."""

    def __init__(self, services: Services, *, batch_size: int | None = None, actor: Actor = ENGINE) -> None:
        self.services = services
        self.settings = services.settings
        self.batch_size = max(1, batch_size or services.settings.worker_batch_size)
        self.actor = actor
        self._locks: InFlight | None = None
        self._skip: set[int] = set()
        self._contract_skip: set[int] = set()
        # Whether a draft may be due: at a pass's start, and after a batch drafted a renewal or left a
        # subscription for its open draft (the drafts' query is then run before the next batch only).
        self._drafts_due = True

    # -- entry points ----------------------------------------------------------

    async def run_once(self, limit: int | None = None, *, stop: asyncio.Event | None = None) -> EngineReport:
        """Process everything due as of now (at most ``limit`` renewals and retries), then return."""
        started = time.perf_counter()
        now = self.services.clock.now()
        report = EngineReport()
        self._skip = set()
        self._contract_skip = set()
        self._drafts_due = True
        async with self._advisory():
            await self._recover(now, report)
            budget = limit
            while stop is None or not stop.is_set():
                size = self.batch_size if budget is None else min(self.batch_size, budget)
                if size <= 0:
                    break
                # Terms that ended and cancellations whose date came, before anything of theirs is billed.
                await self._contract_terms(now, report)
                # A draft whose next period is due goes first: at most one draft per subscription.
                if self._drafts_due:
                    await self._finalize_drafts(now, report)
                done = await self._renew_batch(now, report, size)
                if budget is not None:
                    budget -= done
                    size = min(size, budget)
                retried = await self._retry_batch(now, report, size) if size > 0 else 0
                if budget is not None:
                    budget -= retried
                if done + retried == 0:
                    break
            # After the renewals, which applied the phases of what they billed first.
            await self._apply_dated_phases(now, report, stop)
            # Renewals orphaned by a worker that died while this one ran.
            await self._recover(now, report)
            if stop is None or not stop.is_set():
                report.reminders += await self._remind(now)
        report.elapsed = time.perf_counter() - started
        return report

    async def run_forever(
        self,
        poll_seconds: float | None = None,
        *,
        stop: asyncio.Event | None = None,
        after_each: Callable[[EngineReport], Awaitable[None]] | None = None,
        outage: Outage | None = None,
    ) -> None:
        """Run :meth:`run_once` every ``poll_seconds`` until ``stop`` is set.

        The loop outlives the database: a pass that fails because the server
        went away is abandoned, and the loop waits (backing off) until the
        server answers again, saying so once in ``outage``'s log.
        """
        stop = stop or asyncio.Event()
        poll = self.settings.worker_poll_seconds if poll_seconds is None else poll_seconds
        outage = outage or Outage(log)
        while not stop.is_set():
            try:
                report = await self.run_once(stop=stop)
                if after_each is not None:
                    await after_each(report)
            except Exception as exc:
                if not is_database_outage(exc):
                    raise
                # What was in flight stays PENDING, its locks gone with their connection: the
                # next pass starts with recovery, as a restarted worker would, at once.
                if await wait_out(self.services.engine, exc, outage, stop):
                    continue
            else:
                outage.back()
            if stop.is_set():
                break
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=max(poll, 0.0))

    # -- advisory locks ----------------------------------------------------------

    @asynccontextmanager
    async def _advisory(self) -> AsyncIterator[None]:
        if self._locks is not None:  # nested call (renew_subscription inside a run)
            yield
            return
        async with charging.in_flight(self.services.engine) as locks:
            self._locks = locks
            try:
                yield
            finally:
                self._locks = None

    async def _lock(self, renewal_ids: Sequence[int]) -> set[int]:
        """Take the in-flight locks of renewals; the ids whose lock was free."""
        assert self._locks is not None
        return await self._locks.take(renewal_ids)

    async def _unlock_all(self) -> None:
        assert self._locks is not None
        await self._locks.release_all()

    # -- helpers -----------------------------------------------------------------

    def _unit(self, session: AsyncSession, repo: SubscriptionRepository, now: datetime) -> Any:
        from rebill.services.subscriptions import Unit

        return Unit(session, repo, repo.catalog, self.services, now, self.actor, Common())

    # -- step 1: claim and record ------------------------------------------------

    async def _renew_batch(
        self, now: datetime, report: EngineReport, size: int, *, only: Sequence[int] | None = None
    ) -> int:
        """Claim up to ``size`` due subscriptions and take each one cycle further; how many were claimed."""
        try:
            claimed, jobs = await self._begin(now, report, size, only)
        except (DBAPIError, RebillError) as exc:
            await self._unlock_all()
            if await is_outage_now(self.services.engine, exc):
                raise  # not this batch's fault: the pass stops until the database is back
            if only is not None and len(only) == 1:
                log.error("subscription %s could not be renewed: %s", only[0], exc)
                self._skip.update(only)
                report.skipped += 1
                return 0
            # Find the one that fails: the same batch, a subscription at a time.
            log.warning("a renewal batch failed (%s); retrying it one subscription at a time", exc)
            done = 0
            for sid in await self._due_ids(now, size):
                done += await self._renew_batch(now, report, 1, only=[sid])
            return done
        if jobs:
            await self._charge_and_settle(jobs, now, report)
        return claimed

    async def _due_ids(self, now: datetime, size: int) -> list[int]:
        async with self.services.sessions() as session:
            rows = await session.execute(self._due_query(now, size, None, lock=False))
            return [row.id for row in rows]

    def _due_query(self, now: datetime, size: int, only: Sequence[int] | None, *, lock: bool = True) -> Any:
        stmt = (
            select(
                S,
                CUSTOMERS.c.email.label("customer_email"),
                # What the invoice copies of the customer (``issue_for_charges``).
                CUSTOMERS.c.name.label("customer_name"),
                CUSTOMERS.c.billing_address.label("customer_billing_address"),
                CUSTOMERS.c.tax_id.label("customer_tax_id"),
            )
            .join(CUSTOMERS, CUSTOMERS.c.id == S.c.customer_id)
            .where(
                # Literal statuses, so the planner can use the partial index of due rows.
                text("subscriptions.status IN ('FUTURE', 'TRIAL', 'ACTIVE', 'OVERDUE')"),
                S.c.next_renewal_date <= bindparam("latest", (now + _AHEAD).date(), type_=Date),
                S.c.next_renewal_date <= _local_today("subscriptions", now),
                # One cycle of a subscription in flight at a time: its cycles are charged in order.
                text(
                    "NOT EXISTS (SELECT 1 FROM renewals p "
                    "WHERE p.subscription_id = subscriptions.id AND p.status = 'PENDING')"
                ),
            )
            .order_by(S.c.next_renewal_date, S.c.id)
            .limit(size)
        )
        if self._skip:
            stmt = stmt.where(S.c.id.not_in(sorted(self._skip)))
        if only is not None:
            stmt = stmt.where(S.c.id.in_(list(only)))
        if lock:
            stmt = stmt.with_for_update(of=S, skip_locked=True)
        return stmt

    async def _begin(
        self, now: datetime, report: EngineReport, size: int, only: Sequence[int] | None
    ) -> tuple[int, list[Job]]:
        async with self.services.sessions() as session, session.begin():
            rows = list(await session.execute(self._due_query(now, size, only)))
            if not rows:
                return 0, []
            # Each claimed row carries what the renewal's messages and invoice need of its customer.
            claimed = {row.id: row for row in rows}
            repo = SubscriptionRepository(session, Catalog(session))
            states = await repo.states_from_rows(rows)
            with_phases = await self._due_phases(session, [s.id for s in states if s.id is not None], now)
            open_drafts = await drafted_subscriptions(session, [s.id for s in states if s.id is not None])
            contexts: dict[str, OpContext] = {}
            writer = Writer(self.settings, self.actor.name, now)
            charged: list[tuple[SubscriptionState, Outcome]] = []
            immediate: list[tuple[SubscriptionState, Outcome]] = []
            drafted: list[tuple[SubscriptionState, Outcome, Charge]] = []
            for state in states:
                assert state.id is not None
                if state.id in with_phases:
                    phased = await self._apply_phases(session, repo, state, now)
                    report.phases += int(phased.version != state.version)
                    state = phased
                outcome = cycle.begin_cycle(state, charging.context_for(now, state, contexts))
                if outcome is None:
                    # Claimed but not due by the rules: never claim it again in this pass.
                    if state.id is not None:
                        self._skip.add(state.id)
                    continue
                charge = outcome.charge
                if (
                    charge is not None
                    and charge.kind is RenewalKind.SCHEDULED
                    and terms_of(state.invoicing).draft_invoices
                    and state.id in open_drafts
                ):
                    # Its previous draft is finalized first (the next batch starts with it): claimed, untouched.
                    self._drafts_due = True
                    continue
                if (
                    charge is not None
                    and charge.kind is RenewalKind.SCHEDULED
                    and terms_of(state.invoicing).draft_invoices
                ):
                    # Reviewed before it is charged: a draft now, the renewal when it is finalized. The
                    # schedule moves on as for any renewal; the balance is applied at finalization.
                    kept = outcome.state.evolve(credit=state.credit)
                    drafted.append((state, Outcome(kept, "renewal_drafted"), charge))
                    self._drafts_due = True
                    continue
                (charged if charge is not None else immediate).append((state, outcome))

            renewal_rows = []
            for state, outcome in charged:
                charge = outcome.charge
                assert charge is not None and state.id is not None
                pm = outcome.state.payment_method
                renewal_rows.append(
                    {
                        "subscription_id": state.id,
                        "cycle": charge.cycle,
                        "kind": charge.kind.value,
                        "adjustment": False,
                        "status": RenewalStatus.PENDING.value,
                        "period_start": charge.period_start,
                        "period_end": charge.period_end,
                        "amount_minor": charge.amount.minor,
                        "currency": charge.amount.currency,
                        "attempts": 1,
                        "fulfillment": charge.fulfillment.value,
                        "payment_method_id": pm.id if pm else None,
                        "payment_kind": pm.kind.value if pm else None,
                        "idempotency_key": charging.renewal_key(state.id, charge.cycle),
                        "created_at": now,
                        "updated_at": now,
                    }
                )
            inserted = await insert_rows(
                session, R, renewal_rows, returning=("id", "subscription_id", "idempotency_key")
            )
            renewal_of = {row.subscription_id: (row.id, row.idempotency_key) for row in inserted}
            # In flight from now on: this lock tells other workers these are not orphans.
            await self._lock([row.id for row in inserted])

            draft_ids = await create_drafts(
                session,
                [
                    (before.id or 0, before.customer_id, charge, terms_of(before.invoicing).draft_days)
                    for before, _, charge in drafted
                ],
                now,
                local_today(now, self.settings.seller_time_zone),
            )
            pairs = charged + immediate + [(before, outcome) for before, outcome, _ in drafted]
            drafts_of = {before.id: charge for before, _, charge in drafted}
            saved = await save_states(session, repo, [(before, o.state) for before, o in pairs], now)
            jobs: list[Job] = []
            for (before, outcome), after in zip(pairs, saved, strict=True):
                assert after.id is not None
                email = claimed[after.id].customer_email
                if after.id in drafts_of:
                    drafted_charge = drafts_of[after.id]
                    note = {
                        "field": f"invoices.{draft_ids[after.id]}",
                        "before": None,
                        "after": {
                            "status": "DRAFT",
                            "cycle": drafted_charge.cycle,
                            "periodStart": drafted_charge.period_start.isoformat(),
                            "periodEnd": drafted_charge.period_end.isoformat(),
                        },
                    }
                    writer.record(before, outcome, after, email, notes=[note])
                    report.drafted += 1
                    continue
                if outcome.charge is None:
                    writer.record(before, outcome, after, email)
                    if outcome.action == "started":
                        report.started += 1
                    elif after.status is SubscriptionStatus.EXPIRED:
                        report.expired += 1
                    elif after.status is SubscriptionStatus.CANCELLED:
                        report.cancelled += 1
                    else:
                        report.awaiting_reinstate += 1
                    continue
                renewal_id, key = renewal_of[after.id]
                note = renewal_note(renewal_id, outcome.charge, RenewalStatus.PENDING)
                writer.record(before, outcome, after, email, notes=[note], renewal_id=renewal_id)
                charge = replace(outcome.charge, renewal_id=renewal_id)
                # A first period (a FUTURE start) is billed as creation bills it: offline is collected outside.
                offline_ok = charge.kind is not RenewalKind.SCHEDULED
                jobs.append(Job(renewal_id, charge, key, 1, False, after, email, offline_ok=offline_ok))
            await writer.flush(session)
            # Last, so the invoice series stays locked only until this commit.
            # The invoicing settings as saved (a phase may have changed them), the customer as claimed.
            facts: dict[int, Facts] = {}
            for job in jobs:
                row = claimed[job.subscription_id]
                facts[job.subscription_id] = Facts(
                    job.state.customer_id,
                    job.state.invoicing,
                    row.customer_name,
                    row.customer_email,
                    row.customer_billing_address,
                    row.customer_tax_id,
                )
            await issue_for_charges(
                session,
                self.settings,
                [(job.subscription_id, job.renewal_id, job.charge) for job in jobs],
                now,
                facts=facts,
            )
        return len(rows), jobs

    async def _finalize_drafts(self, now: datetime, report: EngineReport) -> None:
        """Finalize the drafts whose draft days have passed (or whose next period is due), each through the
        one charge path, as staff finalizing it would."""
        from rebill.services import invoices

        async with self.services.sessions() as session:
            due = await due_drafts(session, local_today(now, self.settings.seller_time_zone), DRAFTS_AT_ONCE)
        # A full page: more may be due before the next batch.
        self._drafts_due = len(due) >= DRAFTS_AT_ONCE
        for invoice_id, subscription_id in due:
            if subscription_id in self._skip:
                continue
            result = await invoices.finalize_invoice(self.services, self.actor, Common(), invoice_id, None)
            if result.ok or all(e.code == "PAYMENT_DECLINED" for e in result.errors):
                report.finalized += 1  # a declined charge is in dunning like any renewal
            else:
                # Left as a draft for staff: its subscription waits until then, never spins this pass.
                self._skip.add(subscription_id)
                log.warning("draft invoice %s was not finalized: %s", invoice_id, result.errors[0].message)

    async def _due_phases(self, session: AsyncSession, ids: Sequence[int], now: datetime) -> set[int]:
        if not ids:
            return set()
        phases = t.table_of(t.Phase)
        rows = await session.execute(
            select(phases.c.subscription_id)
            .where(
                phases.c.subscription_id.in_(list(ids)),
                phases.c.status == "PENDING",
                phases.c.effective_date <= (now + _AHEAD).date(),
            )
            .distinct()
        )
        return {row.subscription_id for row in rows}

    async def _apply_phases(
        self, session: AsyncSession, repo: SubscriptionRepository, state: SubscriptionState, now: datetime
    ) -> SubscriptionState:
        """Due phases apply before the cycle is billed (seed 001); they save and write their history."""
        return await apply_due_phases(self._unit(session, repo, now), state)

    async def _apply_dated_phases(self, now: datetime, report: EngineReport, stop: asyncio.Event | None) -> None:
        """Apply every phase whose date has come, whether or not its subscription renews today.

        A phase applies on its effective date in the subscription's time zone,
        without proration: it changes what later renewals bill. This pass runs
        after the renewals, which applied the phases dated up to each cycle
        they billed; suspended and other unbilled subscriptions get theirs
        here, while a ``FUTURE`` one gets them when the renewal pass starts it.

        Subscriptions are claimed a batch per transaction with ``FOR UPDATE
        SKIP LOCKED``, so concurrent workers take disjoint ones, and
        :func:`~rebill.services.phases.apply_due_phases` reads each phase
        ``PENDING`` under lock: each is applied once, with its history and
        events in the same transaction. A worker killed mid-batch commits
        nothing of it; the next pass applies it.
        """
        after = 0
        while stop is None or not stop.is_set():
            # One scan of the partial index of pending phases serves many batches.
            async with self.services.sessions() as session:
                page = list(
                    await session.execute(
                        _DATED_PHASE_CANDIDATES,
                        {"latest": (now + _AHEAD).date(), "after": after, "size": self.batch_size * 20},
                    )
                )
            ids = [row.subscription_id for row in page]
            for start in range(0, len(ids), self.batch_size):
                if stop is not None and stop.is_set():
                    return
                report.phases += await self._dated_phase_batch(now, report, ids[start : start + self.batch_size])
            if len(page) < self.batch_size * 20:
                return
            after = page[-1].subscription_id

    async def _dated_phase_batch(self, now: datetime, report: EngineReport, ids: Sequence[int]) -> int:
        """Apply the due phases of these subscriptions in one transaction; how many subscriptions changed."""
        try:
            async with self.services.sessions() as session, session.begin():
                rows = list(
                    await session.execute(
                        select(S)
                        .where(
                            any_of(S.c.id, ids),
                            # A FUTURE subscription gets its phases when it starts, before its first charge.
                            text("subscriptions.status <> 'FUTURE'"),
                            text(
                                "EXISTS (SELECT 1 FROM phases p WHERE p.subscription_id = subscriptions.id "
                                "AND p.status = 'PENDING' AND p.effective_date <= "
                                "CAST(timezone(subscriptions.time_zone, CAST(:now AS timestamptz)) AS date))"
                            ).bindparams(now=now),
                        )
                        .order_by(S.c.id)
                        .with_for_update(of=S, skip_locked=True)
                    )
                )
                if not rows:
                    return 0
                repo = SubscriptionRepository(session, Catalog(session))
                changed = 0
                for state in await repo.states_from_rows(rows):
                    phased = await self._apply_phases(session, repo, state, now)
                    changed += int(phased.version != state.version)
                return changed
        except (DBAPIError, RebillError) as exc:
            if await is_outage_now(self.services.engine, exc):
                raise  # not this batch's fault: the pass stops until the database is back
            if len(ids) == 1:
                # Each subscription is visited once a pass: the next pass tries it again.
                log.error("the phases of subscription %s could not be applied: %s", ids[0], exc)
                report.skipped += 1
                return 0
            # Find the one that fails: the same batch, a subscription at a time.
            log.warning("a batch of phases failed (%s); retrying it one subscription at a time", exc)
            return sum([await self._dated_phase_batch(now, report, [sid]) for sid in ids])

    # -- retries -------------------------------------------------------------------

    async def _retry_batch(self, now: datetime, report: EngineReport, size: int) -> int:
        """Claim up to ``size`` declined renewals whose retry is due, and charge them again."""
        stmt = (
            select(R)
            .join(S, S.c.id == R.c.subscription_id)
            .where(
                text("renewals.status = 'FAILED'"),
                # In dunning; or an invoice paid by transfer past its due date, whose reminders start dunning.
                text(
                    "(subscriptions.status = 'OVERDUE' "
                    "OR (subscriptions.status = 'ACTIVE' AND renewals.payment_kind = 'OFFLINE'))"
                ),
                R.c.next_retry_date <= bindparam("latest", (now + _AHEAD).date(), type_=Date),
                R.c.next_retry_date <= _local_today("subscriptions", now),
                text(
                    "NOT EXISTS (SELECT 1 FROM renewals p "
                    "WHERE p.subscription_id = renewals.subscription_id AND p.status = 'PENDING')"
                ),
            )
            .order_by(R.c.next_retry_date, R.c.id)
            .limit(size)
            .with_for_update(of=R, skip_locked=True)
        )
        if self._skip:
            stmt = stmt.where(R.c.subscription_id.not_in(sorted(self._skip)))
        async with self.services.sessions() as session, session.begin():
            rows = list(await session.execute(stmt))
            if not rows:
                return 0
            ids = [row.id for row in rows]
            await session.execute(
                R.update()
                .where(R.c.id.in_(ids))
                .values(
                    status=RenewalStatus.PENDING.value,
                    attempts=R.c.attempts + 1,
                    next_retry_date=None,
                    updated_at=now,
                )
            )
            await self._lock(ids)
            jobs = await self._jobs_for(session, rows, attempts_offset=1)
        for job in jobs:
            job.retry = True
        await self._charge_and_settle(jobs, now, report)
        return len(rows)

    async def _jobs_for(self, session: AsyncSession, rows: Sequence[Any], *, attempts_offset: int) -> list[Job]:
        return await charging.jobs_for_rows(session, rows, attempts_offset=attempts_offset)

    # -- recovery ------------------------------------------------------------------

    async def _recover(self, now: datetime, report: EngineReport) -> None:
        """Settle renewals left PENDING by a process that died (their in-flight lock is free).

        The gateway is asked first what it did with each renewal's key; a
        renewal whose subscription can no longer be charged (cancelled,
        suspended, expired meanwhile) is only looked up, never charged.
        """
        after = 0
        while True:
            async with self.services.sessions() as session, session.begin():
                rows = list(
                    await session.execute(
                        select(R)
                        .where(text("renewals.status = 'PENDING'"), R.c.id > after)
                        .order_by(R.c.id)
                        .limit(self.batch_size)
                        .with_for_update(skip_locked=True)
                    )
                )
                if not rows:
                    return
                after = rows[-1].id
                orphans = await self._lock([row.id for row in rows])
                rows = [row for row in rows if row.id in orphans]
                jobs = await self._jobs_for(session, rows, attempts_offset=0) if rows else []
            for job in jobs:
                job.recovered = True
            if jobs:
                log.warning("recovering %d renewals left pending by a stopped process", len(jobs))
                await self._charge_and_settle(jobs, now, report)
            else:
                await self._unlock_all()

    # -- steps 2 and 3: charge and settle ----------------------------------------------

    async def _charge_and_settle(self, jobs: list[Job], now: datetime, report: EngineReport) -> None:
        try:
            # Under the in-flight lock, right before the gateway: is each subscription still chargeable?
            async with self.services.sessions() as session:
                await charging.recheck(session, jobs)
            await charging.charge_jobs(self.services.gateways, jobs)
            self._count(await self._settle(jobs, now), report)
        except (DBAPIError, RebillError, OSError) as exc:
            # The renewals stay PENDING; the next run recovers them with the same keys.
            if await is_outage_now(self.services.engine, exc):
                raise
            log.error("settling %d renewals failed, they will be recovered: %s", len(jobs), exc)
            report.skipped += len(jobs)
            self._skip.update(job.subscription_id for job in jobs)
        finally:
            # Settled, or left PENDING for recovery: either way no longer in flight here.
            await self._unlock_all()

    async def _settle(self, jobs: list[Job], now: datetime) -> list[Settled]:
        async with self.services.sessions() as session, session.begin():
            return await charging.settle_jobs(session, self.settings, jobs, now, self.actor.name)

    @staticmethod
    def _count(settled: Sequence[Settled], report: EngineReport) -> None:
        for item in settled:
            job = item.job
            if job.recovered:
                report.recovered += 1
            if item.status is RenewalStatus.VOID:
                report.voided += 1
                continue
            if job.retry:
                report.retried += 1
            if item.status is RenewalStatus.PAID:
                if job.retry:
                    report.retries_paid += 1
                else:
                    report.renewed += 1
                continue
            if not job.retry:
                report.failed += 1
            if item.final:
                if item.state.status is SubscriptionStatus.CANCELLED:
                    report.cancelled += 1
                else:
                    report.suspended += 1

    # -- contract terms ----------------------------------------------------------------

    async def _contract_terms(self, now: datetime, report: EngineReport) -> None:
        """Contracts whose term ended (``RENEW`` starts the next term, ``EVERGREEN`` ends the contract,
        ``CANCEL`` cancels) and scheduled cancellations whose date came (DOMAIN.md "Contract terms").

        A batch of subscriptions per transaction, claimed ``FOR UPDATE SKIP LOCKED`` so concurrent
        workers take disjoint rows; each change is decided again on the state read under the lock and
        saved through the one path (``apply_outcome``: version, history, outbox), so it happens once.
        """
        from rebill.services.subscriptions import apply_outcome

        while True:
            async with self.services.sessions() as session, session.begin():
                rows = list(await session.execute(self._contract_due_query(now)))
                if not rows:
                    return
                repo = SubscriptionRepository(session, Catalog(session))
                unit = self._unit(session, repo, now)
                for state in await repo.states_from_rows(rows):
                    assert state.id is not None
                    ctx = unit.ctx(state)
                    outcome = contract_rules.scheduled_cancellation(state, ctx) or contract_rules.term_ended(state, ctx)
                    if outcome is None:
                        # Not due in its own time zone yet: never claimed again in this pass.
                        self._contract_skip.add(state.id)
                        continue
                    await apply_outcome(unit, state, outcome)
                    report.contract_terms += 1
                    if outcome.state.status is SubscriptionStatus.CANCELLED:
                        report.cancelled += 1

    def _contract_due_query(self, now: datetime) -> Any:
        contracts = t.table_of(t.SubscriptionContract)
        latest = bindparam("latest", (now + _AHEAD).date(), type_=Date)
        # Each half from its own index (an OR of the two read every subscription, before every batch).
        due = union(
            select(S.c.id).where(
                S.c.cancellation_date <= latest, text("subscriptions.status NOT IN ('CANCELLED', 'EXPIRED')")
            ),
            select(contracts.c.subscription_id).where(contracts.c.end_date <= latest),
        )
        stmt = (
            select(S)
            .where(text("subscriptions.status NOT IN ('CANCELLED', 'EXPIRED')"), S.c.id.in_(due))
            .order_by(S.c.id)
            .limit(self.batch_size)
            .with_for_update(of=S, skip_locked=True)
        )
        if self._contract_skip:
            stmt = stmt.where(S.c.id.not_in(sorted(self._contract_skip)))
        return stmt

    # -- reminders ---------------------------------------------------------------------

    async def _remind(self, now: datetime) -> int:
        """Payment reminders for manual-renewal and offline subscriptions, once per cycle (seed 002)."""
        profiles = t.table_of(t.Profile)
        sent = 0
        async with self.services.sessions() as session:
            horizon = (await session.execute(select(func.max(profiles.c.reminder_days_before)))).scalar() or 0
        if horizon <= 0:
            return 0
        params = {
            "earliest": (now - _BEHIND).date(),
            "today": (now + _AHEAD).date(),
            "latest": (now + _AHEAD).date() + timedelta(days=int(horizon)),
            "size": self.batch_size,
        }
        after = 0
        while True:
            async with self.services.sessions() as session, session.begin():
                rows = list(
                    await session.execute(
                        _REMINDER_CANDIDATES,
                        {**params, "after": after},
                    )
                )
                if not rows:
                    return sent
                after = rows[-1].id
                emails = {row.id: row.customer_email for row in rows}
                full = list(await session.execute(select(S).where(S.c.id.in_(list(emails))).order_by(S.c.id)))
                states = await SubscriptionRepository(session, Catalog(session)).states_from_rows(full)
                contexts: dict[str, OpContext] = {}
                outbox = []
                for state in states:
                    event = cycle.reminder(state, charging.context_for(now, state, contexts))
                    if event is None:
                        continue
                    assert state.id is not None
                    outbox.append(
                        {
                            "kind": event.kind,
                            "subscription_id": state.id,
                            "recipient": emails.get(state.id),
                            "payload": notification_payload(self.settings.public_base_url, state, event, None),
                            "dedupe_key": f"reminder:{state.id}:{event.payload['cycle']}",
                            "created_at": now,
                        }
                    )
                inserted = await insert_rows(session, OUTBOX, outbox, returning=("id",), conflict="dedupe_key")
                sent += len(inserted)


_REMINDER_CANDIDATES = text(
    """
    SELECT s.id, c.email AS customer_email
    FROM subscriptions s
    JOIN customers c ON c.id = s.customer_id
    JOIN subscription_profiles p ON p.id = s.profile_id
    LEFT JOIN payment_methods pm ON pm.id = s.payment_method_id
    WHERE s.status IN ('TRIAL', 'ACTIVE', 'OVERDUE')
      AND s.next_renewal_date > :earliest AND s.next_renewal_date <= :latest
      AND s.id > :after
      AND p.reminder_days_before > 0
      AND s.next_renewal_date - p.reminder_days_before <= :today
      AND (s.renewal_type = 'MANUAL' OR pm.kind = 'OFFLINE'
           OR NOT EXISTS (SELECT 1 FROM subscription_items i WHERE i.subscription_id = s.id AND i.auto_renew))
      AND NOT EXISTS (
          SELECT 1 FROM outbox o WHERE o.dedupe_key = 'reminder:' || s.id || ':' || (s.last_cycle + 1))
    ORDER BY s.id
    LIMIT :size
    """
)


# Subscriptions with a pending phase dated up to the latest local date on earth (the partial index
# ix_phases_due); the claim checks each one's own local date.
_DATED_PHASE_CANDIDATES = text(
    """
    SELECT DISTINCT subscription_id FROM phases
    WHERE status = 'PENDING' AND effective_date <= :latest AND subscription_id > :after
    ORDER BY subscription_id
    LIMIT :size
    """
)


def _local_today(table: str, now: datetime) -> Any:
    """The subscription's local date at ``now`` (its time zone), in SQL."""
    return text(f"CAST(timezone({table}.time_zone, CAST(:now AS timestamptz)) AS date)").bindparams(now=now)
