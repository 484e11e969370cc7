"""Every bad application of the corpus, opened through the engine, is refused with its code
and leaves every table of the database as it was."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from engine.api import Engine
from engine.applications import example_application
from engine.errors import InvalidInput
from engine.store.schema import metadata
from engine.testing import ManualClock
from tests.unit.test_applications import CORPUS_ENTRIES, _expand, _set

# the corpus is written for today = 21 November 2026
TODAY_NOON = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)


def _rows(eng: Engine) -> dict[str, int]:
    with eng.store.read() as tx:
        return {
            t.name: tx.conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
            for t in metadata.sorted_tables
        }


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
def test_each_bad_application_is_refused_and_writes_nothing(
    backend: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_url")
    with Engine(url, clock=ManualClock(TODAY_NOON)) as eng:
        eng.open_case("restore", example_application("restore"), "portal:gosuslugi")
        before = _rows(eng)
        for entry in CORPUS_ENTRIES:
            data = example_application(entry["type"])
            for path, value in (entry.get("set") or {}).items():
                _set(data, path, _expand(value))
            with pytest.raises(InvalidInput) as info:
                eng.open_case(entry["type"], data, "portal:gosuslugi")
            expect = entry["expect"]
            assert (expect["field"], expect["rule"]) in {
                (e.field, e.rule) for e in info.value.errors
            }, entry["id"]
            assert info.value.reason == expect.get("reason"), entry["id"]
            assert _rows(eng) == before, entry["id"]
