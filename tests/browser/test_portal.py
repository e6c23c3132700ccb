"""Seed 004 in a real browser: a failed payment e-mail's link, a new card, a later date, a cancellation.

The customer uses only what the pages offer: the link from the
PAYMENT_DECLINED notification, buttons and labelled fields, the keyboard
for the first step. Screenshots of each page go under the test's
``tmp_path``; ``REBILL_PORTAL_DOCS=1`` also copies two of them to ``docs/``
for the README.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.support import gql, make_world, mutate, ok, subscribe

pytestmark = pytest.mark.browser

DOCS = Path(__file__).resolve().parents[2] / "docs"
DECLINED = "4000000000000002"


async def _gql(http: httpx.AsyncClient, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    body = (await http.post("/graphql", json={"query": query, "variables": variables or {}})).json()
    assert not body.get("errors"), body
    data: dict[str, Any] = body["data"]
    return data


async def _declined_subscription(live_server: Any) -> tuple[str, str]:
    """Through the API: a customer whose card declines at signup; the subscription id and the e-mail's portal link."""
    secret = await live_server.create_admin_key()
    async with httpx.AsyncClient(
        base_url=live_server.url, headers={"Authorization": f"Bearer {secret}"}, timeout=30
    ) as http:

        async def call(name: str, data: dict[str, Any], selection: str) -> dict[str, Any]:
            type_name = name[0].upper() + name[1:] + "Input"
            query = (
                f"mutation($input: {type_name}!) {{ {name}(input: $input) {{ userErrors {{ code }} {selection} }} }}"
            )
            payload: dict[str, Any] = (await _gql(http, query, {"input": data}))[name]
            assert payload["userErrors"] == [], payload
            return payload

        customer = (await call("createCustomer", {"email": "ada@example.com", "name": "Ada"}, "customer { id }"))[
            "customer"
        ]["id"]
        await call(
            "updateCustomer",
            {
                "customerId": customer,
                "billingAddress": {
                    "line1": "1 Bean Street",
                    "city": "Portland",
                    "postalCode": "97201",
                    "country": "US",
                },
            },
            "customer { id }",
        )
        await call(
            "addPaymentMethod",
            {"customerId": customer, "kind": "CARD", "gatewayToken": DECLINED, "makeDefault": True},
            "paymentMethod { id }",
        )
        profile = (
            await call("createProfile", {"name": "Monthly", "cadence": {"unit": "MONTH", "count": 1}}, "profile { id }")
        )["profile"]["id"]
        product = (await call("createProduct", {"name": "House blend coffee", "sku": "coffee"}, "product { id }"))[
            "product"
        ]["id"]
        created = await call(
            "createSubscription",
            {
                "customerId": customer,
                "profileId": profile,
                "items": [{"productId": product, "unitPrice": {"amount": "18.50", "currency": "USD"}, "quantity": 2}],
            },
            "subscription { id status }",
        )
        sub = created["subscription"]
        assert sub["status"] == "OVERDUE"
        await call(
            "updateShippingAddress",
            {
                "subscriptionId": sub["id"],
                "address": {"line1": "1 Bean Street", "city": "Portland", "postalCode": "97201", "country": "US"},
            },
            "subscription { id }",
        )
        notes = await _gql(
            http,
            "query($id: ID!) { notifications(subscriptionId: $id, first: 20) { edges { node { kind payload } } } }",
            {"id": sub["id"]},
        )
    [declined] = [e["node"] for e in notes["notifications"]["edges"] if e["node"]["kind"] == "PAYMENT_DECLINED"]
    link = urlsplit(declined["payload"]["portalUrl"])
    return sub["id"], f"{live_server.url}{link.path}"


UNLABELLED = """() => [...document.querySelectorAll('input:not([type=hidden]), textarea, select')]
    .filter((field) => field.labels.length === 0).map((field) => field.name)"""


async def _every_field_has_a_label(page: Any) -> None:
    assert await page.evaluate(UNLABELLED) == []


def _keep(shot: Path, name: str) -> None:
    if os.environ.get("REBILL_PORTAL_DOCS"):
        shutil.copyfile(shot, DOCS / name)


async def test_a_customer_fixes_a_declined_payment_postpones_and_cancels_in_the_portal(
    page: Any, live_server: Any, screenshot: Any
) -> None:
    _, link = await _declined_subscription(live_server)

    await page.goto(link)
    continue_button = page.get_by_role("button", name="Continue to your account")
    await continue_button.wait_for()
    await screenshot("start")
    await continue_button.focus()
    await page.keyboard.press("Enter")  # the one button works from the keyboard
    await page.get_by_role("heading", name="House blend coffee", level=1).wait_for()
    assert page.url.endswith("#payment-method")
    assert await page.get_by_text("Your last payment failed").is_visible()
    _keep(await screenshot("payment-declined", full_page=True), "portal-payment-declined.png")
    await _every_field_has_a_label(page)
    # The keyboard alone reaches the card number: Tab moves from the link above the form to it.
    await page.get_by_role("link", name="Add a new card").focus()
    await page.keyboard.press("Enter")
    for _ in range(10):
        if await page.evaluate("document.activeElement && document.activeElement.id") == "number":
            break
        await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.id") == "number"

    await page.get_by_label("Card number").fill("4242 4242 4242 4242")
    await page.get_by_label("Expiry month").fill("12")
    await page.get_by_label("Expiry year").fill("2030")
    await page.get_by_role("button", name="Save card and make it my default").click()
    await page.get_by_text("Your new card is saved").wait_for()
    details = page.locator("#details-title").locator("..")
    assert "Active" in await details.inner_text()
    assert "Visa ending in 4242, expires 12/2030" in await details.inner_text()
    history = await page.locator("table", has=page.get_by_role("columnheader", name="Period")).inner_text()
    assert "Paid" in history and "Payment failed" not in history, "the declined renewal is paid with the new card"
    await screenshot("card-saved", full_page=True)

    date_field = page.get_by_label("New next order date")
    assert await date_field.get_attribute("min") == "2026-02-15"
    await date_field.fill("2026-03-02")
    await page.get_by_role("button", name="Move the date").click()
    await page.get_by_text("Your next order date has been moved").wait_for()
    assert "March 2, 2026" in await page.locator("#details-title").locator("..").inner_text()
    await screenshot("postponed")

    # A phone-sized window shows the same page without sideways scrolling.
    await page.set_viewport_size({"width": 390, "height": 844})
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    _keep(await screenshot("phone"), "portal-phone.png")
    await page.set_viewport_size({"width": 1400, "height": 900})

    await page.get_by_label("Why are you cancelling?").fill("Moving abroad")
    await page.get_by_role("button", name="Cancel subscription").click()
    await page.get_by_text("Your subscription has been cancelled").wait_for()
    assert "Cancelled" in await page.locator("#details-title").locator("..").inner_text()
    assert await page.get_by_role("button", name="Cancel subscription").count() == 0
    await screenshot("cancelled", full_page=True)

    await page.get_by_role("link", name="All subscriptions").click()
    await page.get_by_role("heading", name="Your subscriptions", level=1).wait_for()
    overview = await page.inner_text("main")
    assert "House blend coffee" in overview and "Cancelled" in overview
    assert "1 Bean Street, 97201 Portland, US" in overview, "the billing address"
    await _every_field_has_a_label(page)
    await screenshot("overview", full_page=True)


async def test_a_used_link_in_another_browser_says_what_to_do(page: Any, live_server: Any, browser: Any) -> None:
    _, link = await _declined_subscription(live_server)
    await page.goto(link)
    await page.get_by_role("button", name="Continue to your account").click()
    await page.get_by_role("heading", level=1).wait_for()

    other = await browser.new_context()
    try:
        tab = await other.new_page()
        response = await tab.goto(link)
        assert response.status == 410
        assert "already been used" in await tab.inner_text("main")
        assert "ask the store for a new link" in await tab.inner_text("main")
    finally:
        await other.close()


async def test_a_customer_finds_the_invoice_in_the_order_history_and_downloads_its_pdf(
    page: Any, live_server: Any, client: Any, screenshot: Any
) -> None:
    world = await make_world(client)
    created = await subscribe(client, world)
    query = "query($id: ID!) { renewal(id: $id) { invoice { id number } } }"
    invoice = (await gql(client, query, {"id": created["renewal"]["id"]}))["renewal"]["invoice"]
    session = ok(await mutate(client, "createCustomerPortalSession", {"customerId": world.customer}, "url"))

    await page.goto(f"{live_server.url}{urlsplit(session['url']).path}")
    await page.get_by_role("button", name="Continue to your account").click()
    await page.get_by_role("link", name="Manage Coffee").click()
    history = page.locator("table", has=page.get_by_role("columnheader", name="Invoice"))
    row = history.locator("tbody tr").first
    await row.wait_for()
    assert invoice["number"] in await row.inner_text() and "Paid" in await row.inner_text()
    await screenshot("order-history", full_page=True)

    async with page.expect_download() as downloading:
        await row.get_by_role("link", name=f"PDF of invoice {invoice['number']}").click()
    download = await downloading.value
    assert download.suggested_filename == f"{invoice['number']}.pdf"
    assert (await asyncio.to_thread(Path(await download.path()).read_bytes)).startswith(b"%PDF")

    await row.get_by_role("link", name=f"View invoice {invoice['number']}").click()
    await page.get_by_role("heading", name="Invoice", level=1).wait_for()
    assert page.url == f"{live_server.url}/invoices/{invoice['id']}"
    assert invoice["number"] in await page.inner_text("main")
