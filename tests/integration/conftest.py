"""An Engine on a fresh database (SQLite, and PostgreSQL when configured) with a manual clock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from engine.api import Engine
from engine.store.repository import CaseRecord
from engine.testing import ManualClock

RECORD_AT = datetime(2026, 12, 31, 20, 59, 59, 123456, tzinfo=UTC)


def case_record(case_id: str, *, at: datetime = RECORD_AT) -> CaseRecord:
    """A case row with every kind of value a column holds (aware times, JSON, booleans)."""
    return CaseRecord(
        id=case_id,
        type="restore",
        definition_version=1,
        state="pending",
        version=1,
        is_open=True,
        overdue=True,
        flags=frozenset({"overdue", "b"}),
        data={"applicant": {"full_name": "Иванова Мария"}, "n": [1, 2.5, None, True]},
        zone="Asia/Vladivostok",
        subject_key="snils:123",
        last_hash="ab" * 32,
        created_at=at,
        updated_at=at + timedelta(microseconds=1),
    )


@pytest.fixture
def eng(db_url: str, clock: ManualClock) -> Iterator[Engine]:
    engine = Engine(db_url, clock=clock)
    try:
        yield engine
    finally:
        engine.close()
