"""Take the README's screenshots of the admin console: ``python docs/screenshots.py``.

Starts ``rebill serve`` on a free port over a throw-away embedded database with
demo data, then drives Debian's ``chromium`` (``apt-get install -y chromium``)
through Playwright, as the browser tests do. Writes docs/console-overview.png,
docs/console-subscription.png, docs/console-bulk.png, docs/console-invoices.png and
docs/invoice.png (an invoice's web page: two items, a discount, the seller of
REBILL_SELLER and a purchase order). Name some of them (``python docs/screenshots.py
console-overview``) to take only those.
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
SELLER = {
    "name": "Acme Roasters GmbH",
    "address": {"line1": "Hauptstraße 1", "city": "Berlin", "postalCode": "10115", "country": "DE"},
    "taxId": "DE123456789",
    "email": "billing@acme.example",
    "bankDetails": "IBAN DE89 3704 0044 0532 0130 00",
}


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


def act(port: int, secret: str, name: str, data: dict[str, object], selection: str) -> dict[str, object]:
    """Run the mutation ``name(input: data)``; it must succeed."""
    type_name = name[0].upper() + name[1:] + "Input"
    query = f"mutation($input: {type_name}!) {{ {name}(input: $input) {{ userErrors {{ message }} {selection} }} }}"
    payload: dict[str, object] = gql(port, secret, query, {"input": data})[name]  # type: ignore[assignment]
    assert payload["userErrors"] == [], payload
    return payload


def invoiced_order(port: int, secret: str) -> str:
    """A customer's order of two products with a 10% coupon and a purchase order, billed: its invoice's id."""

    def call(name: str, data: dict[str, object], returns: str = "subscription") -> str:
        payload = act(port, secret, name, data, f"{returns} {{ id }}")
        return str(payload[returns]["id"])  # type: ignore[index]

    customer = call(
        "createCustomer", {"email": "purchasing@northwind.example", "name": "Northwind Traders Ltd"}, "customer"
    )
    address = {"line1": "12 Market Street", "city": "Bristol", "postalCode": "BS1 4DJ", "country": "GB"}
    call("updateCustomer", {"customerId": customer, "billingAddress": address}, "customer")
    card = {"customerId": customer, "kind": "CARD", "gatewayToken": "4242424242424242", "makeDefault": True}
    call("addPaymentMethod", card, "paymentMethod")
    monthly = {"name": "Monthly office supply", "cadence": {"unit": "MONTH", "count": 1}}
    profile = call("createProfile", monthly, "profile")
    beans = call("createProduct", {"name": "Espresso beans, 1 kg", "sku": "doc-espresso-1kg"}, "product")
    filters = call("createProduct", {"name": "Paper filters (pack of 100)", "sku": "doc-filters-100"}, "product")
    call("createCoupon", {"code": "OFFICE10", "name": "Office plan 10%", "percentOff": "10"}, "coupon")
    items = [
        {"productId": beans, "unitPrice": {"amount": "24.50", "currency": "EUR"}, "quantity": 4},
        {"productId": filters, "unitPrice": {"amount": "6.90", "currency": "EUR"}, "quantity": 2},
    ]
    sub = call("createSubscription", {"customerId": customer, "profileId": profile, "items": items})
    call("applyCoupon", {"subscriptionId": sub, "code": "OFFICE10"})
    memo = "Deliver to the reception desk, 2nd floor."
    call("updateInvoicing", {"subscriptionId": sub, "purchaseOrder": "PO-2026-0457", "memo": memo})
    return call("forceBill", {"subscriptionId": sub, "allowRepeat": True}, "invoice")


NOW = "2026-11-20T10:00:00Z"
ONLY = set(sys.argv[1:])


def wanted(name: str) -> bool:
    return not ONLY or name in ONLY


async def shoot(port: int, secret: str, subscription: str, invoice: str) -> None:
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
        if wanted("console-overview"):
            overview = await browser.new_page(viewport={"width": 1400, "height": 900})
            # The browser's today is the server's (REBILL_NOW), as it is where the clock is real.
            await overview.clock.set_fixed_time(NOW)
            await overview.goto(f"http://127.0.0.1:{port}/admin#/overview")
            await overview.fill("#apikey", secret)
            await overview.click("text=Use key")
            await overview.locator("#forecast-chart svg").wait_for()
            await overview.screenshot(path=str(DOCS / "console-overview.png"), full_page=True)
            await overview.close()
        if ONLY and not ONLY - {"console-overview"}:
            await browser.close()
            return
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

        await page.goto(f"http://127.0.0.1:{port}/admin#/invoices?status=OPEN&status=UNCOLLECTIBLE&first=10")
        await page.locator("#invoice-table").wait_for()
        await page.locator("#invoice-table button[name=void]").first.click()
        await page.fill("#action-panel input[name=reason]", "goodwill: the parcel arrived damaged")
        await page.click("#action-panel button[name=dry-run]")
        await page.locator("#dry-run").wait_for()
        await page.screenshot(path=str(DOCS / "console-invoices.png"), full_page=True)

        # The document itself, as a key with read (or the customer's portal session) opens it.
        reader = await browser.new_context(
            viewport={"width": 1000, "height": 1000}, extra_http_headers={"Authorization": f"Bearer {secret}"}
        )
        document = await reader.new_page()
        await document.goto(f"http://127.0.0.1:{port}/invoices/{invoice}")
        await document.screenshot(path=str(DOCS / "invoice.png"), full_page=True)
        await browser.close()


def main() -> None:
    with tempfile.TemporaryDirectory() as data_dir:
        env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
        env.update(REBILL_DATA_DIR=data_dir, REBILL_NOW=NOW, REBILL_SELLER=json.dumps(SELLER))
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
            invoice = invoiced_order(port, secret)
            asyncio.run(shoot(port, secret, busiest, invoice))
        finally:
            serve.send_signal(signal.SIGINT)
            serve.wait(timeout=60)


if __name__ == "__main__":
    main()
