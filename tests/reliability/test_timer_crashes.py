"""Guarantee 2: timers fire exactly once although workers are SIGKILLed at random moments.

Several worker processes on PostgreSQL fire thousands of due timers (``Engine.fire_due_timers``
in a loop); a harness kills one of them with SIGKILL at random moments and restarts it. At the
end no timer is still armed, each fired exactly once (one log entry per deadline row, by
``system:timer``), and the figure "worst lateness after restart" is the longest stretch during
which due timers were waiting but none fired, measured from a kill.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from engine.api import Engine
from engine.testing import ManualClock
from tests.conftest import START
from tests.reliability.conftest import python_process, raw_engine, slow

pytestmark = pytest.mark.pg

LATER = START + timedelta(days=10)

# Each worker fires in small batches until nothing is due, then reports and exits 0.
WORKER = """
import json, sys, time
from datetime import datetime
from engine.api import Engine
from engine.logs import configure
from engine.testing import ManualClock
configure(json=True, level="WARNING")
until = datetime.fromisoformat(sys.argv[2])
eng = Engine(sys.argv[1], clock=ManualClock(until), migrate=False)
total = {"fired": 0, "stale": 0, "failed": 0}
while True:
    report = eng.fire_due_timers(batch=int(sys.argv[3]))
    for k in total:
        total[k] += getattr(report, k)
    nxt = eng.next_due()
    if nxt is None or nxt > until:
        break
    if report.fired == 0 and report.stale == 0:
        time.sleep(0.02)  # the due ones left are locked by another worker (or a dead one)
eng.close()
print(json.dumps(total))
"""

SEED = """
import sys
from datetime import datetime
from engine.api import Engine
from engine.logs import configure
from engine.testing import ManualClock, person
configure(json=True, level="WARNING")
url, start, first, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
with Engine(url, clock=ManualClock(datetime.fromisoformat(start)), migrate=False) as eng:
    for n in range(first, first + count):
        eng.open_case("restore", person("restore", n), "portal:gosuslugi")
print("{}")
"""


def _seed(url: str, cases: int, tmp: Path) -> None:
    Engine(url, clock=ManualClock(START)).close()  # migrate once, before the seeders race
    parts = 2
    procs = [
        python_process(
            SEED,
            url,
            START.isoformat(),
            str(i * cases // parts),
            str(cases // parts),
            tmp=tmp,
            name="seed.py",
        )
        for i in range(parts)
    ]
    for p in procs:
        p.communicate(timeout=1800)
        assert p.returncode == 0


def _run(url: str, tmp: Path, cases: int, kills_wanted: int, workers: int) -> dict[str, Any]:
    began = time.monotonic()
    _seed(url, cases, tmp)
    seeded = time.monotonic()
    db = raw_engine(url)

    def fired() -> int:
        with db.connect() as conn:
            q = sa.text("SELECT COUNT(*) FROM deadlines WHERE status = 'fired'")
            return int(conn.execute(q).scalar_one())

    def start() -> subprocess.Popen[str]:
        return python_process(WORKER, url, LATER.isoformat(), "20", tmp=tmp, name="worker.py")

    rng = random.Random(7)
    pool = [start() for _ in range(workers)]
    finished: list[subprocess.Popen[str]] = []
    kills = 0
    worst_stall = 0.0
    total = 2 * cases
    while True:
        # polled once each: a worker that exits between two polls must not land in both
        # lists, or it is read twice and its second read is empty
        exits = [(p, p.poll()) for p in pool]
        finished += [p for p, code in exits if code is not None]
        pool = [p for p, code in exits if code is None]
        if not pool:
            break
        time.sleep(rng.uniform(0.005, 0.05))
        # Kills are paced by progress, not by the clock: spread over the run however fast
        # the workers fire, each one mid-run.
        done = fired()
        if (
            kills >= kills_wanted
            or done >= total
            or done < total * (kills + 1) // (kills_wanted + 1)
        ):
            continue
        victim = rng.choice(pool)
        if victim.poll() is not None:
            continue
        victim.send_signal(signal.SIGKILL)
        victim.communicate(timeout=30)
        kills += 1
        pool.remove(victim)
        killed_at = time.monotonic()
        before = fired()
        pool.append(start())
        if before < total:
            # how long due timers wait after a kill before any worker fires the next one
            while fired() == before and time.monotonic() - killed_at < 60:
                time.sleep(0.01)
            worst_stall = max(worst_stall, time.monotonic() - killed_at)
    for p in finished:
        stdout, _ = p.communicate(timeout=60)
        if p.returncode != -signal.SIGKILL:
            assert p.returncode == 0, p.returncode
            json.loads(stdout)
    # a last worker sweeps up whatever the last kill may have left (nothing, if all went well)
    sweeper = start()
    sweeper.communicate(timeout=600)
    assert sweeper.returncode == 0

    with db.connect() as conn:
        statuses = dict(
            conn.execute(sa.text("SELECT status, COUNT(*) FROM deadlines GROUP BY status")).all()
        )
        per_deadline = conn.execute(
            sa.text(
                "SELECT d.id, COUNT(l.id) FROM deadlines d LEFT JOIN transition_log l "
                "ON l.case_id = d.case_id AND l.actor = 'system:timer' "
                "AND l.trigger = d.trigger AND l.seq = d.closed_seq GROUP BY d.id"
            )
        ).all()
        timer_rows = conn.execute(
            sa.text("SELECT COUNT(*) FROM transition_log WHERE actor = 'system:timer'")
        ).scalar_one()
        doubles = conn.execute(
            sa.text(
                "SELECT COUNT(*) FROM (SELECT case_id, trigger FROM transition_log "
                "WHERE actor = 'system:timer' GROUP BY case_id, trigger HAVING COUNT(*) > 1) x"
            )
        ).scalar_one()
    db.dispose()
    never = sum(1 for _id, n in per_deadline if n == 0)
    twice = int(doubles) + sum(1 for _id, n in per_deadline if n > 1)
    elapsed = time.monotonic() - seeded
    assert kills >= kills_wanted
    assert statuses == {"fired": total}
    assert never == 0
    assert twice == 0
    assert timer_rows == total
    with Engine(url, migrate=False) as eng:
        assert eng.verify() == {}
    return {
        "timers": total,
        "workers": workers,
        "kills": kills,
        "fired_twice": twice,
        "never_fired": never,
        "worst_lateness_after_restart_s": round(worst_stall, 3),
        "seed_seconds": round(seeded - began, 1),
        "firing_seconds": round(elapsed, 1),
    }


def test_timers_fire_once_while_workers_are_killed(
    tmp_path: Path, pg_url: str, figures: dict[str, Any]
) -> None:
    figures.update(_run(pg_url, tmp_path, cases=600, kills_wanted=5, workers=3))


@pytest.mark.slow
@pytest.mark.timeout(1800)
@slow
def test_timers_fire_once_while_workers_are_killed_long(
    tmp_path: Path, pg_url: str, figures: dict[str, Any]
) -> None:
    figures.update(_run(pg_url, tmp_path, cases=15000, kills_wanted=25, workers=3))
