"""Charging renewals: one path for every caller that moves money.

A charge goes through three steps, and no database transaction stays open
while a gateway is called:

1. **Record** (the caller's transaction): the renewal is inserted
   ``PENDING`` with its deterministic charge key (:func:`renewal_key`,
   :func:`adjustment_key`), and the subscription takes the operation's new
   state, with history and outbox rows. Before the commit the caller marks
   the renewal *in flight* (:class:`InFlight`: a session-level advisory lock
   held by a connection of its own).
2. **Charge** (:func:`charge_jobs`), outside any transaction, with the key.
3. **Settle** (:func:`settle_jobs`, one short transaction): the renewal
   becomes ``PAID``, ``FAILED`` or ``VOID``, its transactions are recorded,
   and the subscription follows the payment or dunning rules with history
   and notifications, exactly as for a scheduled renewal.

A process that dies between 1 and 3 leaves a ``PENDING`` renewal whose
in-flight lock is free: an *orphan*. Recovery (the worker, or a client
retrying with its idempotency key) first asks the gateway what it did with
the renewal's key, and charges only when the gateway never saw it; the
gateway answers a repeated key with its first answer, so no cycle is ever
charged twice. A renewal whose subscription was cancelled, suspended or
expired meanwhile is never charged: it is settled by what the gateway
already did, or voided.

Mutations (``services.subscriptions``) and the renewal worker
(``billing.engine``) both call this module.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from rebill.billing.gateways import ChargeRequest, GatewayRegistry, GatewayResult, charge_many
from rebill.config import Settings
from rebill.db import tables as t
from rebill.db.outage import discard, is_database_outage
from rebill.db.repositories import Catalog, SubscriptionRepository, any_of, renewal_from_row
from rebill.db.sets import insert_rows, update_rows
from rebill.domain import cycle
from rebill.domain.cadence import local_today
from rebill.domain.errors import VersionConflict
from rebill.domain.money import Money
from rebill.domain.outcome import OpContext, Outcome
from rebill.domain.renewal import Charge, Event, RenewalInfo, RenewalKind, RenewalStatus
from rebill.domain.status import SubscriptionStatus
from rebill.domain.subscription import PaymentKind, SubscriptionState, diff, replaced_fields
from rebill.invoicing.events import name_invoices
from rebill.invoicing.follow import follow_renewals
from rebill.services.outbox import add_portal_links, outbox_rows

log = logging.getLogger(__name__)

S = t.table_of(t.Subscription)
R = t.table_of(t.Renewal)
TX = t.table_of(t.Transaction)
HISTORY = t.table_of(t.HistoryEntry)
OUTBOX = t.table_of(t.OutboxMessage)
CUSTOMERS = t.table_of(t.Customer)
AC = t.table_of(t.AppliedCoupon)

#: The advisory-lock class of renewals in flight (``pg_try_advisory_lock(class, id)``).
LOCK_CLASS = 0x52424C  # "RBL"

#: Statuses whose renewals may still be charged. Anything else (suspended,
#: cancelled, expired, not started) voids a renewal the gateway never saw.
CHARGEABLE = frozenset(
    {
        SubscriptionStatus.TRIAL,
        SubscriptionStatus.ACTIVE,
        SubscriptionStatus.OVERDUE,
        SubscriptionStatus.AWAITING_REINSTATE,
    }
)


# -- charge keys -----------------------------------------------------------------


def renewal_key(subscription_id: int, cycle_: int) -> str:
    """The charge key of a billing cycle: one cycle, one key, whoever charges it and however often."""
    return f"rnw_{subscription_id}_{cycle_}"


def adjustment_key(subscription_id: int, version: int) -> str:
    """The charge key of a proration charge: the change that caused it is the subscription's version."""
    return f"adj_{subscription_id}_v{version}"


def attempt_key(key: str, attempt: int) -> str:
    """The key of one attempt at a renewal: the first attempt uses the renewal's own key."""
    return key if attempt <= 1 else f"{key}:retry{attempt}"


# -- in-flight locks ---------------------------------------------------------------


class InFlight:
    """Advisory locks that say "this renewal is being charged by a live process".

    Session-level locks: they outlive the transaction that recorded the
    renewal and vanish with the process (its connection) that holds them.
    ``commits`` is for a connection used outside any session transaction:
    each call then ends its own transaction, so none stays open.
    """

    def __init__(self, conn: AsyncConnection, *, commits: bool = False) -> None:
        self.conn = conn
        self.commits = commits

    async def _done(self) -> None:
        if self.commits and self.conn.in_transaction():
            await self.conn.commit()

    async def take(self, renewal_ids: Iterable[int]) -> set[int]:
        """Take the locks that are free; the ids taken."""
        ids = sorted(set(renewal_ids))
        if not ids:
            return set()
        rows = await self.conn.execute(
            text(
                "SELECT id FROM unnest(CAST(:ids AS bigint[])) AS id "
                "WHERE pg_try_advisory_lock(:cls, (id % 2147483647)::int)"
            ),
            {"ids": ids, "cls": LOCK_CLASS},
        )
        taken = {row.id for row in rows}
        await self._done()
        return taken

    async def wait(self, renewal_id: int, seconds: float) -> bool:
        """Wait up to ``seconds`` for a renewal's lock (another process is charging it)."""
        got = False
        try:
            await self.conn.execute(text(f"SET lock_timeout = {max(1, int(seconds * 1000))}"))
            await self.conn.execute(
                text("SELECT pg_advisory_lock(:cls, (CAST(:id AS bigint) % 2147483647)::int)"),
                {"cls": LOCK_CLASS, "id": renewal_id},
            )
            got = True
        except DBAPIError:  # lock_timeout: still in flight elsewhere
            if self.conn.in_transaction():
                await self.conn.rollback()
        await self.conn.execute(text("SET lock_timeout = 0"))
        await self._done()
        return got

    async def release_all(self) -> None:
        """Release every lock; on a connection that died they died with it, and it is discarded."""
        if self.conn.closed or self.conn.invalidated:
            return
        try:
            await self.conn.execute(text("SELECT pg_advisory_unlock_all()"))
            await self._done()
        except Exception as exc:
            if not is_database_outage(exc):
                raise
            log.debug("in-flight locks went with their connection: %s", exc)
            await discard(self.conn)


@asynccontextmanager
async def in_flight(engine: AsyncEngine) -> AsyncIterator[InFlight]:
    conn = await engine.connect()
    try:
        locks = InFlight(await conn.execution_options(isolation_level="AUTOCOMMIT"))
        yield locks
    finally:
        try:
            await InFlight(conn).release_all()
        finally:
            await conn.close()


# -- jobs ----------------------------------------------------------------------------


@dataclass
class Job:
    """One attempt at charging one renewal, from its record to its settlement."""

    renewal_id: int
    charge: Charge
    key: str
    attempts: int
    retry: bool
    state: SubscriptionState
    email: str | None
    recovered: bool = False
    # Only ask the gateway what it did with the key; never send a new charge.
    lookup_only: bool = False
    # Charged by staff or the customer: an offline method (invoice, transfer) is collected outside rebill.
    offline_ok: bool = False
    # A retry asked for by staff or the customer (retryRenewal, a new default card, a force bill):
    # a decline leaves the dunning schedule as it was (``previous_retry``), it never ends it.
    manual_retry: bool = False
    previous_retry: date | None = None
    tried: list[tuple[str, GatewayResult]] = field(default_factory=list)
    outside: bool = False
    refused: str | None = None
    unsent: bool = False
    # Paid by bank transfer (an offline method) on the worker's schedule: its invoice is issued and the
    # payment awaited until the invoice's due date; after it, each attempt is a reminder that it is overdue.
    awaiting: bool = False
    offline_overdue: bool = False

    @property
    def subscription_id(self) -> int:
        assert self.state.id is not None
        return self.state.id

    @property
    def succeeded(self) -> bool:
        return self.outside or any(result.succeeded for _, result in self.tried)

    @property
    def voided(self) -> bool:
        return self.unsent and not self.tried and not self.outside

    @property
    def gateway(self) -> str | None:
        for name, result in self.tried:
            if result.succeeded:
                return name
        return None

    @property
    def decline_code(self) -> str | None:
        if self.refused:
            return self.refused
        failed = [result.decline_code for _, result in self.tried if not result.succeeded]
        return failed[-1] if failed else None


def job_from_row(row: Any, state: SubscriptionState, email: str | None, *, attempts_offset: int = 0) -> Job:
    """The job of a recorded renewal row (a retry, or an orphan to recover)."""
    attempts = row.attempts + attempts_offset
    info = renewal_from_row(row)
    charge = Charge(
        info.kind,
        info.cycle,
        info.period_start,
        info.period_end,
        info.amount,
        adjustment=info.adjustment,
        fulfillment=info.fulfillment,
        renewal_id=info.id,
    )
    return Job(
        row.id,
        charge,
        attempt_key(row.idempotency_key, attempts),
        attempts,
        attempts > 1,
        state,
        email,
        # Only scheduled renewals are the worker's own; every other kind was asked for by
        # staff or the customer, who collect an offline method themselves.
        offline_ok=info.kind is not RenewalKind.SCHEDULED or info.adjustment,
    )


async def emails_of(session: AsyncSession, subscription_ids: Iterable[int]) -> dict[int, str | None]:
    ids = sorted(set(subscription_ids))
    if not ids:
        return {}
    rows = await session.execute(
        select(S.c.id, CUSTOMERS.c.email).join(CUSTOMERS, CUSTOMERS.c.id == S.c.customer_id).where(any_of(S.c.id, ids))
    )
    return {row.id: row.email for row in rows}


async def jobs_for_rows(session: AsyncSession, rows: Sequence[Any], *, attempts_offset: int = 0) -> list[Job]:
    repo = SubscriptionRepository(session, Catalog(session))
    states = await repo.get_many(sorted({row.subscription_id for row in rows}))
    emails = await emails_of(session, list(states))
    return [
        job_from_row(row, states[row.subscription_id], emails.get(row.subscription_id), attempts_offset=attempts_offset)
        for row in rows
    ]


# -- step 2: charge ------------------------------------------------------------------


async def charge_jobs(gateways: GatewayRegistry, jobs: Sequence[Job]) -> None:
    """Send the charges to the gateways, in batches per gateway, outside any transaction.

    A recovered job first asks each routed gateway what it did with the key,
    and picks up where the dead process stopped. A ``lookup_only`` job never
    sends anything new: what the gateway never saw stays ``unsent``.
    """
    routes: dict[int, list[str]] = {}
    steps: dict[int, int] = {}
    for job in jobs:
        pm = job.state.payment_method
        if job.charge.amount.minor <= 0 or (pm is not None and pm.kind is PaymentKind.EXTERNAL):
            job.outside = not job.lookup_only  # nothing to pay, or paid outside rebill
            job.unsent = job.lookup_only
        elif pm is None:
            job.refused = "no_payment_method"
        elif pm.kind is PaymentKind.OFFLINE:
            if job.offline_ok:
                job.outside = not job.lookup_only
                job.unsent = job.lookup_only
            elif job.lookup_only:
                job.unsent = True
            elif job.attempts <= 1:
                job.awaiting = True  # the invoice asks for a transfer: nothing is charged
            else:
                job.refused = "payment_overdue"
                job.offline_overdue = True
        else:
            routes[job.renewal_id] = gateways.route(job.state)
            steps[job.renewal_id] = 0
    for job in jobs:
        if job.renewal_id not in routes or not (job.recovered or job.lookup_only):
            continue
        # Where the dead process sent it may not be where the subscription routes now (its
        # gateway or card changed meanwhile): ask every configured gateway, routed ones first.
        route = routes[job.renewal_id]
        asked = list(dict.fromkeys([*route, *gateways.names]))
        found = [(name, await gateways.get(name).retrieve(f"{job.key}:{name}")) for name in asked]
        answers = [(name, result) for name, result in found if result is not None]
        if answers:
            paid = [(name, result) for name, result in answers if result.succeeded]
            job.tried.extend(paid[:1] if paid else answers)
            if paid or not job.tried[-1][1].cascades:
                del routes[job.renewal_id]
                continue
            # Only processing errors so far: go on with the routed gateways not tried yet.
            tried = {name for name, _ in answers}
            routes[job.renewal_id] = [name for name in route if name not in tried]
        if job.lookup_only:
            job.unsent = not job.succeeded
            del routes[job.renewal_id]
    waiting = [job for job in jobs if job.renewal_id in routes and steps[job.renewal_id] < len(routes[job.renewal_id])]
    while waiting:
        by_gateway: dict[str, list[Job]] = {}
        for job in waiting:
            by_gateway.setdefault(routes[job.renewal_id][steps[job.renewal_id]], []).append(job)
        for name, batch in by_gateway.items():
            requests = [
                ChargeRequest(
                    job.state.payment_method.gateway_token if job.state.payment_method else None,
                    job.charge.amount,
                    f"{job.key}:{name}",
                )
                for job in batch
            ]
            results = await charge_many(gateways.get(name), requests)
            for job, result in zip(batch, results, strict=True):
                job.tried.append((name, result))
                steps[job.renewal_id] += 1
        waiting = [
            job
            for job in waiting
            if steps[job.renewal_id] < len(routes[job.renewal_id]) and job.tried and job.tried[-1][1].cascades
        ]


async def recheck(session: AsyncSession, jobs: Sequence[Job]) -> None:
    """Right before a charge: a job whose subscription can no longer be charged only looks up its key."""
    ids = sorted({job.subscription_id for job in jobs})
    if not ids:
        return
    statuses = {
        row.id: SubscriptionStatus(row.status)
        for row in await session.execute(select(S.c.id, S.c.status).where(any_of(S.c.id, ids)))
    }
    for job in jobs:
        if statuses.get(job.subscription_id) not in CHARGEABLE:
            job.lookup_only = True


# -- step 3: settle --------------------------------------------------------------------


# The columns of the subscription row the renewal rules change (see domain/cycle.py), each with its value in a state.
_ENGINE_VALUES: dict[str, Callable[[SubscriptionState], Any]] = {
    "status": lambda s: s.status.value,
    "next_renewal_date": lambda s: s.next_renewal_date,
    "trial_end_date": lambda s: s.trial_end_date,
    "current_period_start": lambda s: s.current_period_start,
    "current_period_end": lambda s: s.current_period_end,
    "end_date": lambda s: s.end_date,
    "occurrences_billed": lambda s: s.occurrences_billed,
    "last_cycle": lambda s: s.last_cycle,
    "overdue_count": lambda s: s.overdue_count,
    "next_retry_date": lambda s: s.next_retry_date,
    "last_gateway_id": lambda s: s.last_gateway_id,
    "amount_minor": lambda s: s.amount.minor,
    "discount_minor": lambda s: s.next_bill().discount.minor,
    "credit_minor": lambda s: s.credit.minor if s.credit is not None else 0,
    "cancel_at_period_end": lambda s: s.cancel_at_period_end,
    "cancelled_at": lambda s: s.cancelled_at,
    "renew_due": lambda s: s.renew_due,
}

#: The state's fields and the columns each one is written to (the amount and the discount follow the items, coupons
#: and currency).
_PRICED = ("amount_minor", "discount_minor")
_COLUMNS_OF: dict[str, tuple[str, ...]] = {
    **{name: (name,) for name in _ENGINE_VALUES if name not in (*_PRICED, "credit_minor")},
    "credit": ("credit_minor",),
    "items": _PRICED,
    "coupons": _PRICED,
    "currency": _PRICED,
}


async def save_states(
    session: AsyncSession,
    repo: SubscriptionRepository,
    pairs: Sequence[tuple[SubscriptionState, SubscriptionState]],
    now: datetime,
) -> list[SubscriptionState]:
    """Save many ``(before, after)`` pairs: one guarded UPDATE for the usual renewal changes.

    A change to the items (pending changes taking effect) goes through the
    repository; coupon cycles are counted with one statement.
    """
    saved: list[SubscriptionState] = []
    rows: list[dict[str, Any]] = []
    # Rows grouped by the columns they change: the version guard makes the others what they were.
    changes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    coupons: list[dict[str, Any]] = []
    for before, after in pairs:
        same_coupons = [c.id for c in before.coupons] == [c.id for c in after.coupons]
        if before.items != after.items or not same_coupons:
            saved.append(await repo.save(before, after, now))
            continue
        # The columns of the fields ``after`` replaced (``evolve`` shares every value it keeps), with the row,
        # its version guard and when it changed.
        written = {column for name in replaced_fields(before, after) for column in _COLUMNS_OF.get(name, ())}
        row = {"id": after.id, "version": before.version, "updated_at": now}
        row.update((column, get(after)) for column, get in _ENGINE_VALUES.items() if column in written)
        rows.append(row)
        changes.setdefault(tuple(row), []).append(row)
        for old, new in zip(before.coupons, after.coupons, strict=True):
            if old.cycles_used != new.cycles_used:
                coupons.append({"id": new.id, "cycles_used": new.cycles_used})
        saved.append(after.evolve(version=before.version + 1, updated_at=now))
    updated = sum([await update_rows(session, S, group, guard="version") for group in changes.values()])
    if updated != len(rows):
        expected = {r["id"]: r["version"] + 1 for r in rows}
        now_at = await session.execute(select(S.c.id, S.c.version).where(any_of(S.c.id, list(expected))))
        missing = sorted(row.id for row in now_at if row.version != expected[row.id])
        raise VersionConflict(f"subscriptions {missing} changed while their renewals were being settled")
    await update_rows(session, AC, coupons)
    return saved


def renewal_note(renewal_id: int, charge: Charge, status: RenewalStatus, decline: str | None = None) -> dict[str, Any]:
    """The history line that records a renewal."""
    after: dict[str, Any] = {
        "cycle": charge.cycle,
        "kind": charge.kind.value,
        "status": status.value,
        "amount": charge.amount.amount_str,
        "periodStart": charge.period_start.isoformat(),
        "periodEnd": charge.period_end.isoformat(),
    }
    if charge.adjustment:
        after["adjustment"] = True
    if decline:
        after["declineCode"] = decline
    return {"field": f"renewals.{renewal_id}", "before": None, "after": after}


class Writer:
    """History, outbox and transaction rows of one transaction, written together at its end."""

    def __init__(self, settings: Settings, actor: str, now: datetime, bulk_run_id: int | None = None) -> None:
        self.settings = settings
        self.actor = actor
        self.now = now
        self.bulk_run_id = bulk_run_id
        self.history: list[dict[str, Any]] = []
        self.outbox: list[dict[str, Any]] = []
        # Per outbox row: the customer it is addressed to (who gets a portal link), else None.
        self.owners: list[int | None] = []
        self.transactions: list[dict[str, Any]] = []

    def record(
        self,
        before: SubscriptionState,
        outcome: Outcome,
        after: SubscriptionState,
        email: str | None,
        *,
        notes: Sequence[dict[str, Any]] = (),
        renewal_id: int | None = None,
        reason: str | None = None,
    ) -> None:
        assert after.id is not None
        self.history.append(
            {
                "subscription_id": after.id,
                "occurred_at": self.now,
                "actor": self.actor,
                "action": outcome.action,
                "reason": reason,
                "changes": diff(before, after) + list(notes),
                "bulk_run_id": self.bulk_run_id,
            }
        )
        rows = outbox_rows(self.settings, after, outcome.events, email, self.now, renewal_id)
        self.outbox.extend(rows)
        mine = email.lower() if email else None
        self.owners.extend(
            after.customer_id if mine is not None and (row["recipient"] or "").lower() == mine else None for row in rows
        )

    def transactions_of(self, job: Job) -> None:
        base = {
            "renewal_id": job.renewal_id,
            "subscription_id": job.subscription_id,
            "kind": "CHARGE",
            "amount_minor": job.charge.amount.minor,
            "currency": job.charge.amount.currency,
            "created_at": self.now,
        }
        for name, result in job.tried:
            self.transactions.append(
                {
                    **base,
                    "gateway_id": name,
                    "status": "SUCCEEDED" if result.succeeded else "FAILED",
                    "decline_code": result.decline_code,
                    "gateway_reference": result.reference,
                }
            )
        if job.outside or job.refused:
            self.transactions.append(
                {
                    **base,
                    "gateway_id": None,
                    "status": "SUCCEEDED" if job.outside else "FAILED",
                    "decline_code": job.refused,
                    "gateway_reference": None,
                }
            )

    async def flush(self, session: AsyncSession) -> None:
        await insert_rows(session, TX, self.transactions)
        await insert_rows(session, HISTORY, self.history)
        await add_portal_links(session, self.outbox, self.owners, self.now)
        await insert_rows(session, OUTBOX, self.outbox)
        self.transactions, self.history, self.outbox, self.owners = [], [], [], []


@dataclass
class Settled:
    """How one job ended."""

    job: Job
    status: RenewalStatus
    state: SubscriptionState
    final: bool = False


def context_for(now: datetime, state: SubscriptionState, cache: dict[str, OpContext]) -> OpContext:
    """The operation context of ``state`` at ``now`` (its local today), one per time zone in ``cache``."""
    ctx = cache.get(state.time_zone)
    if ctx is None:
        ctx = cache[state.time_zone] = OpContext(now=now, today=local_today(now, state.time_zone))
    return ctx


def _unbill(state: SubscriptionState, charge: Charge) -> SubscriptionState:
    """The schedule as it was before a period was recorded that is now voided: that period is owed again.

    (The subscription was suspended or cancelled before the charge was sent;
    activated again, it bills that period, as it would have had it been
    suspended before the renewal was recorded.)
    """
    if charge.adjustment or state.last_cycle != charge.cycle:
        return state
    start = state.current_period_start if state.current_period_start != charge.period_start else None
    return state.evolve(
        last_cycle=charge.cycle - 1,
        next_renewal_date=charge.period_start if state.next_renewal_date is not None else None,
        current_period_start=start,
        current_period_end=charge.period_start,
    )


def _info_of(job: Job) -> RenewalInfo:
    charge = job.charge
    return RenewalInfo(
        id=job.renewal_id,
        subscription_id=job.subscription_id,
        cycle=charge.cycle,
        kind=charge.kind,
        status=RenewalStatus.FAILED,
        period_start=charge.period_start,
        period_end=charge.period_end,
        amount=charge.amount,
        refunded=Money.zero(charge.amount.currency),
        attempts=job.attempts,
        fulfillment=charge.fulfillment,
        adjustment=charge.adjustment,
    )


async def _other_retries(
    session: AsyncSession, subscription_ids: Sequence[int], renewal_ids: Sequence[int]
) -> dict[int, date]:
    """The earliest retry due of each subscription's other declined renewals."""
    rows = await session.execute(
        select(R.c.subscription_id, func.min(R.c.next_retry_date).label("earliest"))
        .where(
            any_of(R.c.subscription_id, subscription_ids),
            text("renewals.status = 'FAILED'"),
            R.c.next_retry_date.is_not(None),
            R.c.id.not_in(list(renewal_ids)),
        )
        .group_by(R.c.subscription_id)
    )
    return {row.subscription_id: row.earliest for row in rows}


async def offline_invoices(session: AsyncSession, renewal_ids: Sequence[int]) -> dict[int, Any]:
    """The invoices of renewals paid by transfer: what their customers are asked to pay, and by when."""
    if not renewal_ids:
        return {}
    invoices = t.table_of(t.Invoice)
    rows = await session.execute(
        # A pro forma asks for the payment where a subscription is set to pro formas: the final invoice wins.
        select(invoices)
        .where(any_of(invoices.c.renewal_id, renewal_ids))
        .order_by(invoices.c.renewal_id, (invoices.c.document_type == "INVOICE").asc())
    )
    return {row.renewal_id: row for row in rows}


def invoice_issued(state: SubscriptionState, job: Job, invoice: Any, settings: Settings) -> Outcome:
    """An invoice to pay by transfer was issued: the customer is sent it; nothing else changes until it is due."""
    payload: dict[str, Any] = {
        "renewalId": job.renewal_id,
        "amount": job.charge.amount.amount_str,
        "currency": job.charge.amount.currency,
        "periodStart": job.charge.period_start.isoformat(),
        "periodEnd": job.charge.period_end.isoformat(),
    }
    if invoice is not None:
        payload.update(invoiceId=invoice.id, invoiceNumber=invoice.number, dueDate=invoice.due_date.isoformat())
    if settings.seller.get("bankDetails"):
        payload["bankDetails"] = settings.seller["bankDetails"]
    return Outcome(state, "invoice_issued", events=(Event("INVOICE_ISSUED", payload),))


async def settle_jobs(
    session: AsyncSession,
    settings: Settings,
    jobs: Sequence[Job],
    now: datetime,
    actor: str,
    *,
    bulk_run_id: int | None = None,
) -> list[Settled]:
    """Record the gateways' answers, in the caller's transaction: renewals, subscriptions, history, outbox.

    Only renewals still ``PENDING`` are settled (a renewal settled meanwhile,
    by recovery or by the process that charged it, is left as it is). The
    subscription is read under lock, so what it became meanwhile (cancelled,
    suspended) is what the answer is applied to.
    """
    if not jobs:
        return []
    ids = sorted({job.subscription_id for job in jobs})
    versions = {
        row.id: row.version
        for row in await session.execute(
            select(S.c.id, S.c.version).where(any_of(S.c.id, ids)).order_by(S.c.id).with_for_update()
        )
    }
    pending = {
        row.id
        for row in await session.execute(
            select(R.c.id)
            .where(any_of(R.c.id, [job.renewal_id for job in jobs]), text("renewals.status = 'PENDING'"))
            .with_for_update()
        )
    }
    jobs = [job for job in jobs if job.renewal_id in pending]
    if not jobs:
        return []
    repo = SubscriptionRepository(session, Catalog(session))
    # Reuse the state read before the charge unless someone changed it since.
    stale = sorted({job.subscription_id for job in jobs if job.state.version != versions.get(job.subscription_id)})
    fresh = await repo.get_many(stale) if stale else {}
    other_retry = await _other_retries(session, ids, [job.renewal_id for job in jobs])
    issued_offline = await offline_invoices(session, [job.renewal_id for job in jobs if job.awaiting])

    writer = Writer(settings, actor, now, bulk_run_id)
    renewal_rows: list[dict[str, Any]] = []
    pairs: list[tuple[SubscriptionState, SubscriptionState]] = []
    contexts: dict[str, OpContext] = {}
    by_sub: dict[int, list[Job]] = {}
    settled: list[Settled] = []
    for job in jobs:
        by_sub.setdefault(job.subscription_id, []).append(job)
    for sid, group in by_sub.items():
        first = fresh.get(sid) or group[0].state
        state = first
        retry_dates = [other_retry.get(sid)]
        for job in sorted(group, key=lambda j: j.charge.cycle):
            ctx = context_for(now, state, contexts)
            renewal_retry: date | None = None
            final = False
            reason: str | None = None
            if job.voided:
                outcome = Outcome(_unbill(state, job.charge), "renewal_voided")
                status = RenewalStatus.VOID
                reason = "the charge was never sent to the gateway: voided, it will never be charged"
            elif job.succeeded:
                outcome = cycle.cycle_paid(
                    state, job.charge, job.gateway, retry=job.retry, other_retry=cycle.earliest(retry_dates)
                )
                status = RenewalStatus.PAID
            elif job.manual_retry:
                dunning = cycle.salvage_failed(
                    state,
                    _info_of(job),
                    ctx,
                    decline_code=job.decline_code,
                    previous_retry=job.previous_retry,
                    other_retry=cycle.earliest(retry_dates),
                )
                outcome, renewal_retry = dunning.outcome, dunning.retry_date
                status = RenewalStatus.FAILED
                retry_dates.append(renewal_retry)
                reason = job.decline_code
            elif job.awaiting:
                invoice = issued_offline.get(job.renewal_id)
                outcome = invoice_issued(state, job, invoice, settings)
                status = RenewalStatus.FAILED
                # Reminded the day after its due date, then on the profile's retry schedule (as for cards).
                due = invoice.due_date if invoice is not None else ctx.today
                renewal_retry = due + timedelta(days=1)
                reason = "awaiting_payment"
            else:
                # A transfer overdue for the first time starts dunning as a first decline would.
                newly_overdue = not job.retry or (job.offline_overdue and job.attempts == 2)
                rule = cycle.cycle_failed if newly_overdue else cycle.retry_failed
                info = _info_of(job)
                if job.offline_overdue:
                    info = replace(info, attempts=info.attempts - 1)  # the issue of the invoice was no attempt
                dunning = rule(state, info, ctx, decline_code=job.decline_code, other_retry=cycle.earliest(retry_dates))
                outcome, renewal_retry, final = dunning.outcome, dunning.retry_date, dunning.final
                status = RenewalStatus.FAILED
                retry_dates.append(renewal_retry)
                reason = job.decline_code
            pm = job.state.payment_method
            renewal_rows.append(
                {
                    "id": job.renewal_id,
                    "status": status.value,
                    "next_retry_date": renewal_retry,
                    "gateway_id": job.gateway,
                    "payment_method_id": pm.id if pm else None,
                    "payment_kind": pm.kind.value if pm else None,
                    "paid_at": now if job.succeeded else None,
                    "updated_at": now,
                }
            )
            writer.transactions_of(job)
            notes: list[dict[str, Any]] = [
                {
                    "field": f"renewals.{job.renewal_id}.status",
                    "before": RenewalStatus.PENDING.value,
                    "after": status.value,
                }
            ]
            if job.decline_code and not job.succeeded and not job.voided:
                notes.append(
                    {"field": f"renewals.{job.renewal_id}.declineCode", "before": None, "after": job.decline_code}
                )
            writer.record(
                state, outcome, outcome.state, job.email, notes=notes, renewal_id=job.renewal_id, reason=reason
            )
            state = outcome.state
            settled.append(Settled(job, status, state, final))
        pairs.append((first, state))
    await update_rows(session, R, renewal_rows)
    voided = [item.job.renewal_id for item in settled if item.status is RenewalStatus.VOID]
    if voided:
        # The gateway never saw the key: the period's next renewal takes it over (and if a request
        # sent by the dead process still lands at the gateway, that renewal gets its answer).
        await session.execute(
            text(
                "UPDATE renewals SET idempotency_key = idempotency_key || :suffix || id "
                "WHERE id = ANY(CAST(:ids AS bigint[]))"
            ),
            {"ids": voided, "suffix": ":void"},
        )
    saved = await save_states(session, repo, pairs, now)
    by_id = {s.id: s for s in saved}
    for item in settled:
        item.state = by_id.get(item.job.subscription_id, item.state)
    # Dunning is over for subscriptions no longer overdue: their retries are dropped.
    ended = [a.id or 0 for _, a in pairs if a.status is not SubscriptionStatus.OVERDUE and a.overdue_count]
    if ended:
        await session.execute(
            R.update()
            .where(any_of(R.c.subscription_id, ended), text("renewals.status = 'FAILED'"))
            .where(R.c.next_retry_date.is_not(None))
            .values(next_retry_date=None, updated_at=now)
        )
    await name_invoices(session, writer.outbox)
    await writer.flush(session)
    await follow_renewals(session, settings, ids, now)
    return settled


async def settle_orphans(
    session: AsyncSession,
    gateways: GatewayRegistry,
    locks: InFlight,
    settings: Settings,
    subscription_id: int,
    now: datetime,
    actor: str,
) -> list[Settled]:
    """Before a subscription stops being billable: settle its renewals a dead process left in flight.

    What the gateway already took is recorded as paid; what it never saw is
    voided and will never be charged. Renewals another live process is
    charging (their lock is held) are left to it: it settles them under the
    subscription's lock, against the status it finds.
    """
    rows = list(
        await session.execute(
            select(R)
            .where(R.c.subscription_id == subscription_id, text("renewals.status = 'PENDING'"))
            .with_for_update()
        )
    )
    if not rows:
        return []
    free = await locks.take([row.id for row in rows])
    rows = [row for row in rows if row.id in free]
    if not rows:
        return []
    jobs = await jobs_for_rows(session, rows)
    for job in jobs:
        job.recovered = True
        job.lookup_only = True
    await charge_jobs(gateways, jobs)
    return await settle_jobs(session, settings, jobs, now, actor)
