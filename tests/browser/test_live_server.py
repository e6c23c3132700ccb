"""The browser fixtures themselves: a real server, a real browser, loopback only."""

from __future__ import annotations

import json
from typing import Any

import pytest

pytestmark = pytest.mark.browser


async def test_the_browser_reaches_the_live_server_and_its_database(
    page: Any, live_server: Any, screenshot: Any
) -> None:
    response = await page.goto(f"{live_server.url}/healthz")
    assert response.status == 200
    assert json.loads(await page.inner_text("body")) == {"status": "ok", "database": "up"}
    assert (await screenshot("healthz")).stat().st_size > 0


async def test_requests_to_other_hosts_are_refused(page: Any, live_server: Any, page_report: Any) -> None:
    await page.goto(f"{live_server.url}/healthz")
    outcome = await page.evaluate("fetch('http://example.com/').then(() => 'reached', () => 'refused')")
    assert outcome == "refused"
    assert page_report.refused == ["http://example.com/"]
    page_report.refused.clear()  # expected here; any other test fails on it
