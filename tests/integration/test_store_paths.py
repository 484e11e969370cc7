"""The step's statements run on the bare driver; everything else goes through SQLAlchemy.

Both paths must write and read the same values: a row written by one reads back identically
through the other, on both backends (times aware UTC to the microsecond, JSON, booleans,
NULLs), and a naive time is refused by both.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from engine.machines.log import LogEntry
from engine.store.repository import CaseRecord, NewDeadline, Store, _deadline, _entry
from engine.store.schema import cases, deadlines, transition_log
from tests.integration.conftest import RECORD_AT, case_record

AT = RECORD_AT


def _case(row: sa.Row[Any]) -> CaseRecord:
    """A case row as SQLAlchemy's column types give it back."""
    m = row._mapping
    values = {f: m[f] for f in CaseRecord.__dataclass_fields__}
    return CaseRecord(**{**values, "flags": frozenset(m["flags"]), "data": dict(m["data"])})


def test_a_row_written_on_the_bare_driver_reads_the_same_through_sqlalchemy(
    db_url: str,
) -> None:
    store = Store(db_url)
    store.upgrade()
    try:
        with store.write() as tx:
            tx.insert_case(case_record("c1"))
            tx.insert_deadlines(
                "c1",
                1,
                [NewDeadline("decision", "expire", 30, "calendar_days", "UTC", AT, AT, "cal-1")],
            )
            entry = LogEntry(
                case_id="c1",
                seq=1,
                trigger="open",
                from_state=None,
                to_state="pending",
                actor="portal:web",
                reason=None,
                comment="ёж",
                changes={"a": [1, {"b": None}]},
                correlation_id=None,
                at=AT,
                recorded_at=AT,
                prev_hash="0" * 64,
                hash="f" * 64,
                meta={"deadline": "x"},
            )
            tx.append_log(entry)
        with store.read() as tx:
            through_sa = _case(tx.conn.execute(sa.select(cases)).one())
            deadline_sa = _deadline(tx.conn.execute(sa.select(deadlines)).one())
            entry_sa = _entry(tx.conn.execute(sa.select(transition_log)).one())
        with store.read() as tx:
            assert tx.get_case("c1") == through_sa == case_record("c1")
            assert tx.open_deadlines("c1") == [deadline_sa]
        assert deadline_sa.due_at == AT
        assert deadline_sa.status == "armed"
        assert entry_sa == entry
    finally:
        store.dispose()


def test_a_row_written_through_sqlalchemy_reads_the_same_on_the_bare_driver(db_url: str) -> None:
    store = Store(db_url)
    store.upgrade()
    record = case_record("c2")
    try:
        with store.write() as tx:
            values = {f: getattr(record, f) for f in CaseRecord.__dataclass_fields__}
            values["flags"] = sorted(record.flags)
            tx.conn.execute(cases.insert().values(values))
        with store.read() as tx:
            assert tx.get_case("c2") == record
            assert tx.cases_of_subject("snils:123") == [record]
    finally:
        store.dispose()


@pytest.mark.parametrize("path", ["bare", "sqlalchemy"])
def test_a_naive_time_is_refused_by_both_paths(db_url: str, path: str) -> None:
    store = Store(db_url)
    store.upgrade()
    naive = case_record("c3", at=AT.replace(tzinfo=None))
    values = {f: getattr(naive, f) for f in CaseRecord.__dataclass_fields__}
    values["flags"] = sorted(naive.flags)

    def write() -> None:
        with store.write() as tx:
            if path == "bare":
                tx.insert_case(naive)
            else:
                tx.conn.execute(cases.insert().values(values))

    try:
        with pytest.raises((ValueError, sa.exc.StatementError), match="naive datetime"):
            write()
        with store.read() as tx:
            assert tx.conn.execute(sa.select(sa.func.count()).select_from(cases)).scalar() == 0
    finally:
        store.dispose()


def test_a_database_error_does_not_carry_the_applicants_data(db_url: str) -> None:
    store = Store(db_url)
    store.upgrade()
    try:
        with store.write() as tx:
            tx.insert_case(case_record("c4"))
        with pytest.raises(sa.exc.IntegrityError) as refused, store.write() as tx:
            tx.insert_case(case_record("c4"))
        assert "Иванова" not in str(refused.value)
        assert "hidden" in str(refused.value)
    finally:
        store.dispose()
