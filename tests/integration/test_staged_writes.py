"""An optimistic step's writes are built before the write lock and run inside it.

``Tx.staging`` collects the write statements that the block's calls ask for without running
any; ``Tx.run_staged`` runs them, in order, with the checks the calls make (a case that moved
raises Conflict). Inside ``Tx.writing`` the transaction's memory of the cases catches up with
those writes after the commit, or at once when the block reads it. On PostgreSQL a step reads
its case and deadlines in one pipeline, and sends the writes after its case's UPDATE in
another; a write that fails in the pipeline rolls the step back as it would alone.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError

from engine.api import Engine
from engine.errors import Conflict
from engine.machines.log import LogEntry
from engine.store.repository import CaseRecord, NewDeadline, Store, Tx, is_unique_violation
from engine.testing import ManualClock, person
from tests.integration.conftest import case_record

AT = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)


def _step(tx: Tx, case_id: str, *, read: int, to: str) -> None:
    tx.update_case(
        case_id,
        read,
        state=to,
        version=read + 1,
        is_open=True,
        flags=(),
        data=None,
        last_hash="cd" * 32,
        updated_at=AT + timedelta(minutes=read),
    )


@pytest.fixture
def store(db_url: str) -> Store:
    s = Store(db_url)
    s.upgrade()
    with s.write() as tx:
        tx.insert_case(case_record("c1"))
    return s


def _stored(store: Store, case_id: str) -> CaseRecord:
    with store.read() as tx:
        record = tx.get_case(case_id)
    assert record is not None
    return record


def test_staged_writes_run_only_when_asked_and_the_memory_follows_after_the_commit(
    store: Store,
) -> None:
    try:
        with store.optimistic() as tx:
            assert tx.get_case("c1") is not None
            assert tx.open_deadlines("c1") == []
            with tx.staging() as writes:
                _step(tx, "c1", read=1, to="in_review")
                tx.insert_deadlines(
                    "c1",
                    2,
                    [NewDeadline("decision", "expire", 5, "working_days", "UTC", AT, AT, "cal")],
                )
            assert len(writes) == 2
            # built, not run: neither the database nor the transaction's memory moved
            assert _stored(store, "c1").version == 1
            assert tx.get_case("c1").version == 1  # type: ignore[union-attr]
            with tx.writing():
                tx.run_staged(writes)
            # caught up after the commit, the new deadline with the id the database gave it
            assert tx.get_case("c1").state == "in_review"  # type: ignore[union-attr]
            (armed,) = tx.open_deadlines("c1")
        assert _stored(store, "c1").version == 2
        with store.read() as tx:
            assert tx.open_deadlines("c1") == [armed]
    finally:
        store.dispose()


def test_a_read_inside_the_write_block_sees_the_writes_run_before_it(store: Store) -> None:
    try:
        with store.optimistic() as tx:
            tx.get_case("c1")
            with tx.staging() as writes:
                _step(tx, "c1", read=1, to="in_review")
            with tx.writing():
                tx.run_staged(writes)
                seen = tx.get_case("c1")
                # the next write of the same block builds on what the first one left
                _step(tx, "c1", read=2, to="needs_info")
                again = tx.get_case("c1")
        assert seen is not None
        assert (seen.state, seen.version) == ("in_review", 2)
        assert again is not None
        assert (again.state, again.version) == ("needs_info", 3)
        assert _stored(store, "c1").state == "needs_info"
    finally:
        store.dispose()


def test_a_staged_write_that_finds_the_case_moved_raises_and_writes_nothing(
    store: Store,
) -> None:
    try:
        with store.optimistic() as tx:
            tx.get_case("c1")
            with tx.staging() as writes:
                _step(tx, "c1", read=1, to="in_review")
                tx.close_deadlines([1], "cancelled", 2, AT)
            # another writer steps the case between the read and the write
            with store.write() as other:
                _step(other, "c1", read=1, to="rejected")
            with pytest.raises(Conflict) as raised, tx.writing():
                tx.run_staged(writes)
            # the memory is left as read: the rolled-back writes never reach it
            assert tx.get_case("c1").state == "pending"  # type: ignore[union-attr]
        assert raised.value.actual == 2
        assert _stored(store, "c1").state == "rejected"
    finally:
        store.dispose()


def _sent(eng: Engine) -> list[tuple[str, bool]]:
    """Each statement's first words as the driver gets it, and whether it went in a pipeline."""
    sent: list[tuple[str, bool]] = []

    def before(_c: Any, cursor: Any, statement: str, *_a: Any) -> None:
        words = " ".join(statement.split()[:3])
        sent.append((words, cursor.connection.pgconn.pipeline_status != 0))

    event.listen(eng.store.engine, "before_cursor_execute", before)
    event.listen(eng.store.engine, "commit", lambda _c: sent.append(("COMMIT", False)))
    return sent


def test_on_postgresql_a_step_reads_in_one_round_trip_and_writes_its_case_first_then_the_rest(
    pg_url: str, clock: ManualClock
) -> None:
    with Engine(pg_url, clock=clock) as eng:
        case_id = eng.open_case("restore", person("restore", 1), "portal:web").id
        eng.fire(case_id, "take", "operator:ivanova")
        sent = _sent(eng)
        outcome = eng.fire(case_id, "request_info", "operator:ivanova", comment="Уточните адрес")
        assert sent == [
            # the case and its open deadlines, one round trip
            ("SELECT id, type,", True),
            ("SELECT id, case_id,", True),
            # the version-checked claim of the case, alone and checked before anything else
            ("UPDATE cases SET", False),
            # then the log row, two paused deadlines, the clarification's deadline and the
            # notice, one round trip
            ("INSERT INTO transition_log", True),
            ("UPDATE deadlines SET", True),
            ("UPDATE deadlines SET", True),
            ("INSERT INTO deadlines", True),
            ("INSERT INTO outbox", True),
            ("COMMIT", False),
        ]
        assert outcome.case.state == "needs_clarification"
        paused = {d.name: d.status for d in outcome.case.deadlines}
        assert set(paused.values()) >= {"paused", "armed"}
        assert eng.verify() == {}
    # what the pipeline wrote reads back the same from a fresh engine
    with Engine(pg_url, clock=clock) as fresh:
        again = fresh.get_case(case_id)
        assert again.state == "needs_clarification"
        assert again.deadlines == outcome.case.deadlines
        assert [e.trigger for e in fresh.history(case_id)] == ["open", "take", "request_info"]


def test_on_postgresql_a_step_under_the_case_lock_is_sent_the_same_way(
    pg_url: str, clock: ManualClock
) -> None:
    with Engine(pg_url, clock=clock) as eng:
        case_id = eng.open_case("restore", person("restore", 2), "portal:web").id
        clock.advance(timedelta(days=10))  # its decision target is due: the step takes the lock
        sent = _sent(eng)
        outcome = eng.fire(case_id, "take", "operator:ivanova")
        assert [e.trigger for e in outcome.timers_fired] == ["target_missed", "flag_overdue"]
        assert ("SELECT id, type,", True) in sent  # read FOR UPDATE with its deadlines
        # each write of the timers and of the step: its case's UPDATE alone, the rest together
        assert {piped for words, piped in sent if words == "UPDATE cases SET"} == {False}
        assert {piped for words, piped in sent if words == "INSERT INTO transition_log"} == {True}
        assert sent.count(("UPDATE cases SET", False)) == 3
        assert outcome.case.state == "in_review"
        assert eng.verify() == {}


def _entry(seq: int) -> LogEntry:
    return LogEntry(
        case_id="c1",
        seq=seq,
        trigger="take",
        from_state="pending",
        to_state="in_review",
        actor="operator:ivanova",
        reason=None,
        comment=None,
        changes={},
        correlation_id=None,
        at=AT,
        recorded_at=AT,
        prev_hash="0" * 64,
        hash="e" * 64,
        meta={},
    )


def test_on_postgresql_a_write_refused_in_the_pipeline_rolls_the_step_back_alone(
    pg_url: str,
) -> None:
    store = Store(pg_url)
    store.upgrade()
    try:
        with store.write() as tx:
            tx.insert_case(case_record("c1"))
            tx.append_log(_entry(2))
        with store.optimistic() as tx:
            tx.get_case("c1")
            with tx.staging() as writes:
                _step(tx, "c1", read=1, to="in_review")
                tx.append_log(_entry(2))  # the log row a step at version 2 holds already
                tx.insert_deadlines(
                    "c1",
                    2,
                    [NewDeadline("decision", "expire", 5, "working_days", "UTC", AT, AT, "cal")],
                )
            assert len(writes) == 3
            with pytest.raises(IntegrityError) as raised, tx.writing():
                tx.run_staged(writes)
            # the memory is left as read: the rolled-back writes never reach it
            assert tx.get_case("c1").version == 1  # type: ignore[union-attr]
        assert is_unique_violation(raised.value)
        # the failure names the statements the pipeline held, and none of their values
        assert "INSERT INTO transition_log" in str(raised.value)
        assert "operator:ivanova" not in str(raised.value)
        assert _stored(store, "c1").version == 1
        with store.read() as tx:
            assert tx.open_deadlines("c1") == []
        # the store goes on: the same step, written right, commits
        with store.optimistic() as tx:
            tx.get_case("c1")
            with tx.staging() as writes:
                _step(tx, "c1", read=1, to="in_review")
                tx.append_log(_entry(3))
                tx.add_outbox("c1", 3, [("notice", "applicant", "Заявление принято", {})], AT)
            with tx.writing():
                tx.run_staged(writes)
        assert _stored(store, "c1").version == 2
        with store.read() as tx:
            assert [e.text for e in tx.case_outbox("c1")] == ["Заявление принято"]
    finally:
        store.dispose()
