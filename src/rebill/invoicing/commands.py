"""``rebill invoices export``: the accountant's CSV of finalized documents issued in a date range."""

from __future__ import annotations

import contextlib
import csv
import io
import os
import re
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from datetime import date
from pathlib import Path
from typing import IO, Annotated, Any, NoReturn

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from rebill.cli_support import BAD_INPUT, console, fail, open_services, run, settings_or_exit

#: ``rebill invoices``, added to ``rebill`` by ``rebill.cli``.
invoices_app = typer.Typer(help="Invoices and credit notes: the accountant's export.", no_args_is_help=True)

_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def date_option(text: str, option: str) -> date:
    """A YYYY-MM-DD date, or one line and exit code 2."""
    try:
        if _DATE.fullmatch(text):
            return date.fromisoformat(text)
    except ValueError:
        pass
    shown = text if len(text) <= 40 else text[:37] + "..."
    fail(escape(f"{option} {shown!r} is not a date (YYYY-MM-DD)"), BAD_INPUT)
    raise AssertionError  # unreachable


class Destination:
    """Where the CSV goes: stdout, or a file written whole or not at all.

    A regular file is written beside its place and renamed over it at the end,
    so a failed export never leaves a truncated CSV that looks complete; a
    device or pipe (``/dev/null``, ``/dev/stdout``) is written directly.
    The checks run before the database is opened: an unwritable path is
    exit code 2 at once.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._temporary: str | None = None
        self.stream: IO[str]
        if path is None:
            self.stream = sys.stdout
            if isinstance(self.stream, io.TextIOWrapper):
                with contextlib.suppress(ValueError, OSError):
                    self.stream.reconfigure(encoding="utf-8", newline="")  # names in any script, CRLF as written
            return
        try:
            mode = path.stat().st_mode
        except FileNotFoundError:
            mode = None
        except OSError as exc:
            self._unwritable(exc)
        try:
            if mode is not None and stat.S_ISDIR(mode):
                raise IsADirectoryError(21, "Is a directory")
            if mode is not None and not stat.S_ISREG(mode):
                self.stream = open(path, "w", encoding="utf-8", newline="")  # noqa: SIM115 (closed by finish/abort)
                return
            if mode is not None and not os.access(path, os.W_OK):
                raise PermissionError(13, "Permission denied")
            # A new file stays 0600 (it holds customers' names, emails and tax ids); a replaced one keeps its mode.
            fd, self._temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
            if mode is not None:
                os.chmod(fd, stat.S_IMODE(mode))
        except OSError as exc:
            self._unwritable(exc)
        self.stream = open(fd, "w", encoding="utf-8", newline="")  # noqa: SIM115 (closed by finish/abort)

    def _unwritable(self, exc: OSError) -> NoReturn:
        fail(escape(f"cannot write {self.path}: {exc.strerror or exc}"), BAD_INPUT)
        raise AssertionError from exc  # unreachable

    @property
    def name(self) -> str:
        return str(self.path) if self.path is not None else "stdout"

    def finish(self) -> None:
        """Flush, and put a file in its place."""
        if self.path is None:
            self.stream.flush()
            return
        self.stream.close()
        if self._temporary is not None:
            os.replace(self._temporary, self.path)
            self._temporary = None

    def abort(self) -> None:
        """Leave no partial file behind."""
        if self.path is None:
            return
        with contextlib.suppress(OSError):
            self.stream.close()
        if self._temporary is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._temporary)
            self._temporary = None


class _WriteFailed(Exception):
    """Writing the CSV failed (disk full, closed pipe): not an OSError, so not taken for the database's."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


def _cell_writer(stream: IO[str]) -> Callable[[Sequence[str]], None]:
    """``write(cells)``: one CSV row (RFC 4180: quoted when needed, CRLF), its failures as :class:`_WriteFailed`."""
    writer = csv.writer(stream)

    def write(cells: Sequence[str]) -> None:
        try:
            writer.writerow(cells)
        except OSError as exc:
            raise _WriteFailed(exc) from exc

    return write


@contextlib.contextmanager
def _progress(total: int, enabled: bool) -> Iterator[Any]:
    """A progress bar on stderr (per document), or a stand-in that does nothing."""
    if not enabled:
        yield None
        return
    columns = (TextColumn("exporting"), BarColumn(), MofNCompleteColumn(), TextColumn("documents"))
    with Progress(*columns, TimeElapsedColumn(), console=console, transient=True) as progress:
        yield (progress, progress.add_task("export", total=total))


@invoices_app.command("export")
def export_command(
    start_text: Annotated[
        str,
        typer.Option(
            "--from",
            metavar="DATE",
            help="First issue date to export (YYYY-MM-DD, in the seller's time zone), included.",
            show_default=False,
        ),
    ],
    end_text: Annotated[
        str,
        typer.Option(
            "--to",
            metavar="DATE",
            help="Last issue date to export (YYYY-MM-DD, in the seller's time zone), included.",
            show_default=False,
        ),
    ],
    out_path: Annotated[
        Path | None,
        typer.Option(
            "--out",
            metavar="FILE",
            help=(
                "Write the CSV to this file (replaced whole at the end, so a failed export leaves no partial file) "
                "and show a progress bar on a terminal. Default: standard output."
            ),
            show_default=False,
        ),
    ] = None,
) -> None:
    """Export finalized invoices (never drafts) and credit notes issued in a date range, as CSV.

    One row per document and tax rate, ordered by issue date, invoices before
    credit notes, and number, with the columns number, type, status,
    issue_date, customer_id, customer_name, customer_email, tax_id, country,
    net, tax_rate, tax, total, currency and paid_at (the payment's date, or a
    refund's). Amounts are in major units; credit notes (type CREDIT_NOTE,
    status ISSUED) are negative. Text that a spreadsheet would run as a
    formula (starting with = + - @, a tab or a carriage return) is prefixed
    with a single quote.
    The documents are read from one consistent snapshot, in batches, so any
    number of them fits in a small, constant memory.
    """
    from rebill.invoicing.export import COLUMNS, count_documents, csv_fields, export_rows

    start = date_option(start_text, "--from")
    end = date_option(end_text, "--to")
    if start > end:
        fail(f"--from {start.isoformat()} is after --to {end.isoformat()}", BAD_INPUT)
    settings = settings_or_exit()
    destination = Destination(out_path)
    show_progress = out_path is not None and console.is_terminal
    time_zone = settings.seller_time_zone

    async def main() -> tuple[int, int]:
        rows = documents = 0
        write = _cell_writer(destination.stream)
        write(COLUMNS)
        async with open_services(settings) as services, services.engine.connect() as conn:
            # One snapshot for the count and every batch: a document issued meanwhile is in neither.
            conn = await conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
            total = await count_documents(conn, start, end) if show_progress else 0
            last_number = None
            with _progress(total, show_progress) as bar:
                async for row in export_rows(conn, start, end):
                    write(csv_fields(row, time_zone))
                    rows += 1
                    if row.number != last_number:
                        documents += 1
                        last_number = row.number
                        if bar is not None:
                            bar[0].advance(bar[1])
        return rows, documents

    try:
        rows, documents = run(main)
        try:
            destination.finish()
        except OSError as exc:
            raise _WriteFailed(exc) from exc
    except _WriteFailed as failed:
        destination.abort()
        if isinstance(failed.error, BrokenPipeError):
            # The reader went away (``| head``): stop quietly, and let nothing more flush into the closed pipe.
            with contextlib.suppress(OSError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(1) from None
        fail(escape(f"cannot write {destination.name}: {failed.error.strerror or failed.error}"))
    except BaseException:
        destination.abort()
        raise
    console.print(
        f"wrote {rows:,} row{'s' if rows != 1 else ''} ({documents:,} document{'s' if documents != 1 else ''}) "
        f"to {escape(destination.name)}",
        soft_wrap=True,
        highlight=False,
    )
