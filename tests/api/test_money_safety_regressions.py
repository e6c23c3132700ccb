"""Regression tests of issue 10 ("money safety"), through the public API, each ending with the ledger audit.

Time moves with the ``clock`` fixture; the renewal worker runs in this
process (``RenewalEngine.run_once``) on the same clock.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

import pytest

from rebill.ids import from_global_id
from tests.ledger import assert_ledger_ok, successful_charges
from tests.support import (
    add_card,
    error_codes,
    get_subscription,
    gql,
    history,
    make_world,
    mutate,
    ok,
    subscribe,
)

DECLINED = "4000000000000002"
GOOD = "4242424242424242"

RENEWAL_FIELDS = "id cycle kind status attempts periodStart periodEnd nextRetryDate adjustment amount { amount }"
RENEWALS = f"""query($id: ID!) {{ renewals(subscriptionId: $id, first: 100) {{ edges {{ node {{
    {RENEWAL_FIELDS} transactions {{ gatewayId status declineCode }} }} }} }} }}"""
NOTIFICATIONS = """query($id: ID!, $kind: [NotificationKind!]) {
    notifications(subscriptionId: $id, kind: $kind, first: 100) { edges { node { kind recipient payload } } } }"""
#: The notifications about charges and cancellations (other kinds are listed by their own tests).
CHARGE_KINDS = ["RENEWAL_RECEIPT", "PAYMENT_DECLINED", "SUBSCRIPTION_CANCELLED"]
PAYLOAD = f"subscription {{ id status version nextRenewalDate overdueCount }} renewal {{ {RENEWAL_FIELDS} }}"


def pk(gid: str) -> int:
    return int(from_global_id(gid)[1])


def at(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(hour=9, tzinfo=UTC)


async def run_worker(services: Any, clock: Any, day: str) -> Any:
    from rebill.billing.engine import RenewalEngine

    clock.set(at(day))
    return await RenewalEngine(services).run_once()


async def renewals(client: Any, sub_id: str) -> list[dict[str, Any]]:
    data = await gql(client, RENEWALS, {"id": sub_id})
    return sorted((e["node"] for e in data["renewals"]["edges"]), key=lambda r: (r["cycle"], r["id"]))


async def notifications(client: Any, sub_id: str, kinds: list[str] | None = CHARGE_KINDS) -> list[dict[str, Any]]:
    data = await gql(client, NOTIFICATIONS, {"id": sub_id, "kind": kinds})
    return [e["node"] for e in data["notifications"]["edges"]]


async def pin_card(client: Any, sub_id: str, method: str) -> None:
    ok(
        await mutate(
            client, "setPaymentMethod", {"subscriptionId": sub_id, "paymentMethodId": method}, "subscription { id }"
        )
    )


def never_internal(payload: dict[str, Any]) -> None:
    for error in payload["userErrors"]:
        assert "Internal error" not in error["message"], payload
        assert error["code"] not in ("INTERNAL", "INTERNAL_ERROR"), payload


async def charge_op(client: Any, op: str, sub_id: str, **extra: Any) -> dict[str, Any]:
    if op == "forceBill":
        payload = await mutate(client, "forceBill", {"subscriptionId": sub_id, **extra}, PAYLOAD)
    else:
        mode = op.removeprefix("renewNow:")
        payload = await mutate(client, "renewNow", {"subscriptionId": sub_id, "mode": mode, **extra}, PAYLOAD)
    never_internal(payload)
    return payload


# -- issue 10 item 5: a declined renewNow / forceBill is settled by the next one ----------------------------


# What the first (declined) operation on Jan 20 bills, and the next renewal date once it is paid.
FIRST_OP = {
    "forceBill": (("2026-01-20", "2026-02-20"), "2026-02-20"),  # the forced period starts today
    "renewNow:EXTEND": (("2026-02-15", "2026-03-15"), "2026-03-15"),  # one period added to the current one
    "renewNow:RESTART": (("2026-01-20", "2026-02-20"), "2026-02-20"),  # a fresh period from today
}


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("forceBill", "forceBill"),
        ("renewNow:EXTEND", "renewNow:EXTEND"),
        ("renewNow:RESTART", "renewNow:RESTART"),
        ("forceBill", "renewNow:EXTEND"),
        ("renewNow:EXTEND", "forceBill"),
    ],
)
async def test_a_declined_renew_now_or_force_bill_is_settled_by_the_next_and_the_worker_keeps_billing(
    client, clock, services, engine, first, second
):
    world = await make_world(client)
    sub = (await subscribe(client, world))["subscription"]
    declining = await add_card(client, world.customer, DECLINED, default=False)
    await pin_card(client, sub["id"], declining)
    clock.set(at("2026-01-20"))

    declined = await charge_op(client, first, sub["id"])
    assert error_codes(declined) == ["PAYMENT_DECLINED"], declined
    [_, failed] = await renewals(client, sub["id"])
    assert (failed["cycle"], failed["status"], failed["attempts"]) == (2, "FAILED", 1)
    (period_start, period_end), next_date = FIRST_OP[first]
    assert (failed["periodStart"], failed["periodEnd"]) == (period_start, period_end)
    overdue = await get_subscription(client, sub["id"])
    assert (overdue["status"], overdue["overdueCount"]) == ("OVERDUE", 1)

    # Still declining: the next one is a retry of the same renewal, declined again, and no new cycle.
    again = await charge_op(client, second, sub["id"])
    assert error_codes(again) == ["PAYMENT_DECLINED"], again
    assert [(r["cycle"], r["status"], r["attempts"]) for r in await renewals(client, sub["id"])] == [
        (1, "PAID", 1),
        (2, "FAILED", 2),
    ]

    await pin_card(client, sub["id"], world.card)
    settled = ok(await charge_op(client, second, sub["id"]))
    assert settled["renewal"]["id"] == failed["id"], "the declined renewal is settled, not another opened"
    assert [(r["cycle"], r["status"], r["attempts"]) for r in await renewals(client, sub["id"])] == [
        (1, "PAID", 1),
        (2, "PAID", 3),
    ]
    active = await get_subscription(client, sub["id"])
    assert (active["status"], active["overdueCount"], active["nextRenewalDate"]) == ("ACTIVE", 0, next_date)
    await assert_ledger_ok(engine)

    # And the worker bills the following cycles as usual.
    await run_worker(services, clock, next_date)
    following = await get_subscription(client, sub["id"])
    await run_worker(services, clock, following["nextRenewalDate"])
    cycles = [(r["cycle"], r["kind"], r["status"]) for r in await renewals(client, sub["id"])]
    assert cycles[2:] == [(3, "SCHEDULED", "PAID"), (4, "SCHEDULED", "PAID")], cycles
    assert (await get_subscription(client, sub["id"]))["status"] == "ACTIVE"
    await assert_ledger_ok(engine, renewed_through=clock.now().date())
    assert (await successful_charges(engine, pk(sub["id"]))) == {
        (1, False): 1,
        (2, False): 1,
        (3, False): 1,
        (4, False): 1,
    }


async def test_a_declined_force_bill_left_to_the_worker_is_retried_on_schedule_and_billing_goes_on(
    client, clock, services, engine
):
    world = await make_world(client)
    sub = (await subscribe(client, world))["subscription"]
    declining = await add_card(client, world.customer, DECLINED, default=False)
    await pin_card(client, sub["id"], declining)
    clock.set(at("2026-01-20"))
    assert error_codes(await charge_op(client, "forceBill", sub["id"])) == ["PAYMENT_DECLINED"]
    [_, failed] = await renewals(client, sub["id"])
    assert failed["nextRetryDate"] == "2026-01-25"

    await pin_card(client, sub["id"], world.card)
    await run_worker(services, clock, "2026-01-25")
    [_, paid] = await renewals(client, sub["id"])
    assert (paid["status"], paid["attempts"]) == ("PAID", 2)
    await run_worker(services, clock, "2026-02-20")
    assert [(r["cycle"], r["status"]) for r in await renewals(client, sub["id"])] == [
        (1, "PAID"),
        (2, "PAID"),
        (3, "PAID"),
    ]
    await assert_ledger_ok(engine, renewed_through=date(2026, 2, 20))


# -- issue 10 item 6: two quick force bills ------------------------------------------------------------------


async def test_a_second_force_bill_the_same_day_is_already_billed_unless_allow_repeat(client, clock, engine):
    world = await make_world(client)
    sub = (await subscribe(client, world))["subscription"]
    clock.set(at("2026-01-20"))
    first = ok(await charge_op(client, "forceBill", sub["id"]))
    assert (first["renewal"]["cycle"], first["renewal"]["status"]) == (2, "PAID")

    clock.set(at("2026-01-20").replace(minute=1))
    second = await charge_op(client, "forceBill", sub["id"])
    assert error_codes(second) == ["ALREADY_BILLED"], second
    assert len(await renewals(client, sub["id"])) == 2, "refused: nothing billed"
    assert (await get_subscription(client, sub["id"]))["nextRenewalDate"] == "2026-02-20"

    repeat = ok(await charge_op(client, "forceBill", sub["id"], allowRepeat=True))
    assert (repeat["renewal"]["cycle"], repeat["renewal"]["status"]) == (3, "PAID")
    assert repeat["renewal"]["periodStart"] == "2026-01-20"
    assert [(r["cycle"], r["kind"], r["status"]) for r in await renewals(client, sub["id"])] == [
        (1, "INITIAL", "PAID"),
        (2, "FORCED", "PAID"),
        (3, "FORCED", "PAID"),
    ]
    await assert_ledger_ok(engine)

    # The next day is another period start: no refusal.
    clock.set(at("2026-01-21"))
    assert ok(await charge_op(client, "forceBill", sub["id"]))["renewal"]["cycle"] == 4
    await assert_ledger_ok(engine)


async def test_two_force_bills_at_once_bill_one_period(client, clock, engine):
    import asyncio

    world = await make_world(client)
    sub = (await subscribe(client, world))["subscription"]
    clock.set(at("2026-01-20"))
    both = await asyncio.gather(*(charge_op(client, "forceBill", sub["id"]) for _ in range(2)))
    assert sorted(error_codes(p) for p in both) == [[], ["ALREADY_BILLED"]], both
    assert len(await renewals(client, sub["id"])) == 2
    await assert_ledger_ok(engine)


# -- issue 10 item 3: backdated and imported starts ----------------------------------------------------------


async def test_a_backdated_start_bills_only_the_period_that_contains_today(client, clock, services, engine):
    world = await make_world(client)
    created = await subscribe(client, world, startDate="2000-02-29")
    sub = created["subscription"]
    [initial] = await renewals(client, sub["id"])
    assert initial["status"] == "PAID"
    assert initial["periodStart"] <= "2026-01-15" < initial["periodEnd"], initial
    assert (initial["periodStart"], initial["periodEnd"]) == ("2025-12-29", "2026-01-29")
    assert initial["amount"]["amount"] == "62.96"
    assert (await get_subscription(client, sub["id"]))["nextRenewalDate"] == "2026-01-29"

    report = await run_worker(services, clock, "2026-01-15")
    assert report.renewals == 0, "no missed period is billed"
    assert len(await renewals(client, sub["id"])) == 1
    await run_worker(services, clock, "2026-01-29")
    after = await renewals(client, sub["id"])
    assert [(r["status"], r["periodStart"]) for r in after] == [("PAID", "2025-12-29"), ("PAID", "2026-01-29")]
    await assert_ledger_ok(engine, renewed_through=date(2026, 1, 29))
    assert sum((await successful_charges(engine, pk(sub["id"]))).values()) == 2


async def test_an_import_without_first_period_bills_nothing_until_the_period_containing_today_ends(
    client, clock, services, engine
):
    world = await make_world(client)
    sub = (await subscribe(client, world, startDate="2025-01-10", billFirstPeriod=False))["subscription"]
    assert await renewals(client, sub["id"]) == []
    assert sub["status"] == "ACTIVE"
    assert sub["nextRenewalDate"] == "2026-02-10"
    assert (await run_worker(services, clock, "2026-01-15")).renewals == 0
    assert (await run_worker(services, clock, "2026-02-09")).renewals == 0
    assert await renewals(client, sub["id"]) == []

    await run_worker(services, clock, "2026-02-10")
    [first] = await renewals(client, sub["id"])
    assert (first["status"], first["periodStart"], first["periodEnd"]) == ("PAID", "2026-02-10", "2026-03-10")
    await assert_ledger_ok(engine, renewed_through=date(2026, 2, 10))
    assert sum((await successful_charges(engine, pk(sub["id"]))).values()) == 1


async def test_a_backdated_start_whose_trial_ended_bills_the_period_containing_today(client, clock, services, engine):
    world = await make_world(client)
    created = await subscribe(client, world, startDate="2025-12-01", trialDays=30)
    assert created["subscription"]["status"] == "ACTIVE"
    assert (created["renewal"]["periodStart"], created["renewal"]["periodEnd"]) == ("2025-12-31", "2026-01-31")
    assert (await run_worker(services, clock, "2026-01-15")).renewals == 0
    assert len(await renewals(client, created["subscription"]["id"])) == 1
    await assert_ledger_ok(engine, renewed_through=date(2026, 1, 15))


async def test_an_import_whose_period_starts_today_bills_nothing_until_it_ends(client, clock, services, engine):
    world = await make_world(client)
    sub = (await subscribe(client, world, startDate="2025-01-15", billFirstPeriod=False))["subscription"]
    assert (sub["status"], sub["nextRenewalDate"]) == ("ACTIVE", "2026-02-15")
    assert (await run_worker(services, clock, "2026-01-15")).renewals == 0
    await run_worker(services, clock, "2026-02-15")
    assert [(r["status"], r["periodStart"]) for r in await renewals(client, sub["id"])] == [("PAID", "2026-02-15")]
    await assert_ledger_ok(engine, renewed_through=date(2026, 2, 15))


async def test_a_start_date_of_today_starts_at_once(client, engine):
    world = await make_world(client)
    created = await subscribe(client, world, startDate="2026-01-15")
    assert created["subscription"]["status"] == "ACTIVE"
    assert (created["renewal"]["kind"], created["renewal"]["status"]) == ("INITIAL", "PAID")
    await assert_ledger_ok(engine)


# -- issue 10 item 9: future start dates -----------------------------------------------------------------------


async def test_a_future_start_is_future_bills_nothing_and_starts_on_its_date(client, clock, services, engine):
    world = await make_world(client)
    created = await subscribe(client, world, startDate="2026-02-01")
    sub = created["subscription"]
    assert sub["status"] == "FUTURE"
    assert created["renewal"] is None
    assert await renewals(client, sub["id"]) == []
    assert (await run_worker(services, clock, "2026-01-31")).renewals == 0
    assert (await get_subscription(client, sub["id"]))["status"] == "FUTURE"

    await run_worker(services, clock, "2026-02-01")
    started = await get_subscription(client, sub["id"])
    assert (started["status"], started["nextRenewalDate"]) == ("ACTIVE", "2026-03-01")
    [initial] = await renewals(client, sub["id"])
    assert (initial["kind"], initial["status"], initial["periodStart"]) == ("INITIAL", "PAID", "2026-02-01")
    assert "RENEWAL_RECEIPT" in [n["kind"] for n in await notifications(client, sub["id"])]
    await assert_ledger_ok(engine, renewed_through=date(2026, 2, 1))


async def test_a_future_start_with_a_trial_starts_in_trial_and_bills_nothing(client, clock, services, engine):
    world = await make_world(client)
    sub = (await subscribe(client, world, startDate="2026-02-01", trialDays=14))["subscription"]
    assert sub["status"] == "FUTURE"
    await run_worker(services, clock, "2026-02-01")
    started = await get_subscription(client, sub["id"])
    assert (started["status"], started["trialEndDate"]) == ("TRIAL", "2026-02-15")
    assert await renewals(client, sub["id"]) == []
    await assert_ledger_ok(engine)


async def test_the_start_date_of_a_future_subscription_moves_and_of_a_started_one_is_locked(
    client, clock, services, engine
):
    world = await make_world(client)
    future = (await subscribe(client, world, startDate="2026-02-01"))["subscription"]
    moved = ok(
        await mutate(
            client,
            "updateSubscription",
            {"subscriptionId": future["id"], "startDate": "2026-03-01"},
            "subscription { status startDate nextRenewalDate }",
        )
    )
    assert moved["subscription"]["status"] == "FUTURE"
    assert moved["subscription"]["startDate"] == "2026-03-01"
    past = await mutate(
        client,
        "updateSubscription",
        {"subscriptionId": future["id"], "startDate": "2026-01-10"},
        "subscription { startDate }",
    )
    never_internal(past)
    assert error_codes(past) == ["DATE_IN_PAST"], past
    assert (await get_subscription(client, future["id"]))["startDate"] == "2026-03-01"

    assert (await run_worker(services, clock, "2026-02-01")).renewals == 0, "it no longer starts on the old date"
    assert await renewals(client, future["id"]) == []
    await run_worker(services, clock, "2026-03-01")
    assert (await get_subscription(client, future["id"]))["status"] == "ACTIVE"
    assert len(await renewals(client, future["id"])) == 1

    started = (await subscribe(client, world))["subscription"]
    locked = await mutate(
        client,
        "updateSubscription",
        {"subscriptionId": started["id"], "startDate": "2026-04-01"},
        "subscription { startDate }",
    )
    never_internal(locked)
    assert error_codes(locked) == ["START_DATE_LOCKED"], locked
    assert (await get_subscription(client, started["id"]))["startDate"] == started["startDate"]
    await assert_ledger_ok(engine)


# -- issue 10 item 10: resume --------------------------------------------------------------------------------


async def test_resume_undoes_a_cancellation_at_period_end_and_renewals_go_on(client, clock, services, engine):
    world = await make_world(client)
    sub = (await subscribe(client, world))["subscription"]
    scheduled = ok(
        await mutate(
            client,
            "cancelSubscription",
            {"subscriptionId": sub["id"], "atPeriodEnd": True},
            "subscription { status cancelAtPeriodEnd endDate }",
        )
    )["subscription"]
    assert (scheduled["status"], scheduled["cancelAtPeriodEnd"]) == ("ACTIVE", True)

    resumed = ok(
        await mutate(
            client,
            "resumeSubscription",
            {"subscriptionId": sub["id"]},
            "subscription { status cancelAtPeriodEnd endDate nextRenewalDate }",
        )
    )["subscription"]
    assert (resumed["status"], resumed["cancelAtPeriodEnd"], resumed["endDate"]) == ("ACTIVE", False, None)
    assert resumed["nextRenewalDate"] == "2026-02-15"
    assert "resumed" in " ".join(e["action"] for e in await history(client, sub["id"]))

    await run_worker(services, clock, "2026-02-15")
    assert (await get_subscription(client, sub["id"]))["status"] == "ACTIVE"
    assert [r["status"] for r in await renewals(client, sub["id"])] == ["PAID", "PAID"]
    await assert_ledger_ok(engine, renewed_through=date(2026, 2, 15))

    # Once the cancellation happened, there is nothing to resume.
    cancelled = ok(await mutate(client, "cancelSubscription", {"subscriptionId": sub["id"]}, "subscription { status }"))
    assert cancelled["subscription"]["status"] == "CANCELLED"
    refused = await mutate(client, "resumeSubscription", {"subscriptionId": sub["id"]}, "subscription { status }")
    never_internal(refused)
    assert refused["userErrors"], "a cancelled subscription is final"


async def test_without_resume_a_cancellation_at_period_end_happens_and_bills_nothing(client, clock, services, engine):
    world = await make_world(client)
    sub = (await subscribe(client, world))["subscription"]
    ok(
        await mutate(
            client, "cancelSubscription", {"subscriptionId": sub["id"], "atPeriodEnd": True}, "subscription { id }"
        )
    )
    await run_worker(services, clock, "2026-02-15")
    assert (await get_subscription(client, sub["id"]))["status"] == "CANCELLED"
    assert len(await renewals(client, sub["id"])) == 1
    await assert_ledger_ok(engine)


# -- issue 10 item 11: notifications -------------------------------------------------------------------------


async def test_charges_made_by_mutations_notify_the_customer(client, clock, engine):
    world = await make_world(client)
    sub = (await subscribe(client, world))["subscription"]
    clock.set(at("2026-01-20"))
    ok(await charge_op(client, "forceBill", sub["id"]))
    clock.set(at("2026-01-21"))
    ok(await charge_op(client, "forceBill", sub["id"]))
    kinds = [n["kind"] for n in await notifications(client, sub["id"])]
    assert kinds.count("RENEWAL_RECEIPT") == 3, kinds  # the INITIAL charge and two FORCED ones
    receipts = [n for n in await notifications(client, sub["id"]) if n["kind"] == "RENEWAL_RECEIPT"]
    assert all(n["recipient"] == "ada@example.com" for n in receipts)

    declining = await add_card(client, world.customer, DECLINED, default=False)
    await pin_card(client, sub["id"], declining)
    clock.set(at("2026-01-22"))
    assert error_codes(await charge_op(client, "forceBill", sub["id"])) == ["PAYMENT_DECLINED"]
    kinds = [n["kind"] for n in await notifications(client, sub["id"])]
    assert (kinds.count("RENEWAL_RECEIPT"), kinds.count("PAYMENT_DECLINED")) == (3, 1), kinds
    await assert_ledger_ok(engine)


async def test_a_declined_initial_charge_notifies_the_customer(client, engine):
    world = await make_world(client)
    declining = await add_card(client, world.customer, DECLINED, default=True)
    created = await mutate(
        client,
        "createSubscription",
        {
            "customerId": world.customer,
            "profileId": world.profile,
            "items": [{"productId": world.product, "unitPrice": {"amount": "10.00", "currency": "USD"}}],
            "paymentMethodId": declining,
        },
        PAYLOAD,
    )
    never_internal(created)
    sub = created["subscription"]
    assert (sub["status"], created["renewal"]["status"]) == ("OVERDUE", "FAILED")
    assert [n["kind"] for n in await notifications(client, sub["id"])].count("PAYMENT_DECLINED") == 1
    await assert_ledger_ok(engine)


def outbox_cli(database_url: str, *args: str) -> str:
    from typer.testing import CliRunner

    import rebill.billing.commands  # noqa: F401  (registers the commands)
    from rebill.cli import app

    result = CliRunner().invoke(app, ["outbox", *args], env={"DATABASE_URL": database_url})
    assert result.exit_code == 0, result.output
    return str(result.output)


async def test_a_cancellation_notifies_the_merchant_when_configured(client, services, engine, database_url):
    import asyncio

    world = await make_world(client)
    quiet = (await subscribe(client, world))["subscription"]
    ok(await mutate(client, "cancelSubscription", {"subscriptionId": quiet["id"]}, "subscription { id }"))
    listed = await asyncio.to_thread(outbox_cli, database_url, "--subscription", str(pk(quiet["id"])))
    assert "SUBSCRIPTION_CANCELLED" in listed and "MERCHANT" not in listed, listed

    services.settings = replace(services.settings, merchant_email="orders@shop.example")
    sub = (await subscribe(client, world))["subscription"]
    ok(await mutate(client, "cancelSubscription", {"subscriptionId": sub["id"]}, "subscription { id }"))
    [customer] = await notifications(client, sub["id"], ["SUBSCRIPTION_CANCELLED"])
    assert customer["recipient"] == "ada@example.com"
    listed = await asyncio.to_thread(outbox_cli, database_url, "--subscription", str(pk(sub["id"])))
    merchant = [line for line in listed.splitlines() if "orders@shop.example" in line]
    assert len(merchant) == 1 and "CANCELLED" in merchant[0], listed
    await assert_ledger_ok(engine)


async def test_the_notifications_of_a_cancelled_subscription_list_the_merchant_copy(client, services):
    world = await make_world(client)
    services.settings = replace(services.settings, merchant_email="orders@shop.example")
    sub = (await subscribe(client, world))["subscription"]
    ok(await mutate(client, "cancelSubscription", {"subscriptionId": sub["id"]}, "subscription { id }"))
    notes = await notifications(client, sub["id"], None)
    assert sorted(n["recipient"] for n in notes if "CANCELLED" in n["kind"]) == [
        "ada@example.com",
        "orders@shop.example",
    ]


async def test_the_notifications_of_a_started_future_subscription_can_be_listed(client, clock, services):
    world = await make_world(client)
    sub = (await subscribe(client, world, startDate="2026-02-01"))["subscription"]
    await run_worker(services, clock, "2026-02-01")
    assert "RENEWAL_RECEIPT" in [n["kind"] for n in await notifications(client, sub["id"], None)]


async def test_the_notifications_of_a_resumed_subscription_can_be_listed(client):
    world = await make_world(client)
    sub = (await subscribe(client, world))["subscription"]
    ok(
        await mutate(
            client, "cancelSubscription", {"subscriptionId": sub["id"], "atPeriodEnd": True}, "subscription { id }"
        )
    )
    ok(await mutate(client, "resumeSubscription", {"subscriptionId": sub["id"]}, "subscription { id }"))
    assert "RENEWAL_RECEIPT" in [n["kind"] for n in await notifications(client, sub["id"], None)]


# -- issue 10 item 7: consent ---------------------------------------------------------------------------------


async def test_the_consent_reference_of_a_price_increase_is_kept_in_the_history(client, engine):
    world = await make_world(client)
    sub = (await subscribe(client, world))["subscription"]
    item = sub["items"][0]["id"]
    refused = await mutate(
        client,
        "updateItem",
        {"subscriptionId": sub["id"], "itemId": item, "unitPrice": {"amount": "70.00", "currency": "USD"}},
        "subscription { id }",
    )
    assert error_codes(refused) == ["CONSENT_REQUIRED"], refused
    ok(
        await mutate(
            client,
            "updateItem",
            {
                "subscriptionId": sub["id"],
                "itemId": item,
                "unitPrice": {"amount": "70.00", "currency": "USD"},
                "effective": "NEXT_RENEWAL",
                "consentReference": "phone call 2026-01-15, ticket 4411",
            },
            "subscription { id }",
        )
    )
    data = await gql(
        client,
        """query($id: ID!) { subscription(id: $id) { history(first: 20) { edges { node {
            action consentReference } } } } }""",
        {"id": sub["id"]},
    )
    entries = [e["node"] for e in data["subscription"]["history"]["edges"]]
    consented = [e for e in entries if e["consentReference"]]
    assert [e["consentReference"] for e in consented] == ["phone call 2026-01-15, ticket 4411"], entries
    assert all(e["consentReference"] is None for e in entries if e not in consented)
    await assert_ledger_ok(engine)


# -- issue 10 item 8: a new default card ----------------------------------------------------------------------


async def test_a_new_default_card_is_what_subscriptions_charge_and_settles_their_dunning(
    client, clock, services, engine
):
    world = await make_world(client)
    declining = await add_card(client, world.customer, DECLINED, default=True)
    sub = (await subscribe(client, world))["subscription"]  # follows the default: declined
    [failed] = await renewals(client, sub["id"])
    assert failed["status"] == "FAILED"
    clock.set(at("2026-01-16"))
    fresh = await add_card(client, world.customer, "5555555555554444", default=True)
    data = await gql(
        client, "query($id: ID!) { subscription(id: $id) { status paymentMethod { id } } }", {"id": sub["id"]}
    )
    assert data["subscription"]["paymentMethod"]["id"] == fresh
    assert data["subscription"]["status"] == "ACTIVE", "the declined renewal was retried at once with the new card"
    [paid] = await renewals(client, sub["id"])
    assert (paid["status"], paid["attempts"]) == ("PAID", 2)
    assert declining != fresh
    await run_worker(services, clock, "2026-02-15")
    assert [r["status"] for r in await renewals(client, sub["id"])] == ["PAID", "PAID"]
    await assert_ledger_ok(engine, renewed_through=date(2026, 2, 15))


# -- the same charge asked for twice at once --------------------------------------------------------------------


async def test_two_retries_of_one_declined_renewal_at_once_charge_it_once(client, clock, engine):
    import asyncio

    world = await make_world(client)
    sub = (await subscribe(client, world))["subscription"]
    declining = await add_card(client, world.customer, DECLINED, default=False)
    await pin_card(client, sub["id"], declining)
    clock.set(at("2026-01-20"))
    failed = (await charge_op(client, "forceBill", sub["id"]))["renewal"]
    await pin_card(client, sub["id"], world.card)
    both = await asyncio.gather(
        *(mutate(client, "retryRenewal", {"renewalId": failed["id"]}, PAYLOAD) for _ in range(2))
    )
    for payload in both:
        never_internal(payload)
    assert sorted(error_codes(p) for p in both) == [[], ["INVALID_STATUS"]], both
    [_, paid] = await renewals(client, sub["id"])
    assert (paid["status"], paid["attempts"]) == ("PAID", 2)
    assert (await successful_charges(engine, pk(sub["id"])))[(2, False)] == 1
    await assert_ledger_ok(engine)


async def test_a_timed_out_charge_sent_again_twice_at_once_is_charged_once(client, clock, engine):
    import asyncio

    world = await make_world(client)
    sub = (await subscribe(client, world))["subscription"]
    await add_card(client, world.customer, "4000000000000259", default=True)  # charges, then times out
    clock.set(at("2026-01-20"))
    data = {"subscriptionId": sub["id"], "idempotencyKey": "force-once"}
    first = await mutate(client, "forceBill", data, PAYLOAD)
    never_internal(first)
    assert error_codes(first) == ["PAYMENT_PENDING"], first
    again = await asyncio.gather(*(mutate(client, "forceBill", data, PAYLOAD) for _ in range(3)))
    for payload in again:
        never_internal(payload)
        # Settled by one of them; one still waiting on the other's settlement may say it is pending.
        assert error_codes(payload) in ([], ["PAYMENT_PENDING"]), payload
    assert any(p["userErrors"] == [] for p in again), again
    cycles = [(r["cycle"], r["kind"], r["status"]) for r in await renewals(client, sub["id"])]
    assert cycles == [(1, "INITIAL", "PAID"), (2, "FORCED", "PAID")], cycles
    assert await successful_charges(engine, pk(sub["id"])) == {(1, False): 1, (2, False): 1}
    await assert_ledger_ok(engine)


async def test_a_second_new_default_card_at_once_retries_the_declined_renewal_once(client, clock, services, engine):
    import asyncio

    world = await make_world(client)
    await add_card(client, world.customer, DECLINED, default=True)
    sub = (await subscribe(client, world))["subscription"]
    [failed] = await renewals(client, sub["id"])
    assert failed["status"] == "FAILED"
    clock.set(at("2026-01-16"))
    added = await asyncio.gather(
        *(
            mutate(
                client,
                "addPaymentMethod",
                {"customerId": world.customer, "kind": "CARD", "gatewayToken": number, "makeDefault": True},
                "paymentMethod { id }",
            )
            for number in (GOOD, "5555555555554444")
        )
    )
    for payload in added:
        never_internal(payload)
    [paid] = await renewals(client, sub["id"])
    assert paid["status"] == "PAID", paid
    assert (await get_subscription(client, sub["id"]))["status"] == "ACTIVE"
    assert await successful_charges(engine, pk(sub["id"])) == {(1, False): 1}
    await assert_ledger_ok(engine)


# -- refusals: a userError, and nothing charged ------------------------------------------------------------------


async def _cancelled(client: Any, sub_id: str) -> None:
    ok(await mutate(client, "cancelSubscription", {"subscriptionId": sub_id}, "subscription { id }"))


async def _suspended(client: Any, sub_id: str) -> None:
    ok(await mutate(client, "suspendSubscription", {"subscriptionId": sub_id}, "subscription { id }"))


async def _as_is(client: Any, sub_id: str) -> None:
    return None


REFUSALS = [
    ("cancelled", _cancelled, "forceBill", {}),
    ("cancelled", _cancelled, "renewNow", {"mode": "EXTEND"}),
    ("suspended", _suspended, "forceBill", {}),
    ("suspended", _suspended, "renewNow", {"mode": "RESTART"}),
    ("active", _as_is, "activateSubscription", {}),
    ("active", _as_is, "resumeSubscription", {}),
    ("active", _as_is, "retryRenewal", {}),
    ("cancelled", _cancelled, "retryRenewal", {}),
]


@pytest.mark.parametrize(
    ("state", "prepare", "operation", "extra"), REFUSALS, ids=[f"{s}-{o}" for s, _, o, _ in REFUSALS]
)
async def test_what_cannot_be_charged_is_refused_with_a_user_error(client, engine, state, prepare, operation, extra):
    world = await make_world(client)
    created = await subscribe(client, world)
    sub = created["subscription"]
    await prepare(client, sub["id"])
    before = await renewals(client, sub["id"])
    if operation == "retryRenewal":
        data = {"renewalId": created["renewal"]["id"]}  # the paid INITIAL renewal
    else:
        data = {"subscriptionId": sub["id"], **extra}
    selection = "subscription { id }" if operation in ("activateSubscription", "resumeSubscription") else PAYLOAD
    payload = await mutate(client, operation, data, selection)
    never_internal(payload)
    assert payload["userErrors"], payload
    assert await renewals(client, sub["id"]) == before, "a refusal records nothing"
    assert await successful_charges(engine, pk(sub["id"])) == {(1, False): 1}
    await assert_ledger_ok(engine)


# -- a subscription suspended by its profile's overdue limit --------------------------------------------------


async def test_a_subscription_suspended_at_its_overdue_limit_does_not_forget_its_declined_renewal(
    client, clock, services, engine
):
    world = await make_world(client, overdueLimit=1)
    sub = (await subscribe(client, world))["subscription"]
    await add_card(client, world.customer, DECLINED, default=True)
    clock.set(at("2026-01-20"))
    assert error_codes(await charge_op(client, "forceBill", sub["id"])) == ["PAYMENT_DECLINED"]
    assert (await get_subscription(client, sub["id"]))["status"] == "SUSPENDED"

    clock.set(at("2026-01-21"))
    await add_card(client, world.customer, GOOD, default=True)
    activated = ok(await mutate(client, "activateSubscription", {"subscriptionId": sub["id"]}, "subscription { id }"))
    never_internal(activated)
    await run_worker(services, clock, "2026-01-26")
    [_, declined] = await renewals(client, sub["id"])
    after = await get_subscription(client, sub["id"])
    # Either the declined period is collected (with the working default card), or dunning goes on for it.
    assert declined["status"] == "PAID" or (after["status"] == "OVERDUE" and declined["nextRetryDate"]), (
        declined,
        after,
    )
    await assert_ledger_ok(engine)


# -- stopping a subscription while a live request is charging it ------------------------------------------------


@pytest.mark.parametrize(
    ("stop", "status"), [("cancelSubscription", "CANCELLED"), ("suspendSubscription", "SUSPENDED")]
)
async def test_a_subscription_stopped_while_a_request_charges_it_stays_stopped_and_the_charge_is_recorded(
    client, clock, engine, stop, status
):
    import asyncio

    from sqlalchemy import text

    world = await make_world(client)
    sub = (await subscribe(client, world))["subscription"]
    clock.set(at("2026-01-20"))
    async with engine.connect() as gate:
        # The gateway is slow to take this charge: the request has recorded its renewal and waits on the gateway.
        await gate.execute(text("LOCK TABLE sandbox_charges IN EXCLUSIVE MODE"))
        charging = asyncio.create_task(charge_op(client, "forceBill", sub["id"]))
        waiting = "SELECT count(*) FROM pg_locks WHERE relation = 'sandbox_charges'::regclass AND NOT granted"
        for _ in range(500):
            if (await gate.execute(text(waiting))).scalar():
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the force bill never reached the gateway")
        stopped = await mutate(client, stop, {"subscriptionId": sub["id"]}, "subscription { status }")
        never_internal(stopped)
        assert stopped["userErrors"] == [] and stopped["subscription"]["status"] == status, stopped
        await gate.rollback()
    answer = await charging
    assert [e for e in answer["userErrors"] if "Internal" in e["message"]] == [], answer
    cycles = [(r["cycle"], r["status"]) for r in await renewals(client, sub["id"])]
    assert cycles == [(1, "PAID"), (2, "PAID")], cycles  # the gateway took it: recorded, never lost
    assert (await get_subscription(client, sub["id"]))["status"] == status
    await assert_ledger_ok(engine)
