"""A step is computed from what it read and written only if the case is still as read.

Between the read and the write the database's write lock is not held, so another writer can
commit meanwhile; these tests make one do exactly that (a second engine steps at the moment
the first has read the case) and check that nothing is lost or doubled.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from engine.api import Engine
from engine.errors import Conflict, NotPermitted
from engine.testing import ManualClock, person
from tests.conftest import START

OP = "operator:ivanova"


def _after_reading_the_case(eng: Engine, meanwhile: Callable[[], None]) -> list[int]:
    """Run ``meanwhile`` once, right after ``eng`` next reads a case row."""
    calls: list[int] = []

    def after(_c: Any, _cur: Any, statement: str, *_a: Any) -> None:
        if not calls and statement.startswith("SELECT") and "FROM cases WHERE id" in statement:
            calls.append(1)
            meanwhile()

    event.listen(eng.store.engine, "after_cursor_execute", after)
    return calls


def test_a_case_stepped_between_read_and_write_is_read_again(
    db_url: str, clock: ManualClock
) -> None:
    with Engine(db_url, clock=clock) as first, Engine(db_url, clock=clock) as second:
        case_id = first.open_case("restore", person("restore", 1), "portal:web").id
        first.fire(case_id, "take", OP)
        calls = _after_reading_the_case(
            first, lambda: second.fire(case_id, "request_info", OP, comment="Уточните адрес")
        )
        # first read the case in review and computed approve; the write finds it moved on,
        # reads again, and is refused in the state the case is now in
        with pytest.raises(NotPermitted, match="approve"):
            first.fire(case_id, "approve", OP)
        assert calls == [1]
        history = first.history(case_id)
        assert [e.trigger for e in history] == ["open", "take", "request_info"]
        assert first.get_case(case_id).version == 3
        assert first.verify() == {}


def test_a_step_retried_after_a_race_commits_once_on_the_new_state(
    db_url: str, clock: ManualClock
) -> None:
    with Engine(db_url, clock=clock) as first, Engine(db_url, clock=clock) as second:
        case_id = first.open_case("restore", person("restore", 2), "portal:web").id
        first.fire(case_id, "take", OP)
        calls = _after_reading_the_case(
            first, lambda: second.fire(case_id, "request_info", OP, comment="Уточните адрес")
        )
        # withdraw is allowed in review and in clarification: the retry commits it once
        outcome = first.fire(case_id, "withdraw", "portal:web")
        assert calls == [1]
        assert outcome.entry.seq == 4
        assert outcome.entry.from_state == "needs_clarification"
        assert [e.trigger for e in first.history(case_id)] == [
            "open",
            "take",
            "request_info",
            "withdraw",
        ]
        assert first.verify() == {}


def test_an_expected_version_is_a_conflict_when_the_case_moved_before_the_write(
    db_url: str, clock: ManualClock
) -> None:
    with Engine(db_url, clock=clock) as first, Engine(db_url, clock=clock) as second:
        case_id = first.open_case("restore", person("restore", 3), "portal:web").id
        first.fire(case_id, "take", OP)
        _after_reading_the_case(
            first, lambda: second.fire(case_id, "request_info", OP, comment="Уточните адрес")
        )
        with pytest.raises(Conflict) as conflict:
            first.fire(case_id, "withdraw", "portal:web", expected_version=2)
        assert (conflict.value.expected, conflict.value.actual) == (2, 3)
        assert len(first.history(case_id)) == 3


def test_the_write_lock_is_not_held_while_a_step_is_computed(sqlite_url: str) -> None:
    # SQLite has one writer at a time: had the first engine taken the lock when it read the
    # case, the second engine's step, run in the same thread, would wait on it for ever.
    clock = ManualClock(START)
    with Engine(sqlite_url, clock=clock) as first, Engine(sqlite_url, clock=clock) as second:
        mine = first.open_case("restore", person("restore", 4), "portal:web").id
        other = first.open_case("restore", person("restore", 5), "portal:web").id
        done: list[str] = []
        _after_reading_the_case(
            first, lambda: done.append(second.fire(other, "take", OP).case.state)
        )
        first.fire(mine, "take", OP)
        assert done == ["in_review"]
        assert first.get_case(mine).state == "in_review"


def _clarify_or_reply(eng: Engine, case_id: str) -> None:
    if eng.get_case(case_id).state == "in_review":
        eng.fire(case_id, "request_info", OP, comment="Уточните адрес")
    else:
        eng.fire(case_id, "reply", "portal:web", comment="Адрес верный")


def test_a_busy_case_is_stepped_under_its_lock_and_never_a_conflict_without_a_version(
    pg_url: str, clock: ManualClock
) -> None:
    # The case moves after each of the first engine's optimistic reads. Its last try then
    # holds the case's row lock (SQLite's last try holds the database's write lock): a writer
    # arriving meanwhile waits for it, instead of making a caller who asked for no version
    # meet a Conflict.
    with Engine(pg_url, clock=clock) as first, Engine(pg_url, clock=clock) as second:
        case_id = first.open_case("restore", person("restore", 6), "portal:web").id
        first.fire(case_id, "take", OP)
        reads: list[str] = []
        late: list[threading.Thread] = []
        refused: list[str] = []

        def arrive() -> None:
            try:
                _clarify_or_reply(second, case_id)
            except NotPermitted as exc:
                refused.append(exc.state)

        def after(_c: Any, _cur: Any, statement: str, *_a: Any) -> None:
            if not (statement.startswith("SELECT id, type") and "FROM cases WHERE id" in statement):
                return
            reads.append(statement)
            if len(reads) <= 2:
                _clarify_or_reply(second, case_id)
            elif len(reads) == 3:
                # another writer arrives while the last try holds what it read
                writer = threading.Thread(target=arrive)
                writer.start()
                late.append(writer)
                _until_done_or_waiting_on_a_lock(first, writer)

        event.listen(first.store.engine, "after_cursor_execute", after)
        outcome = first.fire(case_id, "withdraw", "portal:web")
        late[0].join(10)

        assert len(reads) >= 3
        assert "FOR UPDATE" in reads[2]
        assert outcome.entry.trigger == "withdraw"
        # the late writer waited for the lock, then found the case withdrawn
        assert refused == ["withdrawn"]
        triggers = [e.trigger for e in first.history(case_id)]
        assert triggers == ["open", "take", "request_info", "reply", "withdraw"]
        assert first.verify() == {}


def _until_done_or_waiting_on_a_lock(eng: Engine, writer: threading.Thread) -> None:
    """Block until ``writer`` finished or one of the server's sessions waits on a lock."""
    probe = sa.create_engine(eng.store.engine.url, poolclass=sa.pool.NullPool)
    deadline = time.monotonic() + 10
    with probe.connect() as conn:
        while writer.is_alive() and time.monotonic() < deadline:
            waiting = conn.exec_driver_sql(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            ).scalar()
            conn.rollback()
            if waiting:
                return
            time.sleep(0.02)
    probe.dispose()


def test_a_steps_view_is_the_case_as_that_step_left_it_even_when_read_later(
    db_url: str, clock: ManualClock
) -> None:
    with Engine(db_url, clock=clock) as eng:
        case_id = eng.open_case("restore", person("restore", 7), "portal:web").id
        taken = eng.fire(case_id, "take", OP)
        asked = eng.fire(case_id, "request_info", OP, comment="Уточните адрес")
        eng.fire(case_id, "reply", "portal:web", comment="Адрес верен")
        # read only now, after two later steps and with the connection reused since
        assert (taken.case.state, taken.case.version) == ("in_review", 2)
        assert (asked.case.state, asked.case.version) == ("needs_clarification", 3)
        paused = {d.name: d.status for d in asked.case.deadlines}
        assert paused["decision_target"] == "paused"
        assert "reply_reminder" in paused
        assert "approve" in taken.case.allowed_triggers
        name = person("restore", 7)["applicant"]["full_name"]
        assert asked.case.data["applicant"]["full_name"] != name  # masked
        assert taken.case is taken.case  # built once
        assert asked.to_json()["case"] == asked.case.to_json()
