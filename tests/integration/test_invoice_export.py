"""``rebill invoices export`` as an accountant runs it: the CSV of finalized invoices and credit notes of a date range."""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from rebill.ids import from_global_id
from tests.support import add_card, gql, make_customer, mutate, ok, subscribe
from tests.support import make_world as make_shop

HEADER = (
    "number,type,status,issue_date,customer_id,customer_name,customer_email,tax_id,country,"
    "net,tax_rate,tax,total,currency,paid_at"
)


def invoke(*args: str, env: dict[str, str] | None = None) -> Any:
    from typer.testing import CliRunner

    from rebill.cli import app

    return CliRunner().invoke(app, ["invoices", "export", *args], env=env or {})


async def export(database_url: str, *args: str) -> Any:
    """The command in this process (its own event loop, so in a thread); its result."""
    return await asyncio.to_thread(invoke, *args, env={"DATABASE_URL": database_url})


def rows_of(csv_text: str) -> list[dict[str, str]]:
    lines = csv_text.splitlines()
    assert lines[0] == HEADER
    return list(csv.DictReader(io.StringIO(csv_text)))


def names_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


async def invoice_id(client: Any, renewal_id: str) -> str:
    data = await gql(client, "query($id: ID!) { renewal(id: $id) { invoice { id } } }", {"id": renewal_id})
    return str(data["renewal"]["invoice"]["id"])


@pytest.fixture
async def books(client: Any, services: Any, clock: Any) -> dict[str, str]:
    """Three invoices on 2026-01-15 (paid, paid to a customer whose name is a formula, void), one on
    2026-02-01, and a draft dated in January; the customers' global ids by name."""
    shop = await make_shop(client)
    await subscribe(client, shop, price="62.96")  # INV-2026-000001, PAID

    hostile = await make_customer(client, "mallory@example.com", name='=HYPERLINK("x")')
    address = {"line1": "1 rue de Rivoli", "city": "Paris", "country": "FR"}
    ok(await mutate(client, "updateCustomer", {"customerId": hostile, "billingAddress": address}, "customer { id }"))
    async with services.engine.begin() as conn:
        await conn.execute(
            text("UPDATE customers SET tax_id = '+FR40303265045' WHERE id = :id"),
            {"id": int(from_global_id(hostile)[1])},
        )
    await add_card(client, hostile)
    await subscribe(client, dataclasses.replace(shop, customer=hostile), price="10.00", quantity=3)  # 000002

    declined = await make_customer(client, "bob@example.com", name="Bob")
    await add_card(client, declined, "4000000000000002")
    unpaid = await subscribe(client, dataclasses.replace(shop, customer=declined), price="5.00")  # 000003, OPEN
    voided = await mutate(
        client, "voidInvoice", {"invoiceId": await invoice_id(client, unpaid["renewal"]["id"])}, "invoice { status }"
    )
    assert ok(voided)["invoice"]["status"] == "VOID"

    clock.set(datetime(2026, 2, 1, 9, tzinfo=UTC))
    await subscribe(client, shop, price="1.50")  # INV-2026-000004, PAID on 2026-02-01

    async with services.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO invoices (status, customer_id, currency, issue_date, subtotal_minor, total_minor) "
                "VALUES ('DRAFT', :id, 'USD', DATE '2026-01-20', 999, 999)"
            ),
            {"id": int(from_global_id(shop.customer)[1])},
        )
    return {"Ada": shop.customer, "hostile": hostile, "Bob": declined}


async def test_the_export_is_one_row_per_finalized_invoice_in_order_with_formulas_escaped(books, database_url):
    result = await export(database_url, "--from", "2026-01-01", "--to", "2026-01-31")
    assert result.exit_code == 0, result.output
    rows = rows_of(result.stdout)
    assert [(r["number"], r["status"]) for r in rows] == [
        ("INV-2026-000001", "PAID"),
        ("INV-2026-000002", "PAID"),
        ("INV-2026-000003", "VOID"),
    ], "no draft, nothing issued in February"
    ada, mallory, bob = rows
    assert ada == {
        "number": "INV-2026-000001",
        "type": "INVOICE",
        "status": "PAID",
        "issue_date": "2026-01-15",
        "customer_id": books["Ada"],
        "customer_name": "Ada",
        "customer_email": "ada@example.com",
        "tax_id": "",
        "country": "",
        "net": "62.96",
        "tax_rate": "0",
        "tax": "0.00",
        "total": "62.96",
        "currency": "USD",
        "paid_at": "2026-01-15",
    }
    assert (mallory["customer_id"], mallory["customer_name"]) == (books["hostile"], '\'=HYPERLINK("x")')
    assert (mallory["tax_id"], mallory["country"], mallory["total"]) == ("'+FR40303265045", "FR", "30.00")
    assert (bob["customer_id"], bob["total"], bob["paid_at"]) == (books["Bob"], "5.00", "")
    assert result.stderr.strip().splitlines()[-1] == "wrote 3 rows (3 documents) to stdout"


async def test_both_dates_of_the_range_are_included(books, database_url):
    cases = [
        (("2026-01-15", "2026-01-15"), ["INV-2026-000001", "INV-2026-000002", "INV-2026-000003"]),
        (("2026-01-16", "2026-02-01"), ["INV-2026-000004"]),
        (("2026-02-02", "2026-12-31"), []),
    ]
    for (start, end), numbers in cases:
        result = await export(database_url, "--from", start, "--to", end)
        assert result.exit_code == 0, result.output
        assert [r["number"] for r in rows_of(result.stdout)] == numbers, (start, end)


async def test_with_out_the_csv_goes_to_the_file_and_stdout_stays_empty(books, database_url, tmp_path: Path):
    target = tmp_path / "january.csv"
    target.write_text("last month's export\n")
    result = await export(database_url, "--from", "2026-01-01", "--to", "2026-12-31", "--out", str(target))
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert f"wrote 4 rows (4 documents) to {target}" in result.stderr
    written = target.read_bytes().decode("utf-8")
    assert written.startswith(HEADER + "\r\n"), "RFC 4180 line ends"
    assert [r["number"] for r in rows_of(written)] == [f"INV-2026-00000{n}" for n in range(1, 5)]
    assert names_in(tmp_path) == ["january.csv"], "no temporary file left"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "2026-13-01", "--to", "2026-12-31"], "--from '2026-13-01' is not a date (YYYY-MM-DD)"),
        (["--from", "2026-01-01", "--to", "31/01/2026"], "--to '31/01/2026' is not a date (YYYY-MM-DD)"),
        (["--from", "2026-02-01", "--to", "2026-01-31"], "--from 2026-02-01 is after --to 2026-01-31"),
        (["--from", "2026-01-01", "--to", "2026-01-31", "--out", "{tmp}/missing/x.csv"], "cannot write"),
        (["--from", "2026-01-01", "--to", "2026-01-31", "--out", "{tmp}"], "Is a directory"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(args, message, tmp_path: Path):
    # No database is needed, nor opened: input is checked first.
    result = invoke(*(a.format(tmp=tmp_path) for a in args), env={"DATABASE_URL": "postgresql://nowhere:9/x"})
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and message in line
    assert "Traceback" not in result.output
    assert names_in(tmp_path) == []


def test_the_command_and_each_option_have_help():
    result = invoke("--help")
    assert result.exit_code == 0
    for words in ("--from", "--to", "--out", "First issue date", "Last issue date", "standard output", "formula"):
        assert words in result.stdout


async def test_credit_notes_are_negative_rows_after_the_invoices_of_their_day(client, services, clock, database_url):
    customer = await make_customer(client, "ada@example.com", name="Ada")
    address = {"line1": "1 rue de Rivoli", "city": "Paris", "country": "FR"}
    ok(await mutate(client, "updateCustomer", {"customerId": customer, "billingAddress": address}, "customer { id }"))
    shop = dataclasses.replace(await make_shop(client), customer=customer)
    await add_card(client, customer)
    created = await subscribe(client, shop, price="30.00")  # INV-2026-000001 on 2026-01-15, PAID
    refund = {"renewalId": created["renewal"]["id"], "amount": {"amount": "10.00", "currency": "USD"}}
    ok(await mutate(client, "refundRenewal", refund, "creditNote { id }"))  # CN-2026-000001, refunded
    clock.set(datetime(2026, 1, 20, 9, tzinfo=UTC))
    invoice = await invoice_id(client, created["renewal"]["id"])
    credit = {"invoiceId": invoice, "amount": {"amount": "5.00", "currency": "USD"}, "reason": "goodwill"}
    ok(await mutate(client, "createCreditNote", credit, "creditNote { id }"))  # CN-2026-000002, to the balance
    await subscribe(client, shop, price="1.50")  # INV-2026-000002, issued after CN-2026-000002 the same day
    ok(await mutate(client, "updateCustomer", {"customerId": customer, "name": "Ada Byron"}, "customer { id }"))

    result = await export(database_url, "--from", "2026-01-01", "--to", "2026-01-31")
    assert result.exit_code == 0, result.output
    rows = rows_of(result.stdout)
    assert [(r["number"], r["type"], r["status"], r["issue_date"]) for r in rows] == [
        ("INV-2026-000001", "INVOICE", "PAID", "2026-01-15"),
        ("CN-2026-000001", "CREDIT_NOTE", "ISSUED", "2026-01-15"),
        ("INV-2026-000002", "INVOICE", "PAID", "2026-01-20"),
        ("CN-2026-000002", "CREDIT_NOTE", "ISSUED", "2026-01-20"),
    ]
    refunded, to_balance = rows[1], rows[3]
    assert {k: refunded[k] for k in ("net", "tax", "total", "currency", "paid_at")} == {
        "net": "-10.00",
        "tax": "0.00",
        "total": "-10.00",
        "currency": "USD",
        "paid_at": "2026-01-15",
    }, "a refund paid the money back the day it was issued"
    assert (to_balance["total"], to_balance["paid_at"]) == ("-5.00", ""), "a credit to the balance paid nothing out"
    for row in (refunded, to_balance):
        assert (row["customer_id"], row["customer_name"], row["customer_email"], row["country"]) == (
            customer,
            "Ada",
            "ada@example.com",
            "FR",
        ), "the customer as the credit note stored them"
    assert result.stderr.strip().splitlines()[-1] == "wrote 4 rows (4 documents) to stdout"
