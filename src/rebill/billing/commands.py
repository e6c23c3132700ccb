"""``rebill worker`` and ``rebill outbox``: the renewal worker and the notifications it leaves."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import signal
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select

from rebill.cli_support import console, fail, open_services, out, run, settings_or_exit
from rebill.process import settle_heap

#: ``rebill worker`` and ``rebill outbox``, added to the top level of ``rebill`` by ``rebill.cli``.
billing_app = typer.Typer()


async def _bulk_runs(services: Any) -> int:
    """Queued bulk runs, when this build has them."""
    try:
        runner = importlib.import_module("rebill.bulk.runner")
    except ImportError as exc:
        if exc.name not in ("rebill.bulk.runner", "rebill.bulk"):
            raise
        return 0
    return int(await runner.process_queued_runs(services))


@billing_app.command()
def worker(
    once: Annotated[
        bool, typer.Option("--once", help="Process everything due as of now (REBILL_NOW when set), then exit 0.")
    ] = False,
    poll: Annotated[
        float | None,
        typer.Option("--poll", help="Seconds between passes of the loop (default REBILL_WORKER_POLL_SECONDS, 5)."),
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", help="At most this many renewals and retries per pass.", min=1)
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option("--batch-size", help="Subscriptions per batch (default REBILL_WORKER_BATCH_SIZE, 1000).", min=1),
    ] = None,
    deliver: Annotated[
        bool, typer.Option("--deliver/--no-deliver", help="Also deliver pending notifications after each pass.")
    ] = True,
    webhooks: Annotated[
        bool,
        typer.Option(
            "--webhooks/--no-webhooks",
            help="Also send due webhook deliveries (--no-webhooks: another worker sends them).",
        ),
    ] = True,
) -> None:
    """Renew every due subscription: charge, retry declined payments, remind, expire, cancel.

    Phases apply on their date (before a renewal of that date); queued
    bulk runs are processed too, due webhook deliveries are sent (from a
    loop of their own), and idempotency keys past their 48 hours are
    forgotten. Several workers may run at once:
    each subscription cycle is billed exactly once, each webhook delivery
    is sent by one worker at a time.
    Ctrl-C finishes the batch in progress and stops.
    """
    from rebill.billing.engine import EngineReport, RenewalEngine
    from rebill.billing.notifications import deliver_pending, deliverer_from_settings
    from rebill.db.outage import Outage, QuietOutage
    from rebill.services.idempotency import purge_expired
    from rebill.webhooks.delivery import WebhookReport, deliver_due
    from rebill.webhooks.delivery import run_forever as run_webhooks

    settings = settings_or_exit()
    try:
        deliverer = deliverer_from_settings(settings) if deliver else None
    except ValueError as exc:
        fail(str(exc))
        return

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def stop_after_batch(sig: signal.Signals) -> None:
            # The batch in progress finishes; a second Ctrl-C interrupts at once.
            stop.set()
            loop.remove_signal_handler(sig)
            console.print("stopping after the current batch (Ctrl-C again to interrupt)")

        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, stop_after_batch, sig)
        async with open_services(settings) as services:
            engine = RenewalEngine(services, batch_size=batch_size)
            settle_heap()

            async def after_each(report: EngineReport) -> None:
                runs = delivered = 0
                if not stop.is_set():
                    runs = await _bulk_runs(services)
                if deliverer is not None and not stop.is_set():
                    delivered = (await deliver_pending(services, deliverer)).delivered
                async with services.sessions() as session, session.begin():
                    expired = await purge_expired(session, services.clock.now())
                if once or report.busy or runs or delivered or expired:
                    stamp = services.clock.now().isoformat(timespec="seconds")
                    out.print(
                        f"{stamp} {report.summary()}, bulk runs {runs}, notifications delivered {delivered}, "
                        f"idempotency keys expired {expired} ({report.elapsed:.2f}s)",
                        soft_wrap=True,
                    )

            async def webhooks_sent(sent: WebhookReport) -> None:
                stamp = services.clock.now().isoformat(timespec="seconds")
                out.print(f"{stamp} {sent.summary()}", soft_wrap=True)

            if once:
                report = await engine.run_once(limit, stop=stop)
                await after_each(report)
                if webhooks:
                    sent = await deliver_due(services, stop=stop)
                    if sent.attempted:
                        await webhooks_sent(sent)
                return
            console.print(
                f"rebill worker polling every {settings.worker_poll_seconds if poll is None else poll}s "
                "(Ctrl-C to stop)"
            )
            # Both loops outlive the database; whichever sees it go says so, once, and the
            # renewal loop says when it is back.
            outage = Outage(logging.getLogger("rebill.worker"), on_return="recovering what was left in flight")
            quiet = QuietOutage(outage)
            logging.getLogger("rebill.webhooks").addFilter(quiet)
            # Webhooks go out from their own loop, so a long renewal pass does not hold them back.
            webhook_loop = (
                asyncio.create_task(run_webhooks(services, stop, on_report=webhooks_sent)) if webhooks else None
            )
            try:
                await engine.run_forever(poll, stop=stop, after_each=after_each, outage=outage)
            finally:
                stop.set()
                if webhook_loop is not None:
                    await webhook_loop
                logging.getLogger("rebill.webhooks").removeFilter(quiet)
            console.print("rebill worker stopped")

    run(main)


def _subscription_id(value: str | None) -> int | None:
    if value is None:
        return None
    if value.isdigit():
        return int(value)
    import base64
    import binascii

    try:
        decoded = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError):
        decoded = ""
    kind, _, pk = decoded.partition(":")
    if kind != "Subscription" or not pk.isdigit():
        fail(f"{value!r} is not a subscription id")
    return int(pk)


def _summary(kind: str, payload: dict[str, Any]) -> str:
    keys = (
        "cycle",
        "amount",
        "currency",
        "declineCode",
        "nextRetryDate",
        "billingDate",
        "periodEnd",
        "reason",
        "updatePaymentMethodUrl",
        "renewUrl",
        "portalUrl",
    )
    return ", ".join(f"{k}={payload[k]}" for k in keys if payload.get(k) is not None)


@billing_app.command()
def outbox(
    kind: Annotated[
        list[str] | None, typer.Option("--kind", help="Only this kind (RENEWAL_RECEIPT, …); repeat for several.")
    ] = None,
    subscription: Annotated[
        str | None, typer.Option("--subscription", help="Only this subscription (number or global id).")
    ] = None,
    pending: Annotated[bool, typer.Option("--pending", help="Only notifications not delivered yet.")] = False,
    limit: Annotated[int, typer.Option("--limit", help="Show at most this many (newest first).", min=1)] = 50,
    deliver: Annotated[
        bool, typer.Option("--deliver", help="Deliver pending notifications first (log or SMTP, see settings).")
    ] = False,
) -> None:
    """List the notifications the outbox holds: receipts, declines, reminders, cancellations, suspensions."""
    from rebill.billing.notifications import OUTBOX, deliver_pending, deliverer_from_settings

    settings = settings_or_exit()
    kinds = [k.strip().upper() for k in kind or []]
    sub_id = _subscription_id(subscription)

    async def main() -> tuple[list[Any], int, int | None]:
        async with open_services(settings) as services:
            delivered = None
            if deliver:
                delivered = (await deliver_pending(services, deliverer_from_settings(settings))).delivered
            where: list[Any] = []
            if kinds:
                where.append(OUTBOX.c.kind.in_(kinds))
            if sub_id is not None:
                where.append(OUTBOX.c.subscription_id == sub_id)
            if pending:
                where.append(OUTBOX.c.delivered_at.is_(None))
            async with services.sessions() as session:
                total = (await session.execute(select(func.count()).select_from(OUTBOX).where(*where))).scalar_one()
                rows = list(
                    await session.execute(select(OUTBOX).where(*where).order_by(OUTBOX.c.id.desc()).limit(limit))
                )
            return rows, total, delivered

    rows, total, delivered = run(main)
    if delivered is not None:
        console.print(f"delivered {delivered} notifications")
    table = Table(title=f"outbox: {len(rows)} of {total}")
    for column in ("id", "kind", "subscription", "recipient", "created", "delivered"):
        table.add_column(column, no_wrap=True)
    table.add_column("details", overflow="fold", min_width=30)

    def stamp(value: datetime | None) -> str:
        return value.strftime("%Y-%m-%d %H:%M") if value is not None else "-"

    for row in reversed(rows):
        table.add_row(
            str(row.id),
            row.kind,
            str(row.subscription_id or "-"),
            row.recipient or "-",
            stamp(row.created_at),
            stamp(row.delivered_at) if row.delivered_at else (f"failed: {row.last_error}" if row.last_error else "-"),
            _summary(row.kind, row.payload or {}),
        )
    # Piped output is not cut to 80 columns: one notification per line is easier to grep.
    (out if out.is_terminal else Console(width=240)).print(table)
