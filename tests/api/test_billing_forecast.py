"""billingForecast: what the worker will charge, per day of the seller's calendar (API.md "Revenue insight").

Every figure is worked out by hand in the tests. "Now" is 2026-01-15 09:00 UTC (tests/conftest.py); a
subscription created now is charged today and renews on the 15th of each month.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import text

from rebill.billing.engine import RenewalEngine
from rebill.services.forecast import ForecastService
from tests.api.test_contracts import attach
from tests.api.test_tax_and_shipping import shipping_profile, tax_rate
from tests.support import add_card, add_method, gql, gql_raw, make_profile, make_world, mutate, ok, subscribe

FORECAST = """query($currency: String!, $from: Date!, $to: Date!, $interval: MetricsInterval) {
  billingForecast(currency: $currency, from: $from, to: $to, interval: $interval) {
    date subscriptions expected { amount currency } expectedAfterDeclines { amount } } }"""
CA = {"line1": "1 Market St", "city": "San Francisco", "region": "CA", "postalCode": "94105", "country": "US"}


async def forecast(
    client, start: str = "2026-01-15", end: str = "2026-05-31", currency: str = "USD", interval: str = "DAY"
) -> list[dict[str, Any]]:
    data = await gql(client, FORECAST, {"currency": currency, "from": start, "to": end, "interval": interval})
    points: list[dict[str, Any]] = data["billingForecast"]
    return points


async def charged(client, **kwargs: Any) -> dict[str, str]:
    """The days something is expected, with the amount."""
    return {p["date"]: p["expected"]["amount"] for p in await forecast(client, **kwargs) if p["subscriptions"]}


async def test_a_monthly_subscription_is_forecast_on_each_renewal_and_points_cover_every_day(client):
    world = await make_world(client)
    await subscribe(client, world, price="62.96")
    points = await forecast(client, "2026-01-15", "2026-04-30")
    assert len(points) == 106 and points[0]["date"] == "2026-01-15" and points[-1]["date"] == "2026-04-30"
    assert points[0] == {
        "date": "2026-01-15",
        "subscriptions": 0,
        "expected": {"amount": "0.00", "currency": "USD"},
        "expectedAfterDeclines": {"amount": "0.00"},
    }, "today's charge was made already"
    assert await charged(client, end="2026-04-30") == {
        "2026-02-15": "62.96",
        "2026-03-15": "62.96",
        "2026-04-15": "62.96",
    }
    assert await charged(client, currency="EUR") == {}


async def test_month_end_subscriptions_follow_their_anchor_policy(client):
    """ANCHORED returns to the 31st after a short month; STICKY keeps the clamped day for good."""
    world = await make_world(client)
    sticky = await make_profile(client, name="Sticky", anchorPolicy="STICKY")
    for profile in (world.profile, sticky):
        sub = (await subscribe(client, world, price="10.00", profileId=profile))["subscription"]
        ok(
            await mutate(
                client,
                "changeNextRenewalDate",
                {"subscriptionId": sub["id"], "date": "2026-01-31"},
                "subscription { id }",
            )
        )
    points = {
        p["date"]: (p["subscriptions"], p["expected"]["amount"]) for p in await forecast(client) if p["subscriptions"]
    }
    assert points == {
        "2026-01-31": (2, "20.00"),
        "2026-02-28": (2, "20.00"),
        "2026-03-28": (1, "10.00"),  # STICKY: one month after Feb 28
        "2026-03-31": (1, "10.00"),  # ANCHORED: back to the 31st
        "2026-04-28": (1, "10.00"),
        "2026-04-30": (1, "10.00"),
        "2026-05-28": (1, "10.00"),
        "2026-05-31": (1, "10.00"),
    }


async def test_weeks_and_months_sum_their_days(client):
    world = await make_world(client)
    weekly = await make_profile(client, name="Weekly", cadence={"unit": "WEEK", "count": 1})
    await subscribe(client, world, price="10.00", profileId=weekly)  # Thursdays from Jan 22
    await subscribe(client, world, price="62.96")  # Feb 15 (a Sunday), Mar 15
    weeks = await forecast(client, "2026-02-01", "2026-02-28", interval="WEEK")
    assert [(p["date"], p["subscriptions"], p["expected"]["amount"]) for p in weeks] == [
        ("2026-02-01", 0, "0.00"),  # Sunday: the clipped week of Jan 26
        ("2026-02-02", 1, "10.00"),
        ("2026-02-09", 2, "72.96"),  # Feb 12 and Feb 15
        ("2026-02-16", 1, "10.00"),
        ("2026-02-23", 1, "10.00"),
    ]
    months = await forecast(client, "2026-01-20", "2026-03-31", interval="MONTH")
    assert [(p["date"], p["subscriptions"], p["expected"]["amount"]) for p in months] == [
        ("2026-01-20", 1, "20.00"),  # Jan 22 and 29
        ("2026-02-01", 2, "102.96"),  # four Thursdays and the 15th
        ("2026-03-01", 2, "102.96"),  # four Thursdays (5 to 26) and the 15th
    ]


async def test_a_phase_changes_the_amount_from_its_date(client):
    world = await make_world(client)
    sub = (await subscribe(client, world, price="62.96"))["subscription"]
    item = sub["items"][0]["id"]
    change = {
        "subscriptionId": sub["id"],
        "effectiveDate": "2026-03-01",
        "items": [{"itemId": item, "unitPrice": {"amount": "50.00", "currency": "USD"}}],
    }
    ok(await mutate(client, "updateSubscription", change, "phase { id }"))
    assert await charged(client, end="2026-04-30") == {
        "2026-02-15": "62.96",
        "2026-03-15": "50.00",
        "2026-04-15": "50.00",
    }


async def test_a_trial_is_forecast_from_its_end(client):
    world = await make_world(client, trialDays=14)
    created = await subscribe(client, world, price="30.00")
    assert created["subscription"]["status"] == "TRIAL" and created["subscription"]["trialEndDate"] == "2026-01-29"
    # The trial end is the anchor: Feb 28 is the 29th clamped, March returns to it.
    assert await charged(client, end="2026-03-31") == {
        "2026-01-29": "30.00",
        "2026-02-28": "30.00",
        "2026-03-29": "30.00",
    }


async def test_a_subscription_starting_later_is_forecast_from_its_start_or_its_trial_end(client, services):
    world = await make_world(client)
    assert (await subscribe(client, world, price="20.00", startDate="2026-01-31"))["subscription"]["status"] == "FUTURE"
    await subscribe(client, world, price="5.00", startDate="2026-02-10", trialDays=7)
    # The first starts on Jan 31 (its first period billed then) and renews on month ends clamped; the second's
    # trial runs from Feb 10 to Feb 17, its anchor.
    assert await charged(client, end="2026-04-30") == {
        "2026-01-31": "20.00",
        "2026-02-17": "5.00",
        "2026-02-28": "20.00",
        "2026-03-17": "5.00",
        "2026-03-31": "20.00",
        "2026-04-17": "5.00",
        "2026-04-30": "20.00",
    }
    result = await ForecastService(services).forecast("USD", date(2026, 1, 15), date(2026, 4, 30))
    assert result.priced_by_domain == 0, "the statement prices subscriptions starting later"


async def test_a_subscription_renewed_by_hand_starting_later_is_forecast_on_its_start_only(client, services):
    world = await make_world(client)
    await subscribe(client, world, price="20.00", startDate="2026-01-31", renewalType="MANUAL")
    await subscribe(client, world, price="5.00", startDate="2026-02-10", trialDays=7, renewalType="MANUAL")
    # The first period of the first is billed at its start; after it, the customer renews by hand. The second's
    # trial ends into a period nobody charges.
    assert await charged(client, end="2026-04-30") == {"2026-01-31": "20.00"}
    result = await ForecastService(services).forecast("USD", date(2026, 1, 15), date(2026, 4, 30))
    assert result.priced_by_domain == 1, "the statement prices the one billed at its start"


async def test_scheduled_cancellations_end_dates_and_occurrences_stop_the_forecast(client):
    world = await make_world(client)
    cancelled = (await subscribe(client, world, price="1.00"))["subscription"]
    ok(
        await mutate(
            client,
            "cancelSubscription",
            {"subscriptionId": cancelled["id"], "atPeriodEnd": True},
            "subscription { id }",
        )
    )
    ending = (await subscribe(client, world, price="2.00"))["subscription"]
    ok(
        await mutate(
            client, "setEndDate", {"subscriptionId": ending["id"], "endDate": "2026-03-20"}, "subscription { id }"
        )
    )
    three = await make_profile(client, name="Three instalments", maxOccurrences=3)
    await subscribe(client, world, price="4.00", profileId=three)  # Jan 15 was the first of three
    assert await charged(client) == {
        "2026-02-15": "6.00",  # the end date's last period starts Mar 15, before Mar 20: billed in full
        "2026-03-15": "6.00",
    }


async def test_a_declined_renewal_is_forecast_on_its_retry_date(client):
    world = await make_world(client, retryScheduleDays=[5, 5])
    await add_card(client, world.customer, "4000000000000002")
    created = await subscribe(client, world, price="62.96")
    assert created["renewal"]["status"] == "FAILED"
    points = await charged(client, end="2026-02-28")
    assert points == {"2026-01-20": "62.96", "2026-02-15": "62.96"}, "the retry, then the schedule goes on"


async def test_a_retry_and_renewals_in_one_period_count_the_subscription_once(client):
    world = await make_world(client, retryScheduleDays=[5, 5])
    weekly = await make_profile(client, name="Weekly", cadence={"unit": "WEEK", "count": 1})
    await add_card(client, world.customer, "4000000000000002")
    assert (await subscribe(client, world, price="40.00", profileId=weekly))["renewal"]["status"] == "FAILED"
    days = await charged(client, end="2026-01-31")
    assert days == {"2026-01-20": "40.00", "2026-01-22": "40.00", "2026-01-29": "40.00"}
    weeks = await forecast(client, end="2026-01-31", interval="WEEK")
    # The week of Jan 19 has the retry (Tue 20) and a renewal (Thu 22): one subscription, both amounts.
    assert [(p["date"], p["subscriptions"], p["expected"]["amount"]) for p in weeks] == [
        ("2026-01-15", 0, "0.00"),
        ("2026-01-19", 1, "80.00"),
        ("2026-01-26", 1, "40.00"),
    ]
    months = await forecast(client, end="2026-02-28", interval="MONTH")
    assert [(p["subscriptions"], p["expected"]["amount"]) for p in months] == [(1, "120.00"), (1, "160.00")]


async def test_a_retry_beside_renewals_the_domain_prices_counts_the_subscription_once(client, services):
    world = await make_world(client, retryScheduleDays=[5, 5])
    weekly = await make_profile(client, name="Weekly", cadence={"unit": "WEEK", "count": 1})
    await add_card(client, world.customer, "4000000000000002")
    created = await subscribe(client, world, price="40.00", profileId=weekly)
    assert created["renewal"]["status"] == "FAILED"
    sub = created["subscription"]
    change = {
        "subscriptionId": sub["id"],
        "effectiveDate": "2026-01-25",
        "items": [{"itemId": sub["items"][0]["id"], "unitPrice": {"amount": "30.00", "currency": "USD"}}],
    }
    ok(await mutate(client, "updateSubscription", change, "phase { id }"))
    # The phase leaves its renewals to the domain; the retry (Tue 20) is the statement's. The week of Jan 19
    # has both, and one subscription.
    weeks = await forecast(client, end="2026-01-31", interval="WEEK")
    assert [(p["date"], p["subscriptions"], p["expected"]["amount"]) for p in weeks] == [
        ("2026-01-15", 0, "0.00"),
        ("2026-01-19", 1, "80.00"),
        ("2026-01-26", 1, "30.00"),
    ]
    result = await ForecastService(services).forecast("USD", date(2026, 1, 15), date(2026, 1, 31))
    assert result.priced_by_domain == 1


async def test_a_forecast_reads_one_instant_of_the_data(client, services, monkeypatch):
    """The second statement imports the first one's snapshot: a retry given up while the forecast runs is still
    in it (it was due when the forecast started), and gone from the next one."""
    world = await make_world(client, retryScheduleDays=[5, 5])
    await add_card(client, world.customer, "4000000000000002")
    assert (await subscribe(client, world, price="62.96"))["renewal"]["status"] == "FAILED"
    rest = ForecastService._rest

    async def given_up_meanwhile(self, *args):
        async with services.engine.begin() as conn:
            await conn.execute(text("UPDATE renewals SET next_retry_date = NULL WHERE status = 'FAILED'"))
        return await rest(self, *args)

    monkeypatch.setattr(ForecastService, "_rest", given_up_meanwhile)
    assert await charged(client, end="2026-02-28") == {"2026-01-20": "62.96", "2026-02-15": "62.96"}
    monkeypatch.setattr(ForecastService, "_rest", rest)
    assert await charged(client, end="2026-02-28") == {"2026-02-15": "62.96"}


async def test_a_failed_statement_fails_the_forecast_and_gives_every_connection_back(client, services, monkeypatch):
    world = await make_world(client)
    await subscribe(client, world, price="62.96")
    running = peak = 0
    scheduled = ForecastService._scheduled

    async def counted(self, *args):
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        try:
            return await scheduled(self, *args)
        finally:
            running -= 1

    monkeypatch.setattr(ForecastService, "_scheduled", counted)
    # Three forecasts asked at once: two run, the third waits its turn; all agree.
    three = await asyncio.gather(*(charged(client, end="2026-03-31") for _ in range(3)))
    assert three == [{"2026-02-15": "62.96", "2026-03-15": "62.96"}] * 3 and peak == 2

    async def broken(self, *args):
        raise RuntimeError("the second statement failed")

    monkeypatch.setattr(ForecastService, "_rest", broken)
    with pytest.raises(RuntimeError, match="the second statement failed"):
        await ForecastService(services).forecast("USD", date(2026, 1, 15), date(2026, 3, 31))
    assert services.engine.pool.checkedout() == 0, "no connection is kept"


async def test_an_invoice_paid_by_transfer_is_forecast_on_its_due_date(client, services, clock):
    world = await make_world(client)
    transfer = await add_method(client, world.customer, "OFFLINE")
    sub = (await subscribe(client, world, price="50.00", paymentMethodId=transfer))["subscription"]
    ok(
        await mutate(
            client, "updateInvoicing", {"subscriptionId": sub["id"], "paymentTermsDays": 14}, "subscription { id }"
        )
    )
    # Billed on the 15th, paid by the due date 14 days later.
    assert await charged(client, end="2026-03-31") == {"2026-03-01": "50.00", "2026-03-29": "50.00"}
    clock.set(datetime(2026, 2, 15, 9, tzinfo=UTC))
    await RenewalEngine(services).run_once()  # issues the OPEN invoice due Mar 1
    assert await charged(client, start="2026-02-15", end="2026-03-31") == {"2026-03-01": "50.00", "2026-03-29": "50.00"}


async def test_a_draft_invoice_is_forecast_on_the_day_it_is_finalized(client, services, clock):
    world = await make_world(client)
    sub = (await subscribe(client, world, price="40.00"))["subscription"]
    await subscribe(client, world, price="10.00")
    drafts = {"subscriptionId": sub["id"], "draftInvoices": True, "draftDays": 3}
    ok(await mutate(client, "updateInvoicing", drafts, "subscription { id }"))
    # Renewals on the 15th become drafts, finalized and charged three days later.
    expected = {"2026-02-15": "10.00", "2026-02-18": "40.00", "2026-03-15": "10.00", "2026-03-18": "40.00"}
    assert await charged(client, end="2026-03-31") == expected
    clock.set(datetime(2026, 2, 15, 9, tzinfo=UTC))
    await RenewalEngine(services).run_once()  # the 40.00 renewal is a draft now, finalized on Feb 18
    assert await charged(client, start="2026-02-16", end="2026-03-31") == {
        "2026-02-18": "40.00",
        "2026-03-15": "10.00",
        "2026-03-18": "40.00",
    }


async def test_a_subscription_with_a_draft_and_a_renewal_in_one_period_counts_once(client, services, clock):
    world = await make_world(client)
    weekly = await make_profile(client, name="Weekly", cadence={"unit": "WEEK", "count": 1})
    sub = (await subscribe(client, world, price="40.00", profileId=weekly))["subscription"]
    drafts = {"subscriptionId": sub["id"], "draftInvoices": True, "draftDays": 1}
    ok(await mutate(client, "updateInvoicing", drafts, "subscription { id }"))
    clock.set(datetime(2026, 1, 22, 9, tzinfo=UTC))
    await RenewalEngine(services).run_once()  # Jan 22's renewal is a draft, finalized on Jan 23
    months = await forecast(client, start="2026-01-22", end="2026-02-28", interval="MONTH")
    # January: the draft (Jan 23) and Jan 29's renewal (charged Jan 30); February: four weeks.
    assert [(p["subscriptions"], p["expected"]["amount"]) for p in months] == [(1, "80.00"), (1, "160.00")]


async def test_a_contract_that_cancels_at_its_end_is_forecast_up_to_its_last_period(client):
    world = await make_world(client)
    ending = (await subscribe(client, world, price="20.00"))["subscription"]["id"]
    renewing = (await subscribe(client, world, price="30.00"))["subscription"]["id"]
    ok(await attach(client, ending, term={"unit": "MONTH", "count": 2}, actionAtTermEnd="CANCEL"))
    ok(await attach(client, renewing, term={"unit": "MONTH", "count": 2}, actionAtTermEnd="RENEW"))
    # The two-month term from Jan 15 ends on Mar 15: the period from Feb 15 is the last one billed.
    assert await charged(client, end="2026-04-30") == {
        "2026-02-15": "50.00",
        "2026-03-15": "30.00",
        "2026-04-15": "30.00",
    }


async def test_shipping_and_tax_are_in_the_forecast(client):
    profile = await shipping_profile(client, "Boxes", ("Standard", "5.00", "USD"))
    world = await make_world(client, shippingProfileId=profile)
    await tax_rate(client, name="CA sales tax", percentage="10", country="US", region="CA")
    ok(await mutate(client, "updateCustomer", {"customerId": world.customer, "billingAddress": CA}, "customer { id }"))
    sub = (await subscribe(client, world, price="62.96"))["subscription"]["id"]
    ok(await mutate(client, "updateShippingAddress", {"subscriptionId": sub, "address": CA}, "subscription { id }"))
    # 62.96 + 6.30 tax (6.296) + 5.00 shipping + 0.50 tax on shipping: the upcoming invoice's total.
    upcoming = "query($id: ID!) { subscription(id: $id) { upcomingInvoice { total { amount } } } }"
    assert (await gql(client, upcoming, {"id": sub}))["subscription"]["upcomingInvoice"]["total"]["amount"] == "74.76"
    assert await charged(client, end="2026-02-28") == {"2026-02-15": "74.76"}


async def test_coupons_that_take_nothing_leave_the_amount_and_the_subscription_is_counted_once(client, services):
    """Two coupons limited to a product the subscription does not have take nothing, at any renewal: it bills its
    whole amount. One of them on a subscription with that product takes its share off every renewal."""
    world = await make_world(client)
    for code, fields in (
        ("TEA25", {"percentOff": "25"}),
        ("TEA2", {"amountOff": {"amount": "2.00", "currency": "USD"}}),
    ):
        ok(
            await mutate(
                client, "createCoupon", {"code": code, "productIds": [world.other_product], **fields}, "coupon { id }"
            )
        )
    coffee = (await subscribe(client, world, price="62.96"))["subscription"]["id"]
    tea = {"productId": world.other_product, "unitPrice": {"amount": "10.00", "currency": "USD"}, "quantity": 1}
    both = ok(
        await mutate(
            client,
            "createSubscription",
            {
                "customerId": world.customer,
                "profileId": world.profile,
                "items": [
                    {"productId": world.product, "unitPrice": {"amount": "62.96", "currency": "USD"}, "quantity": 1},
                    tea,
                ],
            },
            "subscription { id }",
        )
    )["subscription"]["id"]
    for sid, codes in ((coffee, ("TEA25", "TEA2")), (both, ("TEA25",))):
        for code in codes:
            ok(await mutate(client, "applyCoupon", {"subscriptionId": sid, "code": code}, "subscription { id }"))
    points = {
        p["date"]: (p["subscriptions"], p["expected"]["amount"]) for p in await forecast(client, end="2026-03-31")
    }
    # 62.96, and 62.96 + 10.00 - 2.50.
    assert {day: point for day, point in points.items() if point[0]} == {
        "2026-02-15": (2, "133.42"),
        "2026-03-15": (2, "133.42"),
    }
    priced = await ForecastService(services).forecast("USD", date(2026, 1, 15), date(2026, 3, 31))
    assert priced.priced_by_domain == 0


async def test_expected_after_declines_takes_off_the_share_of_failed_first_attempts(client, services, clock):
    world = await make_world(client)
    sub = (await subscribe(client, world, price="62.96"))["subscription"]
    from rebill.schema.common import from_global_id

    sid = int(from_global_id(sub["id"])[1])
    # Scheduled renewals of the last 90 days: first attempts failed, paid, paid (the failed one's retry was
    # paid: its first attempt still failed). Not counted: an initial one that failed, one of 100 days ago,
    # and euros.
    attempts = [
        (10, "SCHEDULED", "USD", ["FAILED", "SUCCEEDED"], "2026-01-10"),
        (11, "SCHEDULED", "USD", ["SUCCEEDED"], "2025-12-10"),
        (12, "SCHEDULED", "USD", ["SUCCEEDED"], "2025-11-10"),
        (13, "INITIAL", "USD", ["FAILED"], "2026-01-01"),
        (14, "SCHEDULED", "USD", ["FAILED"], "2025-10-07"),
        (15, "SCHEDULED", "EUR", ["FAILED"], "2026-01-01"),
    ]
    await record_attempts(services, sid, attempts)
    [point] = [p for p in await forecast(client, end="2026-02-28") if p["subscriptions"]]
    # 62.96 x (1 - 1/3) = 41.9733…, rounded half-even to 41.97.
    assert (point["date"], point["expected"]["amount"], point["expectedAfterDeclines"]["amount"]) == (
        "2026-02-15",
        "62.96",
        "41.97",
    )
    # The closed hours of the window are kept (from Oct 17 09:00 to Jan 15 08:00, an hour ago); the last hour's
    # charges are counted on each request: a first attempt that failed at 08:00 makes it 2 of 4.
    async with services.engine.connect() as conn:
        kept = (await conn.execute(text("SELECT hour, attempted, failed FROM decline_hours ORDER BY hour"))).all()
    assert (len(kept), kept[0].hour, kept[-1].hour) == (
        90 * 24 - 1,
        datetime(2025, 10, 17, 9, tzinfo=UTC),
        datetime(2026, 1, 15, 7, tzinfo=UTC),
    )
    assert [(r.hour.isoformat(), r.attempted, r.failed) for r in kept if r.attempted] == [
        ("2025-11-10T10:00:00+00:00", 1, 0),
        ("2025-12-10T10:00:00+00:00", 1, 0),
        ("2026-01-10T10:00:00+00:00", 1, 1),
    ]
    await record_attempts(services, sid, [(16, "SCHEDULED", "USD", ["FAILED"], "2026-01-15")], hour=7)
    [point] = [p for p in await forecast(client, end="2026-02-28") if p["subscriptions"]]
    assert point["expectedAfterDeclines"]["amount"] == "31.48"
    # Two requests counting the same hours at once keep each hour once and agree.
    async with services.engine.begin() as conn:
        await conn.execute(text("DELETE FROM decline_hours"))
    both = await asyncio.gather(*(forecast(client, end="2026-02-28") for _ in range(2)))
    assert [p["expectedAfterDeclines"]["amount"] for points in both for p in points if p["subscriptions"]] == [
        "31.48",
        "31.48",
    ]
    async with services.engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM decline_hours")) == 90 * 24 - 1
    # A clock set back two days: the hours kept from its last closed one on are forgotten.
    clock.set(datetime(2026, 1, 13, 9, tzinfo=UTC))
    await forecast(client, start="2026-01-13", end="2026-02-28")
    async with services.engine.connect() as conn:
        assert await conn.scalar(text("SELECT max(hour) FROM decline_hours")) == datetime(2026, 1, 13, 7, tzinfo=UTC)


async def record_attempts(services, sid: int, attempts, hour: int = 9) -> None:
    """Renewals of ``sid`` (cycle, kind, currency, the results of their charges, day) with their charges, the
    first at ``hour`` UTC and the others an hour apart."""
    async with services.engine.begin() as conn:
        for cycle, kind, currency, results, day in attempts:
            at = datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)
            renewal = await conn.scalar(
                text(
                    "INSERT INTO renewals (subscription_id, cycle, kind, period_start, period_end, amount_minor,"
                    " currency, idempotency_key, status, created_at) VALUES (:s, :c, :k, :d, :d, 6296, :cur, :key,"
                    " 'PAID', :at) RETURNING id"
                ),
                {"s": sid, "c": cycle, "k": kind, "d": at.date(), "cur": currency, "key": f"t{cycle}", "at": at},
            )
            for n, result in enumerate(results):
                await conn.execute(
                    text(
                        "INSERT INTO transactions (renewal_id, subscription_id, kind, amount_minor, currency, status,"
                        " created_at) VALUES (:r, :s, 'CHARGE', 6296, :cur, :st, :at)"
                    ),
                    {"r": renewal, "s": sid, "cur": currency, "st": result, "at": at.replace(hour=hour + 1 + n)},
                )


async def test_more_than_400_points_are_refused(client):
    body = (
        await gql_raw(
            client, FORECAST, {"currency": "USD", "from": "2026-01-01", "to": "2027-02-05", "interval": "DAY"}
        )
    ).json()
    assert body["data"] is None
    [error] = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "401 points; at most 400" in error["message"]
    assert len(await forecast(client, "2026-01-01", "2059-04-30", interval="MONTH")) == 400
    backwards = (await gql_raw(client, FORECAST, {"currency": "USD", "from": "2026-02-01", "to": "2026-01-01"})).json()
    assert backwards["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_the_forecast_needs_the_read_scope(client, services):
    from rebill.services.apikeys import create_key

    writer = (await create_key(services.engine, "writer", ["write"], services.clock.now())).secret
    body = (
        await client.post(
            "/graphql",
            json={"query": FORECAST, "variables": {"currency": "USD", "from": "2026-01-15", "to": "2026-01-16"}},
            headers={"Authorization": f"Bearer {writer}"},
        )
    ).json()
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
