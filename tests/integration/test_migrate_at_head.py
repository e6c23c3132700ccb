"""Every command upgrades the database first; one already at the head is left alone without Alembic."""

from __future__ import annotations

import subprocess
import sys

import alembic.command

from rebill.db import migrate

CHECK = """
import asyncio, sys
from sqlalchemy.ext.asyncio import create_async_engine
from rebill.db.migrate import upgrade

async def main():
    engine = create_async_engine(sys.argv[1])
    await upgrade(engine)
    await engine.dispose()

asyncio.run(main())
print("alembic loaded" if "alembic" in sys.modules else "alembic not loaded")
"""


def test_a_process_opening_a_database_at_the_head_never_loads_alembic(database_url):
    """A subprocess, so that nothing the tests imported before counts."""
    done = subprocess.run(
        [sys.executable, "-c", CHECK, database_url], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "alembic not loaded", done.stderr


async def test_a_database_behind_the_head_is_upgraded_by_alembic(engine, monkeypatch):
    upgrades: list[str] = []
    monkeypatch.setattr(alembic.command, "upgrade", lambda cfg, revision: upgrades.append(revision))
    await migrate.upgrade(engine)
    assert upgrades == []  # at the head: nothing to do
    # The same database when the code has a migration it has not run yet.
    monkeypatch.setattr(migrate, "head_revision", lambda: "9999")
    await migrate.upgrade(engine)
    assert upgrades == ["head"]


async def test_an_explicit_revision_always_goes_through_alembic(engine, monkeypatch):
    upgrades: list[str] = []
    monkeypatch.setattr(alembic.command, "upgrade", lambda cfg, revision: upgrades.append(revision))
    await migrate.upgrade(engine, "0010")
    assert upgrades == ["0010"]
