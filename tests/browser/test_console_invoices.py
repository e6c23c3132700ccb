"""Invoices where staff look: a subscription's Invoices tab, its PDF, the Invoices page, and voiding one."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.support import World, add_card, gql, make_customer, make_world, subscribe

pytestmark = pytest.mark.browser

DECLINED = "4000000000000002"
INVOICE = "query($id: ID!) { invoice(id: $id) { status voidReason } }"


async def _invoice_of(client: Any, renewal: str) -> dict[str, Any]:
    query = "query($id: ID!) { renewal(id: $id) { invoice { id number status } } }"
    invoice: dict[str, Any] = (await gql(client, query, {"id": renewal}))["renewal"]["invoice"]
    return invoice


async def test_console_shows_downloads_filters_and_voids_invoices(
    page: Any, live_server: Any, client: Any, screenshot: Any
) -> None:
    world = await make_world(client)
    paid = await subscribe(client, world)
    paid_invoice = await _invoice_of(client, paid["renewal"]["id"])
    grace = await make_customer(client, email="grace@example.com", name="Grace")
    declined = World(grace, await add_card(client, grace, DECLINED), world.profile, world.product, world.other_product)
    overdue = await subscribe(client, declined, price="20.00")
    assert overdue["subscription"]["status"] == "OVERDUE"
    open_invoice = await _invoice_of(client, overdue["renewal"]["id"])
    assert open_invoice["status"] == "OPEN"

    secret = await live_server.create_admin_key("billing-lead")
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    await page.goto(f"{live_server.url}/admin#/subscription/{paid['subscription']['id']}")
    await page.fill("#apikey", secret)
    await page.click("text=Use key")
    await page.get_by_text("Subscription Information").wait_for()

    # The subscription's Invoices tab: its invoice, its upcoming invoice and its invoicing settings.
    await page.get_by_role("tab", name="Invoices (1)").click()
    row = page.locator("#subscription-invoices tbody tr")
    await row.first.wait_for()
    text = await row.first.inner_text()
    assert paid_invoice["number"] in text and "PAID" in text and "2026-01-15" in text
    assert "62.96 USD" in text and "0.00 USD" in text, "total, and nothing left to pay"
    assert await page.inner_text("#upcoming-amount-due") == "62.96 USD"
    assert await row.first.get_by_role("link", name="Open").get_attribute("href") == f"#/invoice/{paid_invoice['id']}"

    async with page.expect_download() as downloading:
        await row.first.get_by_role("button", name="PDF").click()
    download = await downloading.value
    assert download.suggested_filename == f"{paid_invoice['number']}.pdf"
    assert (await asyncio.to_thread(Path(await download.path()).read_bytes)).startswith(b"%PDF")

    # Invoicing settings: a dry run shows the change, a confirmation stores it.
    await page.click("button[data-action=invoicing]")
    await page.fill("#action-panel input[name=purchaseOrder]", "PO-7781")
    await page.fill("#action-panel input[name=paymentTermsDays]", "30")
    await page.click("#action-panel button[name=dry-run]")
    dry_run = page.locator("#dry-run")
    await dry_run.get_by_text("PO-7781").wait_for()
    assert "Payment terms (days)" in await dry_run.inner_text()
    await page.click("#dry-run button[name=confirm]")
    await page.locator("#flash").get_by_text("Edit invoicing settings: done").wait_for()
    assert await page.inner_text("#invoicing-purchase-order") == "PO-7781"
    await screenshot("subscription-invoices", full_page=True)

    # The Invoices page, filtered by status; void the open invoice after its dry run.
    await page.click(".console-nav >> text=Invoices")
    await page.locator("#invoice-count").get_by_text("1\u20132 of 2").wait_for()
    await page.get_by_label("open", exact=True).check()
    await page.locator("#invoice-count").get_by_text("1\u20131 of 1").wait_for()
    assert "status=OPEN" in page.url
    rows = page.locator("#invoice-table tbody tr")
    assert open_invoice["number"] in await rows.first.inner_text()
    assert "grace@example.com" in await rows.first.inner_text()
    await rows.first.get_by_role("button", name="Void…").click()
    await page.fill("#action-panel input[name=reason]", "goodwill after a delivery problem")
    await page.click("#action-panel button[name=dry-run]")
    await dry_run.wait_for()
    assert "VOID" in await dry_run.inner_text() and "20.00 USD was due" in await dry_run.inner_text()
    await screenshot("void-dry-run")
    assert (await gql(client, INVOICE, {"id": open_invoice["id"]}))["invoice"]["status"] == "OPEN"
    await page.click("#dry-run button[name=confirm]")
    await page.locator("#flash").get_by_text(f"Void {open_invoice['number']}: done").wait_for()
    await page.locator("#invoice-count").get_by_text("No invoice matches.").wait_for()
    await page.get_by_label("open", exact=True).uncheck()
    await page.locator("#invoice-count").get_by_text("1\u20132 of 2").wait_for()
    voided = page.locator(f'#invoice-table tbody tr[data-id="{open_invoice["id"]}"]')
    assert await voided.locator(".badge").inner_text() == "VOID"
    stored = (await gql(client, INVOICE, {"id": open_invoice["id"]}))["invoice"]
    assert stored == {"status": "VOID", "voidReason": "goodwill after a delivery problem"}
    await voided.get_by_role("link", name=open_invoice["number"]).click()
    frame = page.frame_locator("#invoice-document")
    await frame.get_by_text(open_invoice["number"]).first.wait_for()
    await screenshot("invoice", full_page=True)
    assert not [url for url in requested if secret in url], "the key never goes into a URL"
