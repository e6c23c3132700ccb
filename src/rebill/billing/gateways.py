"""Payment gateways: the interface, the sandbox, and routing between named gateways.

The sandbox follows the well-known test card numbers and keeps its ledger in
its own table, written in its own transaction as a remote gateway would: a
crash of rebill between a charge and its commit leaves the charge on the
gateway's side, and a retry with the same idempotency key gets the first
answer back instead of a second charge.

Routing (seed 003): a FORCED gateway is the only one tried; with the
profile's "force last successful gateway" the subscription's last
successful gateway is; otherwise a PREFERRED gateway comes first, then the
default. The next gateway is tried only when the previous one could not
process the charge (``processing_error``-type answers, see
:data:`CASCADE_CODES`): a card that is declined is declined everywhere, and
trying it on a second gateway would only add a second decline to the
customer's statement.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from rebill.config import GatewayConfig
from rebill.db import tables as t
from rebill.domain.money import Money
from rebill.domain.subscription import GatewayMode, SubscriptionState

LEDGER = t.table_of(t.SandboxCharge)

# Test cards (as the major gateways' test modes use them).
DECLINES = {
    "4000000000000002": "card_declined",
    "4000000000009995": "insufficient_funds",
    "4000000000000069": "expired_card",
    "4000000000000119": "processing_error",
}
SUCCEEDS = {"4242424242424242", "5555555555554444", "378282246310005", "4000056655665556"}
#: Ledger connections one sandbox gateway opens at once.
LEDGER_CONNECTIONS = 8

#: The gateway charges the card, then its answer is lost on the way back (a timeout).
TIMES_OUT = {"4000000000000259"}


class GatewayTimeout(TimeoutError):
    """The gateway did not answer in time: whether it charged is for recovery to ask."""


#: Answers that say the gateway could not process the charge (not that the
#: card was refused): the charge moves on to the next routed gateway.
CASCADE_CODES = frozenset({"processing_error", "gateway_unavailable", "rate_limited"})


@dataclass(frozen=True, slots=True)
class GatewayResult:
    succeeded: bool
    reference: str
    decline_code: str | None = None

    @property
    def cascades(self) -> bool:
        """Whether the next routed gateway should be tried after this answer."""
        return not self.succeeded and self.decline_code in CASCADE_CODES


@dataclass(frozen=True, slots=True)
class ChargeRequest:
    """One charge of a batch; ``idempotency_key`` makes a repeated request return the first answer."""

    token: str | None
    amount: Money
    idempotency_key: str


class Gateway(Protocol):
    name: str

    async def charge(self, token: str | None, amount: Money, idempotency_key: str) -> GatewayResult: ...

    async def refund(self, reference: str | None, amount: Money, idempotency_key: str) -> GatewayResult: ...

    async def retrieve(self, idempotency_key: str) -> GatewayResult | None:
        """What the gateway did with a charge key, or None when it never received it."""
        ...


class BatchGateway(Gateway, Protocol):
    """A gateway that takes many charges in one call (the sandbox; batch APIs of real gateways)."""

    async def charge_many(self, requests: Sequence[ChargeRequest]) -> list[GatewayResult]: ...


async def charge_many(
    gateway: Gateway, requests: Sequence[ChargeRequest], *, concurrency: int = 16
) -> list[GatewayResult]:
    """Charge a batch, in request order: in one call when the gateway can, else a few at a time."""
    if not requests:
        return []
    batch = getattr(gateway, "charge_many", None)
    if batch is not None:
        results: list[GatewayResult] = await batch(requests)
        return results
    limit = asyncio.Semaphore(concurrency)

    async def one(request: ChargeRequest) -> GatewayResult:
        async with limit:
            return await gateway.charge(request.token, request.amount, request.idempotency_key)

    return list(await asyncio.gather(*(one(r) for r in requests)))


def card_brand(number: str) -> str:
    if number.startswith("4"):
        return "visa"
    if number[:2] in {"51", "52", "53", "54", "55"}:
        return "mastercard"
    if number[:2] in {"34", "37"}:
        return "amex"
    return "card"


class SandboxGateway:
    """A gateway that never leaves this machine, driven by test card numbers."""

    def __init__(self, name: str, engine: AsyncEngine, *, latency_ms: int = 0) -> None:
        self.name = name
        # The ledger is the gateway's own system: it never waits for one of rebill's pooled
        # connections (a charging request holds one while it calls the gateway), and never
        # shares a transaction with rebill. A few connections of its own at a time, kept open between
        # requests (a connection per batch of charges cost the worker more than the charges' statements)
        # and checked before use, as a client keeps its connections to a gateway alive.
        self.engine = create_async_engine(engine.url, pool_size=LEDGER_CONNECTIONS, max_overflow=0, pool_pre_ping=True)
        self._slots = asyncio.Semaphore(LEDGER_CONNECTIONS)
        self.latency = max(latency_ms, 0) / 1000

    async def close(self) -> None:
        """Close the ledger's connections (the process's services are closing)."""
        await self.engine.dispose()

    async def _answer(self, tokens: Sequence[str | None]) -> None:
        """The way back from the gateway, after the charges are on its ledger."""
        if self.latency:
            await asyncio.sleep(self.latency)
        if any(token in TIMES_OUT for token in tokens):
            raise GatewayTimeout(f"gateway {self.name} did not answer in time")

    def _decide(self, token: str | None) -> tuple[bool, str | None]:
        if token is None:
            return False, "no_payment_method"
        if token in DECLINES:
            return False, DECLINES[token]
        if token in SUCCEEDS or token in TIMES_OUT or token.startswith("tok_"):
            return True, None
        return False, "invalid_number"

    async def _record(
        self, kind: str, token: str | None, amount: Money, key: str, ok: bool, code: str | None
    ) -> GatewayResult:
        reference = f"sb_{kind[:2].lower()}_{secrets.token_hex(8)}"
        async with self._slots, self.engine.begin() as conn:
            await conn.execute(
                insert(LEDGER)
                .values(
                    gateway=self.name,
                    idempotency_key=key,
                    kind=kind,
                    token=token,
                    amount_minor=amount.minor,
                    currency=amount.currency,
                    succeeded=ok,
                    decline_code=code,
                    reference=reference,
                )
                .on_conflict_do_nothing(index_elements=["gateway", "idempotency_key", "kind"])
            )
            row = (
                await conn.execute(
                    select(LEDGER.c.succeeded, LEDGER.c.decline_code, LEDGER.c.reference).where(
                        LEDGER.c.gateway == self.name, LEDGER.c.idempotency_key == key, LEDGER.c.kind == kind
                    )
                )
            ).one()
        return GatewayResult(row.succeeded, row.reference, row.decline_code)

    async def charge(self, token: str | None, amount: Money, idempotency_key: str) -> GatewayResult:
        ok, code = self._decide(token)
        result = await self._record("CHARGE", token, amount, idempotency_key, ok, code)
        await self._answer([token])
        return result

    async def charge_many(self, requests: Sequence[ChargeRequest]) -> list[GatewayResult]:
        """The batch form of :meth:`charge`: one ledger transaction, the same per-key answers."""
        if not requests:
            return []
        # Each key once (a statement cannot answer one row twice); a repeated key gets the same answer.
        unique = list({r.idempotency_key: r for r in reversed(requests)}.values())[::-1]
        decisions = [self._decide(r.token) for r in unique]
        keys = [r.idempotency_key for r in requests]
        async with self._slots, self.engine.begin() as conn:
            rows = await conn.execute(
                _BATCH_CHARGE,
                {
                    "gateway": self.name,
                    "keys": [r.idempotency_key for r in unique],
                    "tokens": [r.token for r in unique],
                    "amounts": [r.amount.minor for r in unique],
                    "currencies": [r.amount.currency for r in unique],
                    "oks": [ok for ok, _ in decisions],
                    "codes": [code for _, code in decisions],
                    "refs": [f"sb_ch_{secrets.token_hex(8)}" for _ in unique],
                },
            )
            answers = {
                row.idempotency_key: GatewayResult(row.succeeded, row.reference, row.decline_code) for row in rows
            }
        await self._answer([r.token for r in requests])
        return [answers[key] for key in keys]

    async def refund(self, reference: str | None, amount: Money, idempotency_key: str) -> GatewayResult:
        return await self._record("REFUND", reference, amount, idempotency_key, True, None)

    async def retrieve(self, idempotency_key: str) -> GatewayResult | None:
        async with self._slots, self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(LEDGER.c.succeeded, LEDGER.c.decline_code, LEDGER.c.reference).where(
                        LEDGER.c.gateway == self.name,
                        LEDGER.c.idempotency_key == idempotency_key,
                        LEDGER.c.kind == "CHARGE",
                    )
                )
            ).first()
        return GatewayResult(row.succeeded, row.reference, row.decline_code) if row is not None else None


# One statement answers the batch: a key seen before keeps its first answer (the no-op update makes the
# stored row come back), whatever the planner thinks of the ledger's size.
_BATCH_CHARGE = text(
    """
    INSERT INTO sandbox_charges
        (gateway, idempotency_key, kind, token, amount_minor, currency, succeeded, decline_code, reference)
    SELECT :gateway, u.key, 'CHARGE', u.token, u.amount, u.currency, u.ok, u.code, u.ref
    FROM unnest(
        CAST(:keys AS text[]), CAST(:tokens AS text[]), CAST(:amounts AS bigint[]),
        CAST(:currencies AS text[]), CAST(:oks AS boolean[]), CAST(:codes AS text[]), CAST(:refs AS text[])
    ) AS u(key, token, amount, currency, ok, code, ref)
    ON CONFLICT (gateway, idempotency_key, kind) DO UPDATE SET kind = EXCLUDED.kind
    RETURNING idempotency_key, succeeded, decline_code, reference
    """
)


class UnknownGateway(LookupError):
    pass


class GatewayRegistry:
    """The configured gateways, and which one a subscription's charge goes to."""

    def __init__(self, configs: Iterable[GatewayConfig], default: str, engine: AsyncEngine) -> None:
        self.gateways: dict[str, Gateway] = {}
        for cfg in configs:
            if cfg.kind != "sandbox":
                raise ValueError(f"gateway {cfg.name}: unknown kind {cfg.kind!r} (only 'sandbox' is built in)")
            self.gateways[cfg.name] = SandboxGateway(cfg.name, engine, latency_ms=cfg.latency_ms)
        if default not in self.gateways:
            raise ValueError(f"default gateway {default!r} is not configured")
        self.default = default

    async def close(self) -> None:
        """Close every gateway's connections."""
        for gateway in self.gateways.values():
            close = getattr(gateway, "close", None)
            if close is not None:
                await close()

    @property
    def names(self) -> list[str]:
        return list(self.gateways)

    def get(self, name: str) -> Gateway:
        try:
            return self.gateways[name]
        except KeyError:
            raise UnknownGateway(name) from None

    def route(self, state: SubscriptionState) -> list[str]:
        """Gateways to try, in order (seed 003).

        A forced gateway is the only one. Otherwise a preferred gateway comes
        first; then, with the profile's "force last successful gateway", the
        last gateway that took a payment of this subscription; then the
        default. (The subscription's own preference wins over the profile's
        setting, which replaces the default order.)
        """
        if state.gateway_mode is GatewayMode.FORCED and state.gateway_id in self.gateways:
            assert state.gateway_id is not None
            return [state.gateway_id]
        order: list[str] = []
        if state.gateway_mode is GatewayMode.PREFERRED and state.gateway_id in self.gateways:
            assert state.gateway_id is not None
            order.append(state.gateway_id)
        if state.profile.force_last_gateway and state.last_gateway_id in self.gateways:
            assert state.last_gateway_id is not None
            order.append(state.last_gateway_id)
        order.append(self.default)
        return list(dict.fromkeys(order))
