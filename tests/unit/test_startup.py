"""What a SQLite worker, a CLI command or a service pays at startup: no migration tool, no driver.

The worker's time to its first timer is dominated by imports (docs/BENCHMARKS.md); alembic
(~0.2 s) is needed only when the database is behind, psycopg (~0.1 s) only for a
PostgreSQL store, and the application models (~0.1 s) only by a step that brings new data.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from engine import applications
from engine.api import Engine
from engine.testing import ManualClock, person
from tests.conftest import START

CHECK = """
import sys
import engine.timers.worker
from engine.api import Engine
engine = Engine(sys.argv[1], migrate=sys.argv[2] == "migrate")
engine.list_cases(limit=1)
engine.close()
print(sorted(m for m in ("alembic", "psycopg") if m in sys.modules))
"""


def _imported(url: str, mode: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", CHECK, url, mode], capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


@pytest.mark.parametrize("mode", ["migrate", "no-migrate"])
def test_a_sqlite_engine_on_a_database_at_head_imports_neither_alembic_nor_psycopg(
    tmp_path: Path, mode: str
) -> None:
    url = f"sqlite:///{tmp_path / 'cases.db'}"
    Engine(url).close()  # migrated here, in the test's process
    assert _imported(url, mode) == "[]"


def test_a_database_that_is_behind_is_migrated_with_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cases.db'}"
    assert _imported(url, "migrate") == "['alembic']"
    with Engine(url, migrate=False) as eng:
        assert eng.store.current_revision() == eng.store.head_revision()


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_each_dialect_has_one_codec_with_its_conversions(dialect: str) -> None:
    from engine.store.codec import codec_for

    codec = codec_for(dialect)
    assert codec is codec_for(dialect)  # built once
    stored, value = codec.json_stored({"a": (1, 2)})
    assert value == {"a": [1, 2]}
    if dialect == "postgresql":
        assert type(stored).__name__ == "Jsonb"
        assert codec.sql("x = :a") == "x = %(a)s"
    else:
        assert stored == '{"a":[1,2]}'


TIMERS = """
import sys
from datetime import datetime
import engine.cli.app
import engine.timers.worker
from engine.api import Engine
from engine.testing import ManualClock
engine = Engine(sys.argv[1], clock=ManualClock(datetime.fromisoformat(sys.argv[2])))
fired = engine.fire_due_timers().fired
print(fired, sorted(m for m in sys.modules if m.startswith("engine.applications.")))
"""


def test_a_worker_firing_timers_and_the_cli_never_load_the_application_models(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'cases.db'}"
    with Engine(url, clock=ManualClock(START)) as eng:
        eng.open_case("restore", person("restore", 1), "portal:web")
    later = (START + timedelta(days=10)).isoformat()
    out = subprocess.run(
        [sys.executable, "-c", TIMERS, url, later], capture_output=True, text=True, check=True
    )
    assert out.stdout.splitlines()[-1] == "2 []"  # both of the case's timers fired


def test_the_application_functions_load_on_first_use_under_their_old_names() -> None:
    from engine.applications import core, validate_application

    assert validate_application is core.validate_application
    assert applications.example_application is core.example_application
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        _ = applications.nothing_here  # type: ignore[attr-defined]
