"""The embedded database refuses to start on a foreign or stale data directory, with a clear message."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from rebill.db.embedded import EmbeddedDatabaseError, _prune_dead_handles, embedded_major_version, start_embedded


def test_a_data_directory_from_another_postgres_version_is_refused(tmp_path):
    pgdata = tmp_path / "pgdata"
    pgdata.mkdir()
    (pgdata / "PG_VERSION").write_text("12\n")
    with pytest.raises(EmbeddedDatabaseError) as refused:
        start_embedded(tmp_path)
    message = str(refused.value)
    assert "PostgreSQL 12" in message and f"PostgreSQL {embedded_major_version()}" in message
    assert "pg_dump" in message


def test_a_directory_that_is_not_a_data_directory_is_refused(tmp_path):
    pgdata = tmp_path / "pgdata"
    pgdata.mkdir()
    (pgdata / "notes.txt").write_text("hello")
    with pytest.raises(EmbeddedDatabaseError, match="not a PostgreSQL data directory"):
        start_embedded(tmp_path)


def test_a_lock_held_by_another_program_is_reported_as_stale(tmp_path):
    pgdata = tmp_path / "pgdata"
    pgdata.mkdir()
    (pgdata / "PG_VERSION").write_text(embedded_major_version() + "\n")
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        (pgdata / "postmaster.pid").write_text(f"{sleeper.pid}\n{pgdata}\n")
        with pytest.raises(EmbeddedDatabaseError) as refused:
            start_embedded(tmp_path)
        assert "stale" in str(refused.value)
        assert "postmaster.pid" in str(refused.value)
    finally:
        sleeper.kill()


def test_handles_of_killed_processes_are_forgotten(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    handles = tmp_path / ".handle_pids.json"
    handles.write_text(json.dumps([os.getpid(), dead.pid]))
    _prune_dead_handles(tmp_path)
    assert json.loads(handles.read_text()) == [os.getpid()]
