"""Delivering the outbox: a log deliverer by default, SMTP to a real (local) mail sink, retries on failure."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from email import message_from_bytes
from email.message import Message as Email
from typing import Any

import pytest
from sqlalchemy import text

from rebill.billing.engine import RenewalEngine
from rebill.billing.notifications import (
    LogDeliverer,
    Message,
    SmtpDeliverer,
    deliver_pending,
    deliverer_from_settings,
    render,
)
from rebill.config import Settings
from tests.support import add_card, make_world, mutate, ok, subscribe


class Sink:
    """An SMTP server on localhost that keeps what it receives."""

    def __init__(self) -> None:
        self.messages: list[Email] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp_sink() -> Iterator[tuple[Sink, int]]:
    from aiosmtpd.controller import Controller

    sink = Sink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield sink, port
    finally:
        controller.stop()


async def outbox(services: Any) -> list[Any]:
    async with services.engine.connect() as conn:
        return list(await conn.execute(text("SELECT * FROM outbox ORDER BY id")))


async def declined_renewal(client: Any, services: Any, clock: Any) -> None:
    """Two subscriptions created, then one renewed and one declined.

    Four customer notifications in the outbox: the receipts of both initial
    charges, the renewal's receipt and the decline notice. The partner-only
    rows (created, updated) are never mailed.
    """
    world = await make_world(client)
    await subscribe(client, world)
    bad = (await subscribe(client, world))["subscription"]["id"]
    declining = await add_card(client, world.customer, "4000000000009995", default=False)
    ok(
        await mutate(
            client, "setPaymentMethod", {"subscriptionId": bad, "paymentMethodId": declining}, "subscription { id }"
        )
    )
    clock.set(datetime(2026, 2, 15, 9, tzinfo=UTC))
    await RenewalEngine(services).run_once()


async def test_a_declined_payment_is_emailed_with_a_link_to_update_the_payment_method(
    client, services, clock, smtp_sink
):
    sink, port = smtp_sink
    await declined_renewal(client, services, clock)
    report = await deliver_pending(services, SmtpDeliverer("127.0.0.1", port, "billing@example.com"))
    assert (report.delivered, report.failed) == (4, 0)
    kinds = sorted(m["X-Rebill-Kind"] for m in sink.messages)
    assert kinds == ["PAYMENT_DECLINED"] + ["RENEWAL_RECEIPT"] * 3, "two initial receipts, a renewal's, a decline"
    assert {m["To"] for m in sink.messages} == {"ada@example.com"}
    by_kind = {m["X-Rebill-Kind"]: m for m in sink.messages}
    declined = by_kind["PAYMENT_DECLINED"]
    assert declined["To"] == "ada@example.com"
    assert declined["From"] == "billing@example.com"
    assert "declined" in declined["Subject"]
    body = declined.get_payload()
    assert "insufficient_funds" in body
    assert "We will try again on 2026-02-20." in body
    assert "http://127.0.0.1:8000/customers/" in body and "/payment-methods" in body
    rows = await outbox(services)
    mailed = [row for row in rows if row.recipient is not None]
    partner_only = [row for row in rows if row.recipient is None]
    assert len(mailed) == 4
    assert all(row.delivered_at is not None and row.attempts == 1 for row in mailed)
    # Invoice events are for partners only, and no webhook endpoint listens here: none is written.
    assert {row.kind for row in partner_only} == {"SUBSCRIPTION_CREATED", "SUBSCRIPTION_UPDATED"}
    assert "Invoice INV-2026-" in body, "the decline notice names its invoice"
    assert all(row.delivered_at is not None and row.attempts == 0 for row in partner_only), "never mailed"

    again = await deliver_pending(services, SmtpDeliverer("127.0.0.1", port))
    assert again.delivered == 0, "a delivered notification is not sent again"
    assert len(sink.messages) == 4


async def test_an_unreachable_mail_server_leaves_the_notifications_to_be_retried(client, services, clock):
    await declined_renewal(client, services, clock)
    report = await deliver_pending(services, SmtpDeliverer("127.0.0.1", free_port(), timeout=2))
    assert (report.delivered, report.failed) == (0, 4)
    mailed = [row for row in await outbox(services) if row.recipient is not None]
    assert len(mailed) == 4
    assert all(row.delivered_at is None and row.attempts == 1 and row.last_error for row in mailed)
    delivered = await deliver_pending(services, LogDeliverer())
    assert delivered.delivered == 4


async def test_the_log_deliverer_is_the_default_and_logs_each_notification(client, services, clock, caplog):
    await declined_renewal(client, services, clock)
    deliverer = deliverer_from_settings(Settings())
    assert isinstance(deliverer, LogDeliverer)
    with caplog.at_level(logging.INFO, logger="rebill.notifications"):
        report = await deliver_pending(services, deliverer)
    assert report.delivered == 4
    assert "PAYMENT_DECLINED to ada@example.com" in caplog.text
    assert caplog.text.count("RENEWAL_RECEIPT to ada@example.com") == 3
    assert isinstance(deliverer_from_settings(Settings(smtp_host="mail.local", deliverer="smtp")), SmtpDeliverer)


@pytest.mark.parametrize(
    ("kind", "payload", "words"),
    [
        ("RENEWAL_REMINDER", {"billingDate": "2026-02-15", "amount": "9.00", "currency": "USD"}, "2026-02-15"),
        ("SUBSCRIPTION_CANCELLED", {"reason": "payment_failed", "attempts": 3}, "after 3 attempts"),
        ("SUBSCRIPTION_SUSPENDED", {"reason": "overdue_limit"}, "overdue_limit"),
        ("AWAITING_REINSTATE", {"periodEnd": "2026-02-15", "renewUrl": "http://x/renew"}, "http://x/renew"),
    ],
)
def test_every_notification_kind_reads_as_an_email(kind, payload, words):
    subject, body = render(kind, {"subscriptionId": 7, **payload})
    assert "7" in subject
    assert words in subject + body
    assert Message(1, kind, "a@b.c", subject, body, payload).subject == subject
