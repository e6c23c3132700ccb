"""What a subscription's coupons take off its next renewal is stored beside what it bills, by every write.

``billingForecast`` bills ``amount_minor + discount_minor`` once a coupon runs out, so the repository, bulk
runs and the renewal worker (whose charge uses a coupon's cycle) each keep both columns right.
"""

from __future__ import annotations

import importlib
from datetime import timedelta
from typing import Any

from sqlalchemy import text

from rebill.billing.engine import RenewalEngine
from tests.integration.test_bulk_support import Shop

MIGRATION = "rebill.db.migrations.versions.0020_subscription_discounts"


async def stored(services: Any, sid: int) -> tuple[int, int]:
    async with services.engine.connect() as conn:
        row = (
            await conn.execute(
                text("SELECT amount_minor, discount_minor FROM subscriptions WHERE id = :id"), {"id": sid}
            )
        ).one()
    return row.amount_minor, row.discount_minor


async def test_every_write_keeps_the_discount_beside_the_amount(services, clock):
    shop = await Shop(services).open()
    sid = await shop.subscribe(items=[("coffee", "5.00", 2), ("tea", "3.00", 1)])
    assert await stored(services, sid) == (1300, 0), "no coupon takes anything off"

    await shop.coupon(sid, "ONCE25")
    assert await stored(services, sid) == (975, 325), "a coupon applied by the API: 25 % of 13.00"

    await shop.run({"segments": [{"name": "all", "actions": [{"applyCoupon": {"code": "TENOFF"}}]}]})
    assert await stored(services, sid) == (845, 455), "a second coupon applied by a bulk run: 10 % more"

    renewal = (await shop.state(sid)).next_renewal_date
    assert renewal is not None
    clock.set(clock.now() + timedelta(days=(renewal - clock.today()).days))
    assert (await RenewalEngine(services).run_once()).renewed == 1
    assert await stored(services, sid) == (1170, 130), "the worker's renewal used up the one-off coupon"


async def test_the_migration_gives_subscriptions_with_coupons_their_discount(services):
    shop = await Shop(services).open()
    await shop.subscribe(items=[("coffee", "5.00", 2)])
    seats = await shop.subscribe(items=[("seats", None, 12), ("tea", "3.00", 1)])
    await shop.coupon(seats, "TENOFF")
    await shop.coupon(seats, "FIVER")
    tea = await shop.subscribe(items=[("coffee", "5.00", 1), ("tea", "3.00", 2)])
    await shop.coupon(tea, "TEATIME")
    async with services.engine.begin() as conn:
        saved = list(await conn.execute(text("SELECT id, amount_minor, discount_minor FROM subscriptions ORDER BY id")))
        assert [row.discount_minor > 0 for row in saved] == [False, True, True]
        await conn.execute(text("UPDATE subscriptions SET discount_minor = 0"))
        await conn.execute(text(importlib.import_module(MIGRATION).BACKFILL))
        again = list(await conn.execute(text("SELECT id, amount_minor, discount_minor FROM subscriptions ORDER BY id")))
    assert again == saved, "worked out from the items in SQL, as the domain stores it"
