"""Several worker processes on one PostgreSQL database: every timer fires once, even when killed."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from engine.api import Engine
from engine.testing import ManualClock, person
from tests.conftest import START

pytestmark = pytest.mark.pg

CASES = 1000  # each arms two timers (decision target and limit): 2,000 due timers
LATER = START + timedelta(days=10)

WORKER = """
import json, sys
from datetime import datetime
from engine.api import Engine
from engine.logs import configure
from engine.testing import ManualClock
configure(json=True, level="WARNING")  # logs to stderr: stdout carries only the report
eng = Engine(sys.argv[1], clock=ManualClock(datetime.fromisoformat(sys.argv[2])), migrate=False)
report = eng.fire_due_timers(batch=int(sys.argv[3]))
print(json.dumps({"fired": report.fired, "stale": report.stale, "failed": report.failed}))
"""


def _seed(url: str) -> None:
    with Engine(url, clock=ManualClock(START)) as eng:
        for n in range(CASES):
            eng.open_case("restore", person("restore", n), "portal:gosuslugi")


def _worker(url: str, batch: int, tmp: Path) -> subprocess.Popen[str]:
    script = tmp / "worker.py"
    script.write_text(WORKER, encoding="utf-8")
    return subprocess.Popen(
        [sys.executable, str(script), url, LATER.isoformat(), str(batch)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )


def _assert_each_timer_fired_once(url: str) -> None:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.connect() as conn:
        armed = conn.execute(sa.text("SELECT COUNT(*) FROM deadlines WHERE status = 'armed'"))
        assert armed.scalar_one() == 0
        fired = conn.execute(
            sa.text(
                "SELECT trigger, COUNT(*), COUNT(DISTINCT case_id) FROM transition_log "
                "WHERE actor = 'system:timer' GROUP BY trigger"
            )
        ).all()
        assert sorted(tuple(r) for r in fired) == [
            ("flag_overdue", CASES, CASES),
            ("target_missed", CASES, CASES),
        ]
        statuses = conn.execute(sa.text("SELECT status, COUNT(*) FROM deadlines GROUP BY status"))
        assert dict(statuses.all()) == {"fired": 2 * CASES}
    engine.dispose()
    with Engine(url, migrate=False) as eng:
        assert eng.verify() == {}


def test_three_workers_fire_every_timer_exactly_once(pg_url: str, tmp_path: Path) -> None:
    _seed(pg_url)
    workers = [_worker(pg_url, 25, tmp_path) for _ in range(3)]
    reports = [json.loads(w.communicate(timeout=240)[0]) for w in workers]
    assert all(w.returncode == 0 for w in workers)
    assert sum(r["fired"] for r in reports) == 2 * CASES
    _assert_each_timer_fired_once(pg_url)


def test_a_worker_killed_mid_batch_loses_and_doubles_nothing(pg_url: str, tmp_path: Path) -> None:
    _seed(pg_url)
    engine = sa.create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://", 1))

    def fired() -> int:
        with engine.connect() as conn:
            query = sa.text("SELECT COUNT(*) FROM deadlines WHERE status = 'fired'")
            return int(conn.execute(query).scalar_one())

    kills = 0
    for _ in range(3):
        before = fired()
        victim = _worker(pg_url, 10, tmp_path)
        deadline = time.monotonic() + 60
        while fired() <= before and time.monotonic() < deadline and victim.poll() is None:
            time.sleep(0.05)
        if victim.poll() is None:
            victim.send_signal(signal.SIGKILL)
            kills += 1
        victim.communicate(timeout=30)
    engine.dispose()
    assert kills >= 1
    survivor = _worker(pg_url, 50, tmp_path)
    survivor.communicate(timeout=240)
    assert survivor.returncode == 0
    _assert_each_timer_fired_once(pg_url)
