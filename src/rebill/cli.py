"""The ``rebill`` command line."""

from __future__ import annotations

import importlib
import logging
import os
from typing import Annotated, Any

import typer
from rich.markup import escape

from rebill.cli_support import BAD_INPUT, console, fail, open_services, out, run, settings_or_exit
from rebill.config import Settings, trusted_proxies
from rebill.process import settle_heap

app = typer.Typer(
    name="rebill",
    help=(
        "rebill: a subscription back office. Subscriptions, renewals and plans in PostgreSQL, "
        "billed on schedule with dunning, and a GraphQL API.\n\n"
        "With no DATABASE_URL, rebill runs an embedded PostgreSQL in REBILL_DATA_DIR (default: the user's "
        "data directory, the same from every folder); every command says which folder it uses."
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)
apikey_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)


def _graceful_server_class() -> Any:
    import uvicorn

    class GracefulServer(uvicorn.Server):
        """Ctrl-C shuts down cleanly and returns, so the database is closed in order."""

        def handle_exit(self, sig: int, frame: Any) -> None:
            super().handle_exit(sig, frame)
            self._captured_signals.clear()

    return GracefulServer


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    forwarded_allow_ips: Annotated[
        str | None,
        typer.Option(
            help=(
                "Behind a reverse proxy: the proxy's addresses or networks, comma-separated (such as 10.0.0.5 or "
                "10.0.0.0/24), whose X-Forwarded-For and X-Forwarded-Proto rebill believes; the client is then the "
                "last address in X-Forwarded-For that is not listed. List only your own proxies: a client listed "
                "here can claim any address, and so escape the refusal throttle, which keys clients by address "
                "(* trusts every peer: only when nothing but the proxy can reach rebill). "
                "Default: REBILL_FORWARDED_ALLOW_IPS; unset, none is trusted and the client is the connection's peer."
            ),
            show_default=False,
        ),
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help=(
                "Server processes sharing the port (one event loop each; as many as cores is a good start). "
                "Each has its own connection pool and its own refusal throttle; the rate limit's buckets live "
                "in the database and stay shared."
            ),
        ),
    ] = 1,
) -> None:
    """Apply migrations, then serve POST /graphql (GraphiQL on GET /graphql) and GET /healthz.

    Ctrl-C stops the server and, when it started it, the embedded PostgreSQL.
    """
    import uvicorn

    from rebill.app import create_app

    settings = settings_or_exit()
    proxies = settings.forwarded_allow_ips
    if forwarded_allow_ips is not None:
        try:
            proxies = trusted_proxies(forwarded_allow_ips, "--forwarded-allow-ips")
        except ValueError as exc:
            fail(escape(str(exc)), BAD_INPUT)
    if workers > 1:
        _serve_processes(settings, host, port, log_level, proxies, workers)
        return
    server_class = _graceful_server_class()

    async def main() -> None:
        async with open_services(settings) as services:
            background = []
            if settings.bulk_worker_in_server:
                try:
                    from rebill.bulk.runner import background_runner

                    background.append(background_runner)
                except ImportError:  # bulk runs not installed in this build
                    pass
            application = create_app(services, background=background)
            config = uvicorn.Config(
                application,
                host=host,
                port=port,
                log_level=log_level,
                lifespan="on",
                # uvicorn trusts 127.0.0.1 unless told otherwise: a client on this host could rotate the header.
                proxy_headers=bool(proxies),
                forwarded_allow_ips=list(proxies),
            )
            server = server_class(config)
            settle_heap()
            console.print(f"rebill serving on http://{host}:{port}/graphql")
            console.print(f"admin console on http://{host}:{port}/admin")
            from rebill.db.embedded import registered_server

            embedded_dir = None if settings.database_url else settings.data_dir
            with registered_server(embedded_dir, f"http://{host}:{port}"):
                await server.serve()

    try:
        run(main)
    except typer.Exit as stop:
        if stop.exit_code != 130:
            raise
    # Ctrl-C is the normal way to stop a server: a clean exit, not an error.
    console.print("rebill stopped")


def _serve_processes(settings: Settings, host: str, port: int, log_level: str, proxies: Any, workers: int) -> None:
    """``serve --workers N``: migrate here, then uvicorn's supervisor runs N processes of ``rebill.app.from_env``.

    The embedded PostgreSQL, when there is no DATABASE_URL, is started here and
    handed to the processes as their DATABASE_URL; it stops when they and this
    process have exited.
    """
    import uvicorn

    from rebill.db.embedded import registered_server

    async def prepare() -> str:
        async with open_services(settings) as services:
            return services.engine.url.render_as_string(hide_password=False)

    url = run(prepare)
    os.environ["DATABASE_URL"] = url
    embedded_dir = None if settings.database_url else settings.data_dir
    console.print(f"rebill serving on http://{host}:{port}/graphql with {workers} processes")
    console.print(f"admin console on http://{host}:{port}/admin")
    with registered_server(embedded_dir, f"http://{host}:{port}"):
        uvicorn.run(
            "rebill.app:from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level=log_level,
            lifespan="on",
            proxy_headers=bool(proxies),
            forwarded_allow_ips=list(proxies),
        )
    console.print("rebill stopped")


@app.command()
def migrate() -> None:
    """Upgrade the database schema to the newest version (Alembic), one revision at a time.

    Each revision is named while it runs and timed when it is done: a data migration over a large
    database (0011 invoices every past charge, 0015 credits every past refund) takes minutes.
    """
    import time

    from rebill.db.migrate import current_revision, pending_revisions, upgrade

    settings = settings_or_exit()

    async def main() -> None:
        async with open_services(settings, migrate=False) as services:
            pending = await pending_revisions(services.engine)
            for revision, title in pending:
                started = time.perf_counter()
                with console.status(f"applying {revision}: {title}"):
                    await upgrade(services.engine, revision)
                out.print(f"applied {revision}: {title} ({time.perf_counter() - started:.1f} s)")
            out.print(f"database at revision {await current_revision(services.engine)}")

    run(main)


@apikey_app.command("create")
def apikey_create(
    name: Annotated[str, typer.Option("--name", help="A name for the key; it is the actor in history entries.")],
    scope: Annotated[
        list[str],
        typer.Option("--scope", help="read, write, refund, bulk or admin (all). Repeat for several."),
    ],
) -> None:
    """Create an API key and print its secret (last line). Only a hash is stored: keep the secret."""
    from rebill.domain.errors import RebillError
    from rebill.services.apikeys import create_key

    settings = settings_or_exit()

    async def main() -> Any:
        async with open_services(settings) as services:
            return await create_key(services.engine, name, scope, services.clock.now())

    try:
        created = run(main)
    except RebillError as exc:
        fail(exc.message)
        return
    console.print(f"created API key [bold]{created.name}[/] with scopes {', '.join(created.scopes)}")
    console.print("the secret is shown once; send it as 'Authorization: Bearer <secret>'")
    print(created.secret)


@apikey_app.command("list")
def apikey_list() -> None:
    """List API keys with their scopes and when they were created or revoked (secrets are never stored)."""
    from rich.table import Table
    from sqlalchemy import select

    from rebill.db import tables as t

    settings = settings_or_exit()
    keys = t.table_of(t.ApiKey)

    async def main() -> list[Any]:
        async with open_services(settings) as services, services.engine.connect() as conn:
            return list(await conn.execute(select(keys).order_by(keys.c.id)))

    rows = run(main)
    table = Table("name", "scopes", "prefix", "created", "revoked")
    for row in rows:
        table.add_row(
            row.name,
            ", ".join(row.scopes),
            row.prefix,
            row.created_at.isoformat(timespec="seconds"),
            row.revoked_at.isoformat(timespec="seconds") if row.revoked_at else "",
        )
    out.print(table)


@apikey_app.command("revoke")
def apikey_revoke(name: Annotated[str, typer.Option("--name", help="The key to revoke.")]) -> None:
    """Revoke an API key: requests with its secret are refused from now on."""
    from rebill.services.apikeys import revoke_key

    settings = settings_or_exit()

    async def main() -> bool:
        async with open_services(settings) as services:
            return await revoke_key(services.engine, name, services.clock.now())

    if not run(main):
        fail(f"no active API key named {name!r}")
    console.print(f"revoked {name}")


@app.command()
def schema() -> None:
    """Print the GraphQL schema (SDL). The repository keeps it in schema.graphql."""
    from rebill.schema import build_full_schema

    print(build_full_schema(Settings()).as_str())


def _command_module(module: str) -> Any | None:
    """A package's command module, or ``None`` when this build does not have that package."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if exc.name != module:
            raise
        return None


def _add_commands() -> None:
    """Each package defines its own ``typer.Typer()``; the top-level app adds them, in the order help lists them."""
    billing = _command_module("rebill.billing.commands")
    if billing is not None:
        app.add_typer(billing.billing_app)  # worker, outbox
    seed = _command_module("rebill.seed")
    if seed is not None:
        app.add_typer(seed.seed_app)  # seed
    app.add_typer(apikey_app, name="apikey")
    bulk = _command_module("rebill.bulk.commands")
    if bulk is not None:
        app.add_typer(bulk.bulk_app, name="bulk")
    invoicing = _command_module("rebill.invoicing.commands")
    if invoicing is not None:
        app.add_typer(invoicing.invoices_app, name="invoices")  # invoices export


_add_commands()


def main() -> None:
    logging.basicConfig(
        level=os.environ.get("REBILL_LOG_LEVEL", "WARNING"), format="%(levelname)s %(name)s: %(message)s"
    )
    app()


if __name__ == "__main__":
    main()
