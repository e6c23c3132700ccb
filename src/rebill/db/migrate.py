"""Apply Alembic migrations from inside rebill (``rebill migrate``, ``rebill serve``)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import AsyncEngine

from rebill.db.engine import to_async_url

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", to_async_url(url).replace("%", "%%"))
    return cfg


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Upgrade the database behind ``engine`` to ``revision``.

    An advisory lock keeps two processes starting at once (``serve`` and
    ``worker``) from migrating concurrently.
    """
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))

    def _upgrade(connection: object) -> None:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)

    async with engine.begin() as conn:
        await conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7142001)")
        await conn.run_sync(_upgrade)


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        exists = await conn.exec_driver_sql("SELECT to_regclass('alembic_version') IS NOT NULL")
        if not exists.scalar():
            return None
        row = await conn.exec_driver_sql("SELECT version_num FROM alembic_version")
        return row.scalar()


async def pending_revisions(engine: AsyncEngine) -> list[tuple[str, str]]:
    """The revisions an upgrade to head would apply, oldest first, with the first line of their docstring."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config(engine.url.render_as_string(hide_password=False)))
    current = await current_revision(engine)
    revisions = list(script.iterate_revisions("head", current or "base"))
    return [(r.revision, (r.doc or "").strip().splitlines()[0] if r.doc else "") for r in reversed(revisions)]
