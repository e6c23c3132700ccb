"""Phases start on their date: the worker applies each on its effective date, renewal or not, exactly once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text

from rebill.billing.engine import RenewalEngine
from rebill.ids import decode_id
from tests.support import (
    add_card,
    get_subscription,
    gql,
    make_customer,
    make_world,
    mutate,
    ok,
    subscribe,
)

PHASES = "query($id: ID!) { subscription(id: $id) { phases { id effectiveDate status } } }"


def at(day: str, hour: int = 9) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)


async def rows(services: Any, sql: str, **params: Any) -> list[Any]:
    async with services.engine.connect() as conn:
        return list(await conn.execute(text(sql), params))


async def schedule(client: Any, sub: dict[str, Any], effective: str, price: str, quantity: int = 1) -> str:
    """A phase setting the subscription's one item to ``quantity`` at ``price`` from ``effective``."""
    item = sub["items"][0]["id"]
    change = {"itemId": item, "unitPrice": {"amount": price, "currency": "USD"}, "quantity": quantity}
    payload = await mutate(
        client,
        "updateSubscription",
        {"subscriptionId": sub["id"], "effectiveDate": effective, "items": [change], "consentReference": "call #7"},
        "phase { id }",
    )
    return str(ok(payload)["phase"]["id"])


async def phase_status(client: Any, sub_id: str) -> list[str]:
    return [p["status"] for p in (await gql(client, PHASES, {"id": sub_id}))["subscription"]["phases"]]


async def actions(services: Any, sub_id: str) -> list[str]:
    entries = await rows(
        services, "SELECT action FROM history_entries WHERE subscription_id = :sid ORDER BY id", sid=db_id(sub_id)
    )
    return [e.action for e in entries]


def db_id(sub_id: str) -> int:
    return decode_id(sub_id, "Subscription")


async def phase_events(services: Any, sub_id: str) -> int:
    [row] = await rows(
        services,
        "SELECT count(*) AS n FROM outbox WHERE kind = 'SUBSCRIPTION_UPDATED' AND payload->>'action' = 'phase_applied' "
        "AND subscription_id = :sid",
        sid=db_id(sub_id),
    )
    return int(row.n)


async def test_a_phase_between_renewals_applies_on_its_local_date_without_billing_anything(client, services, clock):
    world = await make_world(client)
    auckland = await make_customer(client, email="kiri@example.nz", timeZone="Pacific/Auckland")
    card = await add_card(client, auckland)
    utc = (await subscribe(client, world, price="20.00"))["subscription"]
    nz = (await subscribe(client, world, price="20.00", customerId=auckland, paymentMethodId=card))["subscription"]
    for sub in (utc, nz):
        await schedule(client, sub, "2026-02-01", "25.00", quantity=2)
    charges_before = await rows(services, "SELECT id FROM renewals")

    clock.set(at("2026-01-31"))  # Jan 31 everywhere that matters: nothing yet
    assert (await RenewalEngine(services).run_once()).phases == 0
    assert await phase_status(client, nz["id"]) == await phase_status(client, utc["id"]) == ["PENDING"]

    clock.set(at("2026-01-31", hour=12))  # Feb 1, 01:00 in Auckland; still Jan 31 in UTC
    report = await RenewalEngine(services).run_once()
    assert (report.phases, report.renewals) == (1, 0)
    assert await phase_status(client, nz["id"]) == ["APPLIED"]
    assert await phase_status(client, utc["id"]) == ["PENDING"]
    assert (await get_subscription(client, utc["id"]))["amount"]["amount"] == "20.00"

    clock.set(at("2026-02-01", hour=0))
    assert (await RenewalEngine(services).run_once()).phases == 1
    for sub in (utc, nz):
        after = await get_subscription(client, sub["id"])
        assert after["amount"]["amount"] == "50.00"
        assert [(i["unitPrice"]["amount"], i["quantity"]) for i in after["items"]] == [("25.00", 2)]
        assert after["nextRenewalDate"] == "2026-02-15", "the schedule does not move"
        assert await phase_status(client, sub["id"]) == ["APPLIED"]
        assert (await actions(services, sub["id"])).count("phase_applied") == 1
        assert await phase_events(services, sub["id"]) == 1
    assert await rows(services, "SELECT id FROM renewals") == charges_before, "no renewal, charge or proration"
    assert (await rows(services, "SELECT count(*) AS n FROM sandbox_charges WHERE kind = 'CHARGE'"))[0].n == 2

    assert (await RenewalEngine(services).run_once()).phases == 0, "applied once"
    clock.set(at("2026-02-15"))
    await RenewalEngine(services).run_once()
    [renewal] = await rows(services, "SELECT amount_minor FROM renewals WHERE cycle = 2 LIMIT 1")
    assert renewal.amount_minor == 5000, "the next renewal bills the new settings"


async def test_on_a_renewal_date_the_phase_applies_first_and_a_late_catch_up_bills_each_cycle_at_its_own_settings(
    client, services, clock
):
    world = await make_world(client)
    on_time = (await subscribe(client, world, price="20.00"))["subscription"]
    late = (await subscribe(client, world, price="20.00"))["subscription"]
    await schedule(client, on_time, "2026-02-15", "30.00")
    await schedule(client, late, "2026-03-01", "30.00")

    clock.set(at("2026-02-15"))
    await RenewalEngine(services, batch_size=1).run_once(limit=1)  # the worker stops after one renewal
    assert (await actions(services, on_time["id"]))[-3:] == ["phase_applied", "renewal_created", "renewal_paid"]
    [billed] = await rows(services, "SELECT amount_minor FROM renewals WHERE cycle = 2")
    assert billed.amount_minor == 3000

    # The worker was down from Feb 15 to Mar 20: the Feb 15 cycle is billed as it was, the Mar 15 one with the phase.
    clock.set(at("2026-03-20"))
    await RenewalEngine(services).run_once()
    late_id = db_id(late["id"])
    cycles = await rows(
        services, "SELECT cycle, amount_minor FROM renewals WHERE subscription_id = :sid ORDER BY cycle", sid=late_id
    )
    assert [tuple(c) for c in cycles] == [(1, 2000), (2, 2000), (3, 3000)]
    assert (await actions(services, late["id"]))[-5:] == [
        "renewal_created",
        "renewal_paid",
        "phase_applied",
        "renewal_created",
        "renewal_paid",
    ]


async def test_a_suspended_subscription_gets_its_phase_and_stays_suspended(client, services, clock):
    world = await make_world(client)
    sub = (await subscribe(client, world, price="20.00"))["subscription"]
    await schedule(client, sub, "2026-02-01", "15.00")
    ok(await mutate(client, "suspendSubscription", {"subscriptionId": sub["id"]}, "subscription { status }"))

    clock.set(at("2026-02-01"))
    assert (await RenewalEngine(services).run_once()).phases == 1
    after = await get_subscription(client, sub["id"])
    assert (after["status"], after["amount"]["amount"]) == ("SUSPENDED", "15.00")
    assert await phase_status(client, sub["id"]) == ["APPLIED"]
    assert await phase_events(services, sub["id"]) == 1


async def test_the_phase_of_a_subscription_cancelled_meanwhile_fails_once_with_its_reason(client, services, clock):
    world = await make_world(client)
    sub = (await subscribe(client, world, price="20.00"))["subscription"]
    await schedule(client, sub, "2026-02-01", "15.00")
    ok(await mutate(client, "cancelSubscription", {"subscriptionId": sub["id"]}, "subscription { status }"))

    clock.set(at("2026-02-01"))
    for _ in range(2):
        assert (await RenewalEngine(services).run_once()).phases == 0
    assert await phase_status(client, sub["id"]) == ["FAILED"]
    [failed] = await rows(
        services,
        "SELECT reason FROM history_entries WHERE action = 'phase_failed' AND subscription_id = :sid",
        sid=db_id(sub["id"]),
    )
    assert failed.reason.startswith("INVALID_STATUS"), failed.reason


async def test_a_future_subscription_gets_a_phase_dated_before_its_start_when_it_starts(client, services, clock):
    world = await make_world(client)
    sub = (await subscribe(client, world, price="20.00", startDate="2026-03-01"))["subscription"]
    assert sub["status"] == "FUTURE"
    await schedule(client, sub, "2026-02-10", "30.00")

    clock.set(at("2026-02-10"))
    assert (await RenewalEngine(services).run_once()).phases == 0
    assert await phase_status(client, sub["id"]) == ["PENDING"]
    assert (await get_subscription(client, sub["id"]))["status"] == "FUTURE"

    clock.set(at("2026-03-01"))
    report = await RenewalEngine(services).run_once()
    assert (report.phases, report.renewed) == (1, 1)
    [first] = await rows(services, "SELECT kind, amount_minor FROM renewals")
    assert (first.kind, first.amount_minor) == ("INITIAL", 3000)
    trail = await actions(services, sub["id"])
    assert trail[-3:] == ["phase_applied", "started", "renewal_paid"]


async def test_two_workers_at_once_apply_every_phase_exactly_once(client, services, clock):
    world = await make_world(client)
    subs = [(await subscribe(client, world, price="20.00"))["subscription"] for _ in range(12)]
    for sub in subs:
        await schedule(client, sub, "2026-02-01", "18.00")

    clock.set(at("2026-02-01"))
    reports = await asyncio.gather(*(RenewalEngine(services, batch_size=2).run_once() for _ in range(2)))
    assert sum(r.phases for r in reports) == 12
    applied = await rows(
        services,
        "SELECT subscription_id, count(*) AS n FROM history_entries WHERE action = 'phase_applied' "
        "GROUP BY subscription_id",
    )
    assert len(applied) == 12 and {a.n for a in applied} == {1}
    assert await rows(services, "SELECT id FROM phases WHERE status <> 'APPLIED'") == []
    [events] = await rows(
        services,
        "SELECT count(*) AS n FROM outbox WHERE kind = 'SUBSCRIPTION_UPDATED' AND payload->>'action' = 'phase_applied'",
    )
    assert events.n == 12


# -- real worker processes -----------------------------------------------------------

SEEDED_TODAY = "2026-06-01"

# Subscriptions that renew in ten days, each with a price cut dated today; one in three also has a
# metadata change dated yesterday, which applies first.
PHASE_SEED = [
    "INSERT INTO subscription_profiles (name, interval_unit, interval_count) VALUES ('Monthly', 'MONTH', 1)",
    "INSERT INTO products (name, sku) VALUES ('Coffee', 'coffee')",
    "INSERT INTO customers (email) SELECT 'c' || n || '@example.com' FROM generate_series(1, :n) AS n",
    "INSERT INTO payment_methods (customer_id, kind, gateway_token) SELECT id, 'CARD', '4242424242424242' FROM customers",
    """INSERT INTO subscriptions (customer_id, profile_id, currency, status, renewal_type, start_date, anchor_date,
           next_renewal_date, current_period_start, current_period_end, occurrences_billed, last_cycle,
           payment_method_id, amount_minor)
       SELECT c.id, (SELECT id FROM subscription_profiles), 'USD', 'ACTIVE', 'AUTOMATIC',
              CAST(:today AS date) - 21, CAST(:today AS date) - 21, CAST(:today AS date) + 10,
              CAST(:today AS date) - 21, CAST(:today AS date) + 10, 1, 1, pm.id, 1500
       FROM customers c JOIN payment_methods pm ON pm.customer_id = c.id ORDER BY c.id""",
    """INSERT INTO subscription_items (subscription_id, product_id, unit_price_minor, currency, quantity)
       SELECT id, (SELECT id FROM products), 1500, 'USD', 1 FROM subscriptions""",
    """INSERT INTO phases (subscription_id, effective_date, changes)
       SELECT i.subscription_id, CAST(:today AS date), jsonb_build_object('items', jsonb_build_array(
              jsonb_build_object('itemId', i.id, 'unitPrice', jsonb_build_object('amount', '12.00', 'currency', 'USD'))))
       FROM subscription_items i""",
    """INSERT INTO phases (subscription_id, effective_date, changes)
       SELECT id, CAST(:today AS date) - 1, jsonb_build_object('metadata', jsonb_build_object('tier', 'gold'))
       FROM subscriptions WHERE id % 3 = 0""",
]


async def test_worker_processes_racing_and_one_killed_apply_every_phase_exactly_once(engine, clean_db, database_url):
    """Slow (a few seconds) on purpose: real ``rebill worker --once`` processes race for the same phases, one is
    killed with SIGKILL mid-pass, and a third finishes; only separate processes show what survives a kill."""
    import os
    import signal
    import time

    from tests.integration.test_worker_processes import finish, scalar, worker

    n = 300
    async with engine.begin() as conn:
        for sql in PHASE_SEED:
            await conn.execute(text(sql), {"n": n, "today": datetime.fromisoformat(SEEDED_TODAY).date()})
    phases = n + n // 3
    applied = "SELECT count(*) FROM phases WHERE status = 'APPLIED'"
    # Hold both workers at their first look at the phases, so that they race.
    async with engine.connect() as gate:
        await gate.execute(text("LOCK TABLE phases IN ACCESS EXCLUSIVE MODE"))
        procs = [worker(database_url, "--once", "--no-deliver", batch_size=5) for _ in range(2)]
        waiting = "SELECT count(*) FROM pg_locks WHERE relation = 'phases'::regclass AND NOT granted"
        deadline = time.monotonic() + 30
        while await scalar(engine, waiting) < 2:
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs)
            await asyncio.sleep(0.02)
        await gate.commit()
    deadline = time.monotonic() + 30
    while await scalar(engine, applied) < phases // 4:
        assert procs[0].poll() is None, "the worker finished before it could be killed"
        assert time.monotonic() < deadline
        await asyncio.sleep(0.005)
    os.killpg(procs[0].pid, signal.SIGKILL)
    await asyncio.to_thread(procs[0].wait)
    assert "phases applied to" in await finish(procs[1]), "the work was shared"
    await finish(worker(database_url, "--once", "--no-deliver", batch_size=50))

    assert await scalar(engine, applied) == phases
    per_phase = """SELECT count(*) FROM phases p WHERE (SELECT count(*) FROM history_entries h
                   WHERE h.subscription_id = p.subscription_id AND h.action = 'phase_applied')
                   <> (SELECT count(*) FROM phases q WHERE q.subscription_id = p.subscription_id)"""
    assert await scalar(engine, per_phase) == 0, "one history entry per phase"
    events = "SELECT count(*) FROM outbox WHERE kind = 'SUBSCRIPTION_UPDATED' AND payload->>'action' = 'phase_applied'"
    assert await scalar(engine, events) == phases
    assert await scalar(engine, "SELECT count(*) FROM subscriptions WHERE amount_minor <> 1200") == 0
    assert await scalar(engine, "SELECT count(*) FROM subscriptions WHERE metadata->>'tier' = 'gold'") == n // 3
    assert await scalar(engine, "SELECT count(*) FROM renewals") == 0, "nothing billed"
