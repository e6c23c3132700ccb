"""Invoices where staff look: a subscription's Invoices tab, its PDF, the Invoices page, voiding one, reviewing a
draft and issuing a credit note."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from rebill.billing.engine import RenewalEngine
from tests.support import World, add_card, gql, make_customer, make_world, mutate, ok, subscribe

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


async def test_console_reviews_a_draft_then_credits_its_invoice(
    page: Any, live_server: Any, client: Any, screenshot: Any
) -> None:
    world = await make_world(client)
    sub = (await subscribe(client, world))["subscription"]["id"]
    drafts = {"subscriptionId": sub, "draftInvoices": True, "draftDays": 3}
    ok(await mutate(client, "updateInvoicing", drafts, "subscription { id }"))
    ok(
        await mutate(
            client, "changeNextRenewalDate", {"subscriptionId": sub, "date": "2026-01-15"}, "subscription { id }"
        )
    )
    assert (await RenewalEngine(live_server.services).run_once()).drafted == 1
    found = await gql(client, "query { invoices(filter: {status: [DRAFT]}, first: 1) { edges { node { id } } } }")
    draft_id = found["invoices"]["edges"][0]["node"]["id"]
    lines = "query($id: ID!) { invoice(id: $id) { lines { description } } }"

    secret = await live_server.create_admin_key("billing-lead")
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    await page.goto(f"{live_server.url}/admin#/subscription/{sub}/invoices")
    await page.fill("#apikey", secret)
    await page.click("text=Use key")

    # A line added to the draft: the dry run shows it and the total after; the confirmation stores it.
    review = page.locator(f'#subscription-invoices tr[data-for="{draft_id}"] .draft-review')
    await review.get_by_role("button", name="Add line…").click()
    await page.fill("#action-panel input[name=description]", "Setup fee")
    await page.fill("#action-panel input[name=unitPrice]", "7.50")
    await page.fill("#action-panel input[name=quantity]", "2")
    await page.click("#action-panel button[name=dry-run]")
    added = await page.locator("#draft-after-lines tr.added").inner_text()
    assert "Setup fee" in added and "7.50 USD" in added and "15.00 USD" in added
    assert "Total 77.96 USD (now 62.96 USD)" in await page.inner_text("#dry-run")
    await screenshot("draft-line-dry-run", full_page=True)
    assert (await gql(client, lines, {"id": draft_id}))["invoice"]["lines"] == [{"description": "Coffee"}]
    await page.click("#dry-run button[name=confirm]")
    await page.locator("#flash").get_by_text("Add a line to the draft: done").wait_for()
    await review.locator("tr[data-kind=ONE_OFF]").get_by_text("Setup fee").wait_for()

    # Finalized after its dry run: numbered, charged, paid.
    await review.get_by_role("button", name="Finalize now…").click()
    await page.click("#action-panel button[name=dry-run]")
    assert "charged at once: 77.96 USD" in await page.locator("#dry-run").inner_text()
    await page.click("#dry-run button[name=confirm]")
    await page.locator("#flash").get_by_text("INV-2026-000002 issued for 77.96 USD: paid").wait_for()
    row = page.locator(f'#subscription-invoices tr[data-id="{draft_id}"]')
    assert "INV-2026-000002" in await row.inner_text() and await row.locator(".badge").inner_text() == "PAID"

    # A credit note on it, to the customer's balance; it is listed under the invoice, with its PDF.
    await row.get_by_role("button", name="Credit note…").click()
    await page.fill("#action-panel input[name=amount]", "10.00")
    await page.fill("#action-panel input[name=reason]", "late delivery")
    await page.click("#action-panel button[name=dry-run]")
    dry_run = await page.locator("#dry-run").inner_text()
    assert "CN-2026-000001 would be issued: 10.00 USD would go to the customer's balance" in dry_run, dry_run
    await page.click("#dry-run button[name=confirm]")
    await page.locator("#flash").get_by_text("CN-2026-000001: 10.00 USD to the customer's balance").wait_for()
    await row.get_by_role("link", name="INV-2026-000002").click()
    note = page.locator("#credit-notes tbody tr")
    text = await note.inner_text()
    assert "CN-2026-000001" in text and "10.00 USD" in text and "to the balance" in text and "late delivery" in text
    async with page.expect_download() as downloading:
        await note.get_by_role("button", name="PDF").click()
    download = await downloading.value
    assert download.suggested_filename == "CN-2026-000001.pdf"
    assert (await asyncio.to_thread(Path(await download.path()).read_bytes)).startswith(b"%PDF")
    await screenshot("invoice-with-credit-note", full_page=True)
    assert not [url for url in requested if secret in url], "the key never goes into a URL"
