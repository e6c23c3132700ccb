"""Operator mistakes with DATABASE_URL: one line naming host, port and database, exit code 2."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from sqlalchemy.engine import URL, make_url

from rebill.db.engine import where

REBILL = [sys.executable, "-m", "rebill.cli"]


def _migrate(database_url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REBILL_NOW")}
    env["DATABASE_URL"] = database_url
    return subprocess.run([*REBILL, "migrate"], env=env, capture_output=True, text=True, timeout=60)


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_a_url_without_a_database_name_is_refused(database_url):
    url = make_url(database_url)
    server = URL.create("postgresql", url.username, url.password, url.host, url.port, None, url.query)
    line = _one_line(_migrate(server.render_as_string(hide_password=False)))
    assert "DATABASE_URL names no database" in line
    assert where(server).replace("(none)", "") in line


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("mysql://app:secret@db.internal:3306/shop", "host db.internal, port 3306, database shop"),
        ("postgresql://app@db.internal:notaport/shop", "malformed"),
        ("not a url at all", "postgresql://"),
    ],
)
def test_a_wrong_scheme_or_a_malformed_url_is_one_line(url, fragment):
    line = _one_line(_migrate(url))
    assert fragment in line
    assert "secret" not in line


def test_wrong_credentials_are_one_line_naming_the_server(database_url):
    url = make_url(database_url).set(drivername="postgresql", username="nosuchrole", password="wrong")
    line = _one_line(_migrate(url.render_as_string(hide_password=False)))
    assert where(url) in line and url.database in line
    assert "wrong" not in line.replace("wrong credentials", "")
