"""What a SQLite worker or an embedding service pays at startup: no migration tool, no driver.

The worker's time to its first timer is dominated by imports (docs/BENCHMARKS.md); alembic
(~0.2 s) is needed only to migrate and psycopg (~0.1 s) only for a PostgreSQL store.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from engine.api import Engine

CHECK = """
import sys
import engine.api, engine.timers.worker
from engine.api import Engine
engine = Engine(sys.argv[1], migrate=False)
engine.list_cases(limit=1)
engine.close()
print(sorted(m for m in ("alembic", "psycopg") if m in sys.modules))
"""


def test_a_sqlite_engine_that_does_not_migrate_imports_neither_alembic_nor_psycopg(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'cases.db'}"
    Engine(url).close()  # migrated here, in the test's process
    out = subprocess.run(
        [sys.executable, "-c", CHECK, url], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


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
