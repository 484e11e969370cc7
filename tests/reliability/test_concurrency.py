"""Guarantee 1: concurrent operators lose no update.

Threads (SQLite and PostgreSQL) and processes (PostgreSQL) fire triggers on the same few cases,
half of them with the version they read (``expected_version``) and half without. Afterwards
every case's state is the replay of its log, versions are gapless, and every step that
reported success is in the log: successful steps == log rows written, lost updates == 0.
"""

from __future__ import annotations

import json
import random
import threading
from pathlib import Path
from typing import Any

import pytest

from engine.api import Engine
from engine.errors import Conflict, NotPermitted
from engine.testing import ManualClock, person
from tests.conftest import START
from tests.reliability.conftest import check_consistency, python_process, slow

OP = "operator:ivanova"
PORTAL = "portal:gosuslugi"

# The trigger that moves a restore case on from each state, and who fires it; the
# request_info/reply pair loops forever, so the cases never run out of steps.
NEXT = {
    "pending": ("take", OP),
    "in_review": ("request_info", OP),
    "needs_clarification": ("reply", PORTAL),
}

OPERATOR_LOOP = """
import json, random, sys
from datetime import datetime
from engine.api import Engine
from engine.errors import Conflict, NotPermitted
from engine.logs import configure
from engine.testing import ManualClock
configure(json=True, level="WARNING")
url, start, steps, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
ids = sys.argv[5].split(",")
NEXT = {"pending": ("take", "operator:p"), "in_review": ("request_info", "operator:p"),
        "needs_clarification": ("reply", "portal:gosuslugi")}
rng = random.Random(seed)
eng = Engine(url, clock=ManualClock(datetime.fromisoformat(start)), migrate=False)
out = {"attempted": 0, "ok": [], "conflicts": 0, "refused": 0}
for _ in range(steps):
    case_id = rng.choice(ids)
    case = eng.get_case(case_id)
    trigger, actor = NEXT[case.state]
    expected = case.version if rng.random() < 0.5 else None
    out["attempted"] += 1
    try:
        step = eng.fire(case_id, trigger, actor, comment="c", expected_version=expected)
        out["ok"].append([case_id, step.entry.seq, step.entry.hash])
    except Conflict:
        out["conflicts"] += 1
    except NotPermitted:
        out["refused"] += 1
eng.close()
print(json.dumps(out))
"""


def _seed(eng: Engine, n: int) -> list[str]:
    return [eng.open_case("restore", person("restore", i), PORTAL).id for i in range(n)]


def _operate(eng: Engine, ids: list[str], steps: int, seed: int, out: dict[str, Any]) -> None:
    rng = random.Random(seed)
    for _ in range(steps):
        case_id = rng.choice(ids)
        case = eng.get_case(case_id)
        trigger, actor = NEXT[case.state]
        expected = case.version if rng.random() < 0.5 else None
        out["attempted"] += 1
        try:
            step = eng.fire(case_id, trigger, actor, comment="c", expected_version=expected)
            out["ok"].append((case_id, step.entry.seq, step.entry.hash))
        except Conflict:
            out["conflicts"] += 1
        except NotPermitted:
            # fired without a version, the case moved to a state where the trigger is wrong
            out["refused"] += 1


def _check(url: str, ids: list[str], results: list[dict[str, Any]]) -> dict[str, Any]:
    totals = check_consistency(url)
    ok = [tuple(item) for r in results for item in r["ok"]]
    with Engine(url, migrate=False) as eng:
        assert eng.verify() == {}
        logged = {(e.case_id, e.seq, e.hash) for e in eng.audit_log() if e.trigger != "open"}
    lost = [s for s in ok if s not in logged]
    # each success is one distinct row, and every non-open row is some success
    assert len(set(ok)) == len(ok), "two successes reported the same log entry"
    assert lost == []
    assert len(ok) == totals["log_rows"] - len(ids)
    attempted = sum(r["attempted"] for r in results)
    conflicts = sum(r["conflicts"] for r in results)
    refused = sum(r["refused"] for r in results)
    assert attempted == len(ok) + conflicts + refused
    assert conflicts > 0, "no contention: the test proved nothing"
    return {
        "attempted": attempted,
        "succeeded": len(ok),
        "conflicts": conflicts,
        "refused_after_race": refused,
        "log_rows_written": totals["log_rows"] - len(ids),
        "lost_updates": len(lost),
    }


def _threads(url: str, clock: ManualClock, n_threads: int, steps: int) -> dict[str, Any]:
    with Engine(url, clock=clock) as eng:
        ids = _seed(eng, 3)
        results = [
            {"attempted": 0, "ok": [], "conflicts": 0, "refused": 0} for _ in range(n_threads)
        ]
        threads = [
            threading.Thread(target=_operate, args=(eng, ids, steps, seed, results[seed]))
            for seed in range(n_threads)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    return _check(url, ids, results)


def test_threads_lose_no_update(db_url: str, clock: ManualClock, figures: dict[str, Any]) -> None:
    figures.update(_threads(db_url, clock, 6, 40))


def _processes(url: str, tmp: Path, n_procs: int, steps: int) -> dict[str, Any]:
    with Engine(url, clock=ManualClock(START)) as eng:
        ids = _seed(eng, 3)
    procs = [
        python_process(
            OPERATOR_LOOP, url, START.isoformat(), str(steps), str(seed), ",".join(ids), tmp=tmp
        )
        for seed in range(n_procs)
    ]
    results = []
    for p in procs:
        stdout, _ = p.communicate(timeout=600)
        assert p.returncode == 0, p.args  # its stderr is in the .err file beside the script
        results.append(json.loads(stdout))
    return _check(url, ids, results)


@pytest.mark.pg
def test_processes_lose_no_update(pg_url: str, tmp_path: Path, figures: dict[str, Any]) -> None:
    figures.update(_processes(pg_url, tmp_path, 4, 40))


@pytest.mark.pg
@pytest.mark.slow
@pytest.mark.timeout(1800)
@slow
def test_processes_lose_no_update_long(
    pg_url: str, tmp_path: Path, figures: dict[str, Any]
) -> None:
    figures.update(_processes(pg_url, tmp_path, 8, 500))


@pytest.mark.slow
@pytest.mark.timeout(1800)
@slow
def test_threads_lose_no_update_long(
    db_url: str, clock: ManualClock, figures: dict[str, Any]
) -> None:
    figures.update(_threads(db_url, clock, 12, 300))
