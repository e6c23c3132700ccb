"""Invoice documents: the PDF and the web page say what the invoice says, to staff and to its own customer only."""

from __future__ import annotations

import contextlib
import dataclasses
import re
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import text

from rebill.ids import to_global_id
from tests.pdftext import pdf_text
from tests.support import (
    World,
    add_card,
    make_customer,
    make_product,
    make_profile,
    make_world,
    mutate,
    ok,
    subscribe,
)

BASE = "https://billing.example.com"
SELLER = {
    "name": "Acme Roasters GmbH",
    "address": {"line1": "Hauptstraße 1", "city": "Berlin", "postalCode": "10115", "country": "DE"},
    "taxId": "DE123456789",
    "email": "billing@acme.example",
}
NAME = "Łukasz Żółć 東京"
DOCUMENT = "id number issueDate dueDate periodStart periodEnd pdfUrl hostedUrl"


@pytest.fixture
def settings(settings: Any) -> Any:
    return dataclasses.replace(settings, seller=SELLER, public_base_url=BASE)


@pytest.fixture
async def browsers(services: Any) -> AsyncIterator[Callable[[], httpx.AsyncClient]]:
    """Browsers with no key, each keeping the cookie of the portal session it signs in to."""
    from rebill.app import create_app

    transport = httpx.ASGITransport(app=create_app(services))
    async with contextlib.AsyncExitStack() as stack:

        def browser() -> httpx.AsyncClient:
            # https: the portal cookie is Secure, since the public base URL is.
            return stack.push_async_exit(httpx.AsyncClient(transport=transport, base_url="https://rebill.test"))

        yield browser


def path_of(url: str) -> str:
    return urlsplit(url).path


async def sign_in(client: httpx.AsyncClient, browser: httpx.AsyncClient, customer: str) -> str:
    """Open a portal session for ``customer`` in ``browser``, as its link does; returns its bearer token."""
    session = ok(await mutate(client, "createCustomerPortalSession", {"customerId": customer}, "url token"))
    started = await browser.post(path_of(session["url"]))
    assert started.status_code == 303, started.text
    return str(session["token"])


async def test_the_pdf_and_the_page_show_the_invoice_as_it_was_issued(client, services):
    customer = await make_customer(client, email="lukasz@example.com", name=NAME)
    address = {"line1": "ul. Długa 5", "city": "Gdańsk", "postalCode": "80-827", "country": "PL"}
    ok(await mutate(client, "updateCustomer", {"customerId": customer, "billingAddress": address}, "customer { id }"))
    async with services.engine.begin() as conn:
        await conn.execute(text("UPDATE customers SET tax_id = 'PL5260250274'"))
    world = World(
        customer, await add_card(client, customer), await make_profile(client), await make_product(client, "coffee"), ""
    )
    sub = (await subscribe(client, world, price="62.96", quantity=2))["subscription"]
    invoicing = {"subscriptionId": sub["id"], "purchaseOrder": "PO-7781", "memo": "Thank you for your order"}
    ok(await mutate(client, "updateInvoicing", invoicing, "subscription { id }"))
    invoice = ok(await mutate(client, "forceBill", {"subscriptionId": sub["id"]}, f"invoice {{ {DOCUMENT} }}"))[
        "invoice"
    ]
    assert invoice["pdfUrl"] == f"{BASE}/invoices/{invoice['id']}.pdf"
    assert invoice["hostedUrl"] == f"{BASE}/invoices/{invoice['id']}"
    # A later change of the customer's name never reaches an issued document.
    ok(await mutate(client, "updateCustomer", {"customerId": customer, "name": "Someone Else"}, "customer { id }"))

    pdf = await client.get(path_of(invoice["pdfUrl"]))
    assert pdf.status_code == 200
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.headers["content-disposition"] == f'inline; filename="{invoice["number"]}.pdf"'
    page = await client.get(path_of(invoice["hostedUrl"]))
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")

    printed = pdf_text(pdf.content)
    for shown in (printed, page.text):
        assert NAME in shown, "every name prints, in its own letters"
        assert "Someone Else" not in shown
        for words in (
            invoice["number"],
            "PAID",
            "Acme Roasters GmbH",
            "Hauptstraße 1",
            "Tax ID: DE123456789",
            "ul. Długa 5",
            "Gdańsk, 80-827",
            "lukasz@example.com",
            "Tax ID: PL5260250274",
            "Thank you for your order",
        ):
            assert words in shown, words

    facts = {
        "Issue date": invoice["issueDate"],
        "Due date": invoice["dueDate"],
        "Period": f"{invoice['periodStart']} to {invoice['periodEnd']}",
        "Purchase order": "PO-7781",
    }
    for label, value in facts.items():
        assert re.search(rf"{label}\s+{value}", printed), label
        assert f"<dt>{label}</dt><dd>{value}</dd>" in page.text, label
    assert re.search(rf"Coffee\s+{invoice['periodStart']} to {invoice['periodEnd']}\s+2\s+62\.96\s+125\.92", printed)
    for label, amount in [("Subtotal", "125.92"), ("Total", "125.92"), ("Amount paid", "125.92")]:
        assert re.search(rf"\b{label}\s+{amount}\b", printed), label
        assert f'<th scope="row">{label}</th><td class="num">{amount}</td>' in page.text, label
    assert re.search(r"Amount due \(USD\)\s+0\.00", printed)

    assert f'href="./{invoice["id"]}.pdf"' in page.text and "Download PDF" in page.text
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page.text), "nothing is loaded from another host"
    assert "style-src 'nonce-" in page.headers["content-security-policy"]


async def test_only_a_read_key_or_the_customers_own_portal_session_opens_an_invoice(client, services, browsers):
    from rebill.services.apikeys import create_key

    world = await make_world(client)
    created = await subscribe(client, world)
    renewal = created["renewal"]["id"]
    query = "query($id: ID!) { renewal(id: $id) { invoice { id pdfUrl hostedUrl } } }"
    invoice = (await client.post("/graphql", json={"query": query, "variables": {"id": renewal}})).json()["data"][
        "renewal"
    ]["invoice"]
    paths = [path_of(invoice["pdfUrl"]), path_of(invoice["hostedUrl"])]
    other_customer = await make_customer(client, email="grace@example.com")
    writer = (await create_key(services.engine, "writer", ["write"], services.clock.now())).secret

    own, other, nobody = browsers(), browsers(), browsers()
    own_token = await sign_in(client, own, world.customer)
    other_token = await sign_in(client, other, other_customer)
    refused = {
        "no key": await nobody.get(paths[0]),
        "a key without read": await client.get(paths[0], headers={"Authorization": f"Bearer {writer}"}),
        "another customer's session": await other.get(paths[0]),
        "another customer's session, the page": await other.get(paths[1]),
        "another customer's token": await nobody.get(paths[0], headers={"Authorization": f"Bearer {other_token}"}),
        "a malformed id": await client.get("/invoices/not-an-id.pdf"),
        "an unknown id": await client.get(f"/invoices/{to_global_id('Invoice', 99999)}"),
        "the id of something else": await client.get(f"/invoices/{world.customer}.pdf"),
    }
    for opened in (
        await own.get(paths[0]),
        await own.get(paths[1]),
        await nobody.get(paths[0], headers={"Authorization": f"Bearer {own_token}"}),
    ):
        assert opened.status_code == 200, "the customer's own session or token opens it"
    assert (await client.get(paths[0])).status_code == 200, "and so does a key with read"
    unknown = refused["an unknown id"]
    for why, response in refused.items():
        assert response.status_code == 404, why
        assert response.text == unknown.text, f"{why}: the same answer as for an invoice that does not exist"


CREDIT_NOTE = "id number issueDate pdfUrl hostedUrl invoice { number }"


async def refund(client: httpx.AsyncClient, renewal: str, amount: str, reason: str) -> dict[str, Any]:
    """The credit note of a refund of ``amount`` of ``renewal``."""
    refunded = await mutate(
        client,
        "refundRenewal",
        {"renewalId": renewal, "amount": {"amount": amount, "currency": "USD"}, "reason": reason},
        f"creditNote {{ {CREDIT_NOTE} }}",
    )
    return ok(refunded)["creditNote"]


async def test_a_credit_notes_pdf_and_page_show_what_it_credits_and_why(client):
    world = await make_world(client)
    created = await subscribe(client, world, price="30.00")
    note = await refund(client, created["renewal"]["id"], "12.50", "Arrived damaged")
    assert note["pdfUrl"] == f"{BASE}/credit-notes/{note['id']}.pdf"
    assert note["hostedUrl"] == f"{BASE}/credit-notes/{note['id']}"

    pdf = await client.get(path_of(note["pdfUrl"]))
    assert pdf.status_code == 200
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.headers["content-disposition"] == f'inline; filename="{note["number"]}.pdf"'
    page = await client.get(path_of(note["hostedUrl"]))
    assert page.status_code == 200
    assert f'href="./{note["id"]}.pdf"' in page.text

    printed = pdf_text(pdf.content)
    assert printed.lstrip().startswith("Credit note"), printed[:200]
    assert "<h1>Credit note</h1>" in page.text
    facts = {
        "Number": note["number"],
        "Issue date": note["issueDate"],
        "Credits invoice": note["invoice"]["number"],
        "Reason": "Arrived damaged",
        "Settlement": "Refund to payment method",
    }
    for label, value in facts.items():
        assert re.search(rf"{label}\s+{re.escape(value)}", printed), label
        assert f"<dt>{label}</dt><dd>{value}</dd>" in page.text, label
    assert re.search(r"Coffee\s+\S+ to \S+\s+12\.50", printed)
    for label, amount in [("Subtotal", "12.50"), ("Tax", "0.00"), (r"Total credited \(USD\)", "12.50")]:
        assert re.search(rf"{label}\s+{amount}", printed), label
    assert '<th scope="row">Total credited (USD)</th><td class="num">12.50</td>' in page.text


async def test_only_a_read_key_or_the_customers_own_portal_session_opens_a_credit_note(client, services, browsers):
    from rebill.services.apikeys import create_key

    world = await make_world(client)
    created = await subscribe(client, world)
    note = await refund(client, created["renewal"]["id"], "1.00", "goodwill")
    paths = [path_of(note["pdfUrl"]), path_of(note["hostedUrl"])]
    other_customer = await make_customer(client, email="grace@example.com")
    writer = (await create_key(services.engine, "writer", ["write"], services.clock.now())).secret
    invoice = (
        await client.post(
            "/graphql",
            json={
                "query": "query($id: ID!) { renewal(id: $id) { invoice { id } } }",
                "variables": {"id": created["renewal"]["id"]},
            },
        )
    ).json()["data"]["renewal"]["invoice"]["id"]

    own, other = browsers(), browsers()
    await sign_in(client, own, world.customer)
    await sign_in(client, other, other_customer)
    refused = {
        "a key without read": await client.get(paths[0], headers={"Authorization": f"Bearer {writer}"}),
        "another customer's session": await other.get(paths[0]),
        "another customer's session, the page": await other.get(paths[1]),
        "a malformed id": await client.get("/credit-notes/not-an-id.pdf"),
        "an unknown id": await client.get(f"/credit-notes/{to_global_id('CreditNote', 99999)}"),
        "an invoice's id": await client.get(f"/credit-notes/{invoice}.pdf"),
    }
    for opened in (await own.get(paths[0]), await own.get(paths[1]), await client.get(paths[0])):
        assert opened.status_code == 200, "the customer's own session opens it, and so does a key with read"
    unknown = refused["an unknown id"]
    for why, response in refused.items():
        assert response.status_code == 404, why
        assert response.text == unknown.text, f"{why}: the same answer as for a credit note that does not exist"
