"""The schedules' tallies that billingForecast reads stay what a fresh count of the subscriptions gives.

Every write path moves subscriptions between schedules: creation, a coupon, a price change by a bulk run,
renewals and a decline by the worker, a payment by transfer, invoicing settings, a cancellation, a deletion.
After each, the tallies (rows of changes added by the triggers, summed or not) must equal a count from the
subscriptions themselves; and a sum of the rows taken while another writer's transaction is open loses
nothing of it.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta
from typing import Any

from dateutil.relativedelta import relativedelta
from sqlalchemy import text

from rebill.billing.engine import RenewalEngine
from rebill.db import schedule
from rebill.db.schedule import KEY
from rebill.domain.subscription import PaymentKind
from rebill.services.forecast import ForecastService
from tests.integration.test_bulk_support import ADMIN, Shop, ok

# The tallies as the forecast reads them, and a fresh count: one row per schedule with subscriptions on it.
TALLIED = f"""SELECT {KEY}, sum(subscriptions) AS n, sum(amount_minor) AS amount FROM schedule_tallies
GROUP BY {KEY} HAVING sum(subscriptions) <> 0 OR sum(amount_minor) <> 0 ORDER BY {KEY}"""
COUNTED = f"SELECT {KEY}, subscriptions AS n, amount_minor AS amount FROM ({schedule.COUNT}) AS c ORDER BY {KEY}"


async def rows(services: Any, sql: str) -> list[tuple[Any, ...]]:
    async with services.engine.connect() as conn:
        return [tuple(row) for row in await conn.execute(text(sql))]


async def assert_tallied(services: Any, step: str) -> list[tuple[Any, ...]]:
    counted = await rows(services, COUNTED)
    assert await rows(services, TALLIED) == counted, f"after {step}"
    return counted


async def test_every_write_keeps_the_tallies_equal_to_a_fresh_count(services, clock):
    shop = await Shop(services).open()
    monthly = [await shop.subscribe(price) for price in ("10.00", "12.00", "10.00")]
    yearly = await shop.subscribe("99.00", profile="yearly", customer=shop.customers[1])
    euros = await shop.subscribe("8.00", currency="EUR", customer=shop.customers[2])
    counted = await assert_tallied(services, "creation")
    assert sum(row[-2] for row in counted) == 5, "every new subscription is plain"

    await shop.coupon(monthly[0], "TENOFF")
    await assert_tallied(services, "a coupon that takes something: no longer plain")
    await shop.run({"segments": [{"name": "all", "actions": [{"adjustPrice": {"percent": "10"}}]}]})
    await assert_tallied(services, "a bulk price change")

    transfer = ok(
        await shop.catalog.add_payment_method(
            ADMIN, {}, customer_id=shop.customers[1], kind=PaymentKind.OFFLINE, gateway_token=None, make_default=False
        )
    ).extra["paymentMethodId"]
    await shop.do("set_payment_method", yearly, payment_method_id=transfer)
    offline = await assert_tallied(services, "a payment by transfer")
    assert any(row[6] for row in offline), "the yearly one is tallied as paid by transfer"
    await shop.do("update_invoicing", monthly[1], changes={"purchase_order": "PO-7"})
    await assert_tallied(services, "invoicing settings: no longer plain")

    # A month on: the worker renews the monthly ones, one card declining (into dunning, still billed).
    await shop.do("set_payment_method", monthly[2], payment_method_id=await declining_card(shop))
    renewal = (await shop.state(monthly[2])).next_renewal_date
    assert renewal is not None
    clock.set(clock.now() + timedelta(days=(renewal - clock.today()).days))
    report = await RenewalEngine(services).run_once()
    assert report.renewed >= 2 and report.failed == 1
    await assert_tallied(services, "renewals and a decline")

    await shop.do("cancel", euros, at_period_end=False, refund_last_renewal=False, cancel_fulfillment=False)
    await assert_tallied(services, "a cancellation")
    # Rows written by SQL alone: a copy of a subscription inserted, then deleted.
    async with services.engine.begin() as conn:
        await conn.execute(
            text("CREATE TEMP TABLE copied ON COMMIT DROP AS SELECT * FROM subscriptions WHERE id = :id"),
            {"id": monthly[0]},
        )
        await conn.execute(text("UPDATE copied SET id = nextval(pg_get_serial_sequence('subscriptions', 'id'))"))
        copy = (await conn.execute(text("INSERT INTO subscriptions SELECT * FROM copied RETURNING id"))).scalar_one()
    await assert_tallied(services, "an insert by SQL")
    async with services.engine.begin() as conn:
        await conn.execute(text("DELETE FROM subscriptions WHERE id = :id"), {"id": copy})
    await assert_tallied(services, "a delete")


async def declining_card(shop: Shop) -> int:
    return ok(
        await shop.catalog.add_payment_method(
            ADMIN,
            {},
            customer_id=shop.customers[0],
            kind=PaymentKind.CARD,
            gateway_token="4000000000000002",
            make_default=False,
        )
    ).extra["paymentMethodId"]


async def test_summing_the_tallies_beside_an_open_writer_loses_nothing_and_changes_no_forecast(services, clock):
    shop = await Shop(services).open()
    ids = [await shop.subscribe(price) for price in ("10.00", "10.00", "15.00", "20.00")]
    today = clock.today()
    before = await ForecastService(services).forecast("USD", today, today + timedelta(days=70))

    # A writer moves two subscriptions to another schedule and has not committed when the rows are summed.
    async with services.engine.connect() as writer:
        await writer.begin()
        await writer.execute(
            text("UPDATE subscriptions SET next_renewal_date = next_renewal_date + 1 WHERE id = ANY(:ids)"),
            {"ids": ids[:2]},
        )
        async with services.engine.begin() as conn:
            await asyncio.wait_for(conn.execute(text(schedule.COMPACT)), timeout=10)
        growth = await rows(services, schedule.GROWTH)
        assert growth[0] == (0, 1), "the four renew on one schedule: one row, the writer's rows still unseen"
        await writer.commit()
    await assert_tallied(services, "a sum taken while a writer's changes were open")

    async with services.engine.begin() as conn:
        await conn.execute(
            text("UPDATE subscriptions SET next_renewal_date = next_renewal_date - 1 WHERE id = ANY(:ids)"),
            {"ids": ids[:2]},
        )
        await conn.execute(text(schedule.COMPACT))
    await assert_tallied(services, "the subscriptions moved back and summed again")
    after = await ForecastService(services).forecast("USD", today, today + timedelta(days=70))
    assert [(p.period, p.subscriptions, p.expected) for p in after.points] == [
        (p.period, p.subscriptions, p.expected) for p in before.points
    ]
    assert sum(p.subscriptions for p in after.points) >= 4


async def test_a_plain_subscription_paid_by_transfer_is_forecast_after_the_sellers_payment_terms(services, clock):
    services.settings = replace(services.settings, payment_terms_days=10)
    shop = await Shop(services).open()
    customer = await shop.customer("transfer@example.com")
    by_card = await shop.subscribe("10.00", customer=customer)
    by_transfer = await shop.subscribe("20.00", customer=customer)
    transfer = ok(
        await shop.catalog.add_payment_method(
            ADMIN, {}, customer_id=customer, kind=PaymentKind.OFFLINE, gateway_token=None, make_default=False
        )
    ).extra["paymentMethodId"]
    await shop.do("set_payment_method", by_transfer, payment_method_id=transfer)
    tallied = await assert_tallied(services, "a payment by transfer")
    assert [row[6] for row in tallied] == [False, True], "both plain, one paid by transfer"

    first = (await shop.state(by_card)).next_renewal_date
    assert first is not None and first == (await shop.state(by_transfer)).next_renewal_date
    second = first + relativedelta(months=1)
    today = clock.today()
    result = await ForecastService(services).forecast("USD", today, second + timedelta(days=20))
    charged = {p.period.start: p.expected.minor for p in result.points if p.subscriptions}
    # The card is charged on each renewal; the transfer is expected ten days after each invoice.
    assert charged == {first: 1000, first + timedelta(days=10): 2000, second: 1000, second + timedelta(days=10): 2000}


async def test_a_forecast_sums_the_tallies_once_their_changes_outnumber_them(services, clock, monkeypatch):
    from rebill.services import forecast as module

    shop = await Shop(services).open()
    for price in ("10.00", "11.00", "12.00"):
        await shop.subscribe(price, customer=await shop.customer(f"c{price}@example.com"))
    growth = schedule.GROWTH
    assert (await rows(services, growth))[0] == (3, 0), "three creations, three rows of changes"
    today = clock.today()
    monkeypatch.setattr(module, "_TALLIES_GROWN", 1_000)
    first = await ForecastService(services).forecast("USD", today, today + timedelta(days=40))
    assert (await rows(services, growth))[0] == (3, 0), "fewer changes than the threshold: left as they are"
    monkeypatch.setattr(module, "_TALLIES_GROWN", 2)
    second = await ForecastService(services).forecast("USD", today, today + timedelta(days=40))
    assert (await rows(services, growth))[0] == (0, 1), "summed into the one schedule the three renew on"
    assert [(p.period, p.subscriptions, p.expected) for p in second.points] == [
        (p.period, p.subscriptions, p.expected) for p in first.points
    ]
    assert sum(p.expected.minor for p in second.points) == 3300


async def test_emptying_the_subscriptions_empties_the_tallies(services):
    shop = await Shop(services).open()
    await shop.subscribe("10.00")
    assert await assert_tallied(services, "a creation")
    async with services.engine.begin() as conn:
        await conn.execute(text("TRUNCATE subscriptions CASCADE"))
    assert await assert_tallied(services, "TRUNCATE") == []
