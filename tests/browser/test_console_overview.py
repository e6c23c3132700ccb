"""The console's Overview page: charts drawn in the page from the API's figures, nothing from another host, a
currency switch, and CSV downloads that say what the API says."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.support import gql, make_world, subscribe

pytestmark = pytest.mark.browser

FORECAST = """query($currency: String!, $from: Date!, $to: Date!) {
  billingForecast(currency: $currency, from: $from, to: $to) {
    date subscriptions expected { amount } expectedAfterDeclines { amount } } }"""


async def test_overview_charts_the_forecast_switches_currency_and_downloads_the_api_figures(
    page: Any, live_server: Any, client: Any, page_report: Any, screenshot: Any
) -> None:
    world = await make_world(client)
    await subscribe(client, world, price="62.96")
    await subscribe(client, world, price="10.00")
    await subscribe(client, world, price="20.00", currency="EUR")

    # The browser's today is the server's (REBILL_NOW-like clock of the tests): 2026-01-15.
    await page.clock.set_fixed_time(datetime(2026, 1, 15, 9, tzinfo=UTC))
    secret = await live_server.create_admin_key("finance-lead")
    await page.goto(f"{live_server.url}/admin")
    await page.fill("#apikey", secret)
    await page.click("text=Use key")

    await page.locator("#forecast-chart svg rect.bar").first.wait_for()
    assert await page.locator(".console-nav a.active").inner_text() == "Overview", "the console's first page"
    assert await page.locator("#overview-currency").input_value() == "USD", "the most used currency first"
    titles = await page.locator("#forecast-chart svg rect.bar title").all_text_contents()
    assert titles == ["02-15 · Expected: 72.96 USD", "03-15 · Expected: 72.96 USD"], "90 days: Jan 15 to Apr 14"
    await screenshot("overview", full_page=True)

    async with page.expect_download() as info:
        await page.locator('button[data-series="forecast"]').click()
    download = await info.value
    assert download.suggested_filename == "forecast-USD-2026-01-15.csv"
    saved = Path(await download.path())
    rows = list(csv.DictReader(io.StringIO(await asyncio.to_thread(saved.read_text, encoding="utf-8"))))
    api = (await gql(client, FORECAST, {"currency": "USD", "from": "2026-01-15", "to": "2026-04-14"}))[
        "billingForecast"
    ]
    assert [
        (r["date"], int(r["subscriptions"]), r["expected"], r["expectedAfterDeclines"], r["currency"]) for r in rows
    ] == [
        (p["date"], p["subscriptions"], p["expected"]["amount"], p["expectedAfterDeclines"]["amount"], "USD")
        for p in api
    ]

    await page.select_option("#overview-currency", "EUR")
    await page.locator('.overview-grid[data-currency="EUR"]').wait_for()
    titles = await page.locator("#forecast-chart svg rect.bar title").all_text_contents()
    assert titles == ["02-15 · Expected: 20.00 EUR", "03-15 · Expected: 20.00 EUR"]
    assert "currency=EUR" in page.url
    for chart in ("#mrr-chart", "#collections-chart", "#dunning-chart"):
        if await page.locator(chart).count():  # with revenueMetrics on the server
            assert await page.locator(f"{chart} svg").count() == 1
    assert page_report.refused == [], "nothing is fetched from another host"
