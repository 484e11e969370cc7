"""An optimistic step's writes are built before the write lock and run inside it.

``Tx.staging`` collects the write statements that the block's calls ask for without running
any; ``Tx.run_staged`` runs them, in order, with the checks the calls make (a case that moved
raises Conflict). Inside ``Tx.writing`` the transaction's memory of the cases catches up with
those writes after the commit, or at once when the block reads it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from engine.errors import Conflict
from engine.store.repository import CaseRecord, NewDeadline, Store, Tx
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
