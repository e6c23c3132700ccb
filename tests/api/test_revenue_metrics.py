"""revenueMetrics: MRR, its movements and the money of each month, worked out by hand (API.md "Revenue insight").

One story runs from 2026-01-15 (tests/conftest.py's "now") to March, through the API and the renewal
worker, every change at 09:00 UTC; the seller is in New York (04:00 there, the same day). MRR per subscription: monthly x 1, yearly / 12, weekly x 52 / 12,
every 30 days x 365 / 360, quarterly / 3, rounded half-even to the cent.

January 15: A monthly 62.96 (62.96); B yearly 120.00 (10.00); D every 30 days 30.00 (30.42);
  E quarterly 2 x 50.00 (33.33); T monthly 29.00 with a 21-day trial (0: trialing); G monthly 50.00 EUR.
February 1: A's price to 70.00 from its next renewal (+7.04); B gets 10 % off for good (108.00 a year: -1.00);
  E's quantity to 1 from its next renewal (16.67: -16.66).
February 3: C weekly 10.00 (43.33).  February 5: the worker ends T's trial and charges it (new 29.00).
February 10: D cancelled (churned 30.42).  February 12: H monthly 20.00, its first charge declined (OVERDUE
  still counts: new 20.00; a failed payment).
March 2: B suspended (churned 9.00); March 4: H's customer adds a card, which pays H's renewal (recovered);
  March 6: A changes to a dearer product at 90.00 (its replacement continues it: expansion 20.00, not churn
  and new); March 8: 4.00 of C's first charge refunded; March 9: B activated again (reactivation 9.00).
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import text

from rebill.billing.engine import RenewalEngine
from rebill.db.repositories import SubscriptionRepository
from rebill.domain.mrr import mrr
from tests.support import (
    add_card,
    gql,
    gql_raw,
    make_customer,
    make_product,
    make_profile,
    make_world,
    mutate,
    ok,
    subscribe,
)

DECLINED = "4000000000000002"
POINT = """periodStart periodEnd mrr { amount currency } arr { amount } newMrr { amount } expansionMrr { amount }
  contractionMrr { amount } churnedMrr { amount } reactivationMrr { amount } activeSubscriptions
  trialingSubscriptions newSubscriptions churnedSubscriptions billed { amount } collected { amount }
  refunded { amount } failedPayments recoveredPayments"""
METRICS = f"""query($currency: String!, $from: Date!, $to: Date!, $interval: MetricsInterval) {{
  revenueMetrics(currency: $currency, from: $from, to: $to, interval: $interval) {{ {POINT} }} }}"""
MOVES = ("newMrr", "expansionMrr", "contractionMrr", "churnedMrr", "reactivationMrr")


@pytest.fixture
def settings(settings: Any) -> Any:
    return dataclasses.replace(settings, seller={"name": "Rebill Coffee", "timeZone": "America/New_York"})


def at(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(hour=9, tzinfo=UTC)


async def metrics(client, start: str, end: str, currency: str = "USD", interval: str | None = None) -> list[Any]:
    variables: dict[str, Any] = {"currency": currency, "from": start, "to": end}
    if interval is not None:
        variables["interval"] = interval
    points: list[dict[str, Any]] = (await gql(client, METRICS, variables))["revenueMetrics"]
    return points


def flat(point: dict[str, Any]) -> dict[str, Any]:
    """A point with its amounts as strings."""
    return {k: (v["amount"] if isinstance(v, dict) else v) for k, v in point.items()}


def cents(amount: str) -> int:
    whole, _, frac = amount.partition(".")
    sign = -1 if whole.startswith("-") else 1
    return sign * (abs(int(whole)) * 100 + int(frac or 0))


async def change(client, name: str, data: dict[str, Any]) -> dict[str, Any]:
    return ok(await mutate(client, name, data, "subscription { id status amount { amount } }"))


async def the_story(client, services, clock) -> dict[str, str]:
    world = await make_world(client)
    yearly = await make_profile(client, name="Yearly", cadence={"unit": "YEAR", "count": 1})
    weekly = await make_profile(client, name="Weekly", cadence={"unit": "WEEK", "count": 1})
    every_30 = await make_profile(client, name="Every 30 days", cadence={"unit": "DAY", "count": 30})
    quarterly = await make_profile(client, name="Quarterly", cadence={"unit": "MONTH", "count": 3})
    trial = await make_profile(client, name="Trial", trialDays=21)
    dearer = await make_product(client, "coffee-premium")
    ok(await mutate(client, "createCoupon", {"code": "TENOFF", "percentOff": "10"}, "coupon { id }"))

    async def sub(price: str, quantity: int = 1, currency: str = "USD", **fields: Any) -> dict[str, Any]:
        return await subscribe(client, world, price=price, quantity=quantity, currency=currency, **fields)

    a = await sub("62.96")
    b = await sub("120.00", profileId=yearly)
    d = await sub("30.00", profileId=every_30)
    e = await sub("50.00", 2, profileId=quarterly)
    t = await sub("29.00", profileId=trial)
    assert t["subscription"]["status"] == "TRIAL"
    await sub("50.00", currency="EUR")
    ids = {name: p["subscription"]["id"] for name, p in (("A", a), ("B", b), ("D", d), ("E", e), ("T", t))}

    clock.set(at("2026-02-01"))
    a_item = a["subscription"]["items"][0]["id"]
    await change(
        client,
        "updateItem",
        {
            "subscriptionId": ids["A"],
            "itemId": a_item,
            "unitPrice": {"amount": "70.00", "currency": "USD"},
            "effective": "NEXT_RENEWAL",
            "consentReference": "call 2026-02-01",
        },
    )
    await change(client, "applyCoupon", {"subscriptionId": ids["B"], "code": "TENOFF"})
    e_item = e["subscription"]["items"][0]["id"]
    await change(
        client, "updateItem", {"subscriptionId": ids["E"], "itemId": e_item, "quantity": 1, "effective": "NEXT_RENEWAL"}
    )

    clock.set(at("2026-02-03"))
    c = await sub("10.00", profileId=weekly)
    ids["C"] = c["subscription"]["id"]

    clock.set(at("2026-02-05"))
    await RenewalEngine(services).run_once()
    trialled = await gql(client, "query($id: ID!) { subscription(id: $id) { status } }", {"id": ids["T"]})
    assert trialled["subscription"]["status"] == "ACTIVE"

    clock.set(at("2026-02-10"))
    await change(client, "cancelSubscription", {"subscriptionId": ids["D"]})

    clock.set(at("2026-02-12"))
    late_payer = await make_customer(client, "late@example.com")
    await add_card(client, late_payer, DECLINED)
    h = ok(
        await mutate(
            client,
            "createSubscription",
            {
                "customerId": late_payer,
                "profileId": world.profile,
                "items": [
                    {"productId": world.product, "unitPrice": {"amount": "20.00", "currency": "USD"}, "quantity": 1}
                ],
            },
            "subscription { id status }",
        )
    )
    assert h["subscription"]["status"] == "OVERDUE"
    ids["H"] = h["subscription"]["id"]
    # Asked now, January's days are kept (closed) and the rest summed from the rows; March's ask adds to them.
    [jan] = await metrics(client, "2026-01-01", "2026-01-31")
    assert jan["mrr"]["amount"] == "136.71"

    clock.set(at("2026-03-02"))
    await change(client, "suspendSubscription", {"subscriptionId": ids["B"]})
    clock.set(at("2026-03-04"))
    await add_card(client, late_payer)  # the new default card pays the renewal in dunning at once
    paid = await gql(client, "query($id: ID!) { subscription(id: $id) { status } }", {"id": ids["H"]})
    assert paid["subscription"]["status"] == "ACTIVE"
    clock.set(at("2026-03-06"))
    replaced = ok(
        await mutate(
            client,
            "changeProduct",
            {
                "subscriptionId": ids["A"],
                "itemId": a_item,
                "productId": dearer,
                "unitPrice": {"amount": "90.00", "currency": "USD"},
                "consentReference": "upgrade 2026-03-06",
            },
            "subscription { id status amount { amount } }",
        )
    )
    assert replaced["subscription"]["amount"] == {"amount": "90.00"}
    clock.set(at("2026-03-08"))
    ok(
        await mutate(
            client,
            "refundRenewal",
            {"renewalId": c["renewal"]["id"], "amount": {"amount": "4.00", "currency": "USD"}},
            "renewal { id }",
        )
    )
    clock.set(at("2026-03-09"))
    await change(client, "activateSubscription", {"subscriptionId": ids["B"]})
    return ids


async def test_a_quarter_of_movements_counts_and_money_month_by_month(client, services, clock):
    await the_story(client, services, clock)
    points = [flat(p) for p in await metrics(client, "2026-01-01", "2026-03-31")]
    assert [(p["periodStart"], p["periodEnd"]) for p in points] == [
        ("2026-01-01", "2026-01-31"),
        ("2026-02-01", "2026-02-28"),
        ("2026-03-01", "2026-03-31"),
    ]
    jan, feb, mar = points
    assert jan == {
        "periodStart": "2026-01-01",
        "periodEnd": "2026-01-31",
        "mrr": "136.71",  # 62.96 + 10.00 + 30.42 + 33.33
        "arr": "1640.52",
        "newMrr": "136.71",
        "expansionMrr": "0.00",
        "contractionMrr": "0.00",
        "churnedMrr": "0.00",
        "reactivationMrr": "0.00",
        "activeSubscriptions": 4,
        "trialingSubscriptions": 1,  # T: no MRR before it converts
        "newSubscriptions": 4,
        "churnedSubscriptions": 0,
        "billed": "312.96",  # 62.96 + 120.00 + 30.00 + 100.00
        "collected": "312.96",
        "refunded": "0.00",
        "failedPayments": 0,
        "recoveredPayments": 0,
    }
    assert feb == {
        "periodStart": "2026-02-01",
        "periodEnd": "2026-02-28",
        "mrr": "188.00",
        "arr": "2256.00",
        "newMrr": "92.33",  # C 43.33, T 29.00 at conversion, H 20.00
        "expansionMrr": "7.04",  # A 62.96 -> 70.00
        "contractionMrr": "17.66",  # B 10.00 -> 9.00, E 33.33 -> 16.67
        "churnedMrr": "30.42",  # D
        "reactivationMrr": "0.00",
        "activeSubscriptions": 6,  # A B E C T H
        "trialingSubscriptions": 0,
        "newSubscriptions": 3,
        "churnedSubscriptions": 1,
        "billed": "59.00",  # C 10.00, T 29.00, H 20.00 (open)
        "collected": "39.00",
        "refunded": "0.00",
        "failedPayments": 1,
        "recoveredPayments": 0,
    }
    assert mar == {
        "periodStart": "2026-03-01",
        "periodEnd": "2026-03-31",
        "mrr": "208.00",
        "arr": "2496.00",
        "newMrr": "0.00",
        "expansionMrr": "20.00",  # A 70.00 -> its replacement at 90.00
        "contractionMrr": "0.00",
        "churnedMrr": "9.00",  # B suspended
        "reactivationMrr": "9.00",  # B activated again
        "activeSubscriptions": 6,  # A's replacement instead of A
        "trialingSubscriptions": 0,
        "newSubscriptions": 0,
        "churnedSubscriptions": 1,
        "billed": "0.00",
        "collected": "20.00",  # H's renewal, paid by the new card
        "refunded": "4.00",
        "failedPayments": 0,
        "recoveredPayments": 1,
    }
    # Every point reconciles with the one before it.
    previous = 0
    for p in points:
        moved = cents(p["newMrr"]) + cents(p["reactivationMrr"]) + cents(p["expansionMrr"])
        assert cents(p["mrr"]) == previous + moved - cents(p["contractionMrr"]) - cents(p["churnedMrr"])
        previous = cents(p["mrr"])

    # The other currency keeps to itself.
    [eur] = [flat(p) for p in await metrics(client, "2026-01-01", "2026-03-31", "EUR", "MONTH")][-1:]
    assert (eur["mrr"], eur["activeSubscriptions"], eur["newMrr"]) == ("50.00", 1, "0.00")

    # Days: February 1 moved A, B and E; February 3 brought C, February 5 converted T.
    days = {p["periodStart"]: flat(p) for p in await metrics(client, "2026-02-01", "2026-02-05", interval="DAY")}
    assert [days[d]["mrr"] for d in sorted(days)] == ["126.09", "126.09", "169.42", "169.42", "198.42"]
    assert (days["2026-02-01"]["expansionMrr"], days["2026-02-01"]["contractionMrr"]) == ("7.04", "17.66")
    assert days["2026-02-05"]["newSubscriptions"] == 1 and days["2026-02-05"]["trialingSubscriptions"] == 0

    # Weeks start on Monday: 2026-02-09 to 2026-02-15 holds D's cancellation and H's decline.
    weeks = [flat(p) for p in await metrics(client, "2026-02-09", "2026-02-22", interval="WEEK")]
    assert [(w["periodStart"], w["churnedMrr"], w["newMrr"], w["failedPayments"]) for w in weeks] == [
        ("2026-02-09", "30.42", "20.00", 1),
        ("2026-02-16", "0.00", "0.00", 0),
    ]

    # What the movements add up to, line by line of product changes, is the domain's MRR of the line's last one.
    async with services.sessions() as session:
        all_ids = list((await session.execute(text("SELECT id FROM subscriptions ORDER BY id"))).scalars())
        states = await SubscriptionRepository(session).get_many(all_ids)
        chains = dict(
            (
                await session.execute(
                    text("SELECT chain_id, sum(mrr_after_minor - mrr_before_minor) FROM revenue_movements GROUP BY 1")
                )
            ).all()
        )
    for sid, state in states.items():
        if state.replaced_by_id is None:
            first = sid
            while states[first].replaces_id is not None:
                first = states[first].replaces_id
            assert chains.get(first, 0) == mrr(state).minor, (sid, state.status)


async def test_a_range_of_more_than_400_points_or_backwards_is_refused(client):
    for variables, message in (
        ({"from": "2026-01-01", "to": "2027-02-05", "interval": "DAY"}, "401 points; at most 400"),
        ({"from": "2026-03-01", "to": "2026-02-01"}, "after"),
        ({"from": "2026-01-01", "to": "2026-02-01", "currency": "usd"}, "currency"),
    ):
        response = await gql_raw(client, METRICS, {"currency": "USD", **variables})
        body = response.json()
        assert body["data"] is None, body
        [error] = body["errors"]
        assert error["extensions"]["code"] == "BAD_USER_INPUT" and message in error["message"], error
    assert len(await metrics(client, "2026-01-01", "2027-02-04", interval="DAY")) == 400


async def test_periods_are_days_of_the_sellers_calendar(client, clock):
    """03:00 UTC on January 15 is still January 14 in New York: the sale, its invoice and payment are the 14th's."""
    world = await make_world(client)
    clock.set(datetime(2026, 1, 15, 3, 0, tzinfo=UTC))
    await subscribe(client, world, price="10.00")
    days = [flat(p) for p in await metrics(client, "2026-01-14", "2026-01-15", interval="DAY")]
    assert [(d["periodStart"], d["newMrr"], d["billed"], d["collected"], d["mrr"]) for d in days] == [
        ("2026-01-14", "10.00", "10.00", "10.00", "10.00"),
        ("2026-01-15", "0.00", "0.00", "0.00", "10.00"),
    ]
