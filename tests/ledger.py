"""The ledger audit: what rebill recorded against what the gateway actually did.

The sandbox gateway keeps its own ledger (``sandbox_charges``, one row per
gateway, charge key and kind), written outside rebill's transactions like a
remote gateway's. A charge key is the renewal's ``idempotency_key``
(``rnw_{subscription}_{cycle}`` or ``adj_{subscription}_v{version}``), then
``:retryN`` for a retry attempt, then ``:{gateway}``; so a ledger row belongs
to the renewal whose key is a prefix of its own up to a ``:``.

:func:`audit_ledger` checks the money promises of DOMAIN.md after any
scenario, and returns the problems it found (empty when all hold), so that a
test can print every one of them at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

#: Renewal statuses that say "the money was taken" (refunds come after a payment).
COLLECTED = ("PAID", "REFUNDED", "PARTIALLY_REFUNDED")

# Ledger charges joined to the renewal whose key prefixes theirs (":" ends the renewal's part).
_LEDGER_JOIN = """
    SELECT c.id AS ledger_id, c.gateway, c.idempotency_key AS ledger_key, c.succeeded, c.amount_minor AS charged,
           c.reference, r.id AS renewal_id, r.subscription_id, r.cycle, r.adjustment, r.status,
           r.amount_minor AS amount
    FROM sandbox_charges c
    LEFT JOIN renewals r ON left(c.idempotency_key, length(r.idempotency_key) + 1) = r.idempotency_key || ':'
    WHERE c.kind = 'CHARGE'
"""


@dataclass
class Audit:
    """What the audit found; ``problems`` is empty when every promise holds."""

    problems: list[str] = field(default_factory=list)
    renewals: int = 0
    ledger_charges: int = 0
    successful_charges: int = 0

    def check(self, condition: bool, message: str) -> None:
        if not condition:
            self.problems.append(message)


async def _rows(engine: AsyncEngine, sql: str, **params: Any) -> list[Any]:
    async with engine.connect() as conn:
        return list(await conn.execute(text(sql), params))


async def audit_ledger(
    engine: AsyncEngine,
    *,
    renewed_through: date | None = None,
    subscription_ids: Iterable[int] | None = None,
) -> Audit:
    """Check the ledger against the renewals and the subscriptions' states.

    - one renewal per (subscription, cycle), proration adjustments aside;
    - no (subscription, cycle), and no adjustment, charged successfully twice on the gateways;
    - every successful gateway charge belongs to a renewal that says it was paid (or refunded since),
      for the amount of that renewal, and is recorded as a succeeded transaction;
    - every renewal paid through a gateway has its successful charge;
    - nothing ``PENDING``;
    - dunning only on ``OVERDUE`` subscriptions, and an ``OVERDUE`` subscription has a declined renewal;
    - with ``renewed_through`` (the day of the last worker run): no automatic subscription still due.
    """
    audit = Audit()
    only = sorted(set(subscription_ids)) if subscription_ids is not None else None
    where = "" if only is None else " AND r.subscription_id = ANY(CAST(:ids AS bigint[]))"
    params: dict[str, Any] = {} if only is None else {"ids": only}

    renewals = await _rows(engine, f"SELECT * FROM renewals r WHERE true{where} ORDER BY id", **params)
    audit.renewals = len(renewals)
    by_cycle: dict[tuple[int, int], list[int]] = {}
    for r in renewals:
        if not r.adjustment and r.status != "VOID":  # a voided renewal billed nothing: its cycle is billed again
            by_cycle.setdefault((r.subscription_id, r.cycle), []).append(r.id)
        audit.check(r.status != "PENDING", f"renewal {r.id} ({r.idempotency_key}) is left PENDING")
    for (sid, cyc), ids in by_cycle.items():
        audit.check(len(ids) == 1, f"subscription {sid} has {len(ids)} renewals for cycle {cyc}: {ids}")

    ledger = await _rows(engine, _LEDGER_JOIN)
    if only is not None:
        ledger = [row for row in ledger if row.subscription_id is None or row.subscription_id in set(only)]
    audit.ledger_charges = len(ledger)
    matched: dict[int, list[Any]] = {}
    for row in ledger:
        if row.renewal_id is None:
            if only is None:
                audit.check(
                    not row.succeeded,
                    f"gateway {row.gateway} charged key {row.ledger_key} that no renewal records",
                )
            continue
        matched.setdefault(row.ledger_id, []).append(row)
    successes: dict[tuple[int, int, bool, int], list[Any]] = {}
    for ledger_id, rows in matched.items():
        audit.check(len(rows) == 1, f"ledger charge {ledger_id} matches several renewals: {rows}")
        row = rows[0]
        if not row.succeeded:
            continue
        audit.successful_charges += 1
        audit.check(
            row.status in COLLECTED,
            f"gateway {row.gateway} took {row.charged} for {row.ledger_key} but renewal {row.renewal_id} "
            f"(subscription {row.subscription_id}, cycle {row.cycle}) is {row.status}",
        )
        audit.check(
            row.charged == row.amount,
            f"gateway charge {row.ledger_key} is {row.charged}, its renewal {row.renewal_id} says {row.amount}",
        )
        # Per cycle for billing periods; per renewal for adjustments (several may share a cycle).
        group = (row.subscription_id, row.cycle, row.adjustment, row.renewal_id if row.adjustment else 0)
        successes.setdefault(group, []).append(row)
    for (sid, cyc, adjustment, rid), rows in successes.items():
        what = f"adjustment renewal {rid}" if adjustment else f"cycle {cyc}"
        audit.check(
            len(rows) == 1,
            f"subscription {sid} {what} charged successfully {len(rows)} times: {[r.ledger_key for r in rows]}",
        )

    # Every successful charge is recorded by a succeeded transaction with the gateway's reference.
    recorded = await _rows(
        engine,
        """SELECT c.idempotency_key, count(t.id) AS n FROM sandbox_charges c
           LEFT JOIN transactions t ON t.gateway_reference = c.reference AND t.kind = 'CHARGE'
                                    AND t.status = 'SUCCEEDED'
           WHERE c.kind = 'CHARGE' AND c.succeeded GROUP BY c.id, c.idempotency_key""",
    )
    keys_in_scope = {row.ledger_key for rows in matched.values() for row in rows}
    for row in recorded:
        if only is not None and row.idempotency_key not in keys_in_scope:
            continue
        audit.check(row.n == 1, f"successful gateway charge {row.idempotency_key} has {row.n} succeeded transactions")

    # The converse: a renewal paid through a gateway was charged there.
    paid_by_gateway = [r for r in renewals if r.status in COLLECTED and r.gateway_id is not None]
    charged_renewals = {row.renewal_id for group in successes.values() for row in group}
    for r in paid_by_gateway:
        audit.check(
            r.id in charged_renewals,
            f"renewal {r.id} ({r.idempotency_key}) is {r.status} via {r.gateway_id} but no gateway charge took it",
        )

    subs_where = "" if only is None else " WHERE s.id = ANY(CAST(:ids AS bigint[]))"
    subs = await _rows(
        engine,
        f"""SELECT s.id, s.status, s.overdue_count, s.next_renewal_date, s.renewal_type,
                   (SELECT count(*) FROM renewals r WHERE r.subscription_id = s.id AND r.status = 'FAILED'
                      AND r.next_retry_date IS NOT NULL
                      -- an invoice paid by transfer awaits its payment until its due date, out of dunning
                      AND NOT (s.status = 'ACTIVE' AND r.payment_kind = 'OFFLINE')) AS retrying,
                   (SELECT count(*) FROM renewals r WHERE r.subscription_id = s.id AND r.status = 'FAILED') AS failed
            FROM subscriptions s{subs_where} ORDER BY s.id""",
        **params,
    )
    for s in subs:
        if s.status == "OVERDUE":
            audit.check(s.overdue_count > 0, f"subscription {s.id} is OVERDUE with overdueCount 0")
            audit.check(s.failed > 0, f"subscription {s.id} is OVERDUE without a declined renewal")
        else:
            audit.check(
                s.retrying == 0, f"subscription {s.id} is {s.status} but {s.retrying} declined renewals await a retry"
            )
        if s.status in ("ACTIVE", "TRIAL"):
            audit.check(s.overdue_count == 0, f"subscription {s.id} is {s.status} with overdueCount {s.overdue_count}")
        if renewed_through is not None and s.status in ("ACTIVE", "OVERDUE", "TRIAL") and s.renewal_type == "AUTOMATIC":
            audit.check(
                s.next_renewal_date is None or s.next_renewal_date > renewed_through,
                f"subscription {s.id} ({s.status}) is still due on {s.next_renewal_date} after the worker ran "
                f"on {renewed_through}",
            )
    for r in renewals:
        audit.check(
            r.adjustment or r.period_end > r.period_start,
            f"renewal {r.id} has an empty period {r.period_start}..{r.period_end}",
        )
    await _audit_invoices(engine, audit, renewals, whole=only is None)
    return audit


#: The invoice status each renewal status allows (DOMAIN.md "Invoices": the status follows the renewal).
INVOICE_FOR_RENEWAL = {
    "PAID": {"PAID"},
    "REFUNDED": {"PAID"},
    "PARTIALLY_REFUNDED": {"PAID"},
    "VOID": {"VOID"},
    "FAILED": {"OPEN", "UNCOLLECTIBLE", "VOID"},
    "PENDING": {"OPEN"},
}


async def _audit_invoices(engine: AsyncEngine, audit: Audit, renewals: list[Any], *, whole: bool) -> None:
    """Every charge has exactly one invoice that agrees with it, adds up, and numbers have no gap."""
    invoices = await _rows(
        engine,
        """SELECT i.*, (SELECT coalesce(sum(l.amount_minor), 0) FROM invoice_lines l WHERE l.invoice_id = i.id) AS lines,
                  (SELECT coalesce(sum(l.tax_minor), 0) FROM invoice_lines l WHERE l.invoice_id = i.id) AS line_tax,
                  (SELECT coalesce(sum(l.tax_minor), 0) FROM invoice_lines l
                    WHERE l.invoice_id = i.id AND l.tax_inclusive IS NOT TRUE) AS added_tax
           FROM invoices i ORDER BY i.id""",
    )
    by_renewal: dict[int, list[Any]] = {}
    pro_formas: dict[int, list[Any]] = {}
    for i in invoices:
        if i.renewal_id is not None:
            (by_renewal if i.document_type == "INVOICE" else pro_formas).setdefault(i.renewal_id, []).append(i)
        audit.check(
            i.lines == i.subtotal_minor, f"invoice {i.number}: lines add up to {i.lines}, subtotal {i.subtotal_minor}"
        )
        audit.check(
            i.line_tax == i.tax_minor, f"invoice {i.number}: line taxes add up to {i.line_tax}, tax {i.tax_minor}"
        )
        audit.check(
            i.total_minor == i.subtotal_minor + i.added_tax,
            f"invoice {i.number}: total {i.total_minor} is not subtotal {i.subtotal_minor}"
            f" + exclusive tax {i.added_tax}",
        )
        if i.status == "PAID":
            audit.check(
                i.amount_paid_minor == i.total_minor - i.credit_applied_minor,
                f"invoice {i.number} is PAID with {i.amount_paid_minor} paid of {i.total_minor - i.credit_applied_minor}",
            )
    for r in renewals:
        if r.amount_minor < 0:
            continue  # a credit: no invoice
        found = by_renewal.get(r.id, [])
        asked = pro_formas.get(r.id, [])
        audit.check(len(asked) <= 1, f"renewal {r.id} has {len(asked)} pro formas")
        if asked and not found:
            # A pro forma asks for a payment not made yet; the invoice follows the payment.
            audit.check(
                r.status not in COLLECTED, f"renewal {r.id} is {r.status} but has no invoice after its pro forma"
            )
            found = asked
        elif asked:
            audit.check(
                found[0].pro_forma_id == asked[0].id and asked[0].status == "PAID",
                f"renewal {r.id}'s invoice {found[0].number} is not linked to its paid pro forma {asked[0].number}",
            )
        audit.check(len(found) == 1, f"renewal {r.id} ({r.idempotency_key}) has {len(found)} invoices")
        if len(found) != 1:
            continue
        i = found[0]
        audit.check(
            i.status in INVOICE_FOR_RENEWAL.get(r.status, set()),
            f"renewal {r.id} is {r.status} but its invoice {i.number} is {i.status}",
        )
        audit.check(
            i.total_minor - i.credit_applied_minor == r.amount_minor,
            f"renewal {r.id} charges {r.amount_minor} but its invoice {i.number} asks "
            f"{i.total_minor - i.credit_applied_minor}",
        )
    notes = await _rows(
        engine,
        """SELECT n.*, (SELECT coalesce(sum(l.amount_minor), 0) FROM credit_note_lines l WHERE l.credit_note_id = n.id)
                  AS lines,
                  (SELECT coalesce(sum(l.tax_minor), 0) FROM credit_note_lines l WHERE l.credit_note_id = n.id)
                  AS line_tax,
                  (SELECT coalesce(sum(l.tax_minor), 0) FROM credit_note_lines l
                    WHERE l.credit_note_id = n.id AND l.tax_inclusive IS NOT TRUE) AS added_tax
           FROM credit_notes n ORDER BY n.id""",
    )
    credited: dict[int, int] = {}
    for n in notes:
        credited[n.invoice_id] = credited.get(n.invoice_id, 0) + n.total_minor
        audit.check(
            n.lines == n.subtotal_minor and n.line_tax == n.tax_minor and n.total_minor == n.lines + n.added_tax,
            f"credit note {n.number}: lines {n.lines} + tax {n.line_tax} do not make its total {n.total_minor}",
        )
    for i in invoices:
        audit.check(
            i.credited_minor == credited.get(i.id, 0) <= i.total_minor,
            f"invoice {i.number} says {i.credited_minor} credited, its credit notes {credited.get(i.id, 0)}",
        )
    if whole:
        for problem in await numbering_gaps(engine):
            audit.check(False, problem)


async def numbering_gaps(engine: AsyncEngine) -> list[str]:
    """Each series' numbers are exactly 1..N, N being its counter: no gap, no duplicate."""
    problems: list[str] = []
    counters = await _rows(engine, "SELECT prefix, year, last_number FROM document_counters")
    for c in counters:
        series = f"{c.prefix}{c.year}-"
        numbers = [
            int(row.number[len(series) :])
            for row in await _rows(
                engine,
                "SELECT number FROM invoices WHERE number LIKE :p || '%' "
                "UNION ALL SELECT number FROM credit_notes WHERE number LIKE :p || '%'",
                p=series.replace("_", "\\_"),
            )
        ]
        if sorted(numbers) != list(range(1, c.last_number + 1)):
            missing = sorted(set(range(1, c.last_number + 1)) - set(numbers))
            problems.append(
                f"series {series}: counter at {c.last_number}, {len(numbers)} numbers, missing {missing[:10]}"
            )
    return problems


async def assert_ledger_ok(engine: AsyncEngine, **kwargs: Any) -> Audit:
    """:func:`audit_ledger`, failing with every problem found."""
    audit = await audit_ledger(engine, **kwargs)
    assert not audit.problems, "ledger audit:\n  " + "\n  ".join(audit.problems)
    return audit


async def successful_charges(engine: AsyncEngine, subscription_id: int) -> dict[tuple[int, bool], int]:
    """How many times the gateways took money for each (cycle, adjustment) of a subscription."""
    rows = await _rows(
        engine,
        _LEDGER_JOIN + " AND c.succeeded AND r.subscription_id = :sid",
        sid=subscription_id,
    )
    counts: dict[tuple[int, bool], int] = {}
    for row in rows:
        counts[(row.cycle, row.adjustment)] = counts.get((row.cycle, row.adjustment), 0) + 1
    return counts
