"""What every ``rebill`` command shares: the consoles, one-line failures, settings and the database.

Command modules (``rebill.billing.commands``, ``rebill.bulk.commands``,
``rebill.seed``) import this module and define their own ``typer.Typer()``;
``rebill.cli`` imports them and adds their commands to the top-level app.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from rebill.config import Settings
from rebill.db.embedded import EmbeddedDatabaseError
from rebill.db.engine import DatabaseUnreachable, DatabaseUrlError

T = TypeVar("T")

console = Console(stderr=True)
out = Console()


def fail(message: str, code: int = 1) -> None:
    """One line (whatever the terminal's width: operators grep logs for it), then exit with ``code``."""
    console.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    raise typer.Exit(code)


#: The exit code of input the command cannot use (an argument, a setting, a plan file), like Click's usage errors.
BAD_INPUT = 2


def settings_or_exit() -> Settings:
    """The settings, or one line naming the variable that is wrong and exit code 2."""
    try:
        return Settings.from_env()
    except ValueError as exc:
        fail(escape(str(exc)), BAD_INPUT)
        raise AssertionError from exc  # unreachable


@asynccontextmanager
async def open_services(settings: Settings, *, migrate: bool = True) -> Any:
    """Resolve the database (embedded when DATABASE_URL is unset), migrate, and yield Services."""
    from rebill.db.engine import ensure_reachable, resolve_database
    from rebill.db.migrate import upgrade
    from rebill.services.runtime import Services

    if not settings.database_url:
        from rebill.db.embedded import notes

        for line in notes(settings.data_dir):
            console.print(line, markup=False, highlight=False, soft_wrap=True)
    database = resolve_database(settings)
    engine = database.engine()
    try:
        if settings.database_url:
            await ensure_reachable(engine)  # one line naming host, port and database, not a traceback
        if migrate:
            await upgrade(engine)
        services = Services(engine, settings)
        try:
            yield services
        finally:
            await services.close()
    finally:
        await engine.dispose()


def run(coro_factory: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine, turning the usual operational failures into one clear line."""
    try:
        return asyncio.run(coro_factory())  # type: ignore[arg-type]
    except EmbeddedDatabaseError as exc:
        fail(str(exc))
    except (DatabaseUrlError, DatabaseUnreachable) as exc:
        # One line whatever the terminal's width: operators grep logs for it.
        console.print("[bold red]error:[/] " + escape(str(exc)), soft_wrap=True, highlight=False)
        raise typer.Exit(2) from None
    except (ConnectionRefusedError, OSError) as exc:
        fail(f"cannot reach the database ({exc}); check DATABASE_URL")
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    raise AssertionError("unreachable")
