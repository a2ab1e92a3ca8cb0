"""The end-to-end harness's own pieces that need no running Airflow (these run with the unit tests)."""

from __future__ import annotations

import contextlib
import sqlite3
import sys
from pathlib import Path

import pytest

from tests.e2e import versions
from tests.e2e.stack import never_reuse_trigger_ids

# The trigger table as each Airflow line's migrations leave it on SQLite: the key constraint last (3.1, 3.2) or
# followed by another constraint (3.3).
TRIGGER_TABLES = {
    "key last": """CREATE TABLE "trigger" (
\tid INTEGER NOT NULL,
\tclasspath VARCHAR(1000) NOT NULL,
\tkwargs TEXT NOT NULL,
\tcreated_date TIMESTAMP NOT NULL,
\ttriggerer_id INTEGER,
\tCONSTRAINT trigger_pkey PRIMARY KEY (id)
)""",
    "key among constraints": """CREATE TABLE "trigger" (
\tid INTEGER NOT NULL,
\tclasspath VARCHAR(1000) NOT NULL,
\tkwargs TEXT NOT NULL,
\tcreated_date TIMESTAMP NOT NULL,
\ttriggerer_id INTEGER,
\tqueue VARCHAR(256),
\tCONSTRAINT trigger_pkey PRIMARY KEY (id),
\tCONSTRAINT trigger_classpath_not_empty CHECK (classpath <> '')
)""",
}


@pytest.mark.parametrize("schema", list(TRIGGER_TABLES), ids=list(TRIGGER_TABLES))
def test_trigger_ids_are_never_handed_out_again(tmp_path: Path, schema: str) -> None:
    database = tmp_path / "airflow.db"
    columns = "classpath, kwargs, created_date"
    with contextlib.closing(sqlite3.connect(database, isolation_level=None)) as db:
        db.executescript(TRIGGER_TABLES[schema] + ";CREATE INDEX idx_trigger_triggerer ON trigger (triggerer_id);")
        db.execute(f"INSERT INTO trigger ({columns}) VALUES ('a', '{{}}', '2025-01-01')")

    never_reuse_trigger_ids(database)

    with contextlib.closing(sqlite3.connect(database, isolation_level=None)) as db:
        (kept,) = db.execute("SELECT id FROM trigger").fetchone()
        db.execute("DELETE FROM trigger")
        db.execute(f"INSERT INTO trigger ({columns}) VALUES ('b', '{{}}', '2025-01-01')")
        (new,) = db.execute("SELECT id FROM trigger").fetchone()
        indexes = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")]
    assert new == kept + 1, "the id of the deleted newest trigger was handed out again"
    assert "idx_trigger_triggerer" in indexes


def test_a_version_venv_is_keyed_by_airflow_version_python_and_recipe() -> None:
    keys = {versions.venv_key(v) for v in ("3.1.8", "3.2.2", "3.3.2")}
    assert len(keys) == 3
    assert all(f"-py{sys.version_info.major}.{sys.version_info.minor}-" in key for key in keys)
    assert versions.venv_key("3.2.2") == versions.venv_key("3.2.2")
    # Airflow itself is pinned per venv; the provider's other requirements come from pyproject.toml.
    assert not [d for d in versions._provider_dependencies() if d.startswith("apache-airflow>")]
    assert any(d.startswith("apache-airflow-providers-common-compat") for d in versions._provider_dependencies())


def test_a_finished_version_venv_is_reused_without_building(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(versions, "CACHE", tmp_path)
    folder = tmp_path / versions.venv_key("3.1.8")
    folder.mkdir()
    (folder / ".complete").write_text("pins\n")
    # No uv that could build anything: a cache hit must not need one.
    monkeypatch.setattr(versions, "UV", tmp_path / "no-uv")
    assert versions.cached_airflow_venv("3.1.8") == (folder / "venv" / "bin" / "python", "pins")
