"""Money moves exactly once: interrupted charges, cancelled subscriptions, new default cards."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text

from rebill.billing.engine import RenewalEngine
from rebill.services import charging
from tests.support import (
    add_card,
    error_codes,
    get_subscription,
    history,
    make_world,
    mutate,
    ok,
    subscribe,
)

DECLINED = "4000000000000002"
TIMES_OUT = "4000000000000259"


def at(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(hour=9, tzinfo=UTC)


async def rows(services: Any, sql: str, **params: Any) -> list[Any]:
    async with services.engine.connect() as conn:
        return list(await conn.execute(text(sql), params))


async def ledger(services: Any) -> list[Any]:
    return await rows(
        services, "SELECT idempotency_key, succeeded FROM sandbox_charges WHERE kind = 'CHARGE' ORDER BY id"
    )


async def renewal_statuses(services: Any, subscription: int = 1) -> list[tuple[int, str, str]]:
    found = await rows(
        services, "SELECT cycle, kind, status FROM renewals WHERE subscription_id = :s ORDER BY id", s=subscription
    )
    return [(r.cycle, r.kind, r.status) for r in found]


FORCE = "subscription { id status overdueCount nextRenewalDate } renewal { id cycle kind status }"


async def test_a_force_bill_whose_answer_is_lost_is_settled_by_the_retry_with_the_same_key(
    client, services, monkeypatch
):
    world = await make_world(client)
    sub = (await subscribe(client, world))["subscription"]
    real_settle = charging.settle_jobs

    async def crash(*args: Any, **kwargs: Any) -> Any:
        raise OSError("the server died between the gateway's answer and its commit")

    monkeypatch.setattr(charging, "settle_jobs", crash)
    first = await mutate(client, "forceBill", {"subscriptionId": sub["id"], "idempotencyKey": "fb-1"}, FORCE)
    assert error_codes(first) == ["PAYMENT_PENDING"]
    assert await renewal_statuses(services) == [(1, "INITIAL", "PAID"), (2, "FORCED", "PENDING")]
    assert [r.succeeded for r in await ledger(services)] == [True, True], "the gateway took the charge"

    monkeypatch.setattr(charging, "settle_jobs", real_settle)
    again = ok(await mutate(client, "forceBill", {"subscriptionId": sub["id"], "idempotencyKey": "fb-1"}, FORCE))
    assert again["renewal"]["status"] == "PAID"
    assert again["renewal"]["cycle"] == 2
    assert await renewal_statuses(services) == [(1, "INITIAL", "PAID"), (2, "FORCED", "PAID")]
    assert len(await ledger(services)) == 2, "settled by asking the gateway: charged once"
    third = ok(await mutate(client, "forceBill", {"subscriptionId": sub["id"], "idempotencyKey": "fb-1"}, FORCE))
    assert third["renewal"] == again["renewal"], "a later retry replays the settled answer"


async def test_a_gateway_timeout_leaves_the_charge_pending_and_recovery_finds_it_paid(client, services):
    world = await make_world(client)
    sub = (await subscribe(client, world))["subscription"]
    slow = await add_card(client, world.customer, TIMES_OUT, default=True)
    assert slow
    first = await mutate(client, "forceBill", {"subscriptionId": sub["id"]}, FORCE)
    assert error_codes(first) == ["PAYMENT_PENDING"]
    assert "never charged twice" in first["userErrors"][0]["message"]
    report = await RenewalEngine(services).run_once()
    assert report.recovered == 1
    assert await renewal_statuses(services) == [(1, "INITIAL", "PAID"), (2, "FORCED", "PAID")]
    assert len(await ledger(services)) == 2


async def test_cancelling_voids_a_renewal_a_dead_worker_never_sent_and_the_worker_never_charges_it(
    client, services, clock, monkeypatch
):
    world = await make_world(client)
    sub = (await subscribe(client, world))["subscription"]
    clock.set(at("2026-02-15"))
    dying = RenewalEngine(services)

    async def killed(*args: Any, **kwargs: Any) -> None:
        raise OSError("worker killed before it sent the charge")

    monkeypatch.setattr(charging, "charge_jobs", killed)
    await dying.run_once()
    monkeypatch.undo()
    assert await renewal_statuses(services) == [(1, "INITIAL", "PAID"), (2, "SCHEDULED", "PENDING")]

    cancelled = ok(await mutate(client, "cancelSubscription", {"subscriptionId": sub["id"]}, "subscription { status }"))
    assert cancelled["subscription"]["status"] == "CANCELLED"
    assert await renewal_statuses(services) == [(1, "INITIAL", "PAID"), (2, "SCHEDULED", "VOID")]
    await RenewalEngine(services).run_once()
    assert len(await ledger(services)) == 1, "only the first period was ever charged"
    [entry] = [h for h in await history(client, sub["id"]) if h["action"] == "renewal_voided"]
    assert "never sent" in entry["reason"]


async def test_cancelling_records_a_charge_the_gateway_took_before_the_worker_died(
    client, services, clock, monkeypatch
):
    world = await make_world(client)
    sub = (await subscribe(client, world))["subscription"]
    clock.set(at("2026-02-15"))
    dying = RenewalEngine(services)

    async def killed(*args: Any, **kwargs: Any) -> None:
        raise OSError("worker killed after the gateway charged")

    monkeypatch.setattr(dying, "_settle", killed)
    await dying.run_once()
    assert len(await ledger(services)) == 2
    ok(await mutate(client, "cancelSubscription", {"subscriptionId": sub["id"]}, "subscription { status }"))
    assert await renewal_statuses(services) == [(1, "INITIAL", "PAID"), (2, "SCHEDULED", "PAID")], (
        "money the gateway took is recorded, never lost"
    )
    final = await get_subscription(client, sub["id"])
    assert final["status"] == "CANCELLED"
    await RenewalEngine(services).run_once()
    assert len(await ledger(services)) == 2


async def test_suspending_also_voids_what_was_never_sent(client, services, clock, monkeypatch):
    world = await make_world(client)
    sub = (await subscribe(client, world))["subscription"]
    clock.set(at("2026-02-15"))

    async def killed(*args: Any, **kwargs: Any) -> None:
        raise OSError("killed")

    monkeypatch.setattr(charging, "charge_jobs", killed)
    await RenewalEngine(services).run_once()
    monkeypatch.undo()
    ok(await mutate(client, "suspendSubscription", {"subscriptionId": sub["id"]}, "subscription { status }"))
    assert await renewal_statuses(services) == [(1, "INITIAL", "PAID"), (2, "SCHEDULED", "VOID")]


async def test_a_new_default_card_reaches_the_subscriptions_and_retries_dunning_at_once(client, services, clock):
    world = await make_world(client)
    declining = await add_card(client, world.customer, DECLINED, default=True)
    sub = (await subscribe(client, world))["subscription"]
    assert sub["status"] == "OVERDUE", "the first charge on the declining default card failed"
    assert await renewal_statuses(services) == [(1, "INITIAL", "FAILED")]

    new_card = await add_card(client, world.customer, "5555555555554444", default=True)
    assert new_card != declining
    fixed = await get_subscription(client, sub["id"])
    assert (fixed["status"], fixed["overdueCount"]) == ("ACTIVE", 0)
    assert await renewal_statuses(services) == [(1, "INITIAL", "PAID")]
    data = await mutate(
        client, "forceBill", {"subscriptionId": sub["id"], "dryRun": True}, "subscription { paymentMethod { id } }"
    )
    assert data["subscription"]["paymentMethod"]["id"] == new_card, "the next charge uses the new default"
    followed = [h for h in await history(client, sub["id"]) if h["action"] == "payment_method_followed_default"]
    assert len(followed) == 1


async def test_a_pinned_payment_method_does_not_follow_the_default(client, services):
    world = await make_world(client)
    pinned = await add_card(client, world.customer, "5555555555554444", default=False)
    sub = (await subscribe(client, world, paymentMethodId=pinned))["subscription"]
    await add_card(client, world.customer, "378282246310005", default=True)
    data = await mutate(
        client, "forceBill", {"subscriptionId": sub["id"], "dryRun": True}, "subscription { paymentMethod { id } }"
    )
    assert data["subscription"]["paymentMethod"]["id"] == pinned


async def test_an_expired_card_is_refused_when_added(client):
    world = await make_world(client)
    payload = await mutate(
        client,
        "addPaymentMethod",
        {
            "customerId": world.customer,
            "kind": "CARD",
            "gatewayToken": "4242424242424242",
            "expMonth": 12,
            "expYear": 2025,
        },
        "paymentMethod { id }",
    )
    assert error_codes(payload) == ["PAYMENT_METHOD_EXPIRED"]


async def test_a_declined_force_bill_is_settled_by_the_next_one_and_the_worker_goes_on(client, services, clock):
    world = await make_world(client)
    sub = (await subscribe(client, world))["subscription"]
    await add_card(client, world.customer, DECLINED, default=True)
    declined = await mutate(client, "forceBill", {"subscriptionId": sub["id"]}, FORCE)
    assert error_codes(declined) == ["PAYMENT_DECLINED"]
    assert declined["subscription"]["status"] == "OVERDUE"
    again = await mutate(client, "forceBill", {"subscriptionId": sub["id"]}, FORCE)
    assert error_codes(again) == ["PAYMENT_DECLINED"], "a declined card declines again, and says so"
    assert again["renewal"]["cycle"] == 2, "the same cycle, not a new one"
    await add_card(client, world.customer, "4242424242424242", default=True)
    assert await renewal_statuses(services) == [(1, "INITIAL", "PAID"), (2, "FORCED", "PAID")]
    clock.set(at("2026-02-15"))
    await RenewalEngine(services).run_once()
    assert [(c, s) for c, _, s in await renewal_statuses(services)] == [(1, "PAID"), (2, "PAID"), (3, "PAID")]


async def test_a_second_force_bill_the_same_day_is_already_billed_unless_meant(client, services):
    world = await make_world(client)
    sub = (await subscribe(client, world))["subscription"]
    ok(await mutate(client, "forceBill", {"subscriptionId": sub["id"]}, FORCE))
    second = await mutate(client, "forceBill", {"subscriptionId": sub["id"]}, FORCE)
    assert error_codes(second) == ["ALREADY_BILLED"]
    assert second["userErrors"][0]["field"] == ["allowRepeat"]
    third = ok(await mutate(client, "forceBill", {"subscriptionId": sub["id"], "allowRepeat": True}, FORCE))
    assert third["renewal"]["cycle"] == 3
    assert len(await ledger(services)) == 3


async def test_recovery_finds_a_charge_on_the_gateway_it_was_sent_to_after_the_route_changed(client, services):
    world = await make_world(client)
    sub = (await subscribe(client, world))["subscription"]
    await add_card(client, world.customer, TIMES_OUT, default=True)
    first = await mutate(client, "forceBill", {"subscriptionId": sub["id"], "idempotencyKey": "fb-route"}, FORCE)
    assert error_codes(first) == ["PAYMENT_PENDING"]
    ok(
        await mutate(
            client,
            "setGateway",
            {"subscriptionId": sub["id"], "gatewayId": "sandbox-b", "mode": "FORCED"},
            "subscription { id }",
        )
    )
    again = ok(await mutate(client, "forceBill", {"subscriptionId": sub["id"], "idempotencyKey": "fb-route"}, FORCE))
    assert again["renewal"]["status"] == "PAID"
    keys = [r.idempotency_key for r in await ledger(services)]
    assert keys == ["rnw_1_1:sandbox", "rnw_1_2:sandbox"], "found where it was sent, never sent to sandbox-b"


async def test_retrying_by_hand_never_uses_up_the_dunning_schedule(client, services):
    world = await make_world(client)
    sub = (await subscribe(client, world))["subscription"]
    await add_card(client, world.customer, DECLINED, default=True)
    assert error_codes(await mutate(client, "forceBill", {"subscriptionId": sub["id"]}, FORCE)) == ["PAYMENT_DECLINED"]
    [failed] = await rows(services, "SELECT id, next_retry_date FROM renewals WHERE status = 'FAILED'")
    assert failed.next_retry_date is not None
    for _ in range(3):
        payload = await mutate(client, "forceBill", {"subscriptionId": sub["id"]}, FORCE)
        assert error_codes(payload) == ["PAYMENT_DECLINED"]
    after = await get_subscription(client, sub["id"])
    assert after["status"] == "OVERDUE", "still in dunning, never cancelled by retries made by hand"
    [still] = await rows(services, "SELECT next_retry_date FROM renewals WHERE id = :i", i=failed.id)
    assert still.next_retry_date == failed.next_retry_date, "the scheduled retry stays where it was"


async def test_a_declined_reinstatement_is_overdue_and_in_dunning(client, services, clock):
    world = await make_world(client)
    sub = (await subscribe(client, world, renewalType="MANUAL"))["subscription"]
    clock.set(at("2026-02-15"))
    await RenewalEngine(services).run_once()
    assert (await get_subscription(client, sub["id"]))["status"] == "AWAITING_REINSTATE"
    await add_card(client, world.customer, DECLINED, default=True)
    payload = await mutate(client, "renewNow", {"subscriptionId": sub["id"]}, FORCE)
    assert error_codes(payload) == ["PAYMENT_DECLINED"]
    after = await get_subscription(client, sub["id"])
    assert (after["status"], after["overdueCount"]) == ("OVERDUE", 1)
    [failed] = await rows(services, "SELECT next_retry_date FROM renewals WHERE status = 'FAILED'")
    assert failed.next_retry_date is not None, "retried on the profile's schedule"


async def test_activating_a_subscription_suspended_in_dunning_retries_what_it_owes(client, services, clock):
    world = await make_world(client, retryScheduleDays=[5], finalFailureAction="SUSPEND")
    sub = (await subscribe(client, world))["subscription"]
    declining = await add_card(client, world.customer, DECLINED, default=False)
    ok(
        await mutate(
            client,
            "setPaymentMethod",
            {"subscriptionId": sub["id"], "paymentMethodId": declining},
            "subscription { id }",
        )
    )
    clock.set(at("2026-02-15"))
    await RenewalEngine(services).run_once()
    clock.set(at("2026-02-20"))
    await RenewalEngine(services).run_once()
    assert (await get_subscription(client, sub["id"]))["status"] == "SUSPENDED"
    ok(
        await mutate(
            client,
            "setPaymentMethod",
            {"subscriptionId": sub["id"], "paymentMethodId": world.card},
            "subscription { id }",
        )
    )
    ok(await mutate(client, "activateSubscription", {"subscriptionId": sub["id"]}, "subscription { id }"))
    active = await get_subscription(client, sub["id"])
    assert (active["status"], active["overdueCount"]) == ("ACTIVE", 0)
    assert [s for _, _, s in await renewal_statuses(services)] == ["PAID", "PAID"]


async def test_a_future_subscription_cannot_have_its_next_renewal_moved_and_the_worker_never_spins(client, services):
    world = await make_world(client)
    sub = (await subscribe(client, world, startDate="2026-03-01"))["subscription"]
    assert sub["status"] == "FUTURE"
    payload = await mutate(
        client, "changeNextRenewalDate", {"subscriptionId": sub["id"], "date": "2026-02-01"}, "subscription { id }"
    )
    assert error_codes(payload) == ["INVALID_STATUS"]
    assert "startDate" in payload["userErrors"][0]["message"]
