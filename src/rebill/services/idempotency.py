"""Idempotency keys: a retried request gets the first response, and acts once.

The key is claimed with ``INSERT … ON CONFLICT DO NOTHING`` in the same
transaction as the change. Concurrent requests with one key wait on the
unique index until the first commits, then find its stored response: fifty
identical requests act once.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from rebill.db import tables as t
from rebill.domain.errors import RebillError
from rebill.domain.money import Money
from rebill.domain.renewal import FulfillmentStatus, RenewalInfo, RenewalKind, RenewalStatus
from rebill.domain.subscription import PaymentKind, state_from_json, state_to_json
from rebill.services.runtime import Actor, Result

IR = t.table_of(t.IdempotencyRecord)
RETENTION = timedelta(hours=48)


def fingerprint(operation: str, request: Any) -> str:
    """A stable hash of a request's input (the idempotency key itself excluded)."""
    body = json.dumps({"op": operation, "input": request}, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


class KeyReused(RebillError):
    code = "IDEMPOTENCY_KEY_REUSED"


async def claim(
    session: AsyncSession, actor: Actor, key: str, operation: str, request_hash: str, now: datetime
) -> tuple[int | None, Result | None]:
    """Claim ``key`` for this request: (record id, None), or (None, the first response)."""
    if not key or len(key) > 255:
        raise RebillError("idempotencyKey must be 1 to 255 characters", code="INVALID_INPUT", field=["idempotencyKey"])
    owner = actor.api_key_id or 0
    await session.execute(delete(IR).where(IR.c.api_key_id == owner, IR.c.key == key, IR.c.expires_at < now))
    record_id = (
        await session.execute(
            insert(IR)
            .values(
                api_key_id=owner,
                key=key,
                operation=operation,
                request_hash=request_hash,
                created_at=now,
                expires_at=now + RETENTION,
            )
            .on_conflict_do_nothing(index_elements=["api_key_id", "key"])
            .returning(IR.c.id)
        )
    ).scalar()
    if record_id is not None:
        return record_id, None
    row = (
        await session.execute(
            select(IR.c.operation, IR.c.request_hash, IR.c.response).where(IR.c.api_key_id == owner, IR.c.key == key)
        )
    ).one()
    if row.operation != operation or row.request_hash != request_hash:
        raise KeyReused(
            f"idempotency key {key!r} was already used for a different request ({row.operation}); "
            "use a new key for a new request",
            field=["idempotencyKey"],
        )
    replay = result_from_json(row.response or {})
    replay.replayed = True
    return None, replay


async def store(session: AsyncSession, record_id: int, result: Result) -> None:
    await session.execute(update(IR).where(IR.c.id == record_id).values(response=result_to_json(result)))


async def store_by_key(session: AsyncSession, actor: Actor, key: str, result: Result) -> None:
    """Complete a record whose charges were settled after it was first stored."""
    owner = actor.api_key_id or 0
    await session.execute(
        update(IR).where(IR.c.api_key_id == owner, IR.c.key == key).values(response=result_to_json(result))
    )


async def purge_expired(session: AsyncSession, now: datetime) -> int:
    res = await session.execute(delete(IR).where(IR.c.expires_at < now))
    return int(res.rowcount or 0)  # type: ignore[attr-defined]


# -- results as JSON ---------------------------------------------------------


def renewal_to_json(r: RenewalInfo) -> dict[str, Any]:
    return {
        "id": r.id,
        "subscriptionId": r.subscription_id,
        "cycle": r.cycle,
        "kind": r.kind.value,
        "status": r.status.value,
        "periodStart": r.period_start.isoformat(),
        "periodEnd": r.period_end.isoformat(),
        "amount": [r.amount.minor, r.amount.currency],
        "refunded": [r.refunded.minor, r.refunded.currency],
        "attempts": r.attempts,
        "nextRetryDate": r.next_retry_date.isoformat() if r.next_retry_date else None,
        "fulfillment": r.fulfillment.value,
        "gatewayId": r.gateway_id,
        "paymentKind": r.payment_kind.value if r.payment_kind else None,
        "adjustment": r.adjustment,
        "createdAt": r.created_at.isoformat() if r.created_at else None,
    }


def renewal_from_json(d: dict[str, Any]) -> RenewalInfo:
    return RenewalInfo(
        id=d["id"],
        subscription_id=d["subscriptionId"],
        cycle=d["cycle"],
        kind=RenewalKind(d["kind"]),
        status=RenewalStatus(d["status"]),
        period_start=date.fromisoformat(d["periodStart"]),
        period_end=date.fromisoformat(d["periodEnd"]),
        amount=Money(*d["amount"]),
        refunded=Money(*d["refunded"]),
        attempts=d["attempts"],
        next_retry_date=date.fromisoformat(d["nextRetryDate"]) if d["nextRetryDate"] else None,
        fulfillment=FulfillmentStatus(d["fulfillment"]),
        gateway_id=d["gatewayId"],
        payment_kind=PaymentKind(d["paymentKind"]) if d["paymentKind"] else None,
        adjustment=d["adjustment"],
        created_at=datetime.fromisoformat(d["createdAt"]) if d["createdAt"] else None,
    )


def result_to_json(result: Result) -> dict[str, Any]:
    refund = None
    if result.refund is not None:
        refund = {**result.refund, "amount": [result.refund["amount"].minor, result.refund["amount"].currency]}
    return {
        "subscription": state_to_json(result.subscription) if result.subscription else None,
        "renewal": renewal_to_json(result.renewal) if result.renewal else None,
        "replaced": state_to_json(result.replaced) if result.replaced else None,
        "refund": refund,
        "errors": [
            {"code": e.code, "message": e.message, "field": e.field, "details": _plain(e.details)}
            for e in result.errors
        ],
        "extra": {k: v for k, v in result.extra.items() if isinstance(v, str | int | float | bool | type(None))},
        "pending": list(result.pending),
    }


def _plain(details: Any) -> dict[str, Any]:
    if not isinstance(details, dict):
        return {}
    return {k: v for k, v in details.items() if isinstance(v, str | int | float | bool | type(None))}


def result_from_json(d: dict[str, Any]) -> Result:
    refund = d.get("refund")
    if refund is not None:
        refund = {**refund, "amount": Money(*refund["amount"])}
    return Result(
        subscription=state_from_json(d["subscription"]) if d.get("subscription") else None,
        renewal=renewal_from_json(d["renewal"]) if d.get("renewal") else None,
        replaced=state_from_json(d["replaced"]) if d.get("replaced") else None,
        refund=refund,
        errors=[
            RebillError(e["message"], code=e["code"], field=e["field"], details=e.get("details") or {})
            for e in d.get("errors", [])
        ],
        extra=dict(d.get("extra") or {}),
        pending=[int(i) for i in d.get("pending") or []],
    )
