"""billingForecast's SQL agrees with the domain's rules on a mixed set of subscriptions.

The statement prices and dates most subscriptions itself; the renewal engine's own rules, run forward
(``domain.forecast.scheduled_charges``), are the reference. Cadences, anchor policies, month-end dates,
time zones on both sides of the seller's, trials, subscriptions starting later (some renewed by hand),
coupons that run out, several items, tax, shipping and end dates are mixed at random (seeded, so a
failure replays). Without tax or shipping the statement prices the subscriptions with one coupon in the
same pass as those without; that path has its own mixes, with credit balances among them.
"""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import date, timedelta

import pytest
from sqlalchemy import text

from rebill.db.repositories import Catalog, SubscriptionRepository
from rebill.domain import forecast as rules
from rebill.domain.cadence import local_today
from rebill.domain.money import Money
from rebill.domain.periods import MetricsInterval
from rebill.services.forecast import ForecastService
from tests.api.test_billing_forecast import forecast
from tests.api.test_tax_and_shipping import shipping_profile, tax_rate
from tests.support import add_card, make_customer, make_product, make_profile, mutate, ok

CA = {"line1": "1 Market St", "city": "San Francisco", "region": "CA", "postalCode": "94105", "country": "US"}
START, END = date(2026, 1, 15), date(2026, 9, 30)


async def expected_by_domain(services) -> dict[date, tuple[int, int]]:
    """Per seller day: how many subscriptions the engine's rules charge, and how much."""
    now = services.clock.now()
    seller = services.settings.seller_time_zone
    today = local_today(now, seller)
    days: dict[date, dict[int, int]] = defaultdict(dict)
    async with services.sessions() as session:
        repo = SubscriptionRepository(session, Catalog(session))
        ids = [row[0] for row in await session.execute(repo_ids())]
        for sid, state in (await repo.get_many(ids)).items():
            local = local_today(now, state.time_zone)
            for charge in rules.scheduled_charges(state, local, END + timedelta(days=1)):
                day = rules.charge_day(charge.billing_date, state.time_zone, seller, today, rules.delay_days(state, 0))
                if START <= day <= END:
                    days[day][sid] = days[day].get(sid, 0) + charge.amount.minor
    return {day: (len(subs), sum(subs.values())) for day, subs in days.items()}


async def forecast_by_day(client) -> dict[date, tuple[int, int]]:
    """Per seller day with a charge: how many subscriptions billingForecast charges, and how much."""
    points = await forecast(client, START.isoformat(), END.isoformat())
    return {
        date.fromisoformat(p["date"]): (p["subscriptions"], Money.parse(p["expected"]["amount"], "USD").minor)
        for p in points
        if p["subscriptions"]
    }


def repo_ids():
    from sqlalchemy import select

    from rebill.db import tables as t

    return select(t.table_of(t.Subscription).c.id)


@pytest.mark.parametrize("seed", [26, 1, 2])
async def test_sql_and_the_domain_agree_on_a_mixed_set(client, services, seed):
    await agree_on_a_mixed_set(client, services, seed, taxed=True)


@pytest.mark.parametrize("seed", [26, 3])
async def test_sql_and_the_domain_agree_without_tax_or_shipping(client, services, seed):
    await agree_on_a_mixed_set(client, services, seed, taxed=False)


async def test_sql_and_the_domain_agree_when_no_coupon_is_limited_to_some_products(client, services):
    """Those with several coupons are then found among the subscriptions with more than one applied."""
    await agree_on_a_mixed_set(client, services, 4, taxed=False, limited=False)


async def agree_on_a_mixed_set(client, services, seed: int, *, taxed: bool, limited: bool = True) -> None:
    rng = random.Random(seed)
    # Its own stream, so the mixes above stay as they were: some starting later are renewed by hand.
    by_hand = random.Random(seed + 1000)
    ships = None
    if taxed:
        ships = await shipping_profile(client, "Parcels", ("Standard", "4.99", "USD"), ("Standard", "3.00", "EUR"))
        await tax_rate(client, name="CA sales tax", percentage="8.875", country="US", region="CA")
    shipped = {"shippingProfileId": ships} if ships else {}
    profiles = [
        await make_profile(client, name="Monthly"),
        await make_profile(client, name="Sticky", anchorPolicy="STICKY"),
        await make_profile(client, name="30 days", cadence={"unit": "DAY", "count": 30}),
        await make_profile(client, name="Weekly", cadence={"unit": "WEEK", "count": 1}, **shipped),
        await make_profile(client, name="Quarterly", cadence={"unit": "MONTH", "count": 3}),
        await make_profile(client, name="Sticky 2", cadence={"unit": "MONTH", "count": 2}, anchorPolicy="STICKY"),
        await make_profile(client, name="Trial", trialDays=14, **shipped),
        await make_profile(client, name="Six", maxOccurrences=6),
    ]
    products = [await make_product(client, sku) for sku in ("coffee", "tea", "mugs")]
    coupons = {
        "ONCE10": {"percentOff": "10", "duration": "ONCE"},
        "REP3": {"percentOff": "20", "duration": "REPEATING", "durationCycles": 3},
        "ALWAYS15": {"percentOff": "15"},
        "FIVE": {"amountOff": {"amount": "5.00", "currency": "USD"}},
        "TWOONCE": {"amountOff": {"amount": "2.00", "currency": "USD"}, "duration": "ONCE"},
        "TEAONLY": {"percentOff": "25", "productIds": [products[1]]},
    }
    if not limited:
        del coupons["TEAONLY"]
    for code, fields in coupons.items():
        ok(await mutate(client, "createCoupon", {"code": code, **fields}, "coupon { id }"))
    customers = []
    for n, zone in enumerate(("UTC", "Pacific/Auckland", "America/Los_Angeles", "Europe/Paris")):
        customer = await make_customer(client, f"c{n}@example.com", timeZone=zone)
        await add_card(client, customer)
        if n % 2:
            ok(
                await mutate(
                    client, "updateCustomer", {"customerId": customer, "billingAddress": CA}, "customer { id }"
                )
            )
        customers.append(customer)

    for _ in range(48):
        items = [
            {
                "productId": rng.choice(products[:2]),
                "unitPrice": {"amount": f"{rng.randint(100, 9999) / 100:.2f}", "currency": "USD"},
                "quantity": rng.randint(1, 3),
            }
        ]
        if rng.random() < 0.3:
            items.append({"productId": products[2], "unitPrice": {"amount": "3.33", "currency": "USD"}, "quantity": 1})
        data = {"customerId": rng.choice(customers), "profileId": rng.choice(profiles), "items": items}
        if rng.random() < 0.2:
            # Starting later (some month ends among them), some with a trial or their first period paid elsewhere.
            start = rng.choice((START + timedelta(days=rng.randint(1, 120)), date(2026, 1, 31), date(2026, 3, 31)))
            data["startDate"] = start.isoformat()
            data.update(rng.choice(({}, {}, {"trialDays": 14}, {"billFirstPeriod": False})))
            if by_hand.random() < 0.4:
                data["renewalType"] = "MANUAL"
        sub = ok(await mutate(client, "createSubscription", data, "subscription { id status }"))["subscription"]
        sid = sub["id"]
        for code in rng.sample(sorted(coupons), rng.choice((0, 0, 1, 1, 2))):
            await mutate(client, "applyCoupon", {"subscriptionId": sid, "code": code}, "subscription { id }")
        if rng.random() < 0.3 and sub["status"] != "TRIAL":
            day = rng.choice(("2026-01-29", "2026-01-30", "2026-01-31", "2026-02-28", "2026-03-31"))
            await mutate(client, "changeNextRenewalDate", {"subscriptionId": sid, "date": day}, "subscription { id }")
        if rng.random() < 0.3:
            ok(
                await mutate(
                    client, "updateShippingAddress", {"subscriptionId": sid, "address": CA}, "subscription { id }"
                )
            )
        if rng.random() < 0.15:
            end = (START + timedelta(days=rng.randint(30, 200))).isoformat()
            await mutate(client, "setEndDate", {"subscriptionId": sid, "endDate": end}, "subscription { id }")

    if not taxed:
        # A few credit balances (those subscriptions are the domain's), and coupons used up by past renewals,
        # so that some subscriptions keep several coupons of which one or none still runs.
        async with services.engine.begin() as conn:
            await conn.execute(text("UPDATE subscriptions SET credit_minor = 500 WHERE id % 9 = 0"))
            await conn.execute(
                text(
                    """UPDATE applied_coupons ac SET cycles_used = coalesce(c.duration_cycles, 1)
                       FROM coupons c WHERE c.id = ac.coupon_id AND c.duration <> 'FOREVER' AND ac.subscription_id % 2 = 0"""
                )
            )
        # What each bills today, as saving it would store it.
        async with services.sessions() as session, session.begin():
            repo = SubscriptionRepository(session, Catalog(session))
            ids = [row[0] for row in await session.execute(repo_ids())]
            for sid, state in (await repo.get_many(ids)).items():
                await session.execute(
                    text("UPDATE subscriptions SET amount_minor = :amount, discount_minor = :discount WHERE id = :id"),
                    {"amount": state.amount.minor, "discount": state.next_bill().discount.minor, "id": sid},
                )
    want = await expected_by_domain(services)
    assert await forecast_by_day(client) == want
    priced = await ForecastService(services).forecast("USD", START, END, MetricsInterval.DAY)
    assert priced.priced_by_domain < 48 // 2, "most subscriptions are priced by the statement"


async def test_anchors_in_other_months_and_years_date_as_their_own(client, services):
    """Anchors whole months or years before the next renewal, some days before it, or after it: each subscription
    is charged on its own anchor's dates, as the engine's rules charge it, month ends, yearly and 5-month
    cadences, cycles of days and STICKY among them."""
    customer = await make_customer(client)
    await add_card(client, customer)
    product = await make_product(client, "coffee")
    profiles = [
        await make_profile(client, name="Monthly"),
        await make_profile(client, name="Quarterly", cadence={"unit": "MONTH", "count": 3}),
        await make_profile(client, name="Yearly", cadence={"unit": "YEAR", "count": 1}),
        await make_profile(client, name="Five", cadence={"unit": "MONTH", "count": 5}),
        await make_profile(client, name="30 days", cadence={"unit": "DAY", "count": 30}),
        await make_profile(client, name="Fortnight", cadence={"unit": "WEEK", "count": 2}),
        await make_profile(client, name="Sticky", anchorPolicy="STICKY"),
    ]
    next_dates = ("2026-01-29", "2026-01-31", "2026-02-28", "2026-03-31")
    for n in range(28):
        item = {"productId": product, "unitPrice": {"amount": f"{10 + n}.00", "currency": "USD"}, "quantity": 1}
        data = {"customerId": customer, "profileId": profiles[n % len(profiles)], "items": [item]}
        sid = ok(await mutate(client, "createSubscription", data, "subscription { id }"))["subscription"]["id"]
        day = next_dates[n // len(profiles)]
        ok(await mutate(client, "changeNextRenewalDate", {"subscriptionId": sid, "date": day}, "subscription { id }"))
    async with services.engine.begin() as conn:
        # Anchors whole months, years or some days before the next renewal, and a few after it.
        await conn.execute(
            text(
                """UPDATE subscriptions SET anchor_date = CASE id % 4
                       WHEN 0 THEN (next_renewal_date - make_interval(months => (id % 15)::int))::date
                       WHEN 1 THEN (next_renewal_date - make_interval(years => (1 + id % 3)::int))::date
                       WHEN 2 THEN next_renewal_date - (id % 41)::int
                       ELSE next_renewal_date + (id % 5)::int END"""
            )
        )
    want = await expected_by_domain(services)
    assert await forecast_by_day(client) == want
    assert len(want) > 40
    priced = await ForecastService(services).forecast("USD", START, END, MetricsInterval.DAY)
    assert priced.priced_by_domain == 0
