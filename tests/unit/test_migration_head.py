"""The head revision read from the migration files' headers, which spares an up-to-date database Alembic."""

from __future__ import annotations

from pathlib import Path

from alembic.script import ScriptDirectory

from rebill.db.migrate import alembic_config, head_of, head_revision


def _migration(folder: Path, revision: str, down: str | None, *, plain: bool = True) -> None:
    parent = f'"{down}"' if down else "None"
    header = f'revision: str = "{revision}"' if plain else f"revision = REVISIONS[{revision!r}]"
    (folder / f"{revision}_step.py").write_text(
        f'"""Step {revision}."""\n\n{header}\ndown_revision: str | None = {parent}\n'
        "branch_labels = None\ndepends_on = None\n",
        encoding="utf-8",
    )


def test_the_head_read_from_the_headers_is_alembics():
    script = ScriptDirectory.from_config(alembic_config("postgresql+asyncpg://localhost/unused"))
    assert head_revision() == script.get_current_head()


def test_a_chain_of_migrations_has_its_last_as_head(tmp_path: Path):
    for revision, down in [("0001", None), ("0002", "0001"), ("0003", "0002")]:
        _migration(tmp_path, revision, down)
    (tmp_path / "__init__.py").write_text("", encoding="utf-8")
    assert head_of(tmp_path) == "0003"


def test_two_heads_leave_the_decision_to_alembic(tmp_path: Path):
    for revision, down in [("0001", None), ("0002", "0001"), ("0003", "0001")]:
        _migration(tmp_path, revision, down)
    assert head_of(tmp_path) is None


def test_a_header_that_is_not_plain_leaves_the_decision_to_alembic(tmp_path: Path):
    _migration(tmp_path, "0001", None)
    _migration(tmp_path, "0002", "0001", plain=False)
    assert head_of(tmp_path) is None


def test_a_parent_missing_from_the_folder_leaves_the_decision_to_alembic(tmp_path: Path):
    _migration(tmp_path, "0002", "0001")
    assert head_of(tmp_path) is None
