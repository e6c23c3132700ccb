"""Seed 004 through the customer portal: links, sessions, pages and every action, as a customer's browser does them.

The store side (createCustomerPortalSession, notifications) goes through the
GraphQL API with a staff key; the customer side is a second HTTP client with
no key, following links and submitting forms like a browser without
JavaScript.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.support import (
    add_card,
    error_codes,
    get_subscription,
    gql,
    history,
    make_customer,
    make_profile,
    make_world,
    mutate,
    ok,
    subscribe,
)

DECLINED = "4000000000000002"
NOTIFICATIONS = """query($id: ID!) { notifications(subscriptionId: $id, first: 100) { edges { node {
    kind recipient payload createdAt } } } }"""
SESSION = "url token expiresAt"


@pytest.fixture
async def browser(services: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A customer's browser: no API key, cookies kept, redirects shown rather than followed."""
    from rebill.app import create_app

    transport = httpx.ASGITransport(app=create_app(services))
    async with httpx.AsyncClient(transport=transport, base_url="http://rebill.test", timeout=60) as http:
        yield http


async def portal_link(client: httpx.AsyncClient, customer: str, **fields: Any) -> dict[str, Any]:
    payload = ok(await mutate(client, "createCustomerPortalSession", {"customerId": customer, **fields}, SESSION))
    return payload


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "") + (f"#{parts.fragment}" if parts.fragment else "")


async def sign_in(browser: httpx.AsyncClient, url: str) -> str:
    """Open a link and press its one button; returns where the portal sends the customer."""
    page = await browser.get(path_of(url))
    assert page.status_code == 200, page.text
    assert "Continue to your account" in page.text
    started = await browser.post(path_of(url))
    assert started.status_code == 303, started.text
    return str(started.headers["location"])


def form_fields(html: str, action: str) -> dict[str, str]:
    """The hidden fields (CSRF token, idempotency key) of the form posting to ``action``."""
    start = html.index(f'action="{action}"')
    form = html[start : html.index("</form>", start)]
    return dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', form))


async def submit(browser: httpx.AsyncClient, sub_pk: int, action: str, **values: str) -> httpx.Response:
    page = await browser.get(f"/portal/subscriptions/{sub_pk}")
    assert page.status_code == 200, page.text
    target = f"/portal/subscriptions/{sub_pk}/{action}"
    return await browser.post(target, data={**form_fields(page.text, target), **values})


def pk_of(gid: str) -> int:
    from rebill.ids import decode_id

    return decode_id(gid, "Subscription")


async def notifications(client: httpx.AsyncClient, sub_id: str) -> list[dict[str, Any]]:
    data = await gql(client, NOTIFICATIONS, {"id": sub_id})
    return [e["node"] for e in data["notifications"]["edges"]]


async def declined_at_signup(client: httpx.AsyncClient, email: str = "ada@example.com") -> tuple[str, str]:
    """A customer whose only card declines, and the subscription left OVERDUE by its first charge."""
    customer = await make_customer(client, email)
    await add_card(client, customer, DECLINED)
    profile = await make_profile(client)
    product = ok(await mutate(client, "createProduct", {"name": "Coffee", "sku": f"coffee-{email}"}, "product { id }"))
    item = {"productId": product["product"]["id"], "unitPrice": {"amount": "9.00", "currency": "USD"}, "quantity": 1}
    created = ok(
        await mutate(
            client,
            "createSubscription",
            {"customerId": customer, "profileId": profile, "items": [item]},
            "subscription { id status }",
        )
    )
    assert created["subscription"]["status"] == "OVERDUE"
    return customer, created["subscription"]["id"]


# -- links ---------------------------------------------------------------------


async def test_a_portal_session_gives_a_one_hour_link_and_a_token(client, browser, services, clock):
    world = await make_world(client)
    sub = (await subscribe(client, world))["subscription"]
    session = await portal_link(client, world.customer, returnUrl="https://shop.example/account", flow="CANCEL")
    assert session["url"].startswith("http://127.0.0.1:8000/portal/start/")
    assert session["token"].startswith("rbp_")
    assert session["expiresAt"] == (clock.now() + timedelta(hours=1)).isoformat()

    # Opening the link shows one button and uses nothing: a mail scanner may fetch it first.
    for _ in range(2):
        page = await browser.get(path_of(session["url"]))
        assert page.status_code == 200 and page.text.count("<button") == 1
    started = await browser.post(path_of(session["url"]))
    assert started.status_code == 303
    assert started.headers["location"] == f"/portal/subscriptions/{pk_of(sub['id'])}#cancel"
    cookie = started.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "secure" not in cookie

    overview = await browser.get("/portal")
    assert overview.status_code == 200
    assert "Coffee" in overview.text and "https://shop.example/account" in overview.text


async def test_the_session_cookie_is_secure_over_https(client, services):
    from rebill.app import create_app

    customer = await make_customer(client)
    session = await portal_link(client, customer)
    transport = httpx.ASGITransport(app=create_app(services))
    async with httpx.AsyncClient(transport=transport, base_url="https://rebill.test") as https:
        started = await https.post(path_of(session["url"]))
    assert started.status_code == 303
    assert "secure" in started.headers["set-cookie"].lower()


async def test_a_used_link_says_so_and_does_not_sign_in_another_browser(client, browser, services):
    customer = await make_customer(client)
    session = await portal_link(client, customer)
    await sign_in(browser, session["url"])
    # The same browser pressing again is simply taken back in.
    again = await browser.post(path_of(session["url"]))
    assert again.status_code == 303 and again.headers["location"] == "/portal"

    from rebill.app import create_app

    transport = httpx.ASGITransport(app=create_app(services))
    async with httpx.AsyncClient(transport=transport, base_url="http://rebill.test") as other:
        page = await other.get(path_of(session["url"]))
        assert page.status_code == 410 and "already been used" in page.text
        used = await other.post(path_of(session["url"]))
        assert used.status_code == 410 and "already been used" in used.text
        assert "set-cookie" not in used.headers
        assert (await other.get("/portal")).status_code == 401


async def test_an_expired_link_says_so_and_what_to_do(client, browser, clock):
    customer = await make_customer(client)
    session = await portal_link(client, customer)
    clock.set(clock.now() + timedelta(hours=1, seconds=1))
    page = await browser.get(path_of(session["url"]))
    assert page.status_code == 410
    assert "This link has expired" in page.text and "ask the store for a new link" in page.text
    assert (await browser.post(path_of(session["url"]))).status_code == 410


@pytest.mark.parametrize(
    "token", ["forged-token-of-the-right-shape-1234567890", "x", "a" * 300, "%3Cscript%3E", "rbp_abcdefghijklmnop"]
)
async def test_a_forged_link_is_not_valid(browser, services, token):
    page = await browser.get(f"/portal/start/{token}")
    assert page.status_code == 404
    assert "This link is not valid" in page.text and "<script>" not in page.text
    assert (await browser.post(f"/portal/start/{token}")).status_code == 404


async def test_a_session_ends_after_thirty_idle_minutes(client, browser, clock):
    customer = await make_customer(client)
    await sign_in(browser, (await portal_link(client, customer))["url"])
    clock.set(clock.now() + timedelta(minutes=29))
    assert (await browser.get("/portal")).status_code == 200, "each visit keeps the session alive"
    clock.set(clock.now() + timedelta(minutes=31))
    gone = await browser.get("/portal")
    assert gone.status_code == 401 and "more than 30 minutes" in gone.text


async def test_signing_out_ends_the_session(client, browser):
    customer = await make_customer(client)
    await sign_in(browser, (await portal_link(client, customer))["url"])
    page = await browser.get("/portal")
    out = await browser.post("/portal/sign-out", data=form_fields(page.text, "/portal/sign-out"))
    assert out.status_code == 200 and "You are signed out" in out.text
    assert (await browser.get("/portal")).status_code == 401


async def test_a_portal_session_needs_a_customer_and_a_safe_return_url(client):
    customer = await make_customer(client)
    bad = await mutate(
        client, "createCustomerPortalSession", {"customerId": customer, "returnUrl": "javascript:x"}, SESSION
    )
    assert error_codes(bad) == ["INVALID_URL"] and bad["url"] is None
    from rebill.ids import to_global_id

    missing = await mutate(
        client, "createCustomerPortalSession", {"customerId": to_global_id("Customer", 999)}, SESSION
    )
    assert error_codes(missing) == ["NOT_FOUND"]


# -- e-mail links --------------------------------------------------------------


async def test_a_declined_payment_email_links_to_the_card_form_and_a_new_card_is_saved(client, browser, services):
    customer, sub_id = await declined_at_signup(client)
    [declined] = [n for n in await notifications(client, sub_id) if n["kind"] == "PAYMENT_DECLINED"]
    assert declined["payload"]["portalUrl"].startswith("http://127.0.0.1:8000/portal/start/")

    landing = await sign_in(browser, declined["payload"]["portalUrl"])
    assert landing == f"/portal/subscriptions/{pk_of(sub_id)}#payment-method"
    page = await browser.get(landing.split("#")[0])
    assert "Your last payment failed" in page.text and 'id="payment-method"' in page.text

    saved = await submit(browser, pk_of(sub_id), "payment-method", number="4242 4242 4242 4242")
    assert saved.status_code == 303
    shown = await browser.get(saved.headers["location"])
    assert "Your new card is saved" in shown.text and "Visa ending in 4242" in shown.text
    data = await gql(
        client, "query($id: ID!) { customer(id: $id) { defaultPaymentMethod { last4 } } }", {"id": customer}
    )
    assert data["customer"]["defaultPaymentMethod"] == {"last4": "4242"}
    assert (await get_subscription(client, sub_id))["status"] == "ACTIVE", "the failed renewal is paid at once"
    assert "Paid" in shown.text and "Payment failed" not in shown.text


async def test_a_subscription_pinned_to_the_declined_card_moves_to_the_new_one_and_is_paid(client, browser):
    customer = await make_customer(client)
    await add_card(client, customer)
    declining = await add_card(client, customer, DECLINED, default=False)
    profile = await make_profile(client)
    product = ok(await mutate(client, "createProduct", {"name": "Tea", "sku": "tea"}, "product { id }"))["product"][
        "id"
    ]
    item = {"productId": product, "unitPrice": {"amount": "5.00", "currency": "USD"}, "quantity": 1}
    sub_id = ok(
        await mutate(
            client,
            "createSubscription",
            {"customerId": customer, "profileId": profile, "items": [item], "paymentMethodId": declining},
            "subscription { id }",
        )
    )["subscription"]["id"]
    assert (await get_subscription(client, sub_id))["status"] == "OVERDUE"
    await sign_in(browser, (await portal_link(client, customer, flow="PAYMENT_METHOD"))["url"])
    saved = await submit(browser, pk_of(sub_id), "payment-method", number="5555555555554444")
    assert saved.status_code == 303
    assert (await get_subscription(client, sub_id))["status"] == "ACTIVE"
    page = await browser.get(saved.headers["location"])
    assert "Mastercard ending in 4444" in page.text
    actions = [e["action"] for e in await history(client, sub_id) if e["actor"] == f"customer:{customer}"]
    assert sorted(actions) == ["payment_method_set", "renewal_retry_paid"], "set to the new card, and the retry paid"


async def test_a_new_card_that_declines_is_kept_and_the_customer_is_told(client, browser):
    _, sub_id = await declined_at_signup(client)
    [declined] = [n for n in await notifications(client, sub_id) if n["kind"] == "PAYMENT_DECLINED"]
    await sign_in(browser, declined["payload"]["portalUrl"])
    refused = await submit(browser, pk_of(sub_id), "payment-method", number="4000000000009995")
    assert refused.status_code == 422 and "declined (insufficient_funds)" in refused.text
    assert (await get_subscription(client, sub_id))["status"] == "OVERDUE"


async def test_every_customer_notification_carries_a_link_that_opens_a_working_page(
    client, services, database_url, clock
):
    from dataclasses import replace

    from rebill.app import create_app
    from rebill.portal.tokens import write_settings
    from rebill.services.runtime import Services
    from rebill.webhooks.events import partner_data
    from tests.api.test_dunning import worker_once

    public = replace(services.settings, public_base_url="https://billing.shop.example")
    await write_settings(Services(services.engine, public, services.clock))  # what rebill serve does when it starts

    world = await make_world(client)
    paying = (await subscribe(client, world))["subscription"]
    ok(await mutate(client, "suspendSubscription", {"subscriptionId": paying["id"]}, "subscription { id }"))
    manual = (await subscribe(client, world, renewalType="MANUAL"))["subscription"]
    _, declined = await declined_at_signup(client, "bob@example.com")
    staff_settings = services.settings
    services.settings = replace(staff_settings, merchant_email="orders@shop.example")
    ok(await mutate(client, "cancelSubscription", {"subscriptionId": declined}, "subscription { id }"))
    services.settings = staff_settings
    await worker_once(database_url, "2026-02-09")
    await worker_once(database_url, "2026-02-15")

    lands_on = {
        "RENEWAL_RECEIPT": "",
        "SUBSCRIPTION_SUSPENDED": "",
        "PAYMENT_DECLINED": "#payment-method",
        "SUBSCRIPTION_CANCELLED": "",
        "RENEWAL_REMINDER": "#renew",
        "AWAITING_REINSTATE": "#renew",
    }
    seen = set()
    customer_kinds = """query($id: ID!, $kinds: [NotificationKind!]) {
        notifications(subscriptionId: $id, kind: $kinds, first: 100) { edges { node {
        kind recipient payload createdAt } } } }"""
    for sub_id in (paying["id"], manual["id"], declined):
        data = await gql(client, customer_kinds, {"id": sub_id, "kinds": list(lands_on)})
        for note in (e["node"] for e in data["notifications"]["edges"]):
            url = note["payload"].get("portalUrl")
            if note["recipient"] not in ("ada@example.com", "bob@example.com"):
                assert url is None, "only the customer's own e-mails open the portal"
                continue
            assert url.startswith("https://billing.shop.example/portal/start/"), note
            assert "portalUrl" not in partner_data(note["payload"]), "partners never get a customer's link"
            clock.set(datetime.fromisoformat(note["createdAt"]) + timedelta(minutes=5))  # the customer reads it
            transport = httpx.ASGITransport(app=create_app(services))
            async with httpx.AsyncClient(transport=transport, base_url="http://rebill.test") as fresh:
                landing = await sign_in(fresh, url)
                if note["payload"].get("invoiceNumber") and note["kind"] == "RENEWAL_RECEIPT":
                    # A receipt opens the invoice it names, the customer signed in.
                    assert landing == f"/invoices/{note['payload']['invoiceId']}", note
                    page = await fresh.get(landing)
                    assert page.status_code == 200 and note["payload"]["invoiceNumber"] in page.text
                    assert 'href="../portal"' in page.text, "and leads back to the customer's subscriptions"
                    seen.add(note["kind"])
                    continue
                anchor = "" if sub_id == declined else lands_on[note["kind"]]  # cancelled since: nothing to act on
                assert landing == f"/portal/subscriptions/{pk_of(sub_id)}{anchor}", note["kind"]
                page = await fresh.get(landing.split("#")[0])
                assert page.status_code == 200 and "Order history" in page.text, note["kind"]
                if "#" in landing:
                    assert f'id="{landing.split("#")[1]}"' in page.text, note["kind"]
            seen.add(note["kind"])
    assert set(lands_on) <= seen, seen
    from sqlalchemy import text

    async with services.engine.connect() as conn:
        merchant = list(await conn.execute(text("SELECT payload FROM outbox WHERE recipient = 'orders@shop.example'")))
    assert merchant and all("portalUrl" not in row.payload for row in merchant), "the merchant's copy has no link"


async def test_email_links_last_seven_days(client, browser, clock):
    _, sub_id = await declined_at_signup(client)
    [declined] = [n for n in await notifications(client, sub_id) if n["kind"] == "PAYMENT_DECLINED"]
    clock.set(clock.now() + timedelta(days=6, hours=23))
    assert (await browser.get(path_of(declined["payload"]["portalUrl"]))).status_code == 200
    clock.set(clock.now() + timedelta(hours=2))
    assert (await browser.get(path_of(declined["payload"]["portalUrl"]))).status_code == 410


async def test_the_links_of_older_emails_open_a_page_that_leads_into_the_portal(client, browser):
    _, sub_id = await declined_at_signup(client)
    [declined] = [n for n in await notifications(client, sub_id) if n["kind"] == "PAYMENT_DECLINED"]
    old = path_of(declined["payload"]["updatePaymentMethodUrl"])
    page = await browser.get(old)
    assert page.status_code == 200 and "Manage your subscription" in page.text
    renew = await browser.get(f"/subscriptions/{pk_of(sub_id)}/renew")
    assert renew.status_code == 200 and "renew your subscription" in renew.text

    await sign_in(browser, declined["payload"]["portalUrl"])
    signed_in = await browser.get(old)
    assert signed_in.status_code == 303
    assert signed_in.headers["location"] == f"/portal/subscriptions/{pk_of(sub_id)}#payment-method"


# -- pages and actions ---------------------------------------------------------


async def test_the_subscription_page_shows_what_seed_004_lists(client, browser):
    world = await make_world(client)
    sub = (await subscribe(client, world))["subscription"]
    ok(
        await mutate(
            client,
            "updateShippingAddress",
            {
                "subscriptionId": sub["id"],
                "address": {"line1": "1 Bean Street", "city": "Portland", "postalCode": "97201", "country": "US"},
            },
            "subscription { id }",
        )
    )
    await sign_in(browser, (await portal_link(client, world.customer))["url"])
    page = await browser.get(f"/portal/subscriptions/{pk_of(sub['id'])}")
    text = page.text
    assert "February 15, 2026" in text, "next order date"
    assert "62.96 USD" in text and "excluding shipping and taxes" in text
    assert "Every month" in text
    assert "1 Bean Street" in text
    assert "Visa ending in 4242" in text
    assert "2026-01-15 to 2026-02-15" in text and "Paid" in text, "order history"
    assert 'type="date"' in text and 'min="2026-02-15"' in text
    for label in ("Card number", "New next order date", "Why are you cancelling?", "Country"):
        assert f">{label}" in text
    assert "<script" not in text
    assert page.headers["content-security-policy"].startswith("default-src 'none'")


async def test_the_order_history_lists_each_invoice_with_links_the_session_opens(client, browser, services):
    from rebill.app import create_app

    world = await make_world(client)
    created = await subscribe(client, world)
    sub = created["subscription"]
    query = "query($id: ID!) { renewal(id: $id) { invoice { id number } } }"
    invoice = (await gql(client, query, {"id": created["renewal"]["id"]}))["renewal"]["invoice"]
    await sign_in(browser, (await portal_link(client, world.customer))["url"])
    page = await browser.get(f"/portal/subscriptions/{pk_of(sub['id'])}")
    history_table = page.text[page.text.index('id="history-title"') :]
    assert invoice["number"] in history_table and "Paid" in history_table
    links = re.findall(r'href="(/invoices/[^"]+)"', history_table)
    assert links == [f"/invoices/{invoice['id']}.pdf", f"/invoices/{invoice['id']}"]
    assert f'download="{invoice["number"]}.pdf"' in history_table

    pdf = await browser.get(links[0])
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")
    html = await browser.get(links[1])
    assert html.status_code == 200 and invoice["number"] in html.text
    # The links are no key: a browser without the session gets what it gets for an invoice that does not exist.
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(services)), base_url="http://rebill.test"
    ) as other:
        assert (await other.get(links[0])).status_code == 404


async def test_postponing_moves_the_date_later_and_refuses_an_earlier_one(client, browser):
    world = await make_world(client)
    sub = (await subscribe(client, world))["subscription"]
    await sign_in(browser, (await portal_link(client, world.customer))["url"])
    sub_pk = pk_of(sub["id"])

    earlier = await submit(browser, sub_pk, "postpone", date="2026-02-10")
    assert earlier.status_code == 422
    assert "not earlier than the current renewal date" in earlier.text and 'role="alert"' in earlier.text
    assert (await get_subscription(client, sub["id"]))["nextRenewalDate"] == "2026-02-15"

    later = await submit(browser, sub_pk, "postpone", date="2026-03-01")
    assert later.status_code == 303
    assert (await get_subscription(client, sub["id"]))["nextRenewalDate"] == "2026-03-01"
    [entry] = [e for e in await history(client, sub["id"]) if e["action"] == "next_renewal_date_changed"]
    assert entry["actor"] == f"customer:{world.customer}"


async def test_a_double_submit_acts_once(client, browser):
    world = await make_world(client)
    sub = (await subscribe(client, world))["subscription"]
    await sign_in(browser, (await portal_link(client, world.customer))["url"])
    target = f"/portal/subscriptions/{pk_of(sub['id'])}/postpone"
    page = await browser.get(f"/portal/subscriptions/{pk_of(sub['id'])}")
    fields = {**form_fields(page.text, target), "date": "2026-03-01"}
    first = await browser.post(target, data=fields)
    second = await browser.post(target, data=fields)
    assert first.status_code == second.status_code == 303
    moves = [e for e in await history(client, sub["id"]) if e["action"] == "next_renewal_date_changed"]
    assert len(moves) == 1
    # Back to the old page, another date in the same form: said plainly, and nothing changes.
    again = await browser.post(target, data={**fields, "date": "2026-04-01"})
    assert again.status_code == 422 and "This form was already sent" in again.text
    assert (await get_subscription(client, sub["id"]))["nextRenewalDate"] == "2026-03-01"
    huge = await browser.post(
        target, content=b"x" * 70_000, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert huge.status_code == 413


async def test_a_form_without_its_csrf_token_changes_nothing(client, browser):
    world = await make_world(client)
    sub = (await subscribe(client, world))["subscription"]
    await sign_in(browser, (await portal_link(client, world.customer))["url"])
    target = f"/portal/subscriptions/{pk_of(sub['id'])}/cancel"
    page = await browser.get(f"/portal/subscriptions/{pk_of(sub['id'])}")
    key = form_fields(page.text, target)["key"]
    for data in ({"key": key}, {"key": key, "csrf": "forged"}):
        refused = await browser.post(target, data=data)
        assert refused.status_code == 403 and "This form has expired" in refused.text
    cross_site = await browser.post(
        target, data=form_fields(page.text, target), headers={"Origin": "https://evil.example"}
    )
    assert cross_site.status_code == 403
    assert (await get_subscription(client, sub["id"]))["status"] == "ACTIVE"


async def test_cancelling_now_with_a_reason(client, browser):
    world = await make_world(client)
    sub = (await subscribe(client, world))["subscription"]
    await sign_in(browser, (await portal_link(client, world.customer, flow="CANCEL"))["url"])
    done = await submit(browser, pk_of(sub["id"]), "cancel", reason="Too much coffee")
    assert done.status_code == 303
    shown = await browser.get(done.headers["location"])
    assert "has been cancelled" in shown.text and "Cancelled" in shown.text
    assert (await get_subscription(client, sub["id"]))["status"] == "CANCELLED"
    [entry] = [e for e in await history(client, sub["id"]) if e["actor"].startswith("customer:")]
    assert (entry["actor"], entry["reason"]) == (f"customer:{world.customer}", "Too much coffee")
    assert "SUBSCRIPTION_CANCELLED" in {n["kind"] for n in await notifications(client, sub["id"])}


async def test_updating_the_billing_address(client, browser):
    world = await make_world(client)
    sub = (await subscribe(client, world))["subscription"]
    await sign_in(browser, (await portal_link(client, world.customer))["url"])
    missing = await submit(browser, pk_of(sub["id"]), "billing-address", line1="5 Main St", city="", country="US")
    assert missing.status_code == 422 and "an address needs city" in missing.text.lower()
    done = await submit(
        browser, pk_of(sub["id"]), "billing-address", line1="5 Main St", city="Salem", postalCode="97301", country="US"
    )
    assert done.status_code == 303
    data = await gql(
        client,
        "query($id: ID!) { customer(id: $id) { billingAddress { line1 city postalCode country } } }",
        {"id": world.customer},
    )
    assert data["customer"]["billingAddress"] == {
        "line1": "5 Main St",
        "city": "Salem",
        "postalCode": "97301",
        "country": "US",
    }


async def test_what_customers_type_is_shown_as_text(client, browser):
    world = await make_world(client)
    sub = (await subscribe(client, world))["subscription"]
    await sign_in(browser, (await portal_link(client, world.customer))["url"])
    hostile = '"><script>alert(1)</script>'
    done = await submit(browser, pk_of(sub["id"]), "billing-address", line1=hostile, city="Salem", country="US")
    page = await browser.get(done.headers["location"])
    assert "<script>" not in page.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text


async def test_renewing_a_manual_subscription_that_awaits_reinstatement(client, browser, database_url, clock):
    from tests.api.test_dunning import at, worker_once

    world = await make_world(client)
    sub = (await subscribe(client, world, renewalType="MANUAL"))["subscription"]
    await sign_in(browser, (await portal_link(client, world.customer))["url"])
    early = await browser.get(f"/portal/subscriptions/{pk_of(sub['id'])}")
    assert "you can renew it here" in early.text and ">Renew now</button>" not in early.text

    await worker_once(database_url, "2026-02-15")
    assert (await get_subscription(client, sub["id"]))["status"] == "AWAITING_REINSTATE"
    [waiting] = [n for n in await notifications(client, sub["id"]) if n["kind"] == "AWAITING_REINSTATE"]
    clock.set(at("2026-02-18"))
    landing = await sign_in(browser, waiting["payload"]["portalUrl"])
    assert landing.endswith("#renew")
    target = f"/portal/subscriptions/{pk_of(sub['id'])}/renew"
    page = await browser.get(f"/portal/subscriptions/{pk_of(sub['id'])}")
    fields = form_fields(page.text, target)
    first = await browser.post(target, data=fields)
    second = await browser.post(target, data=fields)  # pressed twice: the second gets the first's answer
    assert first.status_code == second.status_code == 303
    renewed = await get_subscription(client, sub["id"])
    assert (renewed["status"], renewed["nextRenewalDate"]) == ("ACTIVE", "2026-03-18")
    renewals = await gql(
        client,
        "query($id: ID!) { renewals(subscriptionId: $id, first: 10) { totalCount } }",
        {"id": sub["id"]},
    )
    assert renewals["renewals"]["totalCount"] == 2, "the first period, and one renewal"


async def test_another_customers_subscription_is_not_found(client, browser):
    world = await make_world(client)
    mine = (await subscribe(client, world))["subscription"]
    _, other_sub = await declined_at_signup(client, "bob@example.com")
    await sign_in(browser, (await portal_link(client, world.customer))["url"])
    assert (await browser.get(f"/portal/subscriptions/{pk_of(mine['id'])}")).status_code == 200
    page = await browser.get(f"/portal/subscriptions/{pk_of(other_sub)}")
    assert page.status_code == 404 and "Subscription not found" in page.text
    nowhere = await browser.get("/portal/subscriptions/99999999")
    assert nowhere.status_code == 404 and "Subscription not found" in nowhere.text, (
        "another customer's subscription looks exactly like one that does not exist"
    )
    mine_page = await browser.get(f"/portal/subscriptions/{pk_of(mine['id'])}")
    target = f"/portal/subscriptions/{pk_of(mine['id'])}/cancel"
    fields = form_fields(mine_page.text, target)
    refused = await browser.post(f"/portal/subscriptions/{pk_of(other_sub)}/cancel", data=fields)
    assert refused.status_code == 404
    assert (await get_subscription(client, other_sub))["status"] == "OVERDUE"


async def test_the_server_forgets_links_and_sessions_a_month_after_they_end(client, browser, services, clock):
    from rebill.portal.upkeep import forget_expired

    customer = await make_customer(client)
    await sign_in(browser, (await portal_link(client, customer))["url"])
    kept = await portal_link(client, customer)
    assert await forget_expired(services) == (0, 0)
    clock.set(clock.now() + timedelta(days=30, hours=2))
    assert await forget_expired(services) == (4, 1), "two links and two tokens, one session"
    assert (await browser.get(path_of(kept["url"]))).status_code == 404
