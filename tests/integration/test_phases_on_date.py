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
