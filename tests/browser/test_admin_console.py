"""The admin console as support staff use it: find, read, dry-run, confirm; bulk plans with a limit, and revert."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import gql, history, make_customer, make_profile, make_world, mutate, ok, subscribe

pytestmark = pytest.mark.browser


async def sign_in(page: Any, live_server: Any, path: str = "") -> None:
    secret = await live_server.create_admin_key("support-lead")
    await page.goto(f"{live_server.url}/admin{path}")
    await page.fill("#apikey", secret)
    await page.click("text=Use key")


async def test_console_finds_a_subscription_shows_its_history_and_force_bills_it_after_a_dry_run(
    page: Any, live_server: Any, client: Any, screenshot: Any
) -> None:
    world = await make_world(client)
    sub = (await subscribe(client, world))["subscription"]
    world.customer = await make_customer(client, email="bob@example.com")
    await subscribe(client, world, price="10.00")
    ok(
        await mutate(
            client,
            "changeNextRenewalDate",
            {"subscriptionId": sub["id"], "date": "2026-02-20", "reason": "customer asked by phone"},
            "subscription { id }",
        )
    )

    await sign_in(page, live_server, "#/subscriptions")
    await page.locator("#subscription-table tbody tr").nth(1).wait_for()
    # Part of an address, in another letter case, finds that customer's subscription and not the other's.
    box = page.get_by_label("Customer (email or name)")
    await box.fill("ADA@")
    await box.press("Enter")
    await page.get_by_text("1\u20131 of 1").wait_for()
    rows = page.locator("#subscription-table tbody tr")
    assert await rows.count() == 1
    assert "62.96 USD" in await rows.first.inner_text()
    assert "ada@example.com" in await rows.first.inner_text()
    assert "bob@example.com" not in await page.inner_text("#subscription-table")
    assert "customer=ADA%40" in page.url
    await screenshot("search")

    await rows.first.locator("a").first.click()
    await page.get_by_text("Subscription Information").wait_for()
    assert await page.inner_text("#next-renewal") == "2026-02-20"
    assert await page.inner_text("#subscription-amount") == "62.96 USD"
    await screenshot("subscription", full_page=True)

    await page.click("text=/^History/")
    entries = page.locator("#history .history-entry")
    await entries.first.wait_for()
    newest = await entries.first.inner_text()
    assert "customer asked by phone" in newest
    assert "2026-02-20" in newest and "support-agent" in newest
    await screenshot("history")

    renewals_before = len(await _renewals(client, sub["id"]))
    await page.click("button[data-action=force-bill]")
    await page.fill("#action-panel input[name=reason]", "customer wants the box today")
    await page.click("#action-panel button[name=dry-run]")
    dry_run = page.locator("#dry-run")
    await dry_run.wait_for()
    assert "charges 62.96 USD" in await dry_run.inner_text()
    await screenshot("force-bill-dry-run")
    assert len(await _renewals(client, sub["id"])) == renewals_before  # the dry run stored nothing

    await page.click("#dry-run button[name=confirm]")
    await page.locator("#flash").get_by_text("Force Bill NOW: done").wait_for()
    await screenshot("force-bill-done")
    renewals = await _renewals(client, sub["id"])
    assert len(renewals) == renewals_before + 1
    assert renewals[0]["amount"]["amount"] == "62.96"
    forced = [e for e in await history(client, sub["id"]) if e["action"] == "force_billed"]
    assert [e["reason"] for e in forced] == ["customer wants the box today"]
    # The page shows it too, above the older change of the next renewal date.
    await page.click("text=/^History/")
    actions = await page.locator("#history > .history-entry").evaluate_all("els => els.map(e => e.dataset.action)")
    assert actions.index("force_billed") < actions.index("next_renewal_date_changed")
    entry = page.locator('#history > .history-entry[data-action="force_billed"]')
    assert "customer wants the box today" in await entry.inner_text()


async def test_a_price_rise_is_refused_next_to_the_consent_field_then_applied_with_consent(
    page: Any, live_server: Any, client: Any
) -> None:
    world = await make_world(client)
    sub = (await subscribe(client, world))["subscription"]
    await sign_in(page, live_server, f"#/subscription/{sub['id']}")
    await page.click("button[data-action=change-price]")
    await page.fill("#action-panel input[name=unitPrice]", "99.00")
    await page.click("#action-panel button[name=dry-run]")
    consent_field = page.locator("#action-panel label", has=page.locator("input[name=consentReference]"))
    error = consent_field.locator(".field-error")
    await error.wait_for()
    assert "CONSENT_REQUIRED" in await error.inner_text()
    assert await page.locator("#dry-run").count() == 0

    # With the customer's consent the dry run shows the new amount, and the history keeps the reference.
    await page.fill("#action-panel input[name=consentReference]", "call 2026-01-15 recorded")
    await page.click("#action-panel button[name=dry-run]")
    await page.locator("#dry-run").get_by_text("99.00 USD").first.wait_for()
    assert await consent_field.locator(".field-error").count() == 0
    await page.click("#dry-run button[name=confirm]")
    await page.locator("#flash").get_by_text("Change price: done").wait_for()
    assert await page.inner_text("#subscription-amount") == "99.00 USD"
    await page.click("text=/^History/")
    newest = page.locator("#history > .history-entry").first
    assert "call 2026-01-15 recorded" in await newest.inner_text()


async def test_console_runs_a_bulk_plan_with_a_limit_of_10_to_completion_and_reverts_it(
    page: Any, live_server: Any, client: Any, screenshot: Any
) -> None:
    world = await make_world(client)
    subs = [(await subscribe(client, world))["subscription"] for _ in range(12)]
    dates_before = {s["id"]: s["nextRenewalDate"] for s in subs}

    await sign_in(page, live_server, "#/bulk")
    await page.locator("#plan-json").wait_for()
    plan = await page.input_value("#plan-json")
    assert '"shiftNextRenewal"' in plan
    # The form writes the JSON: only manual renewals match none of them.
    await page.select_option("#plan-form select[name=renewalType]", "MANUAL")
    assert '"renewalType": "MANUAL"' in await page.input_value("#plan-json")
    await page.click("#preview-button")
    await page.locator("#preview-matched").get_by_text("0 subscriptions match").wait_for()
    await page.select_option("#plan-form select[name=renewalType]", "")
    assert "renewalType" not in await page.input_value("#plan-json")
    await page.click("#preview-button")
    await page.locator("#preview-matched").get_by_text("12 subscriptions match").wait_for()
    await screenshot("bulk-preview", full_page=True)

    await page.fill("#run-limit", "10")
    await page.click("#start-run button[name=start]")
    counts = page.locator("#run-counts")
    await counts.get_by_text("10 of 10 processed · 10 applied").wait_for()
    await page.locator(".run-status").get_by_text("COMPLETED").wait_for()
    assert await page.locator("#run-items-table > tbody > tr").count() == 10
    await screenshot("bulk-run-completed", full_page=True)
    moved = await _next_renewals(client)
    assert sum(moved[i] != dates_before[i] for i in moved) == 10

    await page.click("button[name=revert-run]")
    await page.click("button[name=confirm-revert]")
    await page.locator("#run-notice").get_by_text("Reverted 10 subscriptions").wait_for()
    await page.locator(".run-status").get_by_text("REVERTED").wait_for()
    await screenshot("bulk-run-reverted")
    assert await _next_renewals(client) == dates_before

    await page.click("text=← Bulk editor")
    await page.locator("#runs-table > tbody > tr").first.get_by_text("REVERTED").wait_for()


async def _renewals(client: Any, subscription_id: str) -> list[dict[str, Any]]:
    data = await gql(
        client,
        "query($id: ID!) { subscription(id: $id) { renewals(first: 50) { edges { node { id amount { amount } } } } } }",
        {"id": subscription_id},
    )
    return [e["node"] for e in data["subscription"]["renewals"]["edges"]]


async def _next_renewals(client: Any) -> dict[str, str]:
    data = await gql(client, "{ subscriptions(first: 100) { edges { node { id nextRenewalDate } } } }")
    return {e["node"]["id"]: e["node"]["nextRenewalDate"] for e in data["subscriptions"]["edges"]}


async def test_console_sorts_by_amount_and_pages_both_ways(page: Any, live_server: Any, client: Any) -> None:
    world = await make_world(client)
    for cents in range(1000, 1000 + 23 * 37, 37):
        await subscribe(client, world, price=f"{cents // 100}.{cents % 100:02d}")
    await sign_in(page, live_server, "#/subscriptions?sort=AMOUNT&dir=DESC&first=10")
    count = page.locator("#result-count")
    await count.get_by_text("1\u201310 of 23").wait_for()
    amounts = page.locator("#subscription-table > tbody > tr > td:nth-child(5)")
    assert await amounts.first.inner_text() == "18.14 USD"

    await page.click("button[name=next]")
    await count.get_by_text("11\u201320 of 23").wait_for()
    assert await amounts.first.inner_text() == "14.44 USD"
    await page.click("button[name=next]")
    await count.get_by_text("21\u201323 of 23").wait_for()
    assert await page.locator("button[name=next]").is_disabled()
    await page.click("button[name=previous]")
    await count.get_by_text("11\u201320 of 23").wait_for()
    assert await amounts.first.inner_text() == "14.44 USD"
    await page.click("button[name=previous]")
    await count.get_by_text("1\u201310 of 23").wait_for()
    assert await amounts.first.inner_text() == "18.14 USD"
    assert await page.locator("button[name=previous]").is_disabled()


async def test_cancel_with_a_refund_shows_the_refund_in_its_dry_run_then_cancels(
    page: Any, live_server: Any, client: Any, screenshot: Any
) -> None:
    world = await make_world(client)
    sub = (await subscribe(client, world))["subscription"]
    await sign_in(page, live_server, f"#/subscription/{sub['id']}")
    await page.click("button[data-action=cancel]")
    await page.check("#action-panel input[name=refundLastRenewal]")
    await page.fill("#action-panel input[name=reason]", "moved abroad")
    await page.click("#action-panel button[name=dry-run]")
    dry_run = page.locator("#dry-run")
    await dry_run.wait_for()
    text = await dry_run.inner_text()
    assert "Refund of 62.96 USD" in text and "CANCELLED" in text
    await screenshot("cancel-dry-run")
    assert (await gql(client, "query($id: ID!) { subscription(id: $id) { status } }", {"id": sub["id"]}))[
        "subscription"
    ]["status"] == "ACTIVE"

    await page.click("#dry-run button[name=confirm]")
    await page.locator("#flash").get_by_text("Refund of 62.96 USD").wait_for()
    assert await page.locator(".subscription-head .badge").inner_text() == "CANCELLED"
    assert await page.locator("button[data-action=cancel]").count() == 0


async def test_edits_from_seed_000_change_the_profile_and_the_shipping_address_after_their_dry_runs(
    page: Any, live_server: Any, client: Any, screenshot: Any
) -> None:
    world = await make_world(client)
    sub = (await subscribe(client, world))["subscription"]
    quarterly = await make_profile(client, name="Quarterly", cadence={"unit": "MONTH", "count": 3})
    await sign_in(page, live_server, f"#/subscription/{sub['id']}")

    await page.click("button[data-action=change-profile]")
    await page.select_option("#action-panel select[name=profileId]", quarterly)
    await page.click("#action-panel button[name=dry-run]")
    await page.locator("#dry-run").get_by_text("Quarterly").wait_for()
    await page.click("#dry-run button[name=confirm]")
    await page.locator("#flash").get_by_text("Change profile: done").wait_for()
    assert "Quarterly" in await page.inner_text(".subscription-head")

    await page.click("button[data-action=shipping-address]")
    for name, value in {"line1": "12 Rue des Lilas", "postalCode": "75011", "city": "Paris", "country": "FR"}.items():
        await page.fill(f"#action-panel input[name={name}]", value)
    await page.click("#action-panel button[name=dry-run]")
    await page.locator("#dry-run").get_by_text("12 Rue des Lilas, 75011, Paris, FR").wait_for()
    await screenshot("shipping-address-dry-run")
    await page.click("#dry-run button[name=confirm]")
    await page.locator("#flash").get_by_text("Change shipping address: done").wait_for()
    assert "12 Rue des Lilas" in await page.inner_text("#tab-overview")


async def test_a_partial_refund_of_a_renewal_after_its_dry_run(page: Any, live_server: Any, client: Any) -> None:
    world = await make_world(client)
    sub = (await subscribe(client, world))["subscription"]
    await sign_in(page, live_server, f"#/subscription/{sub['id']}/renewals")
    await page.locator("#renewals-table").get_by_role("button", name="Refund…").click()
    await page.fill("#action-panel input[name=amount]", "10.00")
    await page.click("#action-panel button[name=dry-run]")
    await page.locator("#dry-run").get_by_text("refunded 10.00 USD").wait_for()
    await page.click("#dry-run button[name=confirm]")
    await page.locator("#flash").get_by_text("Refund: done").wait_for()
    await page.click("text=/^Renewals/")
    assert "10.00 USD" in await page.locator("#renewals-table > tbody > tr").first.inner_text()
