"""GraphiQL works with no network beyond loopback: its scripts are rebill's own."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.browser


async def test_graphiql_runs_a_query_with_the_key_typed_in_the_page(
    page: Any, live_server: Any, screenshot: Any
) -> None:
    secret = await live_server.create_admin_key()
    await page.goto(f"{live_server.url}/graphql")
    await page.wait_for_selector(".graphiql-container")
    assert "FirstSubscriptions" in await page.inner_text(".graphiql-query-editor")
    await screenshot("graphiql-without-key")

    await page.fill("#apikey", secret)
    await page.click("text=Use key")
    await page.wait_for_selector(".graphiql-container")
    await page.click(".graphiql-execute-button")
    result = page.locator(".graphiql-response")
    await result.get_by_text('"totalCount": 0').wait_for()
    await screenshot("graphiql-query-result")

    # The key is kept for the tab: a reload runs the query again without typing it.
    await page.reload()
    await page.wait_for_selector(".graphiql-container")
    assert await page.input_value("#apikey") == secret
    await page.click(".graphiql-execute-button")
    await page.locator(".graphiql-response").get_by_text('"totalCount": 0').wait_for()


async def test_graphiql_without_a_key_says_why_queries_are_refused(page: Any, live_server: Any) -> None:
    await page.goto(f"{live_server.url}/graphql")
    await page.wait_for_selector(".graphiql-container")
    assert "no key yet" in await page.inner_text("#apikey-status")
    await page.click(".graphiql-execute-button")
    await page.locator(".graphiql-response").get_by_text("UNAUTHENTICATED").wait_for()
