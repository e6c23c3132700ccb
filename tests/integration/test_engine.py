"""The renewal engine in process: schedules, catch-up, recovery after a crash, routing and exactly once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import text

from rebill.billing.engine import LOCK_CLASS, RenewalEngine
from tests.support import add_card, add_method, get_subscription, make_customer, make_world, mutate, ok, subscribe


def at(day: str, hour: int = 9) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)


async def rows(services: Any, sql: str, **params: Any) -> list[Any]:
    async with services.engine.connect() as conn:
        return list(await conn.execute(text(sql), params))


async def ledger_charges(services: Any) -> int:
    return len(await rows(services, "SELECT 1 FROM sandbox_charges WHERE kind = 'CHARGE'"))


async def many_subscriptions(client: Any, count: int, **fields: Any) -> list[str]:
    world = await make_world(client)
    return [(await subscribe(client, world, **fields))["subscription"]["id"] for _ in range(count)]


async def test_a_due_subscription_is_renewed_once_and_its_schedule_advances(client, services, clock):
    world = await make_world(client)
    sub = (await subscribe(client, world))["subscription"]
    clock.set(at("2026-02-14"))
    assert (await RenewalEngine(services).run_once()).renewals == 0

    clock.set(at("2026-02-15"))
    report = await RenewalEngine(services).run_once()
    assert (report.renewed, report.failed) == (1, 0)
    again = await get_subscription(client, sub["id"])
    assert (again["nextRenewalDate"], again["currentPeriodStart"], again["currentPeriodEnd"]) == (
        "2026-03-15",
        "2026-02-15",
        "2026-03-15",
    )
    assert again["occurrencesBilled"] == 2
    renewals = await rows(services, "SELECT cycle, kind, status, attempts, gateway_id FROM renewals ORDER BY cycle")
    assert [tuple(r) for r in renewals] == [
        (1, "INITIAL", "PAID", 1, "sandbox"),
        (2, "SCHEDULED", "PAID", 1, "sandbox"),
    ]
    entries = await rows(
        services, "SELECT actor, action FROM history_entries WHERE actor = 'renewal-engine' ORDER BY id"
    )
    assert [tuple(e) for e in entries] == [("renewal-engine", "renewal_created"), ("renewal-engine", "renewal_paid")]
    receipts = await rows(
        services, "SELECT recipient, payload FROM outbox WHERE kind = 'RENEWAL_RECEIPT' AND payload->>'cycle' = '2'"
    )
    assert len(receipts) == 1
    assert receipts[0].payload["periodStart"] == "2026-02-15"
    assert receipts[0].recipient == "ada@example.com"

    assert (await RenewalEngine(services).run_once()).renewals == 0, "running again bills nothing"
    assert await ledger_charges(services) == 2


async def test_a_subscription_several_periods_behind_catches_up_one_renewal_per_period_in_order(
    client, services, clock
):
    await many_subscriptions(client, 3)
    clock.set(at("2026-05-20"))
    report = await RenewalEngine(services, batch_size=2).run_once()
    assert report.renewed == 12
    cycles = await rows(
        services,
        "SELECT subscription_id, array_agg(cycle ORDER BY id) AS cycles, array_agg(period_start ORDER BY id) AS starts "
        "FROM renewals GROUP BY subscription_id ORDER BY subscription_id",
    )
    for row in cycles:
        assert row.cycles == [1, 2, 3, 4, 5]
        assert [d.isoformat()[5:] for d in row.starts] == ["01-15", "02-15", "03-15", "04-15", "05-15"]


async def test_the_limit_stops_a_run_and_the_next_run_goes_on(client, services, clock):
    await many_subscriptions(client, 5)
    clock.set(at("2026-02-15"))
    assert (await RenewalEngine(services).run_once(limit=2)).renewed == 2
    assert (await RenewalEngine(services).run_once()).renewed == 3


async def test_a_subscription_is_due_on_its_own_local_date(client, services, clock):
    world = await make_world(client)
    auckland = await make_customer(client, email="kiri@example.nz", timeZone="Pacific/Auckland")
    card = await add_card(client, auckland)
    utc = (await subscribe(client, world))["subscription"]
    nz = (await subscribe(client, world, customerId=auckland, paymentMethodId=card))["subscription"]
    assert utc["nextRenewalDate"] == nz["nextRenewalDate"] == "2026-02-15"
    clock.set(at("2026-02-14", hour=12))  # already Feb 15 in Auckland, still Feb 14 in UTC
    assert (await RenewalEngine(services).run_once()).renewed == 1
    assert (await get_subscription(client, nz["id"]))["occurrencesBilled"] == 2
    assert (await get_subscription(client, utc["id"]))["occurrencesBilled"] == 1


async def test_a_renewal_left_pending_by_a_crash_is_charged_again_with_its_key_and_billed_once(
    client, services, clock, monkeypatch
):
    await many_subscriptions(client, 4)
    clock.set(at("2026-02-15"))
    crashing = RenewalEngine(services)

    async def crash(*args: Any, **kwargs: Any) -> None:
        raise OSError("worker killed between the charge and its commit")

    monkeypatch.setattr(crashing, "_settle", crash)
    await crashing.run_once()
    pending = await rows(services, "SELECT id FROM renewals WHERE status = 'PENDING'")
    assert len(pending) == 4
    charged = await ledger_charges(services)
    assert charged == 8, "the gateway took the four charges before the crash"

    report = await RenewalEngine(services).run_once()
    assert (report.recovered, report.renewed) == (4, 4)
    assert await ledger_charges(services) == charged, "the same keys: the gateway returned its first answers"
    statuses = await rows(services, "SELECT status, count(*) AS n FROM renewals WHERE cycle = 2 GROUP BY status")
    assert [(r.status, r.n) for r in statuses] == [("PAID", 4)]
    receipts = await rows(services, "SELECT 1 FROM outbox WHERE kind = 'RENEWAL_RECEIPT' AND payload->>'cycle' = '2'")
    assert len(receipts) == 4


async def test_a_renewal_in_flight_in_another_worker_is_not_taken_over(client, services, clock, monkeypatch):
    await many_subscriptions(client, 1)
    clock.set(at("2026-02-15"))
    crashing = RenewalEngine(services)

    async def crash(*args: Any, **kwargs: Any) -> None:
        raise OSError("stopped")

    monkeypatch.setattr(crashing, "_settle", crash)
    await crashing.run_once()
    [pending] = await rows(services, "SELECT id FROM renewals WHERE status = 'PENDING'")
    async with services.engine.connect() as alive:  # a worker still charging it holds its lock
        await alive.execute(text("SELECT pg_advisory_lock(:c, :i)"), {"c": LOCK_CLASS, "i": pending.id})
        report = await RenewalEngine(services).run_once()
        assert report.recovered == 0
        assert (await rows(services, "SELECT status FROM renewals WHERE id = :i", i=pending.id))[0].status == "PENDING"
        await alive.execute(text("SELECT pg_advisory_unlock_all()"))
    assert (await RenewalEngine(services).run_once()).recovered == 1


async def test_engines_running_at_once_bill_every_cycle_exactly_once(client, services, clock):
    await many_subscriptions(client, 12)
    clock.set(at("2026-04-15"))
    reports = await asyncio.gather(*(RenewalEngine(services, batch_size=3).run_once() for _ in range(4)))
    assert sum(r.renewed for r in reports) == 36
    dupes = await rows(services, "SELECT subscription_id, cycle FROM renewals GROUP BY 1, 2 HAVING count(*) > 1")
    assert dupes == []
    gaps = await rows(
        services,
        "SELECT subscription_id FROM renewals GROUP BY 1 HAVING array_agg(cycle ORDER BY cycle) <> ARRAY[1, 2, 3, 4]",
    )
    assert gaps == []
    assert await ledger_charges(services) == 12 + 36


async def test_a_suspended_subscription_is_never_renewed(client, services, clock):
    [sub] = await many_subscriptions(client, 1)
    ok(await mutate(client, "suspendSubscription", {"subscriptionId": sub}, "subscription { id }"))
    clock.set(at("2026-06-01"))
    assert (await RenewalEngine(services).run_once()).renewals == 0
    assert len(await rows(services, "SELECT 1 FROM renewals")) == 1


@pytest.mark.parametrize(
    ("mode", "card", "gateways"),
    [
        ("FORCED", "4242424242424242", [("sandbox-b", "SUCCEEDED")]),
        ("PREFERRED", "4242424242424242", [("sandbox-b", "SUCCEEDED")]),
        ("PREFERRED", "4000000000000002", [("sandbox-b", "FAILED")]),
        ("PREFERRED", "4000000000000119", [("sandbox-b", "FAILED"), ("sandbox", "FAILED")]),
        ("FORCED", "4000000000000119", [("sandbox-b", "FAILED")]),
    ],
    ids=["forced", "preferred", "declined-not-cascaded", "processing-error-cascades", "forced-never-cascades"],
)
async def test_charges_go_through_the_routed_gateways(client, services, clock, mode, card, gateways):
    world = await make_world(client)
    sub = (await subscribe(client, world))["subscription"]
    method = await add_card(client, world.customer, card, default=False)
    ok(
        await mutate(
            client,
            "setPaymentMethod",
            {"subscriptionId": sub["id"], "paymentMethodId": method},
            "subscription { id }",
        )
    )
    ok(
        await mutate(
            client,
            "setGateway",
            {"subscriptionId": sub["id"], "gatewayId": "sandbox-b", "mode": mode},
            "subscription { id }",
        )
    )
    clock.set(at("2026-02-15"))
    await RenewalEngine(services).run_once()
    tried = await rows(
        services,
        "SELECT t.gateway_id, t.status FROM transactions t JOIN renewals r ON r.id = t.renewal_id "
        "WHERE r.cycle = 2 ORDER BY t.id",
    )
    assert [tuple(t) for t in tried] == gateways


async def test_force_last_gateway_uses_the_gateway_that_last_succeeded(client, services, clock):
    world = await make_world(client, forceLastGateway=True)
    sub = (await subscribe(client, world))["subscription"]
    change = {"subscriptionId": sub["id"], "gatewayId": "sandbox-b", "mode": "PREFERRED"}
    ok(await mutate(client, "setGateway", change, "subscription { id }"))
    clock.set(at("2026-02-15"))
    await RenewalEngine(services).run_once()  # paid through sandbox-b, the preferred gateway
    ok(await mutate(client, "setGateway", {"subscriptionId": sub["id"], "gatewayId": None}, "subscription { id }"))
    clock.set(at("2026-03-15"))
    await RenewalEngine(services).run_once()
    used = await rows(services, "SELECT cycle, gateway_id FROM renewals ORDER BY cycle")
    assert [tuple(u) for u in used] == [(1, "sandbox"), (2, "sandbox-b"), (3, "sandbox-b")]


async def test_an_external_payment_renews_without_a_gateway_and_no_payment_method_is_a_decline(client, services, clock):
    world = await make_world(client)
    external = await add_method(client, world.customer, "EXTERNAL", default=False)
    paid_outside = (await subscribe(client, world, paymentMethodId=external))["subscription"]
    nothing = await make_customer(client, email="nopm@example.com")
    unpaid = (await subscribe(client, world, customerId=nothing, billFirstPeriod=False))["subscription"]
    clock.set(at("2026-02-15"))
    await RenewalEngine(services).run_once()
    assert (await get_subscription(client, paid_outside["id"]))["occurrencesBilled"] == 2
    outside = await rows(
        services,
        "SELECT t.gateway_id, t.status FROM transactions t JOIN renewals r ON r.id = t.renewal_id WHERE r.cycle = 2 "
        "AND r.subscription_id = (SELECT subscription_id FROM renewals WHERE cycle = 2 AND status = 'PAID')",
    )
    assert [tuple(o) for o in outside] == [(None, "SUCCEEDED")]
    assert await ledger_charges(services) == 0, "nothing went through a gateway"
    declined = await get_subscription(client, unpaid["id"])
    assert declined["status"] == "OVERDUE"
    codes = await rows(services, "SELECT decline_code FROM transactions WHERE status = 'FAILED'")
    assert [c.decline_code for c in codes] == ["no_payment_method"]


async def test_due_phases_apply_before_the_renewal_bills(client, services, clock):
    world = await make_world(client)
    sub = (await subscribe(client, world))["subscription"]
    item = sub["items"][0]["id"]
    change = {
        "subscriptionId": sub["id"],
        "items": [{"itemId": item, "quantity": 2}],
        "consentReference": "phone call",
        "effectiveDate": "2026-02-15",
    }
    ok(await mutate(client, "updateSubscription", change, "subscription { id }"))
    clock.set(at("2026-02-15"))
    report = await RenewalEngine(services).run_once()
    assert report.phases == 1
    [renewal] = await rows(services, "SELECT amount_minor FROM renewals WHERE cycle = 2")
    assert renewal.amount_minor == 2 * 6296
    actions = await rows(services, "SELECT action FROM history_entries ORDER BY id")
    assert [a.action for a in actions][-3:] == ["phase_applied", "renewal_created", "renewal_paid"]
