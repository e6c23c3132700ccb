"""Apply Alembic migrations from inside rebill (``rebill migrate``, ``rebill serve``).

Every command that opens the database upgrades it first. A database already
at the head revision is told apart with one query, against the head read
from the migration files' headers: Alembic, its import and its reading of
every migration script (a third of a second) are left for databases that
need them.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncEngine

from rebill.db.engine import to_async_url

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"

# A migration's header: ``revision: str = "0023"`` and ``down_revision: str | None = "0022"`` (or None).
_REVISION = re.compile(r'^revision(?:\s*:[^=\n]*)?\s*=\s*"([^"]+)"\s*$', re.MULTILINE)
_DOWN_REVISION = re.compile(r'^down_revision(?:\s*:[^=\n]*)?\s*=\s*(?:"([^"]+)"|None)\s*$', re.MULTILINE)


@cache
def head_revision() -> str | None:
    """The head revision of rebill's migrations, read without Alembic (see :func:`head_of`)."""
    return head_of(MIGRATIONS / "versions")


def head_of(versions: Path) -> str | None:
    """The head revision the migration files in ``versions`` name in their headers; None when they do not
    name exactly one head plainly (Alembic then decides)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in sorted(versions.glob("*.py")):
        if path.name == "__init__.py":
            continue
        source = path.read_text(encoding="utf-8")
        revision, down = _REVISION.findall(source), _DOWN_REVISION.findall(source)
        if len(revision) != 1 or len(down) != 1:
            return None
        revisions.add(revision[0])
        if down[0]:
            parents.add(down[0])
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 and parents <= revisions else None


async def at_head(engine: AsyncEngine) -> bool:
    """Whether the database behind ``engine`` is at the head revision (False when unsure)."""
    head = head_revision()
    if head is None:
        return False
    return [head] == await _revisions(engine)


async def _revisions(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        exists = await conn.exec_driver_sql("SELECT to_regclass('alembic_version') IS NOT NULL")
        if not exists.scalar():
            return []
        return [row[0] for row in await conn.exec_driver_sql("SELECT version_num FROM alembic_version")]


def alembic_config(url: str) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", to_async_url(url).replace("%", "%%"))
    return cfg


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Upgrade the database behind ``engine`` to ``revision``.

    An advisory lock keeps two processes starting at once (``serve`` and
    ``worker``) from migrating concurrently. A database at the head already
    is left as it is without Alembic.
    """
    if revision == "head" and await at_head(engine):
        return
    from alembic import command

    cfg = alembic_config(engine.url.render_as_string(hide_password=False))

    def _upgrade(connection: object) -> None:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)

    async with engine.begin() as conn:
        await conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7142001)")
        await conn.run_sync(_upgrade)


async def current_revision(engine: AsyncEngine) -> str | None:
    revisions = await _revisions(engine)
    return revisions[0] if revisions else None


async def pending_revisions(engine: AsyncEngine) -> list[tuple[str, str]]:
    """The revisions an upgrade to head would apply, oldest first, with the first line of their docstring."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config(engine.url.render_as_string(hide_password=False)))
    current = await current_revision(engine)
    revisions = list(script.iterate_revisions("head", current or "base"))
    return [(r.revision, (r.doc or "").strip().splitlines()[0] if r.doc else "") for r in reversed(revisions)]
