"""Recording renewals and moving money through the gateways."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from rebill.billing.gateways import GatewayRegistry, GatewayResult
from rebill.db import tables as t
from rebill.db.repositories import renewal_from_row
from rebill.domain.money import Money
from rebill.domain.renewal import Charge, Refund, RenewalInfo, RenewalStatus
from rebill.domain.subscription import SubscriptionState

R = t.table_of(t.Renewal)
TX = t.table_of(t.Transaction)


@dataclass
class Attempt:
    gateway: str | None
    result: GatewayResult


@dataclass
class ChargeOutcome:
    """The answer of the gateways for one charge: the attempts made and whether one succeeded."""

    attempts: list[Attempt] = field(default_factory=list)
    collected_outside: bool = False

    @property
    def succeeded(self) -> bool:
        return self.collected_outside or any(a.result.succeeded for a in self.attempts)

    @property
    def gateway(self) -> str | None:
        for a in self.attempts:
            if a.result.succeeded:
                return a.gateway
        return None

    @property
    def decline_code(self) -> str | None:
        failed = [a.result.decline_code for a in self.attempts if not a.result.succeeded]
        return failed[-1] if failed else None


async def record_renewal(
    session: AsyncSession,
    state: SubscriptionState,
    charge_: Charge,
    outcome: ChargeOutcome,
    key: str,
    now: datetime,
) -> RenewalInfo:
    """Insert (or, for a retry, update) the renewal and one transaction per attempt."""
    assert state.id is not None
    status = RenewalStatus.PAID if outcome.succeeded else RenewalStatus.FAILED
    pm = state.payment_method
    values: dict[str, Any] = {
        "status": status.value,
        "gateway_id": outcome.gateway,
        "payment_method_id": pm.id if pm else None,
        "payment_kind": pm.kind.value if pm else None,
        "paid_at": now if outcome.succeeded else None,
        "updated_at": now,
    }
    if charge_.renewal_id is None:
        row = (
            await session.execute(
                insert(R)
                .values(
                    subscription_id=state.id,
                    cycle=charge_.cycle,
                    kind=charge_.kind.value,
                    adjustment=charge_.adjustment,
                    period_start=charge_.period_start,
                    period_end=charge_.period_end,
                    amount_minor=charge_.amount.minor,
                    currency=charge_.amount.currency,
                    attempts=len(outcome.attempts) and 1,
                    fulfillment=charge_.fulfillment.value,
                    idempotency_key=key,
                    created_at=now,
                    **values,
                )
                .returning(R)
            )
        ).one()
    else:
        row = (
            await session.execute(
                update(R)
                .where(R.c.id == charge_.renewal_id)
                .values(
                    attempts=R.c.attempts + 1,
                    next_retry_date=None if outcome.succeeded else R.c.next_retry_date,
                    **values,
                )
                .returning(R)
            )
        ).one()
    await record_attempts(session, row.id, state.id, charge_.amount, outcome, now)
    return renewal_from_row(row)


async def record_attempts(
    session: AsyncSession, renewal_id: int, subscription_id: int, amount: Money, outcome: ChargeOutcome, now: datetime
) -> None:
    rows = [
        {
            "renewal_id": renewal_id,
            "subscription_id": subscription_id,
            "kind": "CHARGE" if amount.minor >= 0 else "CREDIT",
            "gateway_id": a.gateway,
            "amount_minor": amount.minor,
            "currency": amount.currency,
            "status": "SUCCEEDED" if a.result.succeeded else "FAILED",
            "decline_code": a.result.decline_code,
            "gateway_reference": a.result.reference,
            "created_at": now,
        }
        for a in outcome.attempts
    ]
    if outcome.collected_outside:
        rows.append(
            {
                "renewal_id": renewal_id,
                "subscription_id": subscription_id,
                "kind": "CHARGE" if amount.minor >= 0 else "CREDIT",
                "gateway_id": None,
                "amount_minor": amount.minor,
                "currency": amount.currency,
                "status": "SUCCEEDED",
                "decline_code": None,
                "gateway_reference": None,
                "created_at": now,
            }
        )
    if rows:
        await session.execute(insert(TX), rows)


async def refund(
    session: AsyncSession, gateways: GatewayRegistry, refund_: Refund, now: datetime, *, dry_run: bool = False
) -> tuple[RenewalInfo, dict[str, Any]]:
    """Send a refund to the gateway that took the payment, and record it."""
    renewal = refund_.renewal
    assert renewal.gateway_id is not None
    reference = (
        await session.execute(
            select(TX.c.gateway_reference)
            .where(TX.c.renewal_id == renewal.id, TX.c.kind == "CHARGE", TX.c.status == "SUCCEEDED")
            .order_by(TX.c.id.desc())
            .limit(1)
        )
    ).scalar()
    # Deterministic: the renewal's n-th refund (by what was refunded before it). A request
    # resent after its transaction was lost sends the same key, and the gateway answers
    # it with the refund it already made instead of refunding again.
    key = f"rfd_{renewal.id}_{renewal.refunded.minor}"
    if dry_run:  # what-if: the gateway is never called
        result = GatewayResult(True, "dry-run")
    else:
        result = await gateways.get(renewal.gateway_id).refund(reference, refund_.amount, key)
    tx = (
        await session.execute(
            insert(TX)
            .values(
                renewal_id=renewal.id,
                subscription_id=renewal.subscription_id,
                kind="REFUND",
                gateway_id=renewal.gateway_id,
                amount_minor=refund_.amount.minor,
                currency=refund_.amount.currency,
                status="SUCCEEDED" if result.succeeded else "FAILED",
                decline_code=result.decline_code,
                gateway_reference=result.reference,
                created_at=now,
            )
            .returning(TX.c.id)
        )
    ).scalar_one()
    row = (
        await session.execute(
            update(R)
            .where(R.c.id == renewal.id)
            .values(
                refunded_minor=R.c.refunded_minor + refund_.amount.minor,
                status=refund_.new_status.value,
                updated_at=now,
            )
            .returning(R)
        )
    ).one()
    return renewal_from_row(row), {
        "id": tx,
        "renewalId": renewal.id,
        "amount": refund_.amount,
        "gatewayReference": result.reference,
    }
