"""The decline matrix: every way rebill charges, by what the gateway answers, by what follows.

Each row of :data:`MATRIX` drives one path through the public API on a fresh
database: the set-up, the operation that charges (a mutation, or the renewal
worker), the sandbox's answer (decided by the test card the customer uses),
then a follow-up (a retry, a new default card, the worker over the next three
cycles, or, after a timeout, recovery). After the charge and after the
follow-up the shared ledger audit (:mod:`tests.ledger`) runs, with the
expectations of DOMAIN.md "Charges that fail" and "Payment methods".

The matrix covers every operation with every outcome at least once; the
follow-ups rotate over the declines so that each operation meets each of them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from tests.ledger import assert_ledger_ok
from tests.support import add_card, error_codes, get_subscription, gql, make_world, mutate, ok, subscribe

OUTCOMES = {
    "success": "4242424242424242",
    "card_declined": "4000000000000002",
    "insufficient_funds": "4000000000009995",
    "processing_error": "4000000000000119",  # cascades: both gateways answer processing_error
    "timeout": "4000000000000259",  # charged, then the answer is lost
}
DECLINES = ("card_declined", "insufficient_funds", "processing_error")
FRESH_CARD = "5555555555554444"  # the card that fixes things in the follow-ups

RENEWAL = "id cycle kind status attempts adjustment nextRetryDate periodStart periodEnd amount { amount }"
RENEWALS = f"""query($id: ID!) {{ renewals(subscriptionId: $id, first: 100) {{ edges {{ node {{
    {RENEWAL} transactions {{ gatewayId status declineCode }} }} }} }} }}"""
PAYLOAD = f"subscription {{ id status nextRenewalDate }} renewal {{ {RENEWAL} }}"
ACTIVATE = "subscription { id status nextRenewalDate }"
NOTICES = """query($id: ID!) { notifications(subscriptionId: $id, kind: [RENEWAL_RECEIPT, PAYMENT_DECLINED], first: 100) {
    edges { node { kind payload } } } }"""


def at(day: date | str) -> datetime:
    return datetime.fromisoformat(str(day)).replace(hour=9, tzinfo=UTC)


@dataclass
class Path:
    """One row of the matrix being driven: the collaborators and what happened so far."""

    client: Any
    clock: Any
    services: Any
    engine: Any
    outcome: str
    world: Any = None
    sub_id: str = ""
    payload: dict[str, Any] | None = None
    # How to send the charging mutation again with the same idempotency key (None: the worker charged).
    resend: Callable[[], Awaitable[dict[str, Any]]] | None = None
    # The next renewal date once the charge is paid.
    next_date: str = ""
    adjustment: bool = False
    # The charged renewal's period and amount.
    period: tuple[str, str] = ("2026-02-15", "2026-03-15")
    amount: str = "62.96"
    # When a declined charge is retried next: five days after a first decline; a retry by hand keeps the schedule.
    retry_date: str | None = None
    pinned: bool = False
    cascade: bool = False
    # Expected userError codes of the charging mutation per outcome kind (None: not a mutation).
    declined_codes: list[str] | None = field(default_factory=lambda: ["PAYMENT_DECLINED"])
    worker_day: date | None = None
    payloads: list[dict[str, Any]] = field(default_factory=list)

    @property
    def card(self) -> str:
        return OUTCOMES[self.outcome]

    @property
    def today(self) -> date:
        return self.clock.now().date()

    def set_day(self, day: str | date) -> None:
        self.clock.set(at(day))
        self.worker_day = None

    async def call(self, name: str, data: dict[str, Any], selection: str = PAYLOAD) -> dict[str, Any]:
        payload = await mutate(self.client, name, data, selection)
        for error in payload["userErrors"]:
            assert "Internal error" not in error["message"], (name, payload)
        self.payloads.append(payload)
        return payload

    async def worker(self, day: str | date) -> Any:
        from rebill.billing.engine import RenewalEngine

        self.clock.set(at(day))
        report = await RenewalEngine(self.services).run_once()
        self.worker_day = date.fromisoformat(str(day))
        return report

    async def use_card(self, number: str) -> str:
        """A new default card: subscriptions that follow the default charge it from now on."""
        return await add_card(self.client, self.world.customer, number, default=True)

    async def renewals(self) -> list[dict[str, Any]]:
        data = await gql(self.client, RENEWALS, {"id": self.sub_id})
        return sorted(
            (e["node"] for e in data["renewals"]["edges"]),
            key=lambda r: (r["cycle"], r["adjustment"], r["periodStart"]),
        )

    async def charged(self) -> dict[str, Any]:
        """The renewal the operation charged: the newest one."""
        data = await gql(self.client, RENEWALS, {"id": self.sub_id})
        nodes = [e["node"] for e in data["renewals"]["edges"]]
        assert nodes, "the operation recorded no renewal"
        return max(nodes, key=lambda r: (r["cycle"], r["adjustment"], r["periodStart"], r["attempts"]))

    async def subscription(self) -> dict[str, Any]:
        return await get_subscription(self.client, self.sub_id)

    async def audit(self) -> None:
        await assert_ledger_ok(self.engine, renewed_through=self.worker_day)
        await self.check_notices()

    async def check_notices(self) -> None:
        """Every paid charge gave the customer one receipt, every declined attempt one decline notice."""
        data = await gql(self.client, NOTICES, {"id": self.sub_id})
        notes = [e["node"] for e in data["notifications"]["edges"]]
        for renewal in await self.renewals():
            mine = [n["kind"] for n in notes if n["payload"].get("renewalId") == renewal["id"]]
            paid = renewal["status"] == "PAID"
            declined_attempts = renewal["attempts"] - 1 if paid else renewal["attempts"]
            if renewal["status"] in ("PENDING", "VOID"):
                continue
            expected = (["RENEWAL_RECEIPT"] if paid else []) + ["PAYMENT_DECLINED"] * declined_attempts
            assert sorted(mine) == sorted(expected), (renewal, mine)


# -- set-ups and the operations that charge ----------------------------------------------------------------------


async def prefer_second_gateway(p: Path) -> None:
    """The second gateway preferred, then the default: a processing error cascades over both."""
    ok(
        await p.call(
            "setGateway",
            {"subscriptionId": p.sub_id, "gatewayId": "sandbox-b", "mode": "PREFERRED"},
            "subscription { id }",
        )
    )
    p.cascade = True


async def started(p: Path, *, processing_gateways: bool = True) -> None:
    """A monthly subscription started Jan 15 (its INITIAL period paid); on Jan 20 the customer's card is the outcome's."""
    p.sub_id = (await subscribe(p.client, p.world))["subscription"]["id"]
    p.set_day("2026-01-20")
    await p.use_card(p.card)
    if processing_gateways and p.outcome == "processing_error":
        await prefer_second_gateway(p)


def keyed(p: Path, name: str, data: dict[str, Any], selection: str) -> Callable[[], Awaitable[dict[str, Any]]]:
    key = f"{name}-{p.outcome}"

    async def send() -> dict[str, Any]:
        return await p.call(name, {**data, "idempotencyKey": key}, selection)

    return send


async def fire(p: Path, name: str, data: dict[str, Any]) -> None:
    p.resend = keyed(p, name, data, ACTIVATE if name == "activateSubscription" else PAYLOAD)
    p.payload = await p.resend()


async def op_create(p: Path) -> None:
    p.set_day("2026-01-20")
    card = await p.use_card(p.card)
    data = {
        "customerId": p.world.customer,
        "profileId": p.world.profile,
        "items": [{"productId": p.world.product, "unitPrice": {"amount": "62.96", "currency": "USD"}}],
    }
    if p.outcome == "processing_error":
        data["paymentMethodId"] = card  # pinned, so the follow-ups know it does not follow the default
        p.pinned = True
    await fire(p, "createSubscription", data)
    assert p.payload is not None and p.payload["subscription"] is not None, p.payload
    p.sub_id = p.payload["subscription"]["id"]
    p.next_date, p.period = "2026-02-20", ("2026-01-20", "2026-02-20")
    p.declined_codes = []  # created, in dunning: not an error of the creation


async def op_update_item_prorated(p: Path) -> None:
    await started(p)
    item = (await p.subscription())["items"][0]["id"]
    data = {
        "subscriptionId": p.sub_id,
        "itemId": item,
        "quantity": 2,
        "effective": "IMMEDIATE",
        "proration": "PRORATED",
        "consentReference": "phone 2026-01-20",
    }
    await fire(p, "updateItem", data)
    p.next_date, p.adjustment = "2026-02-15", True
    p.period, p.amount = ("2026-01-20", "2026-02-15"), "52.81"  # 26 of 31 days of one more unit


async def op_add_item_full(p: Path) -> None:
    await started(p)
    data = {
        "subscriptionId": p.sub_id,
        "productId": p.world.other_product,
        "unitPrice": {"amount": "10.00", "currency": "USD"},
        "effective": "IMMEDIATE",
        "proration": "FULL",
        "consentReference": "web 2026-01-20",
    }
    await fire(p, "addItem", data)
    p.next_date, p.adjustment = "2026-02-15", True
    p.period, p.amount = ("2026-01-20", "2026-02-15"), "10.00"


async def op_renew_now_extend(p: Path) -> None:
    await started(p)
    await fire(p, "renewNow", {"subscriptionId": p.sub_id, "mode": "EXTEND"})
    p.next_date = "2026-03-15"


async def op_renew_now_restart(p: Path) -> None:
    await started(p)
    await fire(p, "renewNow", {"subscriptionId": p.sub_id, "mode": "RESTART"})
    p.next_date, p.period = "2026-02-20", ("2026-01-20", "2026-02-20")


async def op_force_bill(p: Path) -> None:
    await started(p)
    await fire(p, "forceBill", {"subscriptionId": p.sub_id})
    p.next_date, p.period = "2026-02-20", ("2026-01-20", "2026-02-20")


async def op_activate_overdue(p: Path) -> None:
    """Suspended on Jan 16, its Feb 15 renewal passes; activated on Feb 20 it renews at once (seed 003)."""
    p.sub_id = (await subscribe(p.client, p.world))["subscription"]["id"]
    p.set_day("2026-01-16")
    ok(await p.call("suspendSubscription", {"subscriptionId": p.sub_id}, "subscription { status }"))
    await p.worker("2026-02-15")
    p.set_day("2026-02-20")
    await p.use_card(p.card)
    if p.outcome == "processing_error":
        await prefer_second_gateway(p)
    await fire(p, "activateSubscription", {"subscriptionId": p.sub_id})
    p.next_date = "2026-03-15"


async def in_dunning(p: Path) -> dict[str, Any]:
    """The Feb 15 renewal declined by the worker (the customer's default card declines); the renewal."""
    await started(p, processing_gateways=False)
    await p.use_card(OUTCOMES["card_declined"])
    await p.worker("2026-02-15")
    failed = await p.charged()
    assert (failed["cycle"], failed["status"]) == (2, "FAILED"), failed
    p.set_day("2026-02-17")
    if p.outcome == "processing_error":
        await prefer_second_gateway(p)
    return failed


async def op_retry_renewal(p: Path) -> None:
    failed = await in_dunning(p)
    card = await add_card(p.client, p.world.customer, p.card, default=False)
    ok(await p.call("setPaymentMethod", {"subscriptionId": p.sub_id, "paymentMethodId": card}, "subscription { id }"))
    p.pinned = True
    await fire(p, "retryRenewal", {"renewalId": failed["id"]})
    p.next_date, p.retry_date = "2026-03-15", failed["nextRetryDate"]


async def op_new_default_card(p: Path) -> None:
    """addPaymentMethod(makeDefault: true) retries the renewal in dunning at once, with the new card."""
    failed = await in_dunning(p)
    p.retry_date = failed["nextRetryDate"]
    p.payload = await p.call(
        "addPaymentMethod",
        {"customerId": p.world.customer, "kind": "CARD", "gatewayToken": p.card, "makeDefault": True},
        "paymentMethod { id }",
    )
    p.next_date = "2026-03-15"
    p.declined_codes = None  # the card is saved either way


async def op_change_product(p: Path) -> None:
    """A product change starts a replacement that charges nothing now; the worker charges its first renewal."""
    await started(p)
    item = (await p.subscription())["items"][0]["id"]
    replaced = ok(
        await p.call(
            "changeProduct",
            {"subscriptionId": p.sub_id, "itemId": item, "productId": p.world.other_product, "consentReference": "ok"},
            "subscription { id status nextRenewalDate } replaced { id status }",
        )
    )
    assert replaced["replaced"]["status"] == "CANCELLED"
    p.sub_id = replaced["subscription"]["id"]
    if p.outcome == "processing_error":
        await prefer_second_gateway(p)
    await p.worker("2026-02-15")
    p.next_date, p.declined_codes = "2026-03-15", None
    p.amount = "62.96"


async def op_phase(p: Path) -> None:
    """A price rise scheduled as a phase for the next renewal: the worker applies it and charges the new price."""
    await started(p)
    item = (await p.subscription())["items"][0]["id"]
    ok(
        await p.call(
            "updateSubscription",
            {
                "subscriptionId": p.sub_id,
                "effectiveDate": "2026-02-15",
                "items": [{"itemId": item, "unitPrice": {"amount": "70.00", "currency": "USD"}}],
                "consentReference": "letter 2026-01-20",
            },
            "phase { id }",
        )
    )
    await p.worker("2026-02-15")
    p.next_date, p.declined_codes, p.amount = "2026-03-15", None, "70.00"


async def op_worker(p: Path) -> None:
    await started(p)
    await p.worker("2026-02-15")
    p.next_date, p.declined_codes = "2026-03-15", None


OPERATIONS: dict[str, Callable[[Path], Awaitable[None]]] = {
    "createSubscription": op_create,
    "updateItem:PRORATED": op_update_item_prorated,
    "addItem:FULL": op_add_item_full,
    "renewNow:EXTEND": op_renew_now_extend,
    "renewNow:RESTART": op_renew_now_restart,
    "forceBill": op_force_bill,
    "activateSubscription": op_activate_overdue,
    "retryRenewal": op_retry_renewal,
    "addPaymentMethod:makeDefault": op_new_default_card,
    "changeProduct+worker": op_change_product,
    "phase+worker": op_phase,
    "worker": op_worker,
}


# -- what the charge must have done ---------------------------------------------------------------------------------


async def check_charge(p: Path) -> dict[str, Any]:
    """The charge as DOMAIN.md says, per outcome; the charged renewal."""
    codes = error_codes(p.payload) if p.payload is not None else []
    renewal = await p.charged()
    sub = await p.subscription()
    assert renewal["adjustment"] is p.adjustment, renewal
    assert (renewal["periodStart"], renewal["periodEnd"], renewal["amount"]["amount"]) == (*p.period, p.amount), renewal
    if p.outcome == "success":
        assert codes == [], p.payload
        assert renewal["status"] == "PAID", renewal
        assert (sub["status"], sub["overdueCount"]) == ("ACTIVE", 0), sub
        assert sub["nextRenewalDate"] == p.next_date, sub
    elif p.outcome in DECLINES:
        if p.declined_codes is not None:
            assert codes == p.declined_codes, p.payload
        assert renewal["status"] == "FAILED", renewal
        assert renewal["nextRetryDate"] == (p.retry_date or str(p.today + timedelta(days=5))), renewal
        declined = [t for t in renewal["transactions"] if t["status"] == "FAILED"]
        assert declined and declined[-1]["declineCode"] == p.outcome, renewal
        assert not [t for t in renewal["transactions"] if t["status"] == "SUCCEEDED"], renewal
        if p.cascade:
            # The preferred gateway could not process it, so the default was tried too: both said so.
            assert [t["gatewayId"] for t in declined][-2:] == ["sandbox-b", "sandbox"], renewal
        assert sub["status"] == "OVERDUE", sub
        # As for a declined scheduled renewal, the schedule moves on while the payment is retried.
        assert sub["nextRenewalDate"] == p.next_date, sub
        assert sub["overdueCount"] >= 1, sub
    else:  # timeout: charged, the answer lost
        if p.declined_codes is not None:
            assert codes == ["PAYMENT_PENDING"], p.payload
            assert renewal["status"] == "PENDING", renewal  # until someone asks the gateway
        else:
            # The worker's own recovery, at the end of its run, asked the gateway.
            assert renewal["status"] in ("PENDING", "PAID"), renewal
    return renewal


# -- follow-ups ------------------------------------------------------------------------------------------------------


async def follow_retry(p: Path, renewal: dict[str, Any]) -> None:
    """retryRenewal with a working card pinned: the declined renewal is paid, the subscription is ACTIVE."""
    p.set_day(p.today + timedelta(days=1))
    fresh = await add_card(p.client, p.world.customer, FRESH_CARD, default=False)
    ok(await p.call("setPaymentMethod", {"subscriptionId": p.sub_id, "paymentMethodId": fresh}, "subscription { id }"))
    retried = await p.call("retryRenewal", {"renewalId": renewal["id"]})
    if p.outcome == "success":
        assert error_codes(retried) == ["INVALID_STATUS"], retried  # a paid renewal is not charged again
        return
    ok(retried)
    await expect_settled(p, renewal)


async def follow_new_default(p: Path, renewal: dict[str, Any]) -> None:
    """A new default card: a renewal in dunning that charges the default is retried at once with it."""
    p.set_day(p.today + timedelta(days=1))
    added = await p.call(
        "addPaymentMethod",
        {"customerId": p.world.customer, "kind": "CARD", "gatewayToken": FRESH_CARD, "makeDefault": True},
        "paymentMethod { id }",
    )
    ok(added)
    if p.outcome == "success":
        return
    if p.pinned:
        # A subscription pinned to a card (setPaymentMethod) does not follow the default.
        after = next(r for r in await p.renewals() if r["id"] == renewal["id"])
        assert (after["status"], after["attempts"]) == ("FAILED", renewal["attempts"]), after
        assert (await p.subscription())["status"] == "OVERDUE"
        return
    data = await gql(p.client, "query($id: ID!) { subscription(id: $id) { paymentMethod { id } } }", {"id": p.sub_id})
    assert data["subscription"]["paymentMethod"]["id"] == added["paymentMethod"]["id"]
    await expect_settled(p, renewal)


async def expect_settled(p: Path, renewal: dict[str, Any]) -> None:
    after = next(r for r in await p.renewals() if r["id"] == renewal["id"])
    assert (after["status"], after["attempts"], after["nextRetryDate"]) == ("PAID", renewal["attempts"] + 1, None)
    sub = await p.subscription()
    assert (sub["status"], sub["overdueCount"]) == ("ACTIVE", 0), sub
    assert sub["nextRenewalDate"] == p.next_date, sub


async def follow_worker(p: Path, renewal: dict[str, Any]) -> None:
    """The worker over the next three cycles (and the retry dates between them), the card unchanged."""
    cycles = 0
    day = p.today
    for _ in range(12):
        sub = await p.subscription()
        retries = [date.fromisoformat(r["nextRetryDate"]) for r in await p.renewals() if r["nextRetryDate"]]
        candidates = [d for d in retries if d > day]
        if sub["nextRenewalDate"]:
            candidates.append(date.fromisoformat(sub["nextRenewalDate"]))
        candidates = [d for d in candidates if d > day] or [day + timedelta(days=31)]
        day = min(candidates)
        if sub["nextRenewalDate"] and day == date.fromisoformat(sub["nextRenewalDate"]):
            cycles += 1
        await p.worker(day)
        if cycles >= 3:
            break
    final = await p.subscription()
    rows = await p.renewals()
    if p.outcome in ("success", "timeout"):
        assert final["status"] == "ACTIVE", final
        later = [r for r in rows if not r["adjustment"] and r["cycle"] > renewal["cycle"]]
        assert [r["status"] for r in later] == ["PAID"] * len(later), rows
        assert len(later) >= 3 - (1 if p.adjustment else 0), rows
    else:
        # Dunning ran its course (retries after 5 and 10 days), then the profile's final action: CANCEL.
        assert final["status"] == "CANCELLED", final
        assert final["nextRenewalDate"] is None
        assert not [r for r in rows if r["status"] == "PAID" and r["id"] != renewal["id"] and r["cycle"] > 1]


async def follow_recover(p: Path, renewal: dict[str, Any]) -> None:
    """After a timeout: the worker's recovery asks the gateway, which had taken the money: PAID, once."""
    await p.worker(p.today)
    after = next(r for r in await p.renewals() if r["id"] == renewal["id"])
    assert after["status"] == "PAID", after
    sub = await p.subscription()
    assert (sub["status"], sub["nextRenewalDate"]) == ("ACTIVE", p.next_date), sub


async def follow_resend(p: Path, renewal: dict[str, Any]) -> None:
    """After a timeout: the client sends the same request again with the same idempotency key."""
    assert p.resend is not None
    again = await p.resend()
    assert again["userErrors"] == [], again
    after = next(r for r in await p.renewals() if r["id"] == renewal["id"])
    assert after["status"] == "PAID", after
    if again.get("renewal"):
        assert again["renewal"]["id"] == renewal["id"]
    sub = await p.subscription()
    assert (sub["status"], sub["nextRenewalDate"]) == ("ACTIVE", p.next_date), sub


async def follow_none(p: Path, renewal: dict[str, Any]) -> None:
    return None


FOLLOW_UPS: dict[str, Callable[[Path, dict[str, Any]], Awaitable[None]]] = {
    "retry": follow_retry,
    "new_default": follow_new_default,
    "worker3": follow_worker,
    "recover": follow_recover,
    "resend": follow_resend,
    "none": follow_none,
}


def _matrix() -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []
    rotation = ("retry", "new_default", "worker3")
    for n, op in enumerate(OPERATIONS):
        mutation = "worker" not in op and op != "addPaymentMethod:makeDefault"
        rows.append((op, "success", "worker3" if n % 3 == 0 else "none"))
        for k, outcome in enumerate(DECLINES):
            rows.append((op, outcome, rotation[(n + k) % 3]))
        rows.append((op, "timeout", "resend" if mutation and n % 2 == 0 else "recover"))
    return rows


MATRIX = _matrix()


def _params() -> list[Any]:
    return [
        pytest.param(op, outcome, follow_up, id="|".join((op, outcome, follow_up))) for op, outcome, follow_up in MATRIX
    ]


@pytest.mark.parametrize(("operation", "outcome", "follow_up"), _params())
async def test_decline_matrix(client, clock, services, engine, operation, outcome, follow_up):
    p = Path(client, clock, services, engine, outcome)
    p.world = await make_world(client)
    await OPERATIONS[operation](p)
    if outcome == "timeout":
        # The money was taken but the answer lost: the renewal waits for recovery, never a second charge.
        renewal = await check_charge(p)
        await FOLLOW_UPS[follow_up](p, renewal)
        await p.audit()
        return
    renewal = await check_charge(p)
    await p.audit()
    await FOLLOW_UPS[follow_up](p, renewal)
    await p.audit()


def test_the_matrix_covers_every_operation_with_every_outcome_and_follow_up():
    pairs = {(op, outcome) for op, outcome, _ in MATRIX}
    assert pairs == {(op, outcome) for op in OPERATIONS for outcome in OUTCOMES}
    for op in OPERATIONS:
        assert {"retry", "new_default", "worker3"} <= {f for o, _, f in MATRIX if o == op}
    assert {f for _, _, f in MATRIX} == set(FOLLOW_UPS) - {"none"} | {"none"}
