"""Guarantee 3: a process killed in the middle of a step, a timer or a migration leaves a
consistent database that ``omsflow audit verify`` accepts, and the next step succeeds.

The faults are injected from this test only: the child process registers a SQLAlchemy
``before_cursor_execute`` listener that calls ``os._exit(9)`` right before a chosen statement
(after the case UPDATE, before the transition_log INSERT; before the outbox INSERT; right
before COMMIT; in the middle of ``alembic upgrade``). No production code path knows about it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from typer.testing import CliRunner

from engine.api import Engine
from engine.cli import app
from engine.store.schema import metadata
from engine.testing import ManualClock, person
from tests.conftest import START
from tests.reliability.conftest import check_consistency, counts, python_process, raw_engine

OP = "operator:ivanova"

# argv: url, clock, case id, statement prefix to die before, what to do ("fire" or "timers")
STEP_KILLER = """
import os, sys
from datetime import datetime
from sqlalchemy import event
from engine.api import Engine
from engine.logs import configure
from engine.testing import ManualClock
configure(json=True, level="WARNING")
url, clock, case_id, prefix, what = sys.argv[1:6]
eng = Engine(url, clock=ManualClock(datetime.fromisoformat(clock)), migrate=False)
seen = []

def die_before(conn, cursor, statement, parameters, context, executemany):
    seen.append(statement.split()[0])
    if statement.lstrip().upper().startswith(prefix.upper()):
        # the statements this transaction already ran are what the crash leaves uncommitted
        sys.stderr.write("dying after: " + ",".join(seen) + "\\n")
        sys.stderr.flush()
        os._exit(9)

def die_at_commit(conn):
    if prefix == "COMMIT" and "INSERT" in seen:
        os._exit(9)

event.listen(eng.store.engine, "before_cursor_execute", die_before)
event.listen(eng.store.engine, "commit", die_at_commit)
if what == "fire":
    eng.fire(case_id, "take", "operator:ivanova")
else:
    eng.fire_due_timers()
print("not killed")
"""

MIGRATION_KILLER = """
import os, sys
from sqlalchemy import event
from engine.logs import configure
from engine.store.repository import Store
configure(json=True, level="WARNING")
url, table = sys.argv[1:3]
store = Store(url)

def die_before(conn, cursor, statement, parameters, context, executemany):
    if statement.lstrip().upper().startswith("CREATE TABLE " + table.upper()):
        os._exit(9)

event.listen(store.engine, "before_cursor_execute", die_before)
store.upgrade()
print("not killed")
"""

FAULTS = {
    "before_log_insert": ("INSERT INTO transition_log", "fire"),
    "before_outbox_insert": ("INSERT INTO outbox", "fire"),
    "before_commit": ("COMMIT", "fire"),
    "timer_before_log_insert": ("INSERT INTO transition_log", "timers"),
    "timer_before_deadline_close": ("UPDATE deadlines", "timers"),
}


def _verify_cli(url: str) -> int:
    result = CliRunner().invoke(app, ["--db", url, "--json", "audit", "verify"])
    return result.exit_code


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_step_killed_midway_leaves_a_consistent_database(
    db_url: str, tmp_path: Path, fault: str, figures: dict[str, Any]
) -> None:
    prefix, what = FAULTS[fault]
    clock = ManualClock(START)
    with Engine(db_url, clock=clock) as eng:
        case_id = eng.open_case("restore", person("restore", 1), "portal:gosuslugi").id
    when = START if what == "fire" else START.replace(year=2027)
    before = counts(db_url)
    child = python_process(
        STEP_KILLER, db_url, when.isoformat(), case_id, prefix, what, tmp=tmp_path
    )
    stdout, _ = child.communicate(timeout=120)
    assert child.returncode == 9, f"the fault was not reached: {stdout!r}"
    if fault.endswith("before_log_insert"):
        # the crash really falls between the case row's UPDATE and the log's INSERT
        dying = "".join(f.read_text() for f in tmp_path.glob("child.py.*.err"))
        assert "UPDATE" in dying.split("dying after:")[1], dying
    # the whole step rolled back: not one row of it survived the crash
    assert counts(db_url) == before
    check_consistency(db_url)
    assert _verify_cli(db_url) == 0
    with Engine(db_url, clock=ManualClock(when)) as eng:
        assert eng.verify() == {}
        if what == "fire":
            after = eng.fire(case_id, "take", OP).case
            assert after.version == 2
        else:
            assert eng.fire_due_timers().fired == 2
    check_consistency(db_url)
    assert _verify_cli(db_url) == 0
    figures.update({"fault": fault, "killed": 1, "consistent_after": 1, "verify_exit": 0})


@pytest.mark.parametrize("table", ["cases", "transition_log"])
def test_a_migration_killed_midway_can_be_run_again(
    db_url: str, tmp_path: Path, table: str, figures: dict[str, Any]
) -> None:
    child = python_process(MIGRATION_KILLER, db_url, table, tmp=tmp_path)
    stdout, _ = child.communicate(timeout=120)
    assert child.returncode == 9, f"the fault was not reached: {stdout!r}"
    with Engine(db_url, clock=ManualClock(START)) as eng:  # upgrades again
        assert eng.store.current_revision() == eng.store.head_revision()
        eng.open_case("restore", person("restore", 1), "portal:gosuslugi")
        assert eng.verify() == {}
    engine = raw_engine(db_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
        # the append-only triggers came back with the schema
        if engine.dialect.name == "sqlite":
            triggers = (
                conn.execute(sa.text("SELECT name FROM sqlite_master WHERE type = 'trigger'"))
                .scalars()
                .all()
            )
            assert "transition_log_no_update" in triggers
        else:
            triggers = (
                conn.execute(sa.text("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"))
                .scalars()
                .all()
            )
            assert "transition_log_append_only" in triggers
    engine.dispose()
    assert diff == []
    assert _verify_cli(db_url) == 0
    figures.update({"killed_during": f"CREATE TABLE {table}", "upgrade_again": "ok"})
