"""The seed scenarios of renewals and dunning, driven as a newcomer would: REBILL_NOW and ``rebill worker --once``.

Subscriptions are set up through the GraphQL API; time moves by running the
worker command with ``REBILL_NOW``; what happened is read back through the API.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from rebill.ids import from_global_id
from tests.support import (
    add_card,
    error_codes,
    get_subscription,
    gql,
    history,
    make_customer,
    make_product,
    make_profile,
    make_world,
    mutate,
    ok,
    subscribe,
)

DECLINED = "4000000000000002"

RENEWALS = """query($id: ID!) { renewals(subscriptionId: $id, first: 100) { edges { node {
    id cycle kind status attempts nextRetryDate periodStart periodEnd amount { amount } gatewayId
    transactions { gatewayId status declineCode amount { amount } } } } } }"""
NOTIFICATIONS = """query($id: ID!) { notifications(subscriptionId: $id, first: 100) { edges { node {
    kind recipient payload } } } }"""


async def worker_once(database_url: str, day: str, *args: str) -> str:
    """``rebill worker --once`` with ``REBILL_NOW`` at 09:00 UTC on ``day``, in a thread of this process."""
    from typer.testing import CliRunner

    import rebill.billing.commands  # noqa: F401  (registers the commands)
    from rebill.cli import app

    env = {"DATABASE_URL": database_url, "REBILL_NOW": f"{day}T09:00:00Z", "REBILL_DELIVERER": "log"}
    result = await asyncio.to_thread(CliRunner().invoke, app, ["worker", "--once", *args], env=env)
    assert result.exit_code == 0, result.output
    return str(result.output)


async def renewals(client, sub_id: str) -> list[dict[str, Any]]:
    data = await gql(client, RENEWALS, {"id": sub_id})
    return sorted((e["node"] for e in data["renewals"]["edges"]), key=lambda r: r["cycle"])


async def notifications(client, sub_id: str) -> list[dict[str, Any]]:
    data = await gql(client, NOTIFICATIONS, {"id": sub_id})
    return [e["node"] for e in data["notifications"]["edges"]]


def kinds(notes: list[dict[str, Any]]) -> list[str]:
    return [n["kind"] for n in notes]


def at(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(hour=9, tzinfo=UTC)


async def set_card(client, sub_id: str, method: str) -> None:
    ok(
        await mutate(
            client, "setPaymentMethod", {"subscriptionId": sub_id, "paymentMethodId": method}, "subscription { id }"
        )
    )


async def declining_subscription(client, clock, **profile_fields: Any) -> tuple[Any, dict[str, Any], str]:
    """A monthly subscription started Jan 15 (first period paid) whose card now declines."""
    world = await make_world(client, **profile_fields)
    sub = (await subscribe(client, world))["subscription"]
    declining = await add_card(client, world.customer, DECLINED, default=False)
    await set_card(client, sub["id"], declining)
    return world, sub, declining


# -- seed 004: a failed payment ------------------------------------------------


async def test_a_failed_payment_is_retried_after_five_and_ten_days_then_cancelled_with_a_notice(
    client, clock, database_url
):
    _, sub, _ = await declining_subscription(client, clock)

    await worker_once(database_url, "2026-02-15")
    [_, failed] = await renewals(client, sub["id"])
    assert (failed["cycle"], failed["kind"], failed["status"]) == (2, "SCHEDULED", "FAILED")
    assert (failed["attempts"], failed["nextRetryDate"]) == (1, "2026-02-20")
    assert failed["transactions"][0]["declineCode"] == "card_declined"
    overdue = await get_subscription(client, sub["id"])
    assert (overdue["status"], overdue["overdueCount"]) == ("OVERDUE", 1)
    assert overdue["nextRenewalDate"] == "2026-03-15", "the schedule moves on while the payment is retried"
    [declined] = [n for n in await notifications(client, sub["id"]) if n["kind"] == "PAYMENT_DECLINED"]
    assert declined["recipient"] == "ada@example.com"
    assert declined["payload"]["subscriptionId"] == sub["id"], "payload ids are global ids"
    assert declined["payload"]["updatePaymentMethodUrl"].endswith(
        "/payment-methods?subscription=" + from_global_id(sub["id"])[1]
    )
    assert declined["payload"]["nextRetryDate"] == "2026-02-20"

    await worker_once(database_url, "2026-02-19")
    assert (await renewals(client, sub["id"]))[1]["attempts"] == 1, "no retry before its date"

    await worker_once(database_url, "2026-02-20")
    second = (await renewals(client, sub["id"]))[1]
    assert (second["status"], second["attempts"], second["nextRetryDate"]) == ("FAILED", 2, "2026-02-25")
    assert (await get_subscription(client, sub["id"]))["status"] == "OVERDUE"

    await worker_once(database_url, "2026-02-25")
    final = (await renewals(client, sub["id"]))[1]
    assert (final["status"], final["attempts"], final["nextRetryDate"]) == ("FAILED", 3, None)
    cancelled = await get_subscription(client, sub["id"])
    assert cancelled["status"] == "CANCELLED"
    assert cancelled["nextRenewalDate"] is None
    notes = await notifications(client, sub["id"])
    assert kinds(notes).count("PAYMENT_DECLINED") == 3
    [notice] = [n for n in notes if n["kind"] == "SUBSCRIPTION_CANCELLED"]
    assert notice["payload"]["reason"] == "payment_failed"

    await worker_once(database_url, "2026-03-15")
    assert len(await renewals(client, sub["id"])) == 2, "a cancelled subscription is never billed again"
    actors = {entry["actor"] for entry in await history(client, sub["id"])}
    assert "renewal-engine" in actors


async def test_a_retry_that_succeeds_returns_the_subscription_to_active_with_its_schedule_unchanged(
    client, clock, database_url
):
    world, sub, _ = await declining_subscription(client, clock)
    await worker_once(database_url, "2026-02-15")
    clock.set(at("2026-02-17"))
    await set_card(client, sub["id"], world.card)  # the customer followed the link

    await worker_once(database_url, "2026-02-20")
    paid = (await renewals(client, sub["id"]))[1]
    assert (paid["status"], paid["attempts"], paid["nextRetryDate"]) == ("PAID", 2, None)
    active = await get_subscription(client, sub["id"])
    assert (active["status"], active["overdueCount"], active["occurrencesBilled"]) == ("ACTIVE", 0, 2)
    assert active["nextRenewalDate"] == "2026-03-15"
    assert "RENEWAL_RECEIPT" in kinds(await notifications(client, sub["id"]))

    await worker_once(database_url, "2026-03-15")
    assert [(r["cycle"], r["status"]) for r in await renewals(client, sub["id"])] == [
        (1, "PAID"),
        (2, "PAID"),
        (3, "PAID"),
    ]


async def test_retry_renewal_charges_a_failed_renewal_at_once(client, clock, database_url):
    world, sub, _ = await declining_subscription(client, clock)
    await worker_once(database_url, "2026-02-15")
    failed = (await renewals(client, sub["id"]))[1]
    clock.set(at("2026-02-16"))
    selection = "renewal { status attempts } subscription { status overdueCount nextRetryDate }"

    declined = await mutate(client, "retryRenewal", {"renewalId": failed["id"]}, selection)
    assert error_codes(declined) == ["PAYMENT_DECLINED"]
    again = (await renewals(client, sub["id"]))[1]
    assert (again["status"], again["attempts"]) == ("FAILED", 2)
    still = await get_subscription(client, sub["id"])
    assert (still["status"], still["overdueCount"]) == ("OVERDUE", 1)

    await set_card(client, sub["id"], world.card)
    paid = ok(await mutate(client, "retryRenewal", {"renewalId": failed["id"]}, selection))
    assert paid["renewal"] == {"status": "PAID", "attempts": 3}
    assert paid["subscription"] == {"status": "ACTIVE", "overdueCount": 0, "nextRetryDate": None}
    receipts = [n for n in await notifications(client, sub["id"]) if n["kind"] == "RENEWAL_RECEIPT"]
    assert [r["payload"]["cycle"] for r in receipts] == [1, 2], "the first period's receipt, then the retry's"

    await worker_once(database_url, "2026-02-20")
    assert (await renewals(client, sub["id"]))[1]["attempts"] == 3, "a paid renewal is not retried again"


async def test_a_first_charge_declined_at_signup_is_retried_by_the_worker(client, clock, database_url):
    customer = await make_customer(client)
    declining = await add_card(client, customer, DECLINED)
    good = await add_card(client, customer, default=False)
    profile = await make_profile(client)
    product = await make_product(client, "coffee")
    item = {"productId": product, "unitPrice": {"amount": "9.00", "currency": "USD"}, "quantity": 1}
    created = ok(
        await mutate(
            client,
            "createSubscription",
            {"customerId": customer, "profileId": profile, "items": [item], "paymentMethodId": declining},
            "subscription { id status nextRetryDate } renewal { status }",
        )
    )
    sub = created["subscription"]
    assert (sub["status"], sub["nextRetryDate"], created["renewal"]["status"]) == ("OVERDUE", "2026-01-20", "FAILED")
    await set_card(client, sub["id"], good)
    await worker_once(database_url, "2026-01-20")
    [initial] = await renewals(client, sub["id"])
    assert (initial["kind"], initial["status"], initial["attempts"]) == ("INITIAL", "PAID", 2)
    assert (await get_subscription(client, sub["id"]))["status"] == "ACTIVE"


# -- seed 003: a 30-day profile and an overdue limit -------------------------


async def test_a_thirty_day_profile_with_an_overdue_limit_suspends_after_two_unpaid_renewals(
    client, clock, database_url
):
    world, sub, _ = await declining_subscription(
        client, clock, cadence={"unit": "DAY", "count": 30}, overdueLimit=2, retryScheduleDays=[]
    )
    assert sub["nextRenewalDate"] == "2026-02-14"

    await worker_once(database_url, "2026-02-14")
    first = await get_subscription(client, sub["id"])
    assert (first["status"], first["overdueCount"], first["nextRenewalDate"]) == ("OVERDUE", 1, "2026-03-16")

    await worker_once(database_url, "2026-03-16")
    suspended = await get_subscription(client, sub["id"])
    assert (suspended["status"], suspended["overdueCount"]) == ("SUSPENDED", 2)
    assert "SUBSCRIPTION_SUSPENDED" in kinds(await notifications(client, sub["id"]))

    await worker_once(database_url, "2026-05-20")
    assert len(await renewals(client, sub["id"])) == 3, "a suspended subscription is never renewed"

    # Activating after the next renewal date passed renews at once, for the current period only
    # (the periods that passed while suspended are not billed); what was owed when it was
    # suspended is collected at once with the card it has now.
    clock.set(at("2026-05-20"))
    await set_card(client, sub["id"], world.card)
    ok(await mutate(client, "activateSubscription", {"subscriptionId": sub["id"]}, "subscription { id }"))
    all_renewals = await renewals(client, sub["id"])
    assert [(r["cycle"], r["status"]) for r in all_renewals] == [(1, "PAID"), (2, "PAID"), (3, "PAID"), (4, "PAID")]
    assert (all_renewals[-1]["periodStart"], all_renewals[-1]["periodEnd"]) == ("2026-05-15", "2026-06-14")
    active = await get_subscription(client, sub["id"])
    assert (active["status"], active["overdueCount"], active["nextRenewalDate"]) == ("ACTIVE", 0, "2026-06-14")


# -- seed 004: month ends ------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "dates"),
    [
        ("STICKY", ["2026-09-30", "2026-10-30", "2026-11-30", "2026-12-30", "2027-01-30", "2027-02-28", "2027-03-28"]),
        (
            "ANCHORED",
            ["2026-09-30", "2026-10-31", "2026-11-30", "2026-12-31", "2027-01-31", "2027-02-28", "2027-03-31"],
        ),
    ],
)
async def test_a_subscription_started_on_august_31_renews_on_the_month_ends_of_its_policy(
    client, clock, database_url, policy, dates
):
    clock.set(at("2026-08-31"))
    world = await make_world(client, anchorPolicy=policy)
    sub = (await subscribe(client, world))["subscription"]
    assert sub["nextRenewalDate"] == dates[0]
    for day in dates:
        await worker_once(database_url, day)
        assert (await get_subscription(client, sub["id"]))["occurrencesBilled"] == dates.index(day) + 2
    starts = [r["periodStart"] for r in await renewals(client, sub["id"])][1:]
    assert starts == dates


async def test_a_worker_that_was_down_catches_up_one_renewal_per_period_in_order(client, clock, database_url):
    clock.set(at("2026-08-31"))
    world = await make_world(client, anchorPolicy="STICKY")
    sub = (await subscribe(client, world))["subscription"]
    output = await worker_once(database_url, "2027-03-29")
    assert "renewed 7" in output
    periods = [(r["cycle"], r["periodStart"], r["periodEnd"]) for r in await renewals(client, sub["id"])]
    assert periods[1:] == [
        (2, "2026-09-30", "2026-10-30"),
        (3, "2026-10-30", "2026-11-30"),
        (4, "2026-11-30", "2026-12-30"),
        (5, "2026-12-30", "2027-01-30"),
        (6, "2027-01-30", "2027-02-28"),
        (7, "2027-02-28", "2027-03-28"),
        (8, "2027-03-28", "2027-04-28"),
    ]


# -- seed 002: a quantity change at the next billing date ----------------------


async def test_a_quantity_change_for_the_next_billing_date_is_billed_then(client, clock, database_url):
    clock.set(at("2026-08-15"))
    customer = await make_customer(client)
    await add_card(client, customer)
    profile = await make_profile(client)
    access, users = await make_product(client, "access"), await make_product(client, "users")
    items = [
        {"productId": access, "unitPrice": {"amount": "50.00", "currency": "USD"}, "quantity": 1},
        {"productId": users, "unitPrice": {"amount": "5.00", "currency": "USD"}, "quantity": 10},
    ]
    created = ok(
        await mutate(
            client,
            "createSubscription",
            {"customerId": customer, "profileId": profile, "items": items},
            "subscription { id items { id } } renewal { amount { amount } }",
        )
    )
    assert created["renewal"]["amount"]["amount"] == "100.00"
    sub_id = created["subscription"]["id"]
    clock.set(at("2026-09-04"))
    ok(
        await mutate(
            client,
            "updateItem",
            {
                "subscriptionId": sub_id,
                "itemId": created["subscription"]["items"][1]["id"],
                "quantity": 15,
                "effective": "NEXT_RENEWAL",
                "consentReference": "customer portal, 2026-09-04",
            },
            "subscription { id }",
        )
    )
    await worker_once(database_url, "2026-09-15")
    september = (await renewals(client, sub_id))[1]
    assert (september["periodStart"], september["amount"]["amount"], september["status"]) == (
        "2026-09-15",
        "125.00",
        "PAID",
    )
    after = await get_subscription(client, sub_id)
    assert [i["quantity"] for i in after["items"]] == [1, 15]
    assert after["amount"]["amount"] == "125.00"


# -- trials, manual renewal, offline payment ---------------------------------


async def test_a_trial_ends_into_its_first_charge(client, clock, database_url):
    world = await make_world(client, trialDays=14)
    sub = (await subscribe(client, world))["subscription"]
    assert (sub["status"], sub["nextRenewalDate"]) == ("TRIAL", "2026-01-29")
    await worker_once(database_url, "2026-01-28")
    assert (await get_subscription(client, sub["id"]))["status"] == "TRIAL"
    await worker_once(database_url, "2026-01-29")
    [first] = await renewals(client, sub["id"])
    assert (first["cycle"], first["kind"], first["status"]) == (1, "SCHEDULED", "PAID")
    assert (first["periodStart"], first["periodEnd"]) == ("2026-01-29", "2026-02-28")
    active = await get_subscription(client, sub["id"])
    assert (active["status"], active["occurrencesBilled"], active["trialEndDate"]) == ("ACTIVE", 1, "2026-01-29")


async def test_a_subscription_paid_by_hand_is_reminded_then_awaits_reinstatement_until_renewed(
    client, clock, database_url
):
    world = await make_world(client)
    fields: dict[str, Any] = {"renewalType": "MANUAL"}
    sub = (await subscribe(client, world, **fields))["subscription"]

    await worker_once(database_url, "2026-02-07")
    assert "RENEWAL_REMINDER" not in kinds(await notifications(client, sub["id"]))
    await worker_once(database_url, "2026-02-08")
    await worker_once(database_url, "2026-02-09")
    [reminder] = [n for n in await notifications(client, sub["id"]) if n["kind"] == "RENEWAL_REMINDER"]
    assert reminder["payload"]["billingDate"] == "2026-02-15"
    assert reminder["payload"]["renewUrl"].endswith("/renew")

    await worker_once(database_url, "2026-02-15")
    waiting = await get_subscription(client, sub["id"])
    assert waiting["status"] == "AWAITING_REINSTATE"
    assert len(await renewals(client, sub["id"])) == 1, "nothing is charged"
    assert "AWAITING_REINSTATE" in kinds(await notifications(client, sub["id"]))

    clock.set(at("2026-02-18"))
    await set_card(client, sub["id"], world.card)
    renewed = ok(
        await mutate(
            client,
            "renewNow",
            {"subscriptionId": sub["id"]},
            "subscription { status nextRenewalDate } renewal { kind status periodStart }",
        )
    )
    assert renewed["subscription"] == {"status": "ACTIVE", "nextRenewalDate": "2026-03-18"}
    assert renewed["renewal"] == {"kind": "MANUAL", "status": "PAID", "periodStart": "2026-02-18"}


async def test_a_cancellation_at_period_end_takes_effect_at_the_boundary(client, clock, database_url):
    world = await make_world(client)
    sub = (await subscribe(client, world))["subscription"]
    ok(
        await mutate(
            client, "cancelSubscription", {"subscriptionId": sub["id"], "atPeriodEnd": True}, "subscription { id }"
        )
    )
    await worker_once(database_url, "2026-02-14")
    assert (await get_subscription(client, sub["id"]))["status"] == "ACTIVE"
    await worker_once(database_url, "2026-02-15")
    assert (await get_subscription(client, sub["id"]))["status"] == "CANCELLED"
    assert len(await renewals(client, sub["id"])) == 1
    [notice] = [n for n in await notifications(client, sub["id"]) if n["kind"] == "SUBSCRIPTION_CANCELLED"]
    assert notice["payload"]["reason"] == "cancelled_at_period_end"


async def test_the_last_occurrence_is_followed_by_expiry(client, clock, database_url):
    world = await make_world(client, maxOccurrences=3)
    sub = (await subscribe(client, world))["subscription"]
    output = await worker_once(database_url, "2026-04-15")
    assert "renewed 2" in output and "expired 1" in output
    expired = await get_subscription(client, sub["id"])
    assert (expired["status"], expired["occurrencesBilled"], expired["nextRenewalDate"]) == ("EXPIRED", 3, None)
    assert "SUBSCRIPTION_EXPIRED" in kinds(await notifications(client, sub["id"]))
