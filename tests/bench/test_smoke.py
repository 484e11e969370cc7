"""The benchmark's smoke variant: every workload runs and reports an engine and a limit figure.

A benchmark is not a test: no speed is asserted here. This only keeps ``python -m bench`` from
rotting (a renamed API, a changed schema, a broken replay) by running it at tiny sizes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.__main__ import run

WORKLOADS = {"open", "steps", "timers", "get_case", "list_overdue", "audit_stream"}
PROCESSES = {"steps_1p", "steps_2p", "steps_4p"}


def _check(result: dict[str, Any], backend: str, extra: set[str]) -> None:
    (only,) = result["runs"]
    assert only["backend"] == backend
    assert set(only["workloads"]) == WORKLOADS | extra
    for name, w in only["workloads"].items():
        assert w["ops"] > 0, name
        assert w["engine_per_s"] > 0, name
        assert w["limit_per_s"] > 0, name
        assert w["ratio"] is not None, name
        assert w["statements_per_op"] >= 0, name
    worker = only["worker"]
    assert worker["pending_timers"] > 0
    assert worker["first_timer_s"] is not None
    assert worker["peak_rss_mb"] > 0


def test_smoke_sqlite(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    run(
        sizes=[200],
        backends=["sqlite"],
        syncs=["NORMAL"],
        smoke=True,
        pg_url="",
        out=out,
        quiet=True,
        work_dir=tmp_path,
    )
    _check(json.loads(out.read_text(encoding="utf-8")), "sqlite", PROCESSES)


@pytest.mark.pg
def test_smoke_postgresql(pg_url: str, tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    run(
        sizes=[200],
        backends=["postgresql"],
        syncs=["FULL"],
        smoke=True,
        pg_url=pg_url,
        out=out,
        quiet=True,
        work_dir=tmp_path,
    )
    _check(json.loads(out.read_text(encoding="utf-8")), "postgresql", PROCESSES)
