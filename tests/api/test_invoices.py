"""Invoices through the API: one for every charge, numbered without gaps, following their renewal."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from rebill.billing.engine import RenewalEngine
from rebill.ids import from_global_id
from tests.ledger import assert_ledger_ok
from tests.support import add_card, error_codes, gql, history, make_customer, make_world, mutate, ok, subscribe

DECLINED = "4000000000000002"

INVOICE = """id number status documentType currency issueDate dueDate periodStart periodEnd
  subtotal { amount } discountTotal { amount } shippingTotal { amount } taxTotal { amount } total { amount }
  creditApplied { amount } amountPaid { amount } amountDue { amount } creditedTotal { amount }
  customerTaxId voidReason
  lines { kind description quantity unitPrice { amount } amount { amount } periodStart periodEnd product { sku } }
  renewal { id status amount { amount } } subscription { id } customer { id }"""

PREVIEW = """currency periodStart periodEnd subtotal { amount } discountTotal { amount } total { amount }
  creditApplied { amount } amountDue { amount } lines { kind description amount { amount } }"""


async def invoice_of_renewal(client, renewal_id: str) -> dict[str, Any]:
    data = await gql(
        client, f"query($id: ID!) {{ renewal(id: $id) {{ invoice {{ {INVOICE} }} }} }}", {"id": renewal_id}
    )
    invoice: dict[str, Any] = data["renewal"]["invoice"]
    return invoice


async def subscribe_at_20(client, world, selection: str) -> dict[str, Any]:
    """``createSubscription`` of one item at 20.00 USD for the world's customer, charged to its default card
    (which may decline): the payload, userErrors included."""
    return await mutate(
        client,
        "createSubscription",
        {
            "customerId": world.customer,
            "profileId": world.profile,
            "items": [{"productId": world.product, "unitPrice": {"amount": "20.00", "currency": "USD"}}],
        },
        selection,
    )


async def all_invoices(client, **filter_: Any) -> list[dict[str, Any]]:
    data = await gql(
        client,
        "query($f: InvoiceFilter) { invoices(filter: $f, first: 100) { totalCount edges { node { id number status } } } }",
        {"f": filter_ or None},
    )
    return [e["node"] for e in data["invoices"]["edges"]]


async def test_a_new_subscription_is_invoiced_numbered_and_paid_with_a_line_per_item(client, services):
    world = await make_world(client)
    created = await subscribe(client, world, price="62.96", quantity=2)
    invoice = await invoice_of_renewal(client, created["renewal"]["id"])
    assert invoice["number"] == "INV-2026-000001"
    assert invoice["status"] == "PAID"
    assert invoice["documentType"] == "INVOICE"
    assert invoice["issueDate"] == "2026-01-15" == invoice["dueDate"], "due on issue without payment terms"
    assert (invoice["periodStart"], invoice["periodEnd"]) == (
        created["renewal"]["periodStart"],
        created["renewal"]["periodEnd"],
    )
    [line] = invoice["lines"]
    assert line == {
        "kind": "ITEM",
        "description": "Coffee",
        "quantity": 2,
        "unitPrice": {"amount": "62.96"},
        "amount": {"amount": "125.92"},
        "periodStart": created["renewal"]["periodStart"],
        "periodEnd": created["renewal"]["periodEnd"],
        "product": {"sku": "coffee"},
    }
    assert invoice["total"] == invoice["amountPaid"] == invoice["renewal"]["amount"] == {"amount": "125.92"}
    assert invoice["amountDue"] == {"amount": "0.00"}
    assert invoice["subscription"]["id"] == created["subscription"]["id"]
    assert invoice["customer"]["id"] == world.customer
    await assert_ledger_ok(services.engine)


async def test_a_coupon_is_a_discount_line_and_the_invoice_asks_what_the_renewal_charged(client, services):
    world = await make_world(client)
    ok(await mutate(client, "createCoupon", {"code": "TENOFF", "percentOff": "10"}, "coupon { id }"))
    sub = (await subscribe(client, world, price="33.33", quantity=3))["subscription"]
    ok(await mutate(client, "applyCoupon", {"subscriptionId": sub["id"], "code": "TENOFF"}, "subscription { id }"))
    forced = ok(
        await mutate(
            client,
            "forceBill",
            {"subscriptionId": sub["id"]},
            f"renewal {{ id amount {{ amount }} }} invoice {{ {INVOICE} }} invoicePreview {{ {PREVIEW} }}",
        )
    )
    invoice = forced["invoice"]
    assert [(line["kind"], line["amount"]["amount"]) for line in invoice["lines"]] == [
        ("ITEM", "99.99"),
        ("DISCOUNT", "-10.00"),
    ]
    assert invoice["subtotal"] == invoice["total"] == forced["renewal"]["amount"] == {"amount": "89.99"}
    assert invoice["discountTotal"] == {"amount": "10.00"}
    assert forced["invoicePreview"]["total"] == invoice["total"], "the preview of an issued invoice is that invoice"
    assert invoice["number"] == "INV-2026-000002"
    await assert_ledger_ok(services.engine)


async def test_a_dry_run_shows_the_invoice_it_would_issue_and_takes_no_number(client, services):
    world = await make_world(client)
    sub = (await subscribe(client, world, price="10.00"))["subscription"]
    what_if = ok(
        await mutate(
            client,
            "forceBill",
            {"subscriptionId": sub["id"], "dryRun": True},
            f"dryRun invoice {{ id }} invoicePreview {{ {PREVIEW} }}",
        )
    )
    assert what_if["dryRun"] is True and what_if["invoice"] is None
    preview = what_if["invoicePreview"]
    assert preview["lines"] == [{"kind": "ITEM", "description": "Coffee", "amount": {"amount": "10.00"}}]
    assert preview["amountDue"] == {"amount": "10.00"}
    assert [i["number"] for i in await all_invoices(client)] == ["INV-2026-000001"]
    real = ok(await mutate(client, "forceBill", {"subscriptionId": sub["id"]}, "invoice { number }"))
    assert real["invoice"]["number"] == "INV-2026-000002", "the dry run left no gap"


async def test_a_declined_charge_leaves_its_invoice_open_until_a_new_card_pays_it(client, services):
    world = await make_world(client)
    ok(
        await mutate(
            client,
            "addPaymentMethod",
            {"customerId": world.customer, "kind": "CARD", "gatewayToken": DECLINED, "makeDefault": True},
            "paymentMethod { id }",
        )
    )
    declined = await subscribe_at_20(client, world, "subscription { id status } renewal { id status }")
    assert declined["renewal"]["status"] == "FAILED"
    invoice = await invoice_of_renewal(client, declined["renewal"]["id"])
    assert (invoice["status"], invoice["amountDue"]) == ("OPEN", {"amount": "20.00"})
    added = ok(
        await mutate(
            client,
            "addPaymentMethod",
            {"customerId": world.customer, "kind": "CARD", "gatewayToken": "4242424242424242", "makeDefault": True},
            "invoices { number status amountPaid { amount } }",
        )
    )  # the new default card retries the renewal at once
    assert added["invoices"] == [{"number": invoice["number"], "status": "PAID", "amountPaid": {"amount": "20.00"}}]
    invoice = await invoice_of_renewal(client, declined["renewal"]["id"])
    assert (invoice["status"], invoice["amountPaid"], invoice["amountDue"]) == (
        "PAID",
        {"amount": "20.00"},
        {"amount": "0.00"},
    )
    await assert_ledger_ok(services.engine)


async def test_a_new_default_card_that_declines_too_leaves_the_invoice_open_and_says_so(client, services):
    world = await make_world(client)
    await add_card(client, world.customer, DECLINED)
    declined = await subscribe_at_20(client, world, "renewal { id status }")
    invoice = await invoice_of_renewal(client, declined["renewal"]["id"])
    added = ok(
        await mutate(
            client,
            "addPaymentMethod",
            {"customerId": world.customer, "kind": "CARD", "gatewayToken": "4000000000009995", "makeDefault": True},
            "paymentMethod { last4 } invoices { number status amountPaid { amount } amountDue { amount } }",
        )
    )  # the card is kept: its decline is the renewal's, not the request's
    assert added["paymentMethod"] == {"last4": "9995"}
    assert added["invoices"] == [
        {
            "number": invoice["number"],
            "status": "OPEN",
            "amountPaid": {"amount": "0.00"},
            "amountDue": {"amount": "20.00"},
        }
    ]
    assert (await invoice_of_renewal(client, declined["renewal"]["id"]))["status"] == "OPEN"
    await assert_ledger_ok(services.engine)


async def test_voiding_an_open_invoice_forgives_it_and_the_subscription_is_active_again(client, services):
    world = await make_world(client)
    await add_card(client, world.customer, DECLINED)
    declined = await subscribe_at_20(client, world, "subscription { id status overdueCount } renewal { id }")
    assert declined["subscription"]["status"] == "OVERDUE"
    invoice = await invoice_of_renewal(client, declined["renewal"]["id"])
    voided = ok(
        await mutate(
            client,
            "voidInvoice",
            {"invoiceId": invoice["id"], "reason": "goodwill: the parcel never arrived"},
            "invoice { status voidReason number total { amount } }",
        )
    )
    assert voided["invoice"] == {
        "status": "VOID",
        "voidReason": "goodwill: the parcel never arrived",
        "number": invoice["number"],
        "total": {"amount": "20.00"},
    }
    sub = (
        await gql(
            client,
            "query($id: ID!) { subscription(id: $id) { status overdueCount } }",
            {"id": declined["subscription"]["id"]},
        )
    )["subscription"]
    assert sub == {"status": "ACTIVE", "overdueCount": 0}
    last = (await history(client, declined["subscription"]["id"]))[-1]
    assert last["action"] == "invoice_voided"
    assert last["reason"] == "goodwill: the parcel never arrived"
    pk = from_global_id(invoice["id"])[1]
    assert {"field": f"invoices.{pk}.status", "before": "OPEN", "after": "VOID"} in last["changes"]
    again = await mutate(client, "voidInvoice", {"invoiceId": invoice["id"]}, "invoice { status }")
    assert error_codes(again) == ["INVOICE_NOT_OPEN"]
    await RenewalEngine(services).run_once()
    assert (await invoice_of_renewal(client, declined["renewal"]["id"]))["status"] == "VOID", "never retried"


async def test_a_paid_invoice_cannot_be_voided(client):
    world = await make_world(client)
    created = await subscribe(client, world)
    invoice = await invoice_of_renewal(client, created["renewal"]["id"])
    refused = await mutate(client, "voidInvoice", {"invoiceId": invoice["id"]}, "invoice { status }")
    assert error_codes(refused) == ["INVOICE_NOT_OPEN"]
    assert (await invoice_of_renewal(client, created["renewal"]["id"]))["status"] == "PAID"


async def test_an_invoice_whose_dunning_ends_unpaid_is_uncollectible(client, services, clock):
    world = await make_world(client, retryScheduleDays=[1])
    await add_card(client, world.customer, DECLINED)
    declined = await subscribe_at_20(client, world, "subscription { id } renewal { id }")
    clock.set(datetime(2026, 1, 17, 9, tzinfo=UTC))
    await RenewalEngine(services).run_once()
    invoice = await invoice_of_renewal(client, declined["renewal"]["id"])
    assert invoice["status"] == "UNCOLLECTIBLE"
    await assert_ledger_ok(services.engine)


async def test_the_worker_invoices_every_renewal_with_consecutive_numbers(client, services, clock):
    world = await make_world(client)
    subs = [(await subscribe(client, world, price=f"{10 + n}.00"))["subscription"]["id"] for n in range(5)]
    clock.set(datetime(2026, 2, 15, 9, tzinfo=UTC))
    report = await RenewalEngine(services).run_once()
    assert report.renewed == 5
    numbers = sorted(i["number"] for i in await all_invoices(client))
    assert numbers == [f"INV-2026-{n:06d}" for n in range(1, 11)]
    mine = await all_invoices(client, subscriptionId=subs[0])
    assert len(mine) == 2
    paid = await all_invoices(client, status=["PAID"], issuedFrom="2026-02-01")
    assert len(paid) == 5
    await assert_ledger_ok(services.engine)


async def test_a_proration_charge_is_one_proration_line(client, services):
    world = await make_world(client)
    sub = (await subscribe(client, world, price="30.00"))["subscription"]
    charged = ok(
        await mutate(
            client,
            "updateItem",
            {
                "subscriptionId": sub["id"],
                "itemId": sub["items"][0]["id"],
                "quantity": 2,
                "proration": "FULL",
                "consentReference": "email-42",
            },
            f"renewal {{ adjustment amount {{ amount }} }} invoice {{ {INVOICE} }}",
        )
    )
    assert charged["renewal"]["adjustment"] is True
    [line] = charged["invoice"]["lines"]
    assert line["kind"] == "PRORATION"
    assert line["amount"] == charged["invoice"]["total"] == charged["renewal"]["amount"]
    await assert_ledger_ok(services.engine)


async def test_a_finalized_invoice_is_never_edited_even_in_sql(client, services):
    world = await make_world(client)
    await subscribe(client, world)
    async with services.engine.connect() as conn:
        for statement in (
            "UPDATE invoices SET total_minor = 1",
            "UPDATE invoices SET number = 'INV-2026-000099'",
            "UPDATE invoice_lines SET amount_minor = 1",
            "DELETE FROM invoice_lines",
            "DELETE FROM invoices",
        ):
            with pytest.raises(DBAPIError, match="finalized"):
                async with conn.begin():
                    await conn.execute(text(statement))


async def test_invoices_are_listed_per_customer_and_found_by_number_and_node(client):
    world = await make_world(client)
    await subscribe(client, world)
    data = await gql(
        client,
        "query($id: ID!) { customer(id: $id) { invoices(first: 5) { totalCount edges { node { id number } } } } }",
        {"id": world.customer},
    )
    [edge] = data["customer"]["invoices"]["edges"]
    found = await all_invoices(client, number=edge["node"]["number"])
    assert [i["id"] for i in found] == [edge["node"]["id"]]
    node = await gql(client, "query($id: ID!) { node(id: $id) { ... on Invoice { number } } }", {"id": found[0]["id"]})
    assert node["node"] == {"number": "INV-2026-000001"}


INVOICING = "invoicing { purchaseOrder memo documentType draftInvoices draftDays paymentTermsDays }"


async def test_invoicing_settings_apply_to_invoices_issued_after_the_change_and_are_in_the_history(client, services):
    world = await make_world(client)
    created = await subscribe(client, world)
    sub = created["subscription"]
    first = await invoice_of_renewal(client, created["renewal"]["id"])
    changed = ok(
        await mutate(
            client,
            "updateInvoicing",
            {"subscriptionId": sub["id"], "purchaseOrder": " PO-7781 ", "memo": "Net 30", "paymentTermsDays": 30},
            f"subscription {{ {INVOICING} }}",
        )
    )
    assert changed["subscription"]["invoicing"] == {
        "purchaseOrder": "PO-7781",
        "memo": "Net 30",
        "documentType": "INVOICE",
        "draftInvoices": False,
        "draftDays": 0,
        "paymentTermsDays": 30,
    }
    entry = (await history(client, sub["id"]))[-1]
    assert entry["action"] == "invoicing_updated"
    assert entry["changes"][0]["field"] == "invoicing"
    assert entry["changes"][0]["after"] == {"purchaseOrder": "PO-7781", "memo": "Net 30", "paymentTermsDays": 30}
    forced = ok(await mutate(client, "forceBill", {"subscriptionId": sub["id"]}, "renewal { id }"))
    second = await invoice_of_renewal(client, forced["renewal"]["id"])
    data = await gql(
        client,
        "query($id: ID!) { invoice(id: $id) { purchaseOrder memo issueDate dueDate } }",
        {"id": second["id"]},
    )
    assert data["invoice"] == {
        "purchaseOrder": "PO-7781",
        "memo": "Net 30",
        "issueDate": "2026-01-15",
        "dueDate": "2026-02-14",
    }
    again = await gql(client, "query($id: ID!) { invoice(id: $id) { purchaseOrder dueDate } }", {"id": first["id"]})
    assert again["invoice"] == {"purchaseOrder": None, "dueDate": "2026-01-15"}, "an issued invoice never changes"
    cleared = ok(
        await mutate(
            client,
            "updateInvoicing",
            {"subscriptionId": sub["id"], "purchaseOrder": None},
            f"subscription {{ {INVOICING} }}",
        )
    )
    assert cleared["subscription"]["invoicing"]["purchaseOrder"] is None
    assert cleared["subscription"]["invoicing"]["memo"] == "Net 30", "fields left out keep their value"


@pytest.mark.parametrize(
    ("change", "code", "field"),
    [
        ({"paymentTermsDays": -1}, "INVALID_INVOICING", "paymentTermsDays"),
        ({"draftDays": 366}, "INVALID_INVOICING", "draftDays"),
        ({"purchaseOrder": "x" * 201}, "INVALID_INVOICING", "purchaseOrder"),
    ],
)
async def test_invoicing_settings_out_of_bounds_are_refused_naming_the_field(client, change, code, field):
    world = await make_world(client)
    sub = (await subscribe(client, world))["subscription"]
    refused = await mutate(client, "updateInvoicing", {"subscriptionId": sub["id"], **change}, "subscription { id }")
    assert [(e["code"], e["field"]) for e in refused["userErrors"]] == [(code, [field])]


async def test_a_phase_and_a_bulk_run_change_the_invoicing_settings(client, services, clock):
    from rebill.bulk.runner import process_queued_runs

    world = await make_world(client)
    sub = (await subscribe(client, world))["subscription"]
    phase = ok(
        await mutate(
            client,
            "updateSubscription",
            {"subscriptionId": sub["id"], "effectiveDate": "2026-02-01", "invoicing": {"memo": "From February"}},
            "phase { id }",
        )
    )
    assert phase["phase"]["id"]
    clock.set(datetime(2026, 2, 15, 9, tzinfo=UTC))  # phases apply with the renewal that follows their date
    await RenewalEngine(services).run_once()
    data = await gql(client, f"query($id: ID!) {{ subscription(id: $id) {{ {INVOICING} }} }}", {"id": sub["id"]})
    assert data["subscription"]["invoicing"]["memo"] == "From February"
    renewed = await all_invoices(client, subscriptionId=sub["id"], issuedFrom="2026-02-15")
    memo = await gql(client, "query($id: ID!) { invoice(id: $id) { memo } }", {"id": renewed[0]["id"]})
    assert memo["invoice"]["memo"] == "From February", "the renewal that applied the phase is invoiced with it"
    plan = {
        "segments": [
            {"name": "all", "actions": [{"setInvoicing": {"purchaseOrder": "PO-BULK", "paymentTermsDays": 14}}]}
        ]
    }
    ok(await mutate(client, "startBulkRun", {"plan": plan}, "run { id }"))
    await process_queued_runs(services)
    data = await gql(client, f"query($id: ID!) {{ subscription(id: $id) {{ {INVOICING} }} }}", {"id": sub["id"]})
    assert data["subscription"]["invoicing"]["purchaseOrder"] == "PO-BULK"
    assert data["subscription"]["invoicing"]["paymentTermsDays"] == 14
    assert data["subscription"]["invoicing"]["memo"] == "From February"
    bad = {"segments": [{"name": "all", "actions": [{"setInvoicing": {"draftDays": 400}}]}]}
    refused = await mutate(client, "startBulkRun", {"plan": bad}, "run { id }")
    assert [e["code"] for e in refused["userErrors"]] == ["INVALID_INVOICING"], refused


async def test_the_upcoming_invoice_shows_the_next_renewal_line_by_line(client):
    world = await make_world(client)
    ok(
        await mutate(
            client,
            "createCoupon",
            {"code": "FIVE", "amountOff": {"amount": "5.00", "currency": "USD"}},
            "coupon { id }",
        )
    )
    sub = (await subscribe(client, world, price="20.00"))["subscription"]
    ok(await mutate(client, "applyCoupon", {"subscriptionId": sub["id"], "code": "FIVE"}, "subscription { id }"))
    query = (
        f"query($id: ID!) {{ subscription(id: $id) {{ nextRenewalDate upcomingInvoice {{ issueDate {PREVIEW} }} }} }}"
    )
    data = (await gql(client, query, {"id": sub["id"]}))["subscription"]
    upcoming = data["upcomingInvoice"]
    assert upcoming["issueDate"] == upcoming["periodStart"] == data["nextRenewalDate"]
    assert [(line["kind"], line["amount"]["amount"]) for line in upcoming["lines"]] == [
        ("ITEM", "20.00"),
        ("DISCOUNT", "-5.00"),
    ]
    assert upcoming["amountDue"] == {"amount": "15.00"}
    ok(
        await mutate(
            client, "cancelSubscription", {"subscriptionId": sub["id"], "atPeriodEnd": True}, "subscription { id }"
        )
    )
    data = (await gql(client, query, {"id": sub["id"]}))["subscription"]
    assert data["upcomingInvoice"] is None, "no renewal is coming"


CREDIT_NOTE = """id number total { amount } taxTotal { amount } reason refunded
  lines { kind description amount { amount } } invoice { number creditedTotal { amount } status }"""


async def test_every_refund_issues_a_numbered_credit_note_and_never_beyond_the_invoice(client, services):
    world = await make_world(client)
    created = await subscribe(client, world, price="30.00")
    renewal = created["renewal"]["id"]
    first = ok(
        await mutate(
            client,
            "refundRenewal",
            {"renewalId": renewal, "amount": {"amount": "10.00", "currency": "USD"}, "reason": "late delivery"},
            f"creditNote {{ {CREDIT_NOTE} }}",
        )
    )["creditNote"]
    assert first["number"] == "CN-2026-000001"
    assert (first["total"], first["refunded"], first["reason"]) == ({"amount": "10.00"}, True, "late delivery")
    assert first["lines"] == [{"kind": "ITEM", "description": "Coffee", "amount": {"amount": "10.00"}}]
    assert first["invoice"] == {"number": "INV-2026-000001", "creditedTotal": {"amount": "10.00"}, "status": "PAID"}
    rest = ok(
        await mutate(
            client,
            "cancelSubscription",
            {"subscriptionId": created["subscription"]["id"], "refundLastRenewal": True},
            "refund { amount { amount } } creditNote { number total { amount } }",
        )
    )
    assert rest["creditNote"] == {"number": "CN-2026-000002", "total": {"amount": "20.00"}}
    invoice = await invoice_of_renewal(client, renewal)
    assert invoice["creditedTotal"] == invoice["total"] == {"amount": "30.00"}
    more = await mutate(
        client,
        "createCreditNote",
        {"invoiceId": invoice["id"], "amount": {"amount": "0.01", "currency": "USD"}},
        "creditNote { id }",
    )
    assert error_codes(more) == ["CREDIT_EXCEEDS_INVOICE"]
    await assert_ledger_ok(services.engine)


async def test_a_credit_to_the_balance_is_applied_to_the_next_invoice(client, services, clock):
    world = await make_world(client)
    created = await subscribe(client, world, price="30.00")
    invoice = await invoice_of_renewal(client, created["renewal"]["id"])
    correction = {"invoiceId": invoice["id"], "amount": {"amount": "12.50", "currency": "USD"}, "reason": "goodwill"}
    what_if = ok(
        await mutate(client, "createCreditNote", {**correction, "dryRun": True}, f"creditNote {{ {CREDIT_NOTE} }}")
    )["creditNote"]
    note = ok(await mutate(client, "createCreditNote", correction, f"creditNote {{ {CREDIT_NOTE} }}"))["creditNote"]
    assert (note["refunded"], note["total"]) == (False, {"amount": "12.50"})
    same = ("number", "total", "taxTotal", "reason", "refunded", "lines")
    assert [what_if[k] for k in same] == [note[k] for k in same], (
        "the dry run showed the credit note that was then issued, number included"
    )
    entry = (await history(client, created["subscription"]["id"]))[-1]
    assert entry["action"] == "credit_note_created" and entry["reason"] == "goodwill"
    assert ("credit", None, "12.50") in [(c["field"], c["before"], c["after"]) for c in entry["changes"]]
    clock.set(datetime(2026, 2, 15, 9, tzinfo=UTC))
    await RenewalEngine(services).run_once()
    [newest, _] = await all_invoices(client, subscriptionId=created["subscription"]["id"])
    renewed = await gql(
        client,
        "query($id: ID!) { invoice(id: $id) { total { amount } creditApplied { amount } amountPaid { amount } "
        "renewal { amount { amount } } } }",
        {"id": newest["id"]},
    )
    assert renewed["invoice"] == {
        "total": {"amount": "30.00"},
        "creditApplied": {"amount": "12.50"},
        "amountPaid": {"amount": "17.50"},
        "renewal": {"amount": {"amount": "17.50"}},
    }, "the renewal charged the amount due"
    await assert_ledger_ok(services.engine)


async def test_a_staff_refund_credit_note_goes_back_through_the_gateway(client, services):
    world = await make_world(client)
    created = await subscribe(client, world, price="30.00")
    invoice = await invoice_of_renewal(client, created["renewal"]["id"])
    what_if = ok(
        await mutate(
            client,
            "createCreditNote",
            {
                "invoiceId": invoice["id"],
                "amount": {"amount": "5.00", "currency": "USD"},
                "refund": True,
                "dryRun": True,
            },
            "dryRun creditNote { number refunded total { amount } lines { kind amount { amount } } }",
        )
    )
    assert what_if == {
        "userErrors": [],
        "dryRun": True,
        "creditNote": {
            "number": "CN-2026-000001",
            "refunded": True,
            "total": {"amount": "5.00"},
            "lines": [{"kind": "ITEM", "amount": {"amount": "5.00"}}],
        },
    }, "the what-if shows the credit note it would issue, number and lines"
    note = ok(
        await mutate(
            client,
            "createCreditNote",
            {"invoiceId": invoice["id"], "amount": {"amount": "5.00", "currency": "USD"}, "refund": True},
            "creditNote { number refunded total { amount } }",
        )
    )["creditNote"]
    assert note == {"number": "CN-2026-000001", "refunded": True, "total": {"amount": "5.00"}}
    renewal = (
        await gql(
            client,
            "query($id: ID!) { renewal(id: $id) { status refundedAmount { amount } } }",
            {"id": created["renewal"]["id"]},
        )
    )["renewal"]
    assert renewal == {"status": "PARTIALLY_REFUNDED", "refundedAmount": {"amount": "5.00"}}
    await assert_ledger_ok(services.engine)


async def test_a_proration_credit_is_a_credit_note_to_the_balance(client, services):
    world = await make_world(client)
    sub = (await subscribe(client, world, price="30.00", quantity=2))["subscription"]
    ok(
        await mutate(
            client,
            "updateItem",
            {"subscriptionId": sub["id"], "itemId": sub["items"][0]["id"], "quantity": 1, "proration": "FULL"},
            "renewal { amount { amount } }",
        )
    )
    data = await gql(client, "query { creditNotes(first: 5) { edges { node { number refunded total { amount } } } } }")
    assert [e["node"] for e in data["creditNotes"]["edges"]] == [
        {"number": "CN-2026-000001", "refunded": False, "total": {"amount": "30.00"}}
    ]


async def test_a_proration_credit_no_paid_invoice_has_room_for_is_recorded_as_a_renewal_of_its_own(client, services):
    world = await make_world(client)
    created = await subscribe(client, world, price="30.00", quantity=2)
    sub = created["subscription"]
    invoice = await invoice_of_renewal(client, created["renewal"]["id"])
    ok(  # the whole invoice credited already (to the balance)
        await mutate(
            client,
            "createCreditNote",
            {"invoiceId": invoice["id"], "amount": {"amount": "60.00", "currency": "USD"}},
            "creditNote { id }",
        )
    )
    changed = ok(
        await mutate(
            client,
            "updateItem",
            {"subscriptionId": sub["id"], "itemId": sub["items"][0]["id"], "quantity": 1, "proration": "FULL"},
            "subscription { credit { amount } } renewal { kind status amount { amount } } creditNote { id }",
        )
    )
    assert changed["creditNote"] is None, "no invoice has room left for another credit note"
    assert changed["renewal"]["amount"] == {"amount": "-30.00"}
    assert changed["subscription"]["credit"] == {"amount": "90.00"}, "the correction's 60.00 and the proration's 30.00"
    data = await gql(client, "query { creditNotes(first: 5) { edges { node { number total { amount } } } } }")
    assert [e["node"] for e in data["creditNotes"]["edges"]] == [
        {"number": "CN-2026-000001", "total": {"amount": "60.00"}}
    ]
    await assert_ledger_ok(services.engine)


async def test_a_void_invoice_and_credit_notes_are_never_credited_or_edited(client, services):
    world = await make_world(client)
    await add_card(client, world.customer, DECLINED)
    declined = await subscribe_at_20(client, world, "renewal { id }")
    invoice = await invoice_of_renewal(client, declined["renewal"]["id"])
    ok(await mutate(client, "voidInvoice", {"invoiceId": invoice["id"]}, "invoice { id }"))
    refused = await mutate(
        client,
        "createCreditNote",
        {"invoiceId": invoice["id"], "amount": {"amount": "1.00", "currency": "USD"}},
        "creditNote { id }",
    )
    assert error_codes(refused) == ["INVOICE_NOT_OPEN"]
    await add_card(client, world.customer)
    paid = await subscribe(client, world)
    paid_invoice = await invoice_of_renewal(client, paid["renewal"]["id"])
    ok(
        await mutate(
            client,
            "createCreditNote",
            {"invoiceId": paid_invoice["id"], "amount": {"amount": "1.00", "currency": "USD"}},
            "creditNote { id }",
        )
    )
    async with services.engine.connect() as conn:
        for statement in ("UPDATE credit_notes SET total_minor = 2", "DELETE FROM credit_note_lines"):
            with pytest.raises(DBAPIError, match="never edited"):
                async with conn.begin():
                    await conn.execute(text(statement))


DRAFT = "id number status total { amount } lines { id kind description amount { amount } } renewal { id status }"


async def _drafting_subscription(client, services, clock, draft_days: int = 3) -> dict[str, Any]:
    world = await make_world(client)
    sub = (await subscribe(client, world, price="40.00"))["subscription"]
    ok(
        await mutate(
            client,
            "updateInvoicing",
            {"subscriptionId": sub["id"], "draftInvoices": True, "draftDays": draft_days},
            "subscription { id }",
        )
    )
    clock.set(datetime(2026, 2, 15, 9, tzinfo=UTC))
    report = await RenewalEngine(services).run_once()
    assert (report.drafted, report.renewed) == (1, 0)
    return sub


async def _the_draft(client, sub_id: str) -> dict[str, Any]:
    [draft] = await all_invoices(client, subscriptionId=sub_id, status=["DRAFT"])
    data = await gql(client, f"query($id: ID!) {{ invoice(id: $id) {{ {DRAFT} }} }}", {"id": draft["id"]})
    invoice: dict[str, Any] = data["invoice"]
    return invoice


async def test_a_renewal_with_drafts_waits_in_a_draft_that_staff_edit_and_finalize(client, services, clock):
    sub = await _drafting_subscription(client, services, clock)
    draft = await _the_draft(client, sub["id"])
    assert (draft["number"], draft["status"], draft["renewal"], draft["total"]) == (
        None,
        "DRAFT",
        None,
        {"amount": "40.00"},
    )
    data = await gql(
        client,
        "query($id: ID!) { subscription(id: $id) { nextRenewalDate renewals(first: 5) { totalCount } } }",
        {"id": sub["id"]},
    )
    assert data["subscription"] == {"nextRenewalDate": "2026-03-15", "renewals": {"totalCount": 1}}
    assert (await history(client, sub["id"]))[-1]["action"] == "renewal_drafted"

    line = {"invoiceId": draft["id"], "description": "Setup fee", "unitPrice": {"amount": "7.50", "currency": "USD"}}
    added = ok(await mutate(client, "addInvoiceLine", {**line, "quantity": 2}, f"invoice {{ {DRAFT} }}"))["invoice"]
    assert added["total"] == {"amount": "55.00"}
    fee = added["lines"][-1]
    assert (fee["kind"], fee["amount"]) == ("ONE_OFF", {"amount": "15.00"})
    refreshed = ok(await mutate(client, "refreshInvoice", {"invoiceId": draft["id"]}, f"invoice {{ {DRAFT} }}"))
    assert refreshed["invoice"]["total"] == {"amount": "55.00"}, "a refresh keeps one-off lines"
    removed = ok(
        await mutate(
            client,
            "removeInvoiceLine",
            {"invoiceId": draft["id"], "lineId": refreshed["invoice"]["lines"][-1]["id"]},
            f"invoice {{ {DRAFT} }}",
        )
    )
    assert removed["invoice"]["total"] == {"amount": "40.00"}
    ok(await mutate(client, "addInvoiceLine", line, "invoice { id }"))
    what_if = ok(
        await mutate(
            client,
            "finalizeInvoice",
            {"invoiceId": draft["id"], "dryRun": True},
            "dryRun invoice { number status } invoicePreview { total { amount } amountDue { amount } }",
        )
    )
    assert what_if["invoice"]["status"] == "DRAFT", "a dry run finalizes nothing"
    assert what_if["invoicePreview"] == {"total": {"amount": "47.50"}, "amountDue": {"amount": "47.50"}}
    shown = ok(await mutate(client, "addInvoiceLine", {**line, "dryRun": True}, f"invoice {{ {DRAFT} }}"))["invoice"]
    assert [x["description"] for x in shown["lines"]] == ["Coffee", "Setup fee", "Setup fee"], "the dry run's lines"
    assert shown["total"] == {"amount": "55.00"}
    final = ok(await mutate(client, "finalizeInvoice", {"invoiceId": draft["id"]}, f"invoice {{ {DRAFT} }}"))["invoice"]
    assert (final["number"], final["status"], final["total"]) == ("INV-2026-000002", "PAID", {"amount": "47.50"})
    assert final["renewal"]["status"] == "PAID"
    refused = await mutate(client, "addInvoiceLine", line, "invoice { id }")
    assert error_codes(refused) == ["INVOICE_FINALIZED"]
    await assert_ledger_ok(services.engine)


async def test_the_worker_finalizes_a_draft_once_its_draft_days_have_passed(client, services, clock):
    sub = await _drafting_subscription(client, services, clock, draft_days=3)
    draft = await _the_draft(client, sub["id"])
    clock.set(datetime(2026, 2, 17, 9, tzinfo=UTC))
    assert (await RenewalEngine(services).run_once()).finalized == 0, "two days: still a draft"
    clock.set(datetime(2026, 2, 18, 9, tzinfo=UTC))
    report = await RenewalEngine(services).run_once()
    assert report.finalized == 1
    data = await gql(client, "query($id: ID!) { invoice(id: $id) { number status issueDate } }", {"id": draft["id"]})
    assert data["invoice"] == {"number": "INV-2026-000002", "status": "PAID", "issueDate": "2026-02-18"}
    await assert_ledger_ok(services.engine)


async def test_a_deleted_draft_skips_its_period_and_cancelling_deletes_one(client, services, clock):
    sub = await _drafting_subscription(client, services, clock)
    draft = await _the_draft(client, sub["id"])
    ok(await mutate(client, "deleteDraftInvoice", {"invoiceId": draft["id"], "reason": "free month"}, "invoice { id }"))
    entry = (await history(client, sub["id"]))[-1]
    assert (entry["action"], entry["reason"]) == ("draft_deleted", "free month")
    pk = from_global_id(draft["id"])[1]
    assert entry["changes"][0]["after"] == {"periodStart": "2026-02-15", "periodEnd": "2026-03-15", "skipped": True}
    assert entry["changes"][0]["field"] == f"invoices.{pk}.deleted"
    assert await all_invoices(client, subscriptionId=sub["id"], status=["DRAFT"]) == []
    clock.set(datetime(2026, 3, 15, 9, tzinfo=UTC))
    await RenewalEngine(services).run_once()
    assert len(await all_invoices(client, subscriptionId=sub["id"], status=["DRAFT"])) == 1, (
        "the next period is drafted"
    )
    ok(await mutate(client, "cancelSubscription", {"subscriptionId": sub["id"]}, "subscription { id }"))
    assert await all_invoices(client, subscriptionId=sub["id"], status=["DRAFT"]) == []
    await assert_ledger_ok(services.engine)


async def test_a_payment_recorded_by_staff_pays_the_invoice_and_its_renewal(client, services):
    world = await make_world(client)
    await add_card(client, world.customer, DECLINED)
    declined = await subscribe_at_20(client, world, "subscription { id status } renewal { id }")
    assert declined["subscription"]["status"] == "OVERDUE"
    invoice = await invoice_of_renewal(client, declined["renewal"]["id"])
    future = await mutate(
        client, "markInvoicePaid", {"invoiceId": invoice["id"], "paidAt": "2026-01-16"}, "invoice { id }"
    )
    assert error_codes(future) == ["INVALID_DATE"]
    paid = ok(
        await mutate(
            client,
            "markInvoicePaid",
            {"invoiceId": invoice["id"], "paidAt": "2026-01-14", "reference": "SEPA-778812"},
            "invoice { status amountPaid { amount } amountDue { amount } paidAt } renewal { status }",
        )
    )
    assert paid["invoice"]["status"] == "PAID" and paid["renewal"] == {"status": "PAID"}
    assert (paid["invoice"]["amountPaid"], paid["invoice"]["amountDue"]) == ({"amount": "20.00"}, {"amount": "0.00"})
    assert paid["invoice"]["paidAt"].startswith("2026-01-14")
    sub = (
        await gql(
            client,
            "query($id: ID!) { subscription(id: $id) { status overdueCount occurrencesBilled } }",
            {"id": declined["subscription"]["id"]},
        )
    )["subscription"]
    assert sub == {"status": "ACTIVE", "overdueCount": 0, "occurrencesBilled": 1}
    entry = (await history(client, declined["subscription"]["id"]))[-1]
    assert entry["action"] == "invoice_paid"
    again = await mutate(client, "markInvoicePaid", {"invoiceId": invoice["id"]}, "invoice { id }")
    assert error_codes(again) == ["INVOICE_NOT_OPEN"]
    await assert_ledger_ok(services.engine)


async def test_receipts_and_decline_notices_name_their_invoice(client, services):
    from rebill.billing.notifications import render

    world = await make_world(client)
    paid = await subscribe(client, world)
    await add_card(client, world.customer, DECLINED)
    declined = await subscribe(client, world)
    data = await gql(
        client,
        "{ notifications(first: 50) { edges { node { kind subscriptionId payload } } } }",
    )
    notes = [
        e["node"]
        for e in data["notifications"]["edges"]
        if e["node"]["kind"] in ("RENEWAL_RECEIPT", "PAYMENT_DECLINED")
    ]
    named = {(n["kind"], n["subscriptionId"]): n["payload"] for n in notes}
    receipt = named[("RENEWAL_RECEIPT", paid["subscription"]["id"])]
    notice = named[("PAYMENT_DECLINED", declined["subscription"]["id"])]
    assert (receipt["invoiceNumber"], notice["invoiceNumber"]) == ("INV-2026-000001", "INV-2026-000002")
    assert receipt["invoiceId"] == (await invoice_of_renewal(client, paid["renewal"]["id"]))["id"]
    _, body = render("RENEWAL_RECEIPT", receipt)
    assert "Invoice INV-2026-000001." in body


async def test_a_bulk_cancel_makes_open_invoices_uncollectible_and_ends_drafts(client, services, clock):
    from rebill.bulk.runner import process_queued_runs

    drafting = await _drafting_subscription(client, services, clock)
    customer = await make_customer(client, "declined@example.com")
    await add_card(client, customer, DECLINED)
    declined = await mutate(
        client,
        "createSubscription",
        {
            "customerId": customer,
            "profileId": drafting["profile"]["id"],
            "items": [
                {
                    "productId": drafting["items"][0]["product"]["id"],
                    "unitPrice": {"amount": "20.00", "currency": "USD"},
                }
            ],
        },
        "subscription { id } renewal { id }",
    )
    plan = {"segments": [{"name": "all", "actions": [{"cancel": {}}]}]}
    ok(await mutate(client, "startBulkRun", {"plan": plan}, "run { id }"))
    await process_queued_runs(services)
    assert (await invoice_of_renewal(client, declined["renewal"]["id"]))["status"] == "UNCOLLECTIBLE"
    assert await all_invoices(client, subscriptionId=drafting["id"], status=["DRAFT"]) == []
    await assert_ledger_ok(services.engine)


async def test_a_subscription_paid_by_transfer_gets_an_open_invoice_then_reminders_past_due(client, services, clock):
    """Offline payment (DOMAIN.md "Invoices"): an OPEN invoice on the billing date, due after the payment terms,
    sent to the customer; past due the subscription is OVERDUE and reminded; markInvoicePaid settles it."""
    from tests.support import add_method

    world = await make_world(client, retryScheduleDays=[3], finalFailureAction="CANCEL")
    transfer = await add_method(client, world.customer, "OFFLINE")
    created = await subscribe(client, world, price="50.00", paymentMethodId=transfer)
    sub = created["subscription"]
    assert created["renewal"]["status"] == "PAID", "a first period started by staff is collected outside rebill"
    ok(
        await mutate(
            client, "updateInvoicing", {"subscriptionId": sub["id"], "paymentTermsDays": 14}, "subscription { id }"
        )
    )

    clock.set(datetime(2026, 2, 15, 9, tzinfo=UTC))
    await RenewalEngine(services).run_once()
    [newest, _] = await all_invoices(client, subscriptionId=sub["id"])
    data = await gql(
        client,
        "query($id: ID!) { invoice(id: $id) { number status issueDate dueDate amountDue { amount } } }",
        {"id": newest["id"]},
    )
    assert data["invoice"] == {
        "number": "INV-2026-000002",
        "status": "OPEN",
        "issueDate": "2026-02-15",
        "dueDate": "2026-03-01",
        "amountDue": {"amount": "50.00"},
    }
    notes = await gql(
        client,
        "query($id: ID!) { notifications(subscriptionId: $id, first: 50) { edges { node { kind recipient payload } } } }",
        {"id": sub["id"]},
    )
    [issued] = [e["node"] for e in notes["notifications"]["edges"] if e["node"]["kind"] == "INVOICE_ISSUED"]
    assert issued["recipient"] == "ada@example.com"
    assert (issued["payload"]["invoiceNumber"], issued["payload"]["dueDate"]) == ("INV-2026-000002", "2026-03-01")
    status = "query($id: ID!) { subscription(id: $id) { status overdueCount nextRenewalDate } }"
    assert (await gql(client, status, {"id": sub["id"]}))["subscription"]["status"] == "ACTIVE", "not due yet"

    clock.set(datetime(2026, 3, 2, 9, tzinfo=UTC))
    await RenewalEngine(services).run_once()
    overdue = (await gql(client, status, {"id": sub["id"]}))["subscription"]
    assert (overdue["status"], overdue["overdueCount"]) == ("OVERDUE", 1)
    notes = await gql(
        client,
        "query($id: ID!) { notifications(subscriptionId: $id, first: 50) { edges { node { kind payload } } } }",
        {"id": sub["id"]},
    )
    [reminder] = [e["node"] for e in notes["notifications"]["edges"] if e["node"]["kind"] == "PAYMENT_DECLINED"]
    assert reminder["payload"]["declineCode"] == "payment_overdue"
    assert reminder["payload"]["nextRetryDate"] == "2026-03-05"
    await assert_ledger_ok(services.engine)

    payment = {"invoiceId": newest["id"], "paidAt": "2026-03-02", "reference": "TRF-99"}
    what_if = ok(
        await mutate(
            client, "markInvoicePaid", {**payment, "dryRun": True}, "dryRun invoice { status amountPaid { amount } }"
        )
    )
    assert what_if["invoice"] == {"status": "PAID", "amountPaid": {"amount": "50.00"}}, "the invoice it would leave"
    assert (await gql(client, status, {"id": sub["id"]}))["subscription"]["status"] == "OVERDUE", "nothing stored"
    ok(await mutate(client, "markInvoicePaid", payment, "invoice { status }"))
    paid = (await gql(client, status, {"id": sub["id"]}))["subscription"]
    assert (paid["status"], paid["overdueCount"]) == ("ACTIVE", 0)
    await assert_ledger_ok(services.engine)


async def test_an_unpaid_transfer_invoice_runs_the_final_action_after_its_last_reminder(client, services, clock):
    from tests.support import add_method

    world = await make_world(client, retryScheduleDays=[3], finalFailureAction="CANCEL")
    transfer = await add_method(client, world.customer, "OFFLINE")
    sub = (await subscribe(client, world, price="50.00", paymentMethodId=transfer))["subscription"]
    for day in ("2026-02-15", "2026-02-16", "2026-02-19"):
        clock.set(datetime.fromisoformat(day).replace(hour=9, tzinfo=UTC))
        await RenewalEngine(services).run_once()
    data = await gql(client, "query($id: ID!) { subscription(id: $id) { status } }", {"id": sub["id"]})
    assert data["subscription"]["status"] == "CANCELLED"
    [newest, _] = await all_invoices(client, subscriptionId=sub["id"])
    assert newest["status"] == "UNCOLLECTIBLE"
    await assert_ledger_ok(services.engine)


async def test_a_pro_forma_asks_for_the_payment_and_its_invoice_follows_it(client, services):
    world = await make_world(client)
    sub = (await subscribe(client, world, price="25.00"))["subscription"]
    ok(
        await mutate(
            client, "updateInvoicing", {"subscriptionId": sub["id"], "documentType": "PRO_FORMA"}, "subscription { id }"
        )
    )
    forced = ok(await mutate(client, "forceBill", {"subscriptionId": sub["id"]}, "renewal { id }"))
    data = await gql(
        client,
        """query($id: ID!) { renewal(id: $id) { invoice { number documentType status total { amount }
             proForma { number documentType status finalInvoice { number } } } } }""",
        {"id": forced["renewal"]["id"]},
    )
    invoice = data["renewal"]["invoice"]
    assert (invoice["number"], invoice["documentType"], invoice["status"]) == ("INV-2026-000002", "INVOICE", "PAID")
    assert invoice["proForma"] == {
        "number": "PF-2026-000001",
        "documentType": "PRO_FORMA",
        "status": "PAID",
        "finalInvoice": {"number": "INV-2026-000002"},
    }, "linked both ways; a card pays at once, so both exist at once"
    await assert_ledger_ok(services.engine)

    await add_card(client, world.customer, DECLINED)
    unpaid = await mutate(client, "forceBill", {"subscriptionId": sub["id"], "allowRepeat": True}, "renewal { id }")
    assert error_codes(unpaid) == ["PAYMENT_DECLINED"]
    pro_forma = await invoice_of_renewal(client, unpaid["renewal"]["id"])
    assert (pro_forma["number"], pro_forma["status"]) == ("PF-2026-000002", "OPEN"), "no invoice before the payment"
    refused = await mutate(
        client,
        "createCreditNote",
        {"invoiceId": pro_forma["id"], "amount": {"amount": "1.00", "currency": "USD"}},
        "creditNote { id }",
    )
    assert error_codes(refused) == ["INVOICE_NOT_OPEN"], "no credit note against a pro forma"
    ok(
        await mutate(
            client, "voidInvoice", {"invoiceId": pro_forma["id"], "reason": "order withdrawn"}, "invoice { id }"
        )
    )
    assert (await invoice_of_renewal(client, unpaid["renewal"]["id"]))["status"] == "VOID"
    await assert_ledger_ok(services.engine)


async def test_a_void_retried_with_its_idempotency_key_answers_the_voided_invoice_again(client):
    world = await make_world(client)
    await add_card(client, world.customer, DECLINED)
    declined = await subscribe_at_20(client, world, "renewal { id }")
    invoice = await invoice_of_renewal(client, declined["renewal"]["id"])
    request = {"invoiceId": invoice["id"], "reason": "goodwill", "idempotencyKey": "void-1"}
    first = ok(await mutate(client, "voidInvoice", request, "invoice { status number }"))
    again = ok(await mutate(client, "voidInvoice", request, "invoice { status number }"))
    assert first["invoice"] == again["invoice"] == {"status": "VOID", "number": invoice["number"]}


async def test_an_invoice_whose_payment_is_in_flight_cannot_be_voided(client, services):
    world = await make_world(client)
    await add_card(client, world.customer, "4000000000000259")  # charged, then the gateway's answer is lost
    pending = await subscribe_at_20(client, world, "renewal { id status }")
    assert pending["renewal"]["status"] == "PENDING"
    invoice = await invoice_of_renewal(client, pending["renewal"]["id"])
    refused = await mutate(client, "voidInvoice", {"invoiceId": invoice["id"]}, "invoice { status }")
    assert error_codes(refused) == ["INVALID_STATUS"], "the gateway may have taken the money"
    await RenewalEngine(services).run_once()  # recovery finds it paid
    assert (await invoice_of_renewal(client, pending["renewal"]["id"]))["status"] == "PAID"
