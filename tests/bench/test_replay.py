"""The limit replays what the engine sent the way the engine sent it.

A step's statements that the engine put in one PostgreSQL pipeline are replayed in one
pipeline, and the replay leaves the limit's database as the engine left its own.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from bench.capture import Recorder, replay_psycopg
from engine.api import Engine
from engine.testing import ManualClock, person
from tests.conftest import START


class _CountingPipelines(psycopg.Connection[Any]):
    """A real connection that counts the pipelines it enters."""

    pipelines = 0

    def pipeline(self) -> Any:
        self.pipelines += 1
        return super().pipeline()


def _libpq(url: str) -> str:
    return sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _rows(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(_libpq(url)) as conn:
        cases = conn.execute("SELECT id, state, version, last_hash FROM cases ORDER BY id")
        log = conn.execute("SELECT case_id, seq, hash FROM transition_log ORDER BY case_id, seq")
        timers = conn.execute(
            "SELECT case_id, name, status, due_at FROM deadlines ORDER BY case_id, name, id"
        )
        return [*cases.fetchall(), *log.fetchall(), *timers.fetchall()]


@pytest.mark.pg
def test_a_pipelined_step_is_replayed_in_one_pipeline_to_the_same_rows(
    pg_url: str, second_pg_url: str
) -> None:
    limit_url = second_pg_url
    clock = ManualClock(START)
    with Engine(pg_url, clock=clock) as eng, Engine(limit_url, clock=clock):
        recorder = Recorder(eng.store.engine)
        recorder.on = True
        case_id = eng.open_case("restore", person("restore", 1), "portal:web").id
        opened = recorder.take()
        eng.fire(case_id, "take", "operator:ivanova")
        eng.fire(case_id, "request_info", "operator:ivanova", comment="Уточните адрес")
        stepped = recorder.take()
    # two reads, then the writes after the case's UPDATE: a pipeline each, per step
    assert [e[4] for e in stepped if e[0] == "x"] == [
        *(True, True, False, True, True),  # take: reads; UPDATE; log row, notice
        *(True, True, False, True, True, True, True, True),  # request_info
    ]
    with _CountingPipelines.connect(_libpq(limit_url)) as conn:
        replay_psycopg(conn, opened)
        before = conn.pipelines
        replay_psycopg(conn, stepped)
        assert conn.pipelines - before == 4
    assert _rows(limit_url) == _rows(pg_url)
