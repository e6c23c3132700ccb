"""``rebill bulk``: preview a plan file, run it (a few first), follow it, cancel or revert it."""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from rebill.bulk.plan import MAX_NESTING, out_of_bounds, validation_errors
from rebill.bulk.preview import Preview, money_list
from rebill.cli_support import BAD_INPUT, console, fail, open_services, out, run, settings_or_exit
from rebill.domain.errors import RebillError
from rebill.ids import MAX_PK, decode_id
from rebill.services.runtime import Actor

bulk_app = typer.Typer(
    help="Bulk editing: preview a plan file, run it on a few subscriptions first, then on all, revert if needed.",
    no_args_is_help=True,
)

INVALID_PLAN = BAD_INPUT


def cli_actor() -> Actor:
    """The CLI acts as its operating-system user, with every scope."""
    return Actor(f"cli:{getpass.getuser()}", scopes=frozenset({"admin"}))


def read_plan(path: Path) -> Any:
    """The plan file's JSON, refused with exit code 2 (before any database) when unreadable or oversized.

    The JSON parser recurses once per open object or list: a file nested deeper
    than the interpreter's stack is refused as too deep, like one nested deeper
    than ``MAX_NESTING`` (``out_of_bounds``).
    """
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        fail(escape(f"cannot read {path}: {exc.strerror or exc}"), INVALID_PLAN)
    except ValueError as exc:
        fail(escape(f"{path} is not JSON: {exc}"), INVALID_PLAN)
    except RecursionError:
        fail(escape(f"{path}: objects and lists nest more than {MAX_NESTING} deep"), INVALID_PLAN)
    problem = out_of_bounds(data)
    if problem is not None:
        fail(escape(problem), INVALID_PLAN)
    return data


def run_id_of(text: str) -> int:
    """A run's number or its GraphQL id; anything else, or a number no BIGINT holds, is exit code 2."""
    pk: int | None = None
    if text.isascii() and text.isdigit():
        pk = int(text) if len(text) <= len(str(MAX_PK)) else None
    else:
        try:
            pk = decode_id(text, "BulkRun")
        except RebillError:
            pk = None
    if pk is None or not 1 <= pk <= MAX_PK:
        shown = text if len(text) <= 40 else text[:37] + "..."
        bounds = f"a number from 1 to {MAX_PK}, or a BulkRun id from the API"
        fail(escape(f"{shown!r} is not a bulk run id ({bounds})"), BAD_INPUT)
        raise AssertionError from None
    return pk


def report_plan_errors(exc: RebillError) -> None:
    errors = validation_errors(exc)
    console.print(f"[bold red]the plan has {len(errors)} problem{'s' if len(errors) != 1 else ''}:[/]")
    for error in errors:
        console.print(f"  [red]{error.code}[/] {error.message}")
    raise typer.Exit(INVALID_PLAN)


def _money(totals: dict[str, int]) -> str:
    return ", ".join(str(m) for m in money_list(totals)) or "-"


def print_preview(p: Preview) -> None:
    out.print(
        f"[bold]{p.matched}[/] subscriptions match the filter: {p.matched - p.unsegmented} in segments, "
        f"{p.unsegmented} unsegmented (left alone)"
        + (f", {p.already_applied} already changed by an earlier run of this plan" if p.already_applied else "")
    )
    table = Table(title="Segments")
    for column in ("segment", "matched", "billed before", "billed after", "refused"):
        table.add_column(column, justify="left" if column in ("segment",) else "right")
    for s in p.segments:
        table.add_row(s.name, str(s.matched), _money(s.billed_before), _money(s.billed_after), str(s.refused))
    table.add_row(
        "[bold]total",
        str(p.matched - p.unsegmented),
        _money(p.total("billed_before")),
        _money(p.total("billed_after")),
        str(sum(s.refused for s in p.segments)),
    )
    out.print(table)
    for s in p.segments:
        if s.refusals:
            refused = Table(title=f"{s.name}: refused")
            for column in ("code", "count", "for example"):
                refused.add_column(column)
            for r in s.refusals:
                refused.add_row(r.code, str(r.count), f"#{r.example_id}: {r.message}")
            out.print(refused)
        if s.sample:
            sample = Table(title=f"{s.name}: sample")
            for column in ("subscription", "field", "before", "after"):
                sample.add_column(column)
            for row in s.sample:
                if row.refused:
                    sample.add_row(f"#{row.subscription_id}", f"[red]{row.code}", row.reason or "", "")
                    continue
                for n, change in enumerate(row.changes):
                    sample.add_row(
                        f"#{row.subscription_id}" if n == 0 else "",
                        change["field"],
                        json.dumps(change["before"]),
                        json.dumps(change["after"]),
                    )
            out.print(sample)
    out.print(f"previewed at {p.previewed_at.isoformat()} (pass --as-of to `rebill bulk run` to catch later changes)")


def print_run(view: Any) -> None:
    out.print(
        f"bulk run {view.id}: [bold]{view.status}[/]{' (dry run)' if view.dry_run else ''} — "
        f"{view.processed}/{view.total} processed: {view.applied} applied, {view.skipped} skipped, "
        f"{view.failed} failed, {view.conflicts} conflicts" + (f"; limit {view.limit}" if view.limit else "")
    )
    out.print(f"started by {view.created_by} at {view.created_at.isoformat()}")
    if view.error:
        out.print(f"[red]error:[/] {view.error}")


@bulk_app.command("preview")
def preview_command(
    plan: Annotated[Path, typer.Argument(help="The plan file (JSON).")],
    sample: Annotated[int, typer.Option(help="Sample rows per segment, with every changed field.")] = 5,
) -> None:
    """Show what a plan would do, per segment; writes nothing."""
    from rebill.bulk.runs import BulkService

    data = read_plan(plan)
    settings = settings_or_exit()

    async def main() -> Preview:
        async with open_services(settings) as services:
            return await BulkService(services).preview(data, sample=sample)

    try:
        result = run(main)
    except RebillError as exc:
        report_plan_errors(exc)
        return
    print_preview(result)


@bulk_app.command("run")
def run_command(
    plan: Annotated[Path, typer.Argument(help="The plan file (JSON).")],
    limit: Annotated[int | None, typer.Option(help="Change at most N subscriptions (try one or two first).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Record every would-be outcome; change nothing.")] = False,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Queue the run for a worker and return.")] = False,
    as_of: Annotated[
        str | None, typer.Option(help="When you previewed (ISO 8601): subscriptions changed since are CONFLICT.")
    ] = None,
) -> None:
    """Start a run of the plan and follow it with a progress bar; exit code 0 only when it completed."""
    from rebill.bulk.runner import process_run
    from rebill.bulk.runs import BulkService
    from rebill.clock import parse_instant

    data = read_plan(plan)
    settings = settings_or_exit()
    previewed = None
    if as_of is not None:
        try:
            previewed = parse_instant(as_of)
        except ValueError as exc:
            fail(str(exc), INVALID_PLAN)

    async def main() -> Any:
        import asyncio

        async with open_services(settings) as services:
            bulk = BulkService(services)
            view = await bulk.start(cli_actor(), data, limit=limit, dry_run=dry_run, as_of=previewed)
            console.print(f"started bulk run [bold]{view.id}[/]" + (" (dry run)" if dry_run else ""))
            for other in await bulk.overlapping(view):
                console.print(
                    f"[yellow]note:[/] bulk run {other.id} of the same plan is {other.status}: the subscriptions "
                    f"it changes are left alone by this run (SKIPPED, ALREADY_APPLIED)"
                )
            if no_wait:
                return view
            with Progress(
                TextColumn("[bold]run {task.fields[run]}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[detail]}"),
                TimeElapsedColumn(),
                console=console,
            ) as progress:
                task = progress.add_task("run", total=None, run=view.id, detail="queued")

                def show(v: Any) -> None:
                    progress.update(
                        task,
                        total=max(v.total, v.processed) or None,
                        completed=v.processed,
                        detail=f"{v.applied} applied, {v.skipped} skipped, {v.failed} failed, {v.conflicts} conflicts",
                    )

                status = await process_run(services, view.id, on_chunk=show)
                while status is None or status in ("QUEUED", "RUNNING"):  # another worker has it: follow
                    current = await bulk.get(view.id)
                    assert current is not None
                    show(current)
                    if current.finished:
                        break
                    await asyncio.sleep(0.5)
                    status = None
            final = await bulk.get(view.id)
            return final

    try:
        view = run(main)
    except RebillError as exc:
        report_plan_errors(exc)
        return
    print_run(view)
    if view.status != "COMPLETED":
        raise typer.Exit(1)


@bulk_app.command("status")
def status_command(run_id: Annotated[str, typer.Argument(help="The run's number (or its API id).")]) -> None:
    """Progress of a run: processed / total, and counts per outcome."""
    from rebill.bulk.runs import BulkService

    pk = run_id_of(run_id)
    settings = settings_or_exit()

    async def main() -> Any:
        async with open_services(settings) as services:
            return await BulkService(services).get(pk)

    view = run(main)
    if view is None:
        fail(f"bulk run {pk} does not exist")
    print_run(view)


@bulk_app.command("cancel")
def cancel_command(run_id: Annotated[str, typer.Argument(help="The run's number (or its API id).")]) -> None:
    """Stop a run once the chunks it is working on are committed."""
    from rebill.bulk.runs import BulkService

    pk = run_id_of(run_id)
    settings = settings_or_exit()

    async def main() -> Any:
        async with open_services(settings) as services:
            return await BulkService(services).cancel(cli_actor(), pk)

    try:
        view = run(main)
    except RebillError as exc:
        fail(exc.message)
        return
    print_run(view)


@bulk_app.command("revert")
def revert_command(run_id: Annotated[str, typer.Argument(help="The run's number (or its API id).")]) -> None:
    """Put back every subscription the run changed that nobody changed since; list the others."""
    from rebill.bulk.runs import BulkService

    pk = run_id_of(run_id)
    settings = settings_or_exit()

    async def main() -> Any:
        async with open_services(settings) as services:
            return await BulkService(services).revert(cli_actor(), pk)

    try:
        result = run(main)
    except RebillError as exc:
        fail(exc.message)
        return
    out.print(f"reverted {result.reverted} subscriptions of bulk run {pk}")
    if result.not_reverted:
        table = Table(title=f"{len(result.not_reverted)} left as they are")
        table.add_column("subscription")
        table.add_column("why")
        for item in result.not_reverted:
            table.add_row(f"#{item.subscription_id}", item.reason or "")
        out.print(table)
