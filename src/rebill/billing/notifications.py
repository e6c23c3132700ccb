"""Delivering the outbox: notifications leave the database after the change that caused them.

The renewal engine and the services write outbox rows in the same
transaction as the change (so a notification exists if and only if the
change does). Delivery is separate and at least once: a row is marked
``delivered_at`` after its deliverer accepted it; a failure is counted in
``attempts`` with ``last_error`` and tried again on the next pass, up to
``max_attempts``.

Two deliverers are built in: :class:`LogDeliverer` (the default: a log
line per message, for sandboxes and development) and :class:`SmtpDeliverer`
(plain SMTP with the standard library, run in a thread so the event loop
keeps going).
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, Protocol

from sqlalchemy import select, update

from rebill.config import Settings
from rebill.db import tables as t
from rebill.services.runtime import Services

log = logging.getLogger("rebill.notifications")

OUTBOX = t.table_of(t.OutboxMessage)


@dataclass(frozen=True, slots=True)
class Message:
    """One notification, rendered."""

    id: int
    kind: str
    recipient: str | None
    subject: str
    body: str
    payload: Mapping[str, Any]


class Deliverer(Protocol):
    name: str

    async def deliver(self, message: Message) -> None:
        """Send one message; raise to have it tried again later."""


def _money(payload: Mapping[str, Any]) -> str:
    amount, currency = payload.get("amount"), payload.get("currency")
    return f"{amount} {currency}" if amount is not None else ""


def render(kind: str, payload: Mapping[str, Any]) -> tuple[str, str]:
    """The subject and plain-text body of a notification."""
    sub = payload.get("subscriptionId")
    lines: list[str]
    if kind == "RENEWAL_RECEIPT":
        subject = f"Receipt: your subscription {sub} was renewed"
        lines = [
            f"We charged {_money(payload)} for the period {payload.get('periodStart')} to {payload.get('periodEnd')}.",
        ]
    elif kind == "PAYMENT_DECLINED":
        subject = f"Your payment for subscription {sub} was declined"
        lines = [f"The charge of {_money(payload)} was declined ({payload.get('declineCode')})."]
        if payload.get("nextRetryDate"):
            lines.append(f"We will try again on {payload['nextRetryDate']}.")
        if payload.get("updatePaymentMethodUrl"):
            lines.append(f"Update your payment method: {payload['updatePaymentMethodUrl']}")
    elif kind == "RENEWAL_REMINDER":
        subject = f"Reminder: subscription {sub} renews on {payload.get('billingDate')}"
        lines = [f"Your subscription is due for renewal on {payload.get('billingDate')} ({_money(payload)})."]
        if payload.get("renewUrl"):
            lines.append(f"Renew it here: {payload['renewUrl']}")
    elif kind == "AWAITING_REINSTATE":
        subject = f"Your subscription {sub} has ended: renew it to continue"
        lines = [f"The period ended on {payload.get('periodEnd')} without a payment ({_money(payload)})."]
        if payload.get("renewUrl"):
            lines.append(f"Renew it here: {payload['renewUrl']}")
    elif kind == "SUBSCRIPTION_CANCELLED":
        subject = f"Your subscription {sub} was cancelled"
        reason = payload.get("reason")
        if reason == "payment_failed":
            lines = [f"We could not collect the payment after {payload.get('attempts')} attempts."]
        else:
            lines = [f"The subscription is cancelled ({reason or 'at your request'})."]
    elif kind == "MERCHANT_SUBSCRIPTION_CANCELLED":
        subject = f"Subscription {sub} of {payload.get('customerEmail')} was cancelled"
        lines = [f"Reason: {payload.get('reason') or 'cancelled by request'}; effective {payload.get('effective')}."]
    elif kind == "INVOICE_ISSUED":
        subject = f"Invoice {payload.get('invoiceNumber') or ''} for your subscription {sub}".replace("  ", " ")
        lines = [
            f"Please pay {_money(payload)} by {payload.get('dueDate')} for the period "
            f"{payload.get('periodStart')} to {payload.get('periodEnd')}."
        ]
        if payload.get("bankDetails"):
            lines.append(f"Bank details: {payload['bankDetails']}")
    elif kind == "RENEWAL_REFUNDED":
        subject = f"Refund for your subscription {sub}"
        lines = [f"We refunded {_money(payload)}."]
    elif kind == "SUBSCRIPTION_ACTIVATED":
        subject = f"Your subscription {sub} is active again"
        lines = ["Renewals have resumed."]
    elif kind == "SUBSCRIPTION_STARTED":
        subject = f"Your subscription {sub} has started"
        lines = [f"It started on {payload.get('startDate')}."]
    elif kind == "SUBSCRIPTION_SUSPENDED":
        subject = f"Your subscription {sub} was suspended"
        lines = [f"The subscription is suspended ({payload.get('reason') or 'manual'})."]
    elif kind == "SUBSCRIPTION_EXPIRED":
        subject = f"Your subscription {sub} has ended"
        lines = [f"The subscription reached its end on {payload.get('effective')}."]
    else:
        subject = f"{kind.replace('_', ' ').capitalize()}: subscription {sub}"
        lines = []
    if payload.get("invoiceNumber") and kind in ("RENEWAL_RECEIPT", "PAYMENT_DECLINED"):
        lines.append(f"Invoice {payload['invoiceNumber']}.")
    if payload.get("portalUrl"):
        # A link that signs the customer in to the portal, on the task this message asks of them.
        task = {
            "PAYMENT_DECLINED": "Update your card",
            "AWAITING_REINSTATE": "Renew your subscription",
            "RENEWAL_REMINDER": "Renew your subscription",
            "INVOICE_ISSUED": "See your invoice",
        }.get(kind, "Manage your subscription")
        lines.append(f"{task}: {payload['portalUrl']}")
    return subject, "\n".join([*lines, ""])


class LogDeliverer:
    """Writes each message to the log (logger ``rebill.notifications``) instead of sending it."""

    name = "log"

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or log

    async def deliver(self, message: Message) -> None:
        self.logger.info("%s to %s: %s", message.kind, message.recipient or "-", message.subject)


class SmtpDeliverer:
    """Sends each message as a plain-text email through an SMTP server."""

    name = "smtp"

    def __init__(self, host: str, port: int = 25, mail_from: str = "billing@rebill.local", timeout: float = 10) -> None:
        self.host = host
        self.port = port
        self.mail_from = mail_from
        self.timeout = timeout

    def _send(self, message: Message) -> None:
        if not message.recipient:
            raise ValueError("the notification has no recipient")
        email = EmailMessage()
        email["From"] = self.mail_from
        email["To"] = message.recipient
        email["Subject"] = message.subject
        email["X-Rebill-Kind"] = message.kind
        email["X-Rebill-Notification"] = str(message.id)
        email.set_content(message.body)
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            smtp.send_message(email)

    async def deliver(self, message: Message) -> None:
        await asyncio.to_thread(self._send, message)


def deliverer_from_settings(settings: Settings) -> Deliverer:
    """``REBILL_DELIVERER=smtp`` (the default when ``REBILL_SMTP_HOST`` is set) or ``log``."""
    if settings.deliverer == "smtp":
        if not settings.smtp_host:
            raise ValueError("REBILL_DELIVERER is smtp but REBILL_SMTP_HOST is not set")
        return SmtpDeliverer(settings.smtp_host, settings.smtp_port, settings.mail_from)
    if settings.deliverer != "log":
        raise ValueError(f"unknown deliverer {settings.deliverer!r}: use log or smtp")
    return LogDeliverer()


@dataclass
class DeliveryReport:
    delivered: int = 0
    failed: int = 0


async def deliver_pending(
    services: Services,
    deliverer: Deliverer,
    *,
    limit: int | None = None,
    batch_size: int = 200,
    max_attempts: int = 5,
) -> DeliveryReport:
    """Deliver undelivered outbox rows, oldest first; each is marked delivered or its failure counted.

    Rows are claimed ``FOR UPDATE SKIP LOCKED``, so several workers deliver
    disjoint rows.
    """
    report = DeliveryReport()
    after = 0
    while limit is None or report.delivered + report.failed < limit:
        size = batch_size if limit is None else min(batch_size, limit - report.delivered - report.failed)
        async with services.sessions() as session, session.begin():
            rows = list(
                await session.execute(
                    select(OUTBOX)
                    .where(OUTBOX.c.delivered_at.is_(None), OUTBOX.c.attempts < max_attempts, OUTBOX.c.id > after)
                    .order_by(OUTBOX.c.id)
                    .limit(size)
                    .with_for_update(skip_locked=True)
                )
            )
            if not rows:
                break
            after = rows[-1].id
            delivered: list[int] = []
            for row in rows:
                subject, body = render(row.kind, row.payload or {})
                message = Message(row.id, row.kind, row.recipient, subject, body, row.payload or {})
                try:
                    await deliverer.deliver(message)
                except Exception as exc:  # a deliverer may fail in any way; the row is tried again later
                    report.failed += 1
                    log.warning("delivering notification %s failed: %s", row.id, exc)
                    await session.execute(
                        update(OUTBOX)
                        .where(OUTBOX.c.id == row.id)
                        .values(attempts=OUTBOX.c.attempts + 1, last_error=f"{type(exc).__name__}: {exc}"[:500])
                    )
                    continue
                delivered.append(row.id)
            if delivered:
                report.delivered += len(delivered)
                await session.execute(
                    update(OUTBOX)
                    .where(OUTBOX.c.id.in_(delivered))
                    .values(delivered_at=services.clock.now(), attempts=OUTBOX.c.attempts + 1, last_error=None)
                )
    return report
