"""Tax rates and shipping profiles through the API: what a renewal really bills (DOMAIN.md "Tax and shipping")."""

from __future__ import annotations

from typing import Any

from tests.ledger import assert_ledger_ok
from tests.support import error_codes, gql, history, make_profile, make_world, mutate, ok, subscribe

INVOICE = """number total { amount } subtotal { amount } taxTotal { amount } shippingTotal { amount }
  lines { kind description amount { amount } taxAmount { amount } taxRate { name percentage } }
  taxes { name percentage inclusive taxableAmount { amount } amount { amount } exemptReason taxRate { id } }"""

CA = {"line1": "1 Market St", "city": "San Francisco", "region": "CA", "postalCode": "94105", "country": "US"}
NY = {"line1": "1 Broadway", "city": "New York", "region": "NY", "postalCode": "10004", "country": "US"}


async def tax_rate(client, **fields: Any) -> str:
    payload = ok(await mutate(client, "createTaxRate", fields, "taxRate { id percentage country region active }"))
    return str(payload["taxRate"]["id"])


async def shipping_profile(client, name: str, *rates: tuple[str, str, str]) -> str:
    data = {"name": name, "rates": [{"name": n, "amount": {"amount": a, "currency": c}} for n, a, c in rates]}
    return str(
        ok(await mutate(client, "createShippingProfile", data, "shippingProfile { id }"))["shippingProfile"]["id"]
    )


async def force_bill(client, subscription: str) -> dict[str, Any]:
    payload = ok(
        await mutate(
            client,
            "forceBill",
            {"subscriptionId": subscription, "allowRepeat": True},
            f"renewal {{ amount {{ amount }} }} invoice {{ {INVOICE} }}",
        )
    )
    return payload


def kinds(invoice: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(line["kind"], line["amount"]["amount"], line["taxAmount"]["amount"]) for line in invoice["lines"]]


async def test_the_region_rate_wins_over_the_country_and_tax_is_added_per_line_after_coupons(client, services):
    world = await make_world(client)
    await tax_rate(client, name="US tax", percentage="10", country="US")
    await tax_rate(client, name="CA sales tax", percentage="8.875", country="us", region="CA")
    ok(await mutate(client, "updateCustomer", {"customerId": world.customer, "billingAddress": CA}, "customer { id }"))
    ok(await mutate(client, "createCoupon", {"code": "TENOFF", "percentOff": "10"}, "coupon { id }"))
    created = await subscribe(client, world, price="62.96", quantity=2)
    sub = created["subscription"]["id"]
    ok(await mutate(client, "applyCoupon", {"subscriptionId": sub, "code": "TENOFF"}, "subscription { id }"))
    # The subscription's price stays "excluding shipping and taxes"; its upcoming invoice adds the tax.
    data = await gql(
        client,
        "query($id: ID!) { subscription(id: $id) { amount { amount } upcomingInvoice { total { amount } } } }",
        {"id": sub},
    )
    assert data["subscription"]["amount"] == {"amount": "113.33"}
    assert data["subscription"]["upcomingInvoice"]["total"] == {"amount": "123.39"}
    billed = await force_bill(client, sub)
    invoice = billed["invoice"]
    # 125.92 less 12.59 off = 113.33, taxed 8.875 % = 10.0580… → 10.06 on the item; the coupon line carries none.
    assert kinds(invoice) == [("ITEM", "125.92", "10.06"), ("DISCOUNT", "-12.59", "0.00")]
    assert invoice["lines"][0]["taxRate"] == {"name": "CA sales tax", "percentage": "8.875"}
    assert invoice["subtotal"] == {"amount": "113.33"}
    assert invoice["taxTotal"] == {"amount": "10.06"}
    assert invoice["total"] == billed["renewal"]["amount"] == {"amount": "123.39"}
    [summary] = invoice["taxes"]
    assert summary["taxableAmount"] == {"amount": "113.33"} and summary["amount"] == {"amount": "10.06"}
    assert summary["inclusive"] is False and summary["taxRate"]["id"]
    await assert_ledger_ok(services.engine)


async def test_an_inclusive_rate_is_inside_the_price_and_adds_nothing_to_the_total(client, services):
    world = await make_world(client)
    await tax_rate(client, name="MwSt", percentage="19", inclusive=True, country="DE")
    de = {"line1": "Unter den Linden 1", "city": "Berlin", "postalCode": "10117", "country": "DE"}
    ok(await mutate(client, "updateCustomer", {"customerId": world.customer, "billingAddress": de}, "customer { id }"))
    created = await subscribe(client, world, price="119.00", currency="EUR")
    invoice = (await force_bill(client, created["subscription"]["id"]))["invoice"]
    assert kinds(invoice) == [("ITEM", "119.00", "19.00")]
    assert invoice["total"] == {"amount": "119.00"} and invoice["taxTotal"] == {"amount": "19.00"}
    [summary] = invoice["taxes"]
    assert (summary["percentage"], summary["inclusive"], summary["taxableAmount"]) == ("19", True, {"amount": "100.00"})
    await assert_ledger_ok(services.engine)


async def test_an_exempt_customer_is_shown_a_zero_rate_with_the_reason(client, services):
    world = await make_world(client)
    await tax_rate(client, name="BTW", percentage="21", country="NL")
    nl = {"line1": "Damrak 1", "city": "Amsterdam", "postalCode": "1012", "country": "NL"}
    refused = await mutate(
        client, "updateCustomer", {"customerId": world.customer, "taxExempt": True}, "customer { id }"
    )
    assert error_codes(refused) == ["INVALID_TAX_EXEMPTION"], "an exemption without a reason prints nothing"
    exempt = {
        "customerId": world.customer,
        "billingAddress": nl,
        "taxExempt": True,
        "taxExemptReason": "Reverse charge",
        "taxId": "NL123456789B01",
    }
    shown = ok(await mutate(client, "updateCustomer", exempt, "customer { taxExempt taxExemptReason taxId }"))
    assert shown["customer"] == {"taxExempt": True, "taxExemptReason": "Reverse charge", "taxId": "NL123456789B01"}
    created = await subscribe(client, world, price="50.00", currency="EUR")
    invoice = (await force_bill(client, created["subscription"]["id"]))["invoice"]
    assert kinds(invoice) == [("ITEM", "50.00", "0.00")]
    assert invoice["total"] == {"amount": "50.00"}
    [summary] = invoice["taxes"]
    assert (summary["percentage"], summary["exemptReason"], summary["taxRate"]) == ("0", "Reverse charge", None)


async def test_a_second_rate_for_a_place_is_refused_until_the_first_is_archived(client):
    first = await tax_rate(client, name="CA", percentage="7.25", country="US", region="US-CA")
    again = await mutate(
        client, "createTaxRate", {"name": "CA 2", "percentage": "8", "country": "US", "region": "ca"}, "taxRate { id }"
    )
    assert error_codes(again) == ["TAX_RATE_CONFLICT"]
    for bad in ({"percentage": "101"}, {"percentage": "-1"}, {"percentage": "1e2"}, {"country": "USA"}):
        data = {"name": "x", "percentage": "5", "country": "US", **bad}
        assert error_codes(await mutate(client, "createTaxRate", data, "taxRate { id }")) == ["INVALID_TAX_RATE"]
    archived = ok(await mutate(client, "archiveTaxRate", {"taxRateId": first}, "taxRate { active }"))
    assert archived["taxRate"]["active"] is False
    await tax_rate(client, name="CA 2", percentage="8", country="US", region="CA")
    listed = await gql(client, "{ taxRates(first: 10) { edges { node { name region active } } } }")
    assert [e["node"] for e in listed["taxRates"]["edges"]] == [
        {"name": "CA", "region": "US-CA", "active": False},
        {"name": "CA 2", "region": "US-CA", "active": True},
    ]


async def test_an_address_change_reaches_the_next_invoice_never_an_issued_one(client, services):
    world = await make_world(client)
    await tax_rate(client, name="US tax", percentage="10", country="US")
    await tax_rate(client, name="CA sales tax", percentage="8.875", country="US", region="CA")
    ok(await mutate(client, "updateCustomer", {"customerId": world.customer, "billingAddress": CA}, "customer { id }"))
    sub = (await subscribe(client, world, price="100.00"))["subscription"]["id"]
    first = (await force_bill(client, sub))["invoice"]
    ok(await mutate(client, "updateCustomer", {"customerId": world.customer, "billingAddress": NY}, "customer { id }"))
    second = (await force_bill(client, sub))["invoice"]
    assert first["taxTotal"] == {"amount": "8.88"} and first["taxes"][0]["name"] == "CA sales tax"
    assert second["taxTotal"] == {"amount": "10.00"} and second["taxes"][0]["name"] == "US tax"
    again = await gql(
        client,
        "query($f: InvoiceFilter) { invoices(filter: $f, first: 5) { edges { node { number taxTotal { amount } } } } }",
        {"f": {"number": first["number"]}},
    )
    assert again["invoices"]["edges"][0]["node"]["taxTotal"] == {"amount": "8.88"}, "the issued invoice kept its tax"
    await assert_ledger_ok(services.engine)


async def test_shipping_bills_the_first_rate_in_the_currency_taxed_like_the_items(client, services):
    shipping = await shipping_profile(
        client, "Parcels", ("Standard", "5.00", "USD"), ("Express", "15.00", "USD"), ("Standard", "4.50", "EUR")
    )
    world = await make_world(client, shippingProfileId=shipping)
    await tax_rate(client, name="US tax", percentage="10", country="US")
    sub = (await subscribe(client, world, price="20.00"))["subscription"]["id"]
    shown = await gql(
        client,
        "query($id: ID!) { subscription(id: $id) { shippingProfile { name } profile { shippingProfile { name } }"
        " upcomingInvoice { shippingTotal { amount } } } }",
        {"id": sub},
    )
    assert shown["subscription"]["shippingProfile"] == {"name": "Parcels"}
    assert shown["subscription"]["upcomingInvoice"]["shippingTotal"] == {"amount": "0.00"}, "no address: no shipping"
    ok(await mutate(client, "updateShippingAddress", {"subscriptionId": sub, "address": NY}, "subscription { id }"))
    upcoming = await gql(
        client,
        "query($id: ID!) { subscription(id: $id) { upcomingInvoice { total { amount } shippingTotal { amount }"
        " taxTotal { amount } } } }",
        {"id": sub},
    )
    # No billing address: the shipping address picks the rate.
    assert upcoming["subscription"]["upcomingInvoice"] == {
        "total": {"amount": "27.50"},
        "shippingTotal": {"amount": "5.00"},
        "taxTotal": {"amount": "2.50"},
    }
    invoice = (await force_bill(client, sub))["invoice"]
    assert kinds(invoice) == [("ITEM", "20.00", "2.00"), ("SHIPPING", "5.00", "0.50")]
    assert invoice["lines"][1]["description"] == "Shipping: Standard"
    assert invoice["total"] == {"amount": "27.50"}
    euro = await subscribe(client, world, price="20.00", currency="EUR")
    euro_sub = euro["subscription"]["id"]
    ok(
        await mutate(
            client, "updateShippingAddress", {"subscriptionId": euro_sub, "address": NY}, "subscription { id }"
        )
    )
    euro_invoice = (await force_bill(client, euro_sub))["invoice"]
    assert euro_invoice["shippingTotal"] == {"amount": "4.50"}
    await assert_ledger_ok(services.engine)


async def test_a_shipping_override_that_raises_the_charge_needs_consent_and_is_in_the_history(client):
    cheap = await shipping_profile(client, "Cheap", ("Standard", "5.00", "USD"))
    dear = await shipping_profile(client, "Dear", ("Courier", "15.00", "USD"))
    world = await make_world(client, shippingProfileId=cheap)
    sub = (await subscribe(client, world, price="20.00"))["subscription"]["id"]
    ok(await mutate(client, "updateShippingAddress", {"subscriptionId": sub, "address": NY}, "subscription { id }"))
    selection = "subscription { shippingProfile { name } upcomingInvoice { shippingTotal { amount } } }"
    refused = await mutate(client, "setShippingProfile", {"subscriptionId": sub, "shippingProfileId": dear}, selection)
    assert error_codes(refused) == ["CONSENT_REQUIRED"]
    agreed = ok(
        await mutate(
            client,
            "setShippingProfile",
            {"subscriptionId": sub, "shippingProfileId": dear, "consentReference": "phone call 2026-01-15"},
            selection,
        )
    )
    assert agreed["subscription"]["shippingProfile"] == {"name": "Dear"}
    assert agreed["subscription"]["upcomingInvoice"]["shippingTotal"] == {"amount": "15.00"}
    back = ok(await mutate(client, "setShippingProfile", {"subscriptionId": sub, "shippingProfileId": None}, selection))
    assert back["subscription"]["shippingProfile"] == {"name": "Cheap"}, "a decrease needs no consent"
    entries = await history(client, sub)
    assert [e["action"] for e in entries if e["action"] == "shipping_profile_set"] == ["shipping_profile_set"] * 2


async def test_a_profile_without_a_rate_in_the_currency_is_refused_on_every_path(client):
    pounds = await shipping_profile(client, "UK only", ("Royal Mail", "3.00", "GBP"))
    dollars = await shipping_profile(client, "US", ("Standard", "5.00", "USD"))
    world = await make_world(client)
    sub = (await subscribe(client, world, price="20.00"))["subscription"]["id"]
    # The override.
    refused = await mutate(
        client, "setShippingProfile", {"subscriptionId": sub, "shippingProfileId": pounds}, "subscription { id }"
    )
    assert error_codes(refused) == ["CURRENCY_MISMATCH"]
    # The profile's, once its subscriptions are in dollars.
    updated = await mutate(
        client, "updateProfile", {"profileId": world.profile, "shippingProfileId": pounds}, "profile { id }"
    )
    assert error_codes(updated) == ["CURRENCY_MISMATCH"]
    # A profile change, and a creation on a profile that ships in pounds only.
    uk_profile = await make_profile(client, name="UK", shippingProfileId=pounds)
    changed = await mutate(
        client, "changeProfile", {"subscriptionId": sub, "profileId": uk_profile}, "subscription { id }"
    )
    assert error_codes(changed) == ["CURRENCY_MISMATCH"]
    created = await mutate(
        client,
        "createSubscription",
        {
            "customerId": world.customer,
            "profileId": uk_profile,
            "items": [{"productId": world.product, "unitPrice": {"amount": "1.00", "currency": "USD"}, "quantity": 1}],
        },
        "subscription { id }",
    )
    assert error_codes(created) == ["CURRENCY_MISMATCH"]
    # A profile update that drops the currency of a subscription it ships.
    ok(
        await mutate(
            client,
            "setShippingProfile",
            {"subscriptionId": sub, "shippingProfileId": dollars, "consentReference": "ok"},
            "subscription { id }",
        )
    )
    dropped = await mutate(
        client,
        "updateShippingProfile",
        {
            "shippingProfileId": dollars,
            "rates": [{"name": "Standard", "amount": {"amount": "4.00", "currency": "EUR"}}],
        },
        "shippingProfile { id }",
    )
    assert error_codes(dropped) == ["CURRENCY_MISMATCH"]
    renamed = ok(
        await mutate(
            client,
            "updateShippingProfile",
            {"shippingProfileId": dollars, "name": "US parcels"},
            "shippingProfile { name rates { name amount { amount currency } } }",
        )
    )
    assert renamed["shippingProfile"] == {
        "name": "US parcels",
        "rates": [{"name": "Standard", "amount": {"amount": "5.00", "currency": "USD"}}],
    }


async def test_cancelling_a_paid_delivery_credits_its_shipping_with_its_tax_to_the_balance(client, services):
    shipping = await shipping_profile(client, "Parcels", ("Standard", "5.00", "USD"))
    world = await make_world(client, shippingProfileId=shipping)
    await tax_rate(client, name="US tax", percentage="10", country="US")
    sub = (await subscribe(client, world, price="20.00"))["subscription"]["id"]
    ok(await mutate(client, "updateShippingAddress", {"subscriptionId": sub, "address": NY}, "subscription { id }"))
    billed = ok(
        await mutate(
            client,
            "forceBill",
            {"subscriptionId": sub, "allowRepeat": True},
            "renewal { id } invoice { id total { amount } }",
        )
    )
    assert billed["invoice"]["total"] == {"amount": "27.50"}
    cancelled = ok(
        await mutate(
            client,
            "updateFulfillment",
            {"renewalId": billed["renewal"]["id"], "status": "CANCELLED"},
            "renewal { fulfillment }",
        )
    )
    assert cancelled["renewal"]["fulfillment"] == "CANCELLED"
    data = await gql(
        client,
        "query($id: ID!) { invoice(id: $id) { creditedTotal { amount } creditNotes { total { amount } refunded"
        " lines { kind amount { amount } taxAmount { amount } } } } }",
        {"id": billed["invoice"]["id"]},
    )
    [note] = data["invoice"]["creditNotes"]
    assert note["total"] == {"amount": "5.50"} and note["refunded"] is False
    assert note["lines"] == [{"kind": "SHIPPING", "amount": {"amount": "5.00"}, "taxAmount": {"amount": "0.50"}}]
    upcoming = await gql(
        client,
        "query($id: ID!) { subscription(id: $id) { upcomingInvoice { creditApplied { amount } } } }",
        {"id": sub},
    )
    assert upcoming["subscription"]["upcomingInvoice"]["creditApplied"] == {"amount": "5.50"}, (
        "the next renewal uses it"
    )
    await assert_ledger_ok(services.engine)


async def test_two_rates_for_one_place_created_at_once_leave_exactly_one(client):
    import asyncio

    data = {"name": "VAT", "percentage": "20", "country": "FR"}
    answers = await asyncio.gather(*(mutate(client, "createTaxRate", data, "taxRate { id }") for _ in range(4)))
    assert sorted(error_codes(a) for a in answers) == [
        [],
        ["TAX_RATE_CONFLICT"],
        ["TAX_RATE_CONFLICT"],
        ["TAX_RATE_CONFLICT"],
    ]


async def test_a_declined_charge_leaves_its_taxed_invoice_open_for_the_whole_amount(client, services):
    from tests.support import add_card, make_customer

    world = await make_world(client)
    await tax_rate(client, name="US tax", percentage="10", country="US")
    declining = await make_customer(client, "declined@example.com")
    ok(await mutate(client, "updateCustomer", {"customerId": declining, "billingAddress": NY}, "customer { id }"))
    await add_card(client, declining, "4000000000000002")
    declined = await mutate(
        client,
        "createSubscription",
        {
            "customerId": declining,
            "profileId": world.profile,
            "items": [{"productId": world.product, "unitPrice": {"amount": "20.00", "currency": "USD"}}],
        },
        "renewal { status amount { amount } invoice { status number total { amount } taxTotal { amount } amountDue { amount } } }",
    )
    renewal = declined["renewal"]
    assert renewal["status"] == "FAILED" and renewal["amount"] == {"amount": "22.00"}
    assert renewal["invoice"]["status"] == "OPEN" and renewal["invoice"]["number"]
    assert renewal["invoice"]["total"] == renewal["invoice"]["amountDue"] == {"amount": "22.00"}
    assert renewal["invoice"]["taxTotal"] == {"amount": "2.00"}
    await assert_ledger_ok(services.engine)
