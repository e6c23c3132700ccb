"""Seed 002 (software reseller): consent for increases, quantity and price changes, early renewals."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.support import (
    SUBSCRIPTION_FIELDS,
    add_card,
    change,
    error_codes,
    get_subscription,
    history,
    make_customer,
    make_product,
    make_profile,
    mutate,
    ok,
)

RENEW = "renewal { id kind status cycle periodStart periodEnd amount { amount } }"


async def _subscription(client, profile: str, items: list[tuple[str, str, int]], **fields) -> dict:
    customer = await make_customer(client, email=f"c{len(items)}{profile[-3:]}@example.com")
    await add_card(client, customer)
    data = {
        "customerId": customer,
        "profileId": profile,
        "items": [{"productId": p, "unitPrice": {"amount": a, "currency": "USD"}, "quantity": q} for p, a, q in items],
        **fields,
    }
    payload = ok(await mutate(client, "createSubscription", data, f"subscription {{ {SUBSCRIPTION_FIELDS} }} {RENEW}"))
    return payload


async def test_a_price_increase_needs_consent_and_then_applies_to_the_next_renewal(client, clock):
    clock.set(datetime(2025, 12, 20, 9, tzinfo=UTC))
    profile = await make_profile(client)
    crm = await make_product(client, "crm")
    sub = (await _subscription(client, profile, [(crm, "15.95", 1)]))["subscription"]
    item = sub["items"][0]["id"]
    clock.set(datetime(2026, 1, 5, 9, tzinfo=UTC))
    increase = {"subscriptionId": sub["id"], "itemId": item, "unitPrice": {"amount": "19.95", "currency": "USD"}}

    refused = await mutate(client, "updateItem", increase, "subscription { id }")
    assert error_codes(refused) == ["CONSENT_REQUIRED"]
    assert refused["userErrors"][0]["field"] == ["consentReference"]
    assert (await get_subscription(client, sub["id"]))["amount"]["amount"] == "15.95"

    accepted = ok(
        await mutate(
            client,
            "updateItem",
            {**increase, "consentReference": "landing page 2026-01-05, accept box ticked", "effective": "NEXT_RENEWAL"},
            "subscription { amount { amount } nextRenewalDate items { unitPrice { amount } pendingUnitPrice { amount } } }",
        )
    )
    updated = accepted["subscription"]
    assert updated["amount"]["amount"] == "19.95"  # what the January 20 renewal will bill
    assert updated["nextRenewalDate"] == "2026-01-20"
    assert updated["items"][0]["unitPrice"]["amount"] == "15.95"  # the current period keeps its price
    assert updated["items"][0]["pendingUnitPrice"]["amount"] == "19.95"
    last = (await history(client, sub["id"]))[-1]
    assert change(last, "amount") == ("15.95", "19.95")


async def test_quantity_change_at_next_billing_raises_the_bill_from_100_to_125(client, clock):
    clock.set(datetime(2026, 8, 15, 9, tzinfo=UTC))
    profile = await make_profile(client)
    access = await make_product(client, "access")
    users = await make_product(client, "users", kind="SEAT")
    sub = (await _subscription(client, profile, [(access, "50.00", 1), (users, "5.00", 10)]))["subscription"]
    assert sub["amount"]["amount"] == "100.00"
    clock.set(datetime(2026, 9, 4, 9, tzinfo=UTC))
    users_item = sub["items"][1]["id"]
    payload = ok(
        await mutate(
            client,
            "updateItem",
            {
                "subscriptionId": sub["id"],
                "itemId": users_item,
                "quantity": 15,
                "effective": "NEXT_RENEWAL",
                "consentReference": "console edit by the customer",
            },
            "subscription { amount { amount } nextRenewalDate items { quantity pendingQuantity } } renewal { id }",
        )
    )
    assert payload["renewal"] is None  # nothing is charged before the renewal
    assert payload["subscription"]["amount"]["amount"] == "125.00"
    assert payload["subscription"]["nextRenewalDate"] == "2026-09-15"
    assert payload["subscription"]["items"][1] == {"quantity": 10, "pendingQuantity": 15}


async def test_renegotiated_seat_price_applies_to_all_700_seats_without_consent(client, clock):
    clock.set(datetime(2026, 7, 8, 9, tzinfo=UTC))
    profile = await make_profile(client)
    seats = await make_product(client, "enterprise-seat", kind="SEAT")
    sub = (await _subscription(client, profile, [(seats, "22.95", 700)]))["subscription"]
    assert sub["amount"]["amount"] == "16065.00"
    clock.set(datetime(2026, 7, 18, 9, tzinfo=UTC))
    payload = ok(
        await mutate(
            client,
            "updateItem",
            {
                "subscriptionId": sub["id"],
                "itemId": sub["items"][0]["id"],
                "unitPrice": {"amount": "19.50", "currency": "USD"},
            },
            "subscription { amount { amount } items { unitPrice { amount } total { amount } } }",
        )
    )
    assert payload["subscription"]["amount"]["amount"] == "13650.00"
    assert payload["subscription"]["items"][0]["total"]["amount"] == "13650.00"


async def test_volume_tiers_price_800_licences_at_20_each(client, clock):
    tiers = [
        {"upTo": 99, "unitPrice": {"amount": "30", "currency": "EUR"}},
        {"upTo": 499, "unitPrice": {"amount": "25", "currency": "EUR"}},
        {"upTo": 999, "unitPrice": {"amount": "20", "currency": "EUR"}},
        {"upTo": 4999, "unitPrice": {"amount": "15", "currency": "EUR"}},
        {"upTo": None, "unitPrice": {"amount": "10", "currency": "EUR"}},
    ]
    product = await make_product(client, "antivirus-desktop", kind="SEAT", tiers=tiers)
    profile = await make_profile(client, name="Annual", cadence={"unit": "YEAR", "count": 1})
    customer = await make_customer(client)
    await add_card(client, customer)
    created = ok(
        await mutate(
            client,
            "createSubscription",
            {"customerId": customer, "profileId": profile, "items": [{"productId": product, "quantity": 1280}]},
            "subscription { id amount { amount currency } items { id unitPrice { amount } } }",
        )
    )["subscription"]
    assert created["amount"] == {"amount": "19200.00", "currency": "EUR"}
    payload = ok(
        await mutate(
            client,
            "updateItem",
            {
                "subscriptionId": created["id"],
                "itemId": created["items"][0]["id"],
                "quantity": 800,
                "effective": "NEXT_RENEWAL",
            },
            "subscription { amount { amount } }",
        )
    )
    assert payload["subscription"]["amount"]["amount"] == "16000.00"


async def test_early_renewal_of_a_manual_subscription_moves_expiry_to_may_2018(client, clock):
    clock.set(datetime(2016, 5, 15, 9, tzinfo=UTC))
    profile = await make_profile(
        client, name="Annual", cadence={"unit": "YEAR", "count": 1}, defaultRenewalType="MANUAL"
    )
    antivirus = await make_product(client, "antivirus")
    sub = (await _subscription(client, profile, [(antivirus, "80.00", 1)]))["subscription"]
    assert sub["renewalType"] == "MANUAL"
    assert sub["nextRenewalDate"] == "2017-05-15"
    clock.set(datetime(2017, 3, 15, 9, tzinfo=UTC))
    payload = ok(
        await mutate(
            client,
            "renewNow",
            {"subscriptionId": sub["id"], "mode": "EXTEND"},
            f"subscription {{ nextRenewalDate currentPeriodEnd anchorDate }} {RENEW}",
        )
    )
    assert payload["subscription"]["nextRenewalDate"] == "2018-05-15"
    assert payload["subscription"]["anchorDate"] == "2016-05-15"
    renewal = payload["renewal"]
    assert (renewal["kind"], renewal["status"], renewal["amount"]["amount"]) == ("EARLY", "PAID", "80.00")
    assert (renewal["periodStart"], renewal["periodEnd"]) == ("2017-05-15", "2018-05-15")
    entries = await history(client, sub["id"])
    assert [e["action"] for e in entries][-2:] == ["renewed_now", "renewal_paid"], "recorded, then settled"
    renewed, settled = entries[-2:]
    assert change(renewed, "nextRenewalDate") == ("2017-05-15", "2018-05-15")
    assert change(renewed, f"renewals.{renewal['id']}")[1]["status"] == "PENDING"
    assert change(settled, f"renewals.{renewal['id']}.status") == ("PENDING", "PAID")


async def test_data_limited_plan_renewed_on_jan_15_runs_to_feb_15(client, clock):
    clock.set(datetime(2020, 1, 1, 9, tzinfo=UTC))
    profile = await make_profile(client)
    proxy = await make_product(client, "proxy-5gb")
    sub = (await _subscription(client, profile, [(proxy, "80.00", 1)]))["subscription"]
    clock.set(datetime(2020, 1, 15, 9, tzinfo=UTC))
    payload = ok(
        await mutate(
            client,
            "renewNow",
            {"subscriptionId": sub["id"], "mode": "RESTART"},
            f"subscription {{ nextRenewalDate anchorDate currentPeriodStart }} {RENEW}",
        )
    )
    assert payload["renewal"]["amount"]["amount"] == "80.00"
    assert (payload["renewal"]["periodStart"], payload["renewal"]["periodEnd"]) == ("2020-01-15", "2020-02-15")
    assert payload["subscription"]["nextRenewalDate"] == "2020-02-15"
    assert payload["subscription"]["anchorDate"] == "2020-01-15"


async def test_early_renewal_at_a_custom_lower_price_bills_it_once(client, clock):
    clock.set(datetime(2020, 1, 1, 9, tzinfo=UTC))
    profile = await make_profile(client)
    proxy = await make_product(client, "proxy-5gb")
    sub = (await _subscription(client, profile, [(proxy, "80.00", 1)]))["subscription"]
    clock.set(datetime(2020, 1, 15, 9, tzinfo=UTC))
    payload = ok(
        await mutate(
            client,
            "renewNow",
            {"subscriptionId": sub["id"], "mode": "RESTART", "unitPrice": {"amount": "75.00", "currency": "USD"}},
            f"subscription {{ amount {{ amount }} nextRenewalDate }} {RENEW}",
        )
    )
    assert payload["renewal"]["amount"]["amount"] == "75.00"
    assert payload["subscription"]["amount"]["amount"] == "80.00"  # the regular price is unchanged
    assert payload["subscription"]["nextRenewalDate"] == "2020-02-15"


async def test_upgrade_with_early_renewal_needs_consent_and_bills_220(client, clock):
    clock.set(datetime(2020, 1, 1, 9, tzinfo=UTC))
    profile = await make_profile(client)
    small = await make_product(client, "proxy-5gb")
    large = await make_product(client, "proxy-20gb")
    sub = (await _subscription(client, profile, [(small, "80.00", 1)]))["subscription"]
    clock.set(datetime(2020, 1, 15, 9, tzinfo=UTC))
    upgrade = {
        "subscriptionId": sub["id"],
        "mode": "RESTART",
        "productId": large,
        "unitPrice": {"amount": "220.00", "currency": "USD"},
    }
    refused = await mutate(client, "renewNow", upgrade, "subscription { id }")
    assert error_codes(refused) == ["CONSENT_REQUIRED"]
    payload = ok(
        await mutate(
            client,
            "renewNow",
            {**upgrade, "consentReference": "upgrade page, Upgrade Now clicked"},
            f"subscription {{ amount {{ amount }} nextRenewalDate items {{ product {{ sku }} }} }} {RENEW}",
        )
    )
    assert payload["renewal"]["amount"]["amount"] == "220.00"
    assert payload["renewal"]["periodEnd"] == "2020-02-15"
    assert payload["subscription"]["amount"]["amount"] == "220.00"
    assert payload["subscription"]["items"][0]["product"]["sku"] == "proxy-20gb"


async def test_downgrade_with_early_renewal_bills_80_without_consent(client, clock):
    clock.set(datetime(2020, 1, 1, 9, tzinfo=UTC))
    profile = await make_profile(client)
    small = await make_product(client, "proxy-5gb")
    large = await make_product(client, "proxy-20gb")
    sub = (await _subscription(client, profile, [(large, "220.00", 1)]))["subscription"]
    clock.set(datetime(2020, 1, 15, 9, tzinfo=UTC))
    payload = ok(
        await mutate(
            client,
            "renewNow",
            {
                "subscriptionId": sub["id"],
                "mode": "RESTART",
                "productId": small,
                "unitPrice": {"amount": "80.00", "currency": "USD"},
            },
            f"subscription {{ amount {{ amount }} }} {RENEW}",
        )
    )
    assert payload["renewal"]["amount"]["amount"] == "80.00"
    assert payload["renewal"]["periodEnd"] == "2020-02-15"
    assert payload["subscription"]["amount"]["amount"] == "80.00"


async def test_turning_auto_renewal_off_for_one_item_stops_billing_it_and_keeps_it(client, clock):
    profile = await make_profile(client)
    portal = await make_product(client, "training-portal")
    tracker = await make_product(client, "smartwatch-tracking")
    sub = (await _subscription(client, profile, [(portal, "20.00", 1), (tracker, "5.00", 1)]))["subscription"]
    tracker_item = sub["items"][1]["id"]
    payload = ok(
        await mutate(
            client,
            "setRenewalType",
            {"subscriptionId": sub["id"], "renewalType": "MANUAL", "itemIds": [tracker_item]},
            "subscription { renewalType amount { amount } items { autoRenew } }",
        )
    )
    assert payload["subscription"]["renewalType"] == "AUTOMATIC"
    assert [i["autoRenew"] for i in payload["subscription"]["items"]] == [True, False]
    assert payload["subscription"]["amount"]["amount"] == "20.00"
    whole = ok(
        await mutate(
            client,
            "setRenewalType",
            {"subscriptionId": sub["id"], "renewalType": "MANUAL"},
            "subscription { renewalType status items { id } }",
        )
    )
    assert whole["subscription"]["renewalType"] == "MANUAL"
    assert whole["subscription"]["status"] == "ACTIVE"
    assert len(whole["subscription"]["items"]) == 2  # the data is kept
    entries = await history(client, sub["id"])
    assert [e["action"] for e in entries][-2:] == ["renewal_type_set", "renewal_type_set"]
    assert change(entries[-2], f"items.{tracker_item}.autoRenew") == (True, False)
    assert change(entries[-1], "renewalType") == ("AUTOMATIC", "MANUAL")
