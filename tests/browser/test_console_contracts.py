"""The console's contract card: attach a contract after a dry run, see its terms, remove it."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import gql, make_world, subscribe

pytestmark = pytest.mark.browser


async def test_console_attaches_a_contract_after_a_dry_run_and_removes_it(
    page: Any, live_server: Any, client: Any, screenshot: Any
) -> None:
    world = await make_world(client)
    sub = (await subscribe(client, world))["subscription"]
    secret = await live_server.create_admin_key("account-manager")
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    await page.goto(f"{live_server.url}/admin#/subscription/{sub['id']}")
    await page.fill("#apikey", secret)
    await page.click("text=Use key")
    card = page.locator("#contract")
    await card.get_by_text("none: the subscription can be cancelled at any time").wait_for()

    await page.click("button[data-action=attach-contract]")
    await page.fill("#action-panel input[name=termCount]", "12")
    await page.fill("#action-panel input[name=noticeDays]", "30")
    await page.fill("#action-panel input[name=fee]", "100.00")
    await page.click("#action-panel button[name=dry-run]")
    dry_run = page.locator("#dry-run")
    await dry_run.get_by_text("2027-01-15").first.wait_for()
    assert "Early termination fee" in await dry_run.inner_text()
    data = await gql(client, "query($id: ID!) { subscription(id: $id) { contract { endDate } } }", {"id": sub["id"]})
    assert data["subscription"]["contract"] is None, "a dry run stores nothing"
    await page.click("#dry-run button[name=confirm]")
    await page.locator("#flash").get_by_text("Attach a contract: done").wait_for()
    text = await page.locator("#contract").inner_text()
    assert "2026-01-15 → 2027-01-15 (12 month)" in text and "100.00 USD" in text
    await screenshot("subscription-contract", full_page=True)

    await page.click("button[data-action=remove-contract]")
    await page.click("#action-panel button[name=dry-run]")
    await page.click("#dry-run button[name=confirm]")
    await page.locator("#flash").get_by_text("Remove the contract: done").wait_for()
    await page.locator("#contract").get_by_text("none: the subscription can be cancelled at any time").wait_for()
    assert all(url.startswith(live_server.url) for url in requested), "nothing from another host"
