"""Shared pieces of the reliability battery: the long-run flag, figures, row counts, processes.

Every test of the battery records its figures with the ``figures`` fixture; they are merged into
``tests/reliability/out/figures.json`` (git-ignored) and printed by
``python -m tests.reliability.figures``. The long variants run only with
``OMSFLOW_LONG_TESTS=1``; without it the CI variants run, small enough for CI's time budget.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from engine.store.repository import normalize_url

LONG = os.environ.get("OMSFLOW_LONG_TESTS") == "1"
ROOT = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent / "out"
FIGURES = OUT / "figures.json"
TABLES = ("cases", "transition_log", "deadlines", "outbox", "idempotency_keys", "access_log")

slow = pytest.mark.skipif(not LONG, reason="long variant: set OMSFLOW_LONG_TESTS=1")
"""Marks a long variant; use together with ``pytest.mark.slow``."""

_figures_lock = threading.Lock()


def scale(ci: int, long: int) -> int:
    """The CI figure or, with OMSFLOW_LONG_TESTS=1, the long one."""
    return long if LONG else ci


def record_figures(name: str, values: dict[str, Any]) -> None:
    """Merge one test's figures into the JSON file the report script prints."""
    OUT.mkdir(exist_ok=True)
    with _figures_lock:
        try:
            current = json.loads(FIGURES.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            current = {}
        current[name] = {**values, "variant": "long" if LONG else "ci"}
        FIGURES.write_text(json.dumps(current, indent=2, ensure_ascii=False, sort_keys=True))


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """A dict the test fills; written to the figures file only when the test passed."""
    values: dict[str, Any] = {}
    yield values
    report = getattr(request.node, "rep_call", None)
    if values and report is not None and report.passed:
        record_figures(request.node.name, values)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    rep = outcome.get_result()  # type: ignore[attr-defined]
    if rep.when == "call":
        item.rep_call = rep  # type: ignore[attr-defined]


def counts(url: str) -> dict[str, int]:
    """Rows in every table of the schema (what a refused input must leave unchanged)."""
    engine = sa.create_engine(normalize_url(url))
    try:
        with engine.connect() as conn:
            return {
                t: int(conn.execute(sa.text(f"SELECT COUNT(*) FROM {t}")).scalar_one())
                for t in TABLES
            }
    finally:
        engine.dispose()


def raw_engine(url: str) -> sa.Engine:
    """A plain SQLAlchemy engine on the test database, for checks and tampering behind the API."""
    return sa.create_engine(normalize_url(url))


def check_consistency(url: str) -> dict[str, int]:
    """Every case: state == replay of its log, version == rows, seq 1..n; returns totals.

    Independent of the engine's own reading code: plain SQL over the two tables.
    """
    engine = raw_engine(url)
    try:
        with engine.connect() as conn:
            cases = {
                r[0]: (r[1], r[2], r[3])
                for r in conn.execute(sa.text("SELECT id, state, version, last_hash FROM cases"))
            }
            logs: dict[str, list[tuple[int, str, str]]] = {}
            for cid, seq, to_state, digest in conn.execute(
                sa.text(
                    "SELECT case_id, seq, to_state, hash FROM transition_log ORDER BY case_id, seq"
                )
            ):
                logs.setdefault(cid, []).append((seq, to_state, digest))
    finally:
        engine.dispose()
    assert set(logs) <= set(cases), "log rows of unknown cases"
    for cid, (state, version, head) in cases.items():
        rows = logs.get(cid, [])
        assert [r[0] for r in rows] == list(range(1, len(rows) + 1)), f"{cid}: seq gap"
        assert version == len(rows), f"{cid}: version {version} but {len(rows)} log rows"
        assert rows[-1][1] == state, f"{cid}: state {state} but the log ends in {rows[-1][1]}"
        assert rows[-1][2] == head, f"{cid}: head differs from the last entry's hash"
    return {"cases": len(cases), "log_rows": sum(len(v) for v in logs.values())}


def python_process(
    script: str, *args: str, tmp: Path, name: str = "child.py"
) -> subprocess.Popen[str]:
    """A Python child running ``script`` with ``args``; stdout piped, stderr to a file.

    Children configure logging to stderr (JSON, WARNING): a full stdout pipe would block them.
    """
    # a script file of its own: rewriting a shared one while an earlier child's interpreter
    # was still reading it gave that child an empty script, which exits 0 printing nothing
    child = f"{name}.{uuid.uuid4().hex[:8]}"
    path = tmp / f"{child}.py"
    path.write_text(script, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "OMSFLOW_LONG_TESTS"}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    with (tmp / f"{child}.err").open("w") as stderr:
        return subprocess.Popen(
            [sys.executable, str(path), *args],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            cwd=ROOT,
            env=env,
        )


def wait_until(predicate: Callable[[], bool], timeout: float, step: float = 0.05) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(step)
    return predicate()
