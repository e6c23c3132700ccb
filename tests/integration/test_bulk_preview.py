from datetime import timedelta

import pytest
from sqlalchemy import func, select

from rebill.db import tables as t
from rebill.domain.errors import Collected
from rebill.domain.money import Money
from rebill.domain.proration import Proration
from rebill.domain.subscription import RenewalType
from rebill.domain.updates import Effective
from tests.integration.test_bulk_support import Shop

THREE_SEGMENTS = {
    "filter": {"status": ["ACTIVE", "TRIAL"]},
    "segments": [
        {"name": "trials", "when": {"inTrial": True}, "actions": [{"shiftNextRenewal": {"unit": "DAY", "count": 14}}]},
        {
            "name": "forced-gateway",
            "when": {"gatewayMode": ["FORCED"]},
            "actions": [{"setGateway": {"gatewayId": "sandbox-b", "mode": "PREFERRED"}}],
        },
        {"name": "everyone-else", "actions": [{"adjustPrice": {"percent": "-10"}}]},
    ],
}


async def three_segment_shop(services):
    shop = await Shop(services).open()
    ids = {
        "trial-a": await shop.subscribe("20.00", profile="trial-monthly"),
        "trial-b": await shop.subscribe("15.00", profile="trial-monthly"),
        "forced": await shop.subscribe("30.00"),
        "plain": await shop.subscribe("10.00"),
        "two-items": await shop.subscribe(items=[("coffee", "5.00", 2), ("tea", "3.00", 1)]),
        "odd-cents": await shop.subscribe("10.05"),
        "cancelled": await shop.subscribe("99.00"),
    }
    await shop.force_gateway(ids["forced"])
    await shop.coupon(ids["two-items"], "TENOFF")
    await shop.do("cancel", ids["cancelled"], at_period_end=False, refund_last_renewal=False, cancel_fulfillment=False)
    return shop, ids


def usd(minor: int) -> dict[str, int]:
    return {"USD": minor}


async def test_a_three_segment_plan_previews_counts_totals_and_samples_per_segment(services):
    shop, ids = await three_segment_shop(services)
    preview = await shop.bulk.preview(THREE_SEGMENTS, sample=5)

    assert (preview.matched, preview.unsegmented, preview.already_applied) == (6, 0, 0)
    trials, forced, rest = preview.segments
    assert (trials.name, trials.matched, trials.billed_before, trials.billed_after) == (
        "trials",
        2,
        usd(3500),
        usd(3500),
    )
    assert (forced.matched, forced.billed_before, forced.billed_after) == (1, usd(3000), usd(3000))
    # 10.00 -> 9.00; (2 x 5.00 + 3.00) - 10 % coupon = 11.70 -> (2 x 4.50 + 2.70) - 10 % = 10.53; 10.05 -> 9.04 (half even)
    assert (rest.matched, rest.billed_before, rest.billed_after) == (3, usd(1000 + 1170 + 1005), usd(900 + 1053 + 904))
    assert [r.refused for r in preview.segments] == [0, 0, 0]
    assert preview.total("billed_after") == usd(3500 + 3000 + 900 + 1053 + 904)
    # MRR: trials bring none yet; the monthly rest brings what it bills.
    assert (trials.mrr_before, trials.mrr_after) == (usd(0), usd(0))
    assert (rest.mrr_before, rest.mrr_after) == (usd(1000 + 1170 + 1005), usd(900 + 1053 + 904))

    trial_row = next(r for r in trials.sample if r.subscription_id == ids["trial-a"])
    changes = {c["field"]: (c["before"], c["after"]) for c in trial_row.changes}
    assert changes["nextRenewalDate"] == ("2026-01-29", "2026-02-12")
    assert changes["trialEndDate"] == ("2026-01-29", "2026-02-12")
    forced_row = forced.sample[0]
    assert {c["field"]: c["after"] for c in forced_row.changes} == {
        "gatewayId": "sandbox-b",
        "gatewayMode": "PREFERRED",
    }
    odd = next(r for r in rest.sample if r.subscription_id == ids["odd-cents"])
    assert {c["field"]: (c["before"], c["after"]) for c in odd.changes}["amount"] == ("10.05", "9.04")


async def test_a_preview_writes_nothing(services):
    shop, ids = await three_segment_shop(services)
    before = await shop.states(list(ids.values()))
    history = t.table_of(t.HistoryEntry)
    async with services.sessions() as session:
        entries = (await session.execute(select(func.count()).select_from(history))).scalar_one()
    await shop.bulk.preview(THREE_SEGMENTS, sample=20)
    after = await shop.states(list(ids.values()))
    assert {k: (s.version, s.amount, s.next_renewal_date) for k, s in before.items()} == {
        k: (s.version, s.amount, s.next_renewal_date) for k, s in after.items()
    }
    async with services.sessions() as session:
        assert (await session.execute(select(func.count()).select_from(history))).scalar_one() == entries


async def test_a_price_rise_without_consent_is_refused_per_subscription_in_the_preview(services):
    shop = await Shop(services).open()
    cheap = await shop.subscribe("10.00")
    dear = await shop.subscribe("15.00")
    plan = {
        "segments": [
            {"name": "all", "actions": [{"setUnitPrice": {"unitPrice": {"amount": "12.00", "currency": "USD"}}}]}
        ]
    }
    preview = await shop.bulk.preview(plan)
    segment = preview.segments[0]
    assert [(r.code, r.count, r.example_id) for r in segment.refusals] == [("CONSENT_REQUIRED", 1, cheap)]
    assert "consentReference" in segment.refusals[0].message
    assert segment.billed_before == usd(2500)
    assert segment.billed_after == usd(1000 + 1200)
    assert {r.subscription_id: r.code for r in segment.sample} == {cheap: "CONSENT_REQUIRED", dear: None}

    consented = {
        "segments": [
            {
                "name": "all",
                "actions": [
                    {
                        "setUnitPrice": {
                            "unitPrice": {"amount": "12.00", "currency": "USD"},
                            "consentReference": "email campaign 2026-01, accepted",
                        }
                    }
                ],
            }
        ]
    }
    assert (await shop.bulk.preview(consented)).segments[0].refusals == []


async def test_a_plan_naming_unknown_things_is_refused_with_every_problem(services):
    shop = await Shop(services).open()
    plan = {
        "filter": {"profileIds": [999]},
        "segments": [
            {"name": "a", "when": {"inTrial": True}, "actions": [{"changeProfile": {"profileId": 12345}}]},
            {"name": "b", "actions": [{"applyCoupon": {"code": "NOPE"}}, {"setGateway": {"gatewayId": "gw_b"}}]},
        ],
    }
    with pytest.raises(Collected) as caught:
        await shop.bulk.preview(plan)
    found = sorted((".".join(e.field or []), e.code) for e in caught.value.errors)
    assert found == [
        ("filter.profileIds.0", "UNKNOWN_PROFILE"),
        ("segments.0.actions.0.changeProfile.profileId", "UNKNOWN_PROFILE"),
        ("segments.1.actions.0.applyCoupon.code", "UNKNOWN_COUPON"),
        ("segments.1.actions.1.setGateway.gatewayId", "UNKNOWN_GATEWAY"),
    ]


async def mixed_shop(services):
    """Subscriptions of every shape the SQL preview has to price like the domain does."""
    shop = await Shop(services).open()
    nz, la = shop.customers[1], shop.customers[2]
    s = {}
    s["plain"] = await shop.subscribe("10.00")
    s["odd-5"] = await shop.subscribe("10.05")
    s["odd-15"] = await shop.subscribe("10.15")
    s["odd-25"] = await shop.subscribe("10.25", quantity=3)
    s["trial"] = await shop.subscribe("20.00", profile="trial-monthly")
    s["trial-nz"] = await shop.subscribe("20.00", profile="trial-monthly", customer=nz)
    s["yearly-la"] = await shop.subscribe("120.00", profile="yearly", customer=la)
    s["two-items"] = await shop.subscribe(items=[("coffee", "5.00", 2), ("tea", "3.35", 1)])
    s["seats"] = await shop.subscribe(items=[("seats", None, 12)])
    s["seats-few"] = await shop.subscribe(items=[("seats", None, 3), ("coffee", "4.99", 1)])
    s["meter"] = await shop.subscribe(items=[("meter", "0.10", 100)])
    s["eur"] = await shop.subscribe("9.99", currency="EUR")
    s["eur-coupon"] = await shop.subscribe("19.99", currency="EUR")
    s["tenoff"] = await shop.subscribe("33.33")
    s["fiver"] = await shop.subscribe("4.00")
    s["stacked"] = await shop.subscribe(items=[("coffee", "12.34", 2), ("tea", "1.01", 3)])
    s["once-used"] = await shop.subscribe("40.00")
    s["teatime"] = await shop.subscribe(items=[("coffee", "8.00", 1), ("tea", "6.00", 2)])
    s["pending"] = await shop.subscribe("25.00")
    s["manual-item"] = await shop.subscribe(items=[("coffee", "7.00", 1), ("tea", "2.00", 1)])
    s["forced"] = await shop.subscribe("30.00")
    s["preferred"] = await shop.subscribe("31.00")
    s["suspended"] = await shop.subscribe("18.00")
    s["cancelled"] = await shop.subscribe("50.00")
    s["ending"] = await shop.subscribe("60.00")
    s["old-start"] = await shop.subscribe("11.00", start_days_ago=40)
    s["pending-cut"] = await shop.subscribe("15.00")
    s["seats-growing"] = await shop.subscribe(items=[("seats", None, 4), ("tea", "2.50", 1)])

    await shop.coupon(s["eur-coupon"], "EUROFF")
    await shop.coupon(s["tenoff"], "TENOFF")
    await shop.coupon(s["fiver"], "FIVER")
    await shop.coupon(s["stacked"], "TENOFF")
    await shop.coupon(s["stacked"], "FIVER")
    await shop.coupon(s["stacked"], "ONCE25")
    await shop.coupon(s["once-used"], "ONCE25")
    async with services.sessions() as session, session.begin():  # as if one renewal used the coupon up
        applied = t.table_of(t.AppliedCoupon)
        subscriptions = t.table_of(t.Subscription)
        await session.execute(applied.update().where(applied.c.subscription_id == s["once-used"]).values(cycles_used=1))
        await session.execute(
            subscriptions.update().where(subscriptions.c.id == s["once-used"]).values(amount_minor=4000)
        )
    await shop.coupon(s["teatime"], "TEATIME")
    pending = await shop.state(s["pending"])
    await shop.do(
        "update_item",
        s["pending"],
        item_id=pending.items[0].id,
        unit_price=Money(2750, "USD"),
        quantity=2,
        effective=Effective.NEXT_RENEWAL,
        proration=Proration.NONE,
        consent_reference="phone call",
    )
    cut = await shop.state(s["pending-cut"])
    await shop.do(
        "update_item",
        s["pending-cut"],
        item_id=cut.items[0].id,
        unit_price=Money(1200, "USD"),
        quantity=None,
        effective=Effective.NEXT_RENEWAL,
        proration=Proration.NONE,
        consent_reference=None,
    )
    growing = await shop.state(s["seats-growing"])
    await shop.do(
        "update_item",
        s["seats-growing"],
        item_id=growing.items[0].id,
        unit_price=None,
        quantity=15,
        effective=Effective.NEXT_RENEWAL,
        proration=Proration.NONE,
        consent_reference="order form 15 seats",
    )
    manual = await shop.state(s["manual-item"])
    await shop.do("set_renewal_type", s["manual-item"], renewal_type=RenewalType.MANUAL, item_ids=[manual.items[1].id])
    await shop.force_gateway(s["forced"])
    await shop.do("set_gateway", s["preferred"], gateway_id="sandbox-b", mode=None)
    await shop.do("suspend", s["suspended"])
    await shop.do("cancel", s["cancelled"], at_period_end=False, refund_last_renewal=False, cancel_fulfillment=False)
    await shop.do("cancel", s["ending"], at_period_end=True, refund_last_renewal=False, cancel_fulfillment=False)
    return shop, s


async def ship_and_tax(services, s: dict[str, int]) -> None:
    """Rates for the places the shop's subscriptions ship to, and a shipping profile on every profile."""
    us = {"line1": "1 Main St", "city": "Austin", "region": "TX", "country": "US"}
    ca = {"line1": "1 Market St", "city": "San Francisco", "region": "us-ca", "country": "US"}
    nz = {"line1": "1 Queen St", "city": "Auckland", "country": "NZ"}
    rates = [
        {"name": "Post", "amountMinor": 495, "currency": "USD"},
        {"name": "Post", "amountMinor": 395, "currency": "EUR"},
    ]
    async with services.sessions() as session, session.begin():
        tax = t.table_of(t.TaxRate)
        await session.execute(
            tax.insert(),
            [
                {"name": "US", "percentage": 7.25, "inclusive": False, "country": "US", "region": None},
                {"name": "CA", "percentage": 8.875, "inclusive": False, "country": "US", "region": "US-CA"},
                {"name": "GST", "percentage": 15, "inclusive": True, "country": "NZ", "region": None},
            ],
        )
        shipping = t.table_of(t.ShippingProfile)
        sp = (
            await session.execute(shipping.insert().values(name="Parcels", rates=rates).returning(shipping.c.id))
        ).scalar()
        await session.execute(t.table_of(t.Profile).update().values(shipping_profile_id=sp))
        subscriptions = t.table_of(t.Subscription)
        for name, address in [
            ("plain", us),
            ("odd-5", ca),
            ("odd-15", ca),
            ("odd-25", us),
            ("trial-nz", nz),
            ("two-items", ca),
            ("eur", nz),
            ("eur-coupon", us),
            ("tenoff", ca),
            ("stacked", us),
            ("pending", ca),
            ("suspended", us),
            ("ending", ca),
            ("seats-few", us),
        ]:
            await session.execute(
                subscriptions.update().where(subscriptions.c.id == s[name]).values(shipping_address=address)
            )


MIXED_PLANS = [
    {  # price actions against what the next renewal bills, pending changes included
        "segments": [
            {
                "name": "raised",
                "when": {"amountMin": "20.00"},
                "actions": [{"adjustPrice": {"percent": "10", "consentReference": "letter of 2026-01-02"}}],
            },
            {"name": "unconsented", "when": {"amountMin": "12.00"}, "actions": [{"adjustPrice": {"percent": "3"}}]},
            {"name": "cut", "actions": [{"adjustPrice": {"amount": {"amount": "-2.50", "currency": "USD"}}}]},
        ]
    },
    {
        "segments": [
            {
                "name": "trials",
                "when": {"inTrial": True},
                "actions": [{"shiftNextRenewal": {"unit": "DAY", "count": -20}}],
            },
            {"name": "suspended", "when": {"status": ["SUSPENDED"]}, "actions": [{"activate": True}]},
            {"name": "gateways", "when": {"hasGateway": True}, "actions": [{"clearGateway": True}, {"suspend": True}]},
            {
                "name": "euros",
                "when": {"currency": "EUR"},
                "actions": [
                    {"adjustPrice": {"amount": {"amount": "1.00", "currency": "EUR"}, "consentReference": "ok"}}
                ],
            },
            {"name": "rest", "actions": [{"adjustPrice": {"percent": "-15"}}]},
        ]
    },
    {
        "segments": [
            {
                "name": "everyone",
                "actions": [
                    {"setQuantity": {"quantity": 3}},
                    {"applyCoupon": {"code": "TENOFF"}},
                    {"removeCoupon": {"code": "FIVER"}},
                ],
            }
        ]
    },
    {
        "segments": [
            {
                "name": "usd",
                "when": {"currency": "USD", "amountMax": "20.00"},
                "actions": [{"setUnitPrice": {"unitPrice": {"amount": "12.00", "currency": "USD"}}}],
            },
            {"name": "others", "actions": [{"setUnitPrice": {"unitPrice": {"amount": "9.00", "currency": "USD"}}}]},
        ]
    },
    {
        "segments": [
            {
                "name": "all",
                "actions": [{"setRenewalType": {"renewalType": "AUTOMATIC"}}, {"applyCoupon": {"code": "FIVER"}}],
            }
        ]
    },
    {
        "segments": [
            {
                "name": "coffee",
                "when": {"productIds": [1]},
                "actions": [{"adjustPrice": {"percent": "12.5", "productId": 1}}],
            },
            {
                "name": "teas",
                "actions": [{"adjustPrice": {"amount": {"amount": "-3.00", "currency": "USD"}, "productId": 2}}],
            },
        ]
    },
    {
        "segments": [
            {"name": "past", "when": {"inTrial": True}, "actions": [{"setNextRenewalDate": {"date": "2026-01-10"}}]},
            {
                "name": "months",
                "when": {"status": ["ACTIVE"]},
                "actions": [{"shiftNextRenewal": {"unit": "MONTH", "count": 1}}],
            },
            {"name": "rest", "actions": [{"cancel": {"atPeriodEnd": True}}, {"setMetadata": {"metadata": {"a": 1}}}]},
        ]
    },
    {
        "segments": [
            {"name": "profile", "when": {"status": ["ACTIVE"]}, "actions": [{"changeProfile": {"profileId": 1}}]},
            {"name": "cut", "actions": [{"cancel": True}, {"removeCoupon": {"code": "TENOFF"}}]},
        ]
    },
    {  # a yearly profile: what is billed stays, the MRR is a twelfth of it
        "segments": [
            {
                "name": "yearly",
                "when": {"status": ["ACTIVE", "OVERDUE"]},
                "actions": [{"changeProfile": {"profileId": 3}}, {"adjustPrice": {"percent": "-5"}}],
            },
            {"name": "suspend", "actions": [{"suspend": True}]},
        ]
    },
]


@pytest.mark.parametrize("taxed", [False, True], ids=["untaxed", "shipping-and-tax"])
async def test_the_sql_preview_agrees_with_the_domain_on_a_mixed_data_set(services, taxed):
    shop, s = await mixed_shop(services)
    if taxed:
        await ship_and_tax(services, s)
    plans = (
        [
            *MIXED_PLANS,
            {"segments": [{"name": "ship", "actions": [{"setShippingProfile": {"consentReference": "letter"}}]}]},
        ]
        if taxed
        else MIXED_PLANS
    )
    for plan in plans:
        sql = await shop.bulk.preview(plan, sample=0)
        domain = await shop.bulk.preview(plan, sample=0, engine="domain")
        assert (sql.matched, sql.unsegmented) == (domain.matched, domain.unsegmented)
        for a, b in zip(sql.segments, domain.segments, strict=True):
            assert (a.name, a.matched, a.billed_before, a.billed_after, a.charged_before, a.charged_after) == (
                b.name,
                b.matched,
                b.billed_before,
                b.billed_after,
                b.charged_before,
                b.charged_after,
            ), plan
            assert (a.mrr_before, a.mrr_after) == (b.mrr_before, b.mrr_after), plan
        if taxed:
            assert sql.total("charged_before") != sql.total("billed_before"), "shipping and tax are in what is charged"
            assert [(r.code, r.count, r.example_id) for r in a.refusals] == [
                (r.code, r.count, r.example_id) for r in b.refusals
            ], plan
            assert all(r.message for r in a.refusals)


async def test_the_next_renewal_range_matches_a_trial_by_its_trial_end(services):
    shop = await Shop(services).open()
    trial = await shop.subscribe("20.00", profile="trial-monthly")  # trial ends 2026-01-29
    await shop.subscribe("20.00")  # renews 2026-02-15
    today = services.clock.today()
    plan = {
        "filter": {
            "nextRenewalFrom": (today + timedelta(days=10)).isoformat(),
            "nextRenewalTo": (today + timedelta(days=20)).isoformat(),
        },
        "segments": [{"name": "all", "actions": [{"shiftNextRenewal": {"unit": "WEEK", "count": 2}}]}],
    }
    preview = await shop.bulk.preview(plan)
    assert preview.matched == 1
    assert [r.subscription_id for r in preview.segments[0].sample] == [trial]
