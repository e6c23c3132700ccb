"""Tax and shipping where people look: staff set up tax rates and shipping profiles in the console and give a
subscription a shipping profile after a dry run; its next invoice shows shipping and tax on top of a price
that stays "excluding shipping and taxes". Customers see each order's shipping and tax in the portal."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.support import gql, make_world, mutate, ok, subscribe

CA = {"line1": "1 Market St", "city": "San Francisco", "region": "CA", "postalCode": "94105", "country": "US"}
NY = {"line1": "1 Broadway", "city": "New York", "region": "NY", "postalCode": "10004", "country": "US"}
UPCOMING = """query($id: ID!) { subscription(id: $id) { amount { amount } shippingProfile { name }
  upcomingInvoice { shippingTotal { amount } taxTotal { amount } total { amount } } } }"""


async def sign_in(page: Any, live_server: Any, path: str) -> None:
    secret = await live_server.create_admin_key("billing-lead")
    await page.goto(f"{live_server.url}/admin{path}")
    await page.fill("#apikey", secret)
    await page.click("text=Use key")


@pytest.mark.browser
async def test_console_sets_up_tax_and_shipping_and_a_subscription_shows_both_on_its_next_invoice(
    page: Any, live_server: Any, client: Any, screenshot: Any
) -> None:
    world = await make_world(client)
    ok(await mutate(client, "updateCustomer", {"customerId": world.customer, "billingAddress": CA}, "customer { id }"))
    sub = (await subscribe(client, world))["subscription"]["id"]
    ok(await mutate(client, "updateShippingAddress", {"subscriptionId": sub, "address": NY}, "subscription { id }"))
    old = ok(
        await mutate(
            client,
            "createTaxRate",
            {"name": "Old CA rate", "percentage": "7.25", "country": "US", "region": "US-CA"},
            "taxRate { id }",
        )
    )["taxRate"]["id"]
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    await sign_in(page, live_server, "#/tax-rates")

    # Tax rates: a second active rate for California is refused beside the field it names, a wrong percentage
    # beside the percentage; archive the old one, and the new one is created.
    await page.locator(f'#tax-rate-table tr[data-id="{old}"]').wait_for()
    form = page.locator("#tax-rate-form")
    await form.get_by_label("Name (printed on invoices)").fill("CA sales tax")
    await form.get_by_label("Percentage").fill("101")
    await form.get_by_label("Country").fill("us")
    await form.get_by_label("Region (optional)").fill("US-CA")
    await form.get_by_role("button", name="Create tax rate").click()
    await form.locator(".field-error").get_by_text("INVALID_TAX_RATE").wait_for()
    await form.get_by_label("Percentage").fill("8.875")
    await form.get_by_role("button", name="Create tax rate").click()
    await form.locator(".field-error").get_by_text("TAX_RATE_CONFLICT").wait_for()
    await screenshot("tax-rate-conflict")
    row = page.locator(f'#tax-rate-table tr[data-id="{old}"]')
    await row.get_by_role("button", name="Archive…").click()
    await row.get_by_role("button", name="Confirm archive").click()
    await page.locator("#flash").get_by_text("Tax rate Old CA rate archived").wait_for()
    assert "archived" in await page.locator(f'#tax-rate-table tr[data-id="{old}"]').inner_text()
    await form.get_by_label("Name (printed on invoices)").fill("CA sales tax")
    await form.get_by_label("Percentage").fill("8.875")
    await form.get_by_label("Country").fill("us")
    await form.get_by_label("Region (optional)").fill("US-CA")
    await form.get_by_role("button", name="Create tax rate").click()
    await page.locator("#flash").get_by_text("Tax rate CA sales tax (8.875 %) created.").wait_for()
    created = page.locator("#tax-rate-table tbody tr").nth(1)
    await created.wait_for()
    cells = [await c.inner_text() for c in await created.locator("td").all()]
    assert cells[:6] == ["CA sales tax", "8.875 %", "no: added on top", "US", "US-CA", "active"]

    # Shipping profiles: rates in order, moved with the arrows, then edited.
    await page.click(".console-nav >> text=Shipping profiles")
    await page.get_by_role("button", name="New shipping profile…").click()
    editor = page.locator("#shipping-profile-form")
    await editor.get_by_label("Profile name").fill("Parcels")
    rates = editor.locator(".rate-row")
    await rates.nth(0).get_by_label("Rate name").fill("Express")
    await rates.nth(0).get_by_label("Amount").fill("15.00")
    await rates.nth(0).get_by_label("Currency").fill("usd")
    await editor.get_by_role("button", name="Add a rate").click()
    await rates.nth(1).get_by_label("Rate name").fill("Standard")
    await rates.nth(1).get_by_label("Amount").fill("-5.00")
    await rates.nth(1).get_by_label("Currency").fill("USD")
    await rates.nth(1).get_by_role("button", name="↑").click()
    await editor.get_by_role("button", name="Create shipping profile").click()
    # The negative amount is refused beside it: the rate moved first, so the error names rate 1.
    await rates.nth(0).locator(".field-error").get_by_text("INVALID_SHIPPING_PROFILE").wait_for()
    await rates.nth(0).get_by_label("Amount").fill("4.00")
    await editor.get_by_role("button", name="Create shipping profile").click()
    await (
        page.locator("#flash")
        .get_by_text("Shipping profile Parcels created: Standard 4.00 USD, Express 15.00 USD.")
        .wait_for()
    )
    listed = page.locator("#shipping-profile-table tbody tr").first
    await listed.get_by_role("button", name="Edit…").click()
    await editor.locator(".rate-row").nth(0).get_by_label("Amount").fill("5.00")
    await editor.get_by_role("button", name="Save shipping profile").click()
    await (
        page.locator("#flash")
        .get_by_text("Shipping profile Parcels saved: Standard 5.00 USD, Express 15.00 USD.")
        .wait_for()
    )
    saved = page.locator("#shipping-profile-table tbody tr").first.locator("ol.rates li")
    await saved.first.wait_for()
    items = await saved.all_inner_texts()
    assert items == ["Standard: 5.00 USD", "Express: 15.00 USD"]
    await screenshot("shipping-profiles", full_page=True)

    # The subscription: no shipping profile yet; tax at the California rate of the billing address.
    await page.goto(f"{live_server.url}/admin#/subscription/{sub}")
    card = page.locator("#tax-and-shipping")
    await card.locator("#upcoming-summary").wait_for()
    assert await page.inner_text("#shipping-profile") == "none"
    assert await page.inner_text("#upcoming-price") == "62.96 USD"
    assert await page.inner_text("#upcoming-shipping") == "0.00 USD"
    assert await page.inner_text("#upcoming-tax") == "5.59 USD"

    # Shipping with Parcels raises the charge: the dry run asks for consent, then shows what changes.
    await card.get_by_role("button", name="Change shipping profile…").click()
    panel = page.locator("#action-panel")
    await panel.get_by_label("Shipping profile").select_option(label="Parcels: Standard 5.00 USD, Express 15.00 USD")
    await panel.get_by_role("button", name="Dry run").click()
    await panel.locator(".field-error").get_by_text("CONSENT_REQUIRED").wait_for()
    await panel.get_by_label("Consent reference (needed when the shipping charge goes up)").fill(
        "phone call 2026-01-15"
    )
    await panel.get_by_role("button", name="Dry run").click()
    dry_run = page.locator("#dry-run")
    await dry_run.wait_for()
    text = await dry_run.inner_text()
    assert "Shipping profile\tnone\tParcels" in text
    assert "Shipping on the next invoice\t0.00 USD\t5.00 USD" in text
    assert (await gql(client, UPCOMING, {"id": sub}))["subscription"]["shippingProfile"] is None, "a dry run"
    await screenshot("shipping-dry-run")
    await page.click("#dry-run button[name=confirm]")
    await page.locator("#flash").get_by_text("Change shipping profile: done").wait_for()
    await card.locator("#upcoming-summary").wait_for()
    # 62.96 at 8.875 % = 5.59 on the item, 5.00 at 8.875 % = 0.44 on the shipping (half-even).
    assert (await page.inner_text("#shipping-profile")).startswith("Parcels")
    assert await page.inner_text("#upcoming-price") == "62.96 USD", "the price excludes shipping and taxes"
    assert await page.inner_text("#upcoming-shipping") == "5.00 USD"
    assert await page.inner_text("#upcoming-tax") == "6.03 USD"
    assert await page.inner_text("#upcoming-total") == "73.99 USD"
    assert "CA sales tax 8.875 %" in await card.inner_text()
    api = (await gql(client, UPCOMING, {"id": sub}))["subscription"]
    assert api["amount"] == {"amount": "62.96"}
    assert api["upcomingInvoice"] == {
        "shippingTotal": {"amount": "5.00"},
        "taxTotal": {"amount": "6.03"},
        "total": {"amount": "73.99"},
    }
    await screenshot("subscription-tax-and-shipping", full_page=True)

    # Billed: the invoice's page shows its shipping and its tax with the rate.
    billed = await mutate(client, "forceBill", {"subscriptionId": sub, "allowRepeat": True}, "invoice { id }")
    await page.goto(f"{live_server.url}/admin#/invoice/{ok(billed)['invoice']['id']}")
    assert await page.inner_text("#invoice-shipping") == "5.00 USD"
    assert await page.inner_text("#invoice-tax") == "6.03 USD (CA sales tax 8.875 %)"
    await page.goto(f"{live_server.url}/admin#/subscription/{sub}")
    await card.locator("#upcoming-summary").wait_for()

    # The customer's tax exemption: a reason is needed; with one, the next invoice has no tax.
    await card.get_by_role("button", name="Edit tax exemption…").click()
    await panel.get_by_label("Exempt from tax").check()
    await panel.get_by_role("button", name="Save tax exemption").click()
    await panel.get_by_text("INVALID_TAX_EXEMPTION").wait_for()
    await panel.get_by_label("Reason (printed on invoices; needed to exempt)").fill("Reseller certificate")
    await panel.get_by_label("Tax id, such as a VAT number").fill("CA-RESALE-1")
    await panel.get_by_role("button", name="Save tax exemption").click()
    await page.locator("#flash").get_by_text("Tax exemption saved: exempt (Reseller certificate)").wait_for()
    await card.locator("#upcoming-summary").wait_for()
    assert await page.inner_text("#customer-tax") == "exempt: Reseller certificate"
    assert await page.inner_text("#customer-tax-id") == "CA-RESALE-1"
    assert await page.inner_text("#upcoming-tax") == "0.00 USD"
    assert await page.inner_text("#upcoming-total") == "67.96 USD"

    assert requested and all(url.startswith(live_server.url) for url in requested), "nothing from another host"


# -- the portal ------------------------------------------------------------------------


@pytest.fixture
async def customer_browser(services: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A customer's browser without JavaScript: no API key, cookies kept."""
    from rebill.app import create_app

    transport = httpx.ASGITransport(app=create_app(services))
    async with httpx.AsyncClient(transport=transport, base_url="http://rebill.test", timeout=60) as http:
        yield http


async def test_the_portal_order_history_shows_each_orders_shipping_and_tax(
    client: Any, customer_browser: httpx.AsyncClient
) -> None:
    from tests.api.test_portal import path_of, pk_of

    ok(await mutate(client, "createTaxRate", {"name": "US tax", "percentage": "10", "country": "US"}, "taxRate { id }"))
    parcels = {"name": "Parcels", "rates": [{"name": "Standard", "amount": {"amount": "5.00", "currency": "USD"}}]}
    shipping = ok(await mutate(client, "createShippingProfile", parcels, "shippingProfile { id }"))
    world = await make_world(client, shippingProfileId=shipping["shippingProfile"]["id"])
    sub = (await subscribe(client, world, price="20.00"))["subscription"]["id"]
    ok(await mutate(client, "updateShippingAddress", {"subscriptionId": sub, "address": NY}, "subscription { id }"))
    force = {"subscriptionId": sub, "allowRepeat": True}
    ok(await mutate(client, "forceBill", force, "renewal { id }"))
    link = ok(await mutate(client, "createCustomerPortalSession", {"customerId": world.customer}, "url"))["url"]
    assert (await customer_browser.post(path_of(link))).status_code == 303

    page = await customer_browser.get(f"/portal/subscriptions/{pk_of(sub)}")
    assert page.status_code == 200, page.text
    assert '20.00 USD <span class="muted">excluding shipping and taxes</span>' in page.text
    history = page.text[page.text.index('id="history-title"') :]
    assert ">Shipping</th>" in history and ">Tax</th>" in history
    orders = []
    for row in re.findall(r"<tr><td>\d{4}-.*?</tr>", history, re.S):
        cells = [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        orders.append(cells[3:6])
    # Newest first: shipped (20.00 + 5.00, and 10 % tax on both), then the first, before any address: neither shipped nor taxed.
    assert orders == [["27.50 USD", "5.00 USD", "2.50 USD"], ["20.00 USD", "0.00 USD", "0.00 USD"]]
