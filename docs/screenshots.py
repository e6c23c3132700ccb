"""Take the README's screenshots of the admin console: ``python docs/screenshots.py``.

Starts ``rebill serve`` on a free port over a throw-away embedded database with
demo data, then drives Debian's ``chromium`` (``apt-get install -y chromium``)
through Playwright, as the browser tests do. Writes docs/console-subscription.png
and docs/console-bulk.png.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.async_api import async_playwright

DOCS = Path(__file__).resolve().parent
REBILL = [sys.executable, "-m", "rebill.cli"]
PLAN = {
    "filter": {"status": ["ACTIVE", "TRIAL"], "currency": "USD"},
    "segments": [
        {"name": "trials", "when": {"inTrial": True}, "actions": [{"shiftNextRenewal": {"unit": "DAY", "count": 14}}]},
        {"name": "everyone-else", "actions": [{"adjustPrice": {"percent": "-10"}}]},
    ],
}
FIND = """{ subscriptions(first: 50, filter: {status: [ACTIVE]}) { edges { node { id history { totalCount } } } } }"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def gql(port: int, secret: str, query: str, variables: dict[str, object] | None = None) -> dict[str, object]:
    response = httpx.post(
        f"http://127.0.0.1:{port}/graphql",
        json={"query": query, "variables": variables or {}},
        headers={"Authorization": f"Bearer {secret}"},
        timeout=30,
    )
    body = response.json()
    assert not body.get("errors"), body
    data: dict[str, object] = body["data"]
    return data


async def shoot(port: int, secret: str, subscription: str) -> None:
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
        page = await browser.new_page(viewport={"width": 1400, "height": 1000})
        await page.goto(f"http://127.0.0.1:{port}/admin#/subscription/{subscription}/history")
        await page.fill("#apikey", secret)
        await page.click("text=Use key")
        await page.locator("#history .history-entry").first.wait_for()
        await page.click("button[data-action=force-bill]")
        await page.fill("#action-panel input[name=reason]", "customer asked for the box today")
        await page.click("#action-panel button[name=dry-run]")
        await page.locator("#dry-run").wait_for()
        await page.screenshot(path=str(DOCS / "console-subscription.png"))

        await page.goto(f"http://127.0.0.1:{port}/admin#/bulk")
        await page.locator("#plan-json").wait_for()
        await page.fill("#plan-json", json.dumps(PLAN, indent=2))
        await page.dispatch_event("#plan-json", "change")
        await page.click("#preview-button")
        await page.locator("#preview-matched").wait_for()
        await page.screenshot(path=str(DOCS / "console-bulk.png"), full_page=True)
        await browser.close()


def main() -> None:
    with tempfile.TemporaryDirectory() as data_dir:
        env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
        env.update(REBILL_DATA_DIR=data_dir, REBILL_NOW="2026-11-20T10:00:00Z")
        port = free_port()
        serve = subprocess.Popen([*REBILL, "serve", "--port", str(port)], env=env)
        try:
            for _ in range(100):
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.3)
            subprocess.run([*REBILL, "seed", "--subscriptions", "300"], env=env, check=True)
            made = subprocess.run(
                [*REBILL, "apikey", "create", "--name", "support-agent", "--scope", "admin"],
                env=env,
                check=True,
                capture_output=True,
                text=True,
            )
            secret = made.stdout.strip().splitlines()[-1]
            edges = gql(port, secret, FIND)["subscriptions"]["edges"]  # type: ignore[index]
            busiest = max(edges, key=lambda e: e["node"]["history"]["totalCount"])["node"]["id"]
            gql(
                port,
                secret,
                """mutation($id: ID!) { changeNextRenewalDate(input: {subscriptionId: $id,
                   shift: {unit: DAY, count: 7}, reason: "customer on holiday"}) { userErrors { message } } }""",
                {"id": busiest},
            )
            asyncio.run(shoot(port, secret, busiest))
        finally:
            serve.send_signal(signal.SIGINT)
            serve.wait(timeout=60)


if __name__ == "__main__":
    main()
