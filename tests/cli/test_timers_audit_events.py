"""``omsflow db``, ``timers``, ``worker``, ``audit`` and ``events``: shapes and exit codes."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import sqlite3
import sys
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from engine.api import Engine
from engine.machines.log import GENESIS, LogEntry
from engine.store.repository import normalize_url
from tests.cli.helpers import AUDITOR, ENTRY_KEYS, OPERATOR, SYSTEM, Cli

# restore opened Mon 23.11 10:00 MSK: 3 working days -> due 27.11 00:00, 5 -> due 01.12 00:00
TARGET_DUE = "2026-11-26T21:00:00+00:00"
LIMIT_DUE = "2026-11-30T21:00:00+00:00"


def tamper(url: str, case_id: str, seq: int) -> None:
    """Rewrite a log row behind the engine's back (the schema refuses it, so lift that first)."""
    if url.startswith("sqlite:///"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        with conn:
            conn.execute("DROP TRIGGER transition_log_no_update")
            conn.execute(
                "UPDATE transition_log SET comment = 'forged' WHERE case_id = ? AND seq = ?",
                (case_id, seq),
            )
        conn.close()
        return
    engine = sa.create_engine(normalize_url(url))
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE transition_log DISABLE TRIGGER USER")
        conn.execute(
            sa.text("UPDATE transition_log SET comment = 'forged' WHERE case_id = :c AND seq = :s"),
            {"c": case_id, "s": seq},
        )
    engine.dispose()


# ---- db ----------------------------------------------------------------------------------------


def test_db_current_and_upgrade(tmp_path: Path) -> None:
    cli = Cli(f"sqlite:///{tmp_path / 'fresh.db'}")
    before = cli.ok("db", "current")
    assert before["current"] is None
    assert before["up_to_date"] is False
    head = before["head"]
    assert head
    assert "db upgrade" in cli.run("db", "current", as_json=False).stdout
    upgraded = cli.ok("db", "upgrade")
    assert upgraded == {"from": None, "to": head, "changed": True}
    assert cli.ok("db", "upgrade")["changed"] is False
    assert "already" in cli.run("db", "upgrade", as_json=False).stdout
    assert cli.ok("db", "current") == {"current": head, "head": head, "up_to_date": True}
    assert "up to date" in cli.run("db", "current", as_json=False).stdout


# ---- timers and the worker ----------------------------------------------------------------------


def test_timers_list_and_run(any_cli: Cli) -> None:
    case_id = any_cli.open("restore")
    timers = any_cli.ok("timers", "list")
    assert [(t["name"], t["due_at"]) for t in timers] == [
        ("decision_target", TARGET_DUE),
        ("decision_limit", LIMIT_DUE),
    ]
    assert {"id", "case_id", "name", "trigger", "status", "due_at", "unit", "amount"} <= set(
        timers[0]
    )
    assert any_cli.ok("timers", "list", "--due") == []
    due = any_cli.ok("timers", "list", "--due", now="2026-11-27T09:00:00+03:00")
    assert [t["name"] for t in due] == ["decision_target"]
    assert "decision_limit" in any_cli.run("timers", "list", as_json=False).stdout

    report = any_cli.ok("timers", "run", "--until", "2026-11-27T00:00:00+03:00")
    assert report["fired"] == 1
    assert report["stale"] == report["failed"] == 0
    outcome = report["outcomes"][0]
    assert outcome["case_id"] == case_id
    assert outcome["trigger"] == "target_missed"
    assert outcome["fired"] is True
    assert any_cli.ok("case", "show", case_id)["flags"] == ["target_missed"]
    nothing = any_cli.run("timers", "run", as_json=False)
    assert nothing.exit_code == 0
    assert "0 fired" in nothing.stdout


def test_worker_once_fires_what_is_due(cli: Cli) -> None:
    case_id = cli.open("restore")
    human = cli.run("worker", "--once", now="2026-12-01T09:00:00+03:00", as_json=False)
    assert human.exit_code == 0, human.stderr
    assert "2 fired" in human.stdout
    assert "decision_limit" in human.stdout
    case = cli.ok("case", "show", case_id)
    assert case["flags"] == ["overdue", "target_missed"]
    assert case["overdue"] is True
    assert cli.ok("case", "list", "--overdue")[0]["id"] == case_id
    again = cli.ok("worker", "--once", now="2026-12-01T09:00:00+03:00")
    assert again["fired"] == 0


def test_worker_without_apscheduler_says_so_1(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    # the worker imports APScheduler only after its first catch-up; the CLI still refuses
    # at once, with its own error, when the install lacks it
    monkeypatch.setitem(sys.modules, "apscheduler", None)
    assert cli.fails(1, "worker")["error"] == "worker_missing"


def test_timers_run_needs_an_aware_instant_2(cli: Cli) -> None:
    assert cli.fails(2, "timers", "run", "--until", "2026-11-27T00:00")["error"] == "usage"


@pytest.mark.skipif(
    importlib.util.find_spec("engine.timers.worker") is None,
    reason="engine.timers.worker is not there yet",
)
def test_worker_runs_until_stopped(cli: Cli) -> None:
    import signal
    import subprocess
    import sys
    import time

    case_id = cli.open("restore")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "engine.cli",
            "--db",
            cli.url,
            "--clock",
            "2026-12-01T09:00:00+03:00",
            "worker",
            "--poll",
            "0.2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if "overdue" in cli.ok("case", "show", case_id)["flags"]:
                break
            time.sleep(0.2)
        assert "overdue" in cli.ok("case", "show", case_id)["flags"]
    finally:
        process.send_signal(signal.SIGINT)
        _out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err


# ---- audit --------------------------------------------------------------------------------------


def _two_cases(cli: Cli) -> tuple[str, str]:
    first = cli.open("restore")
    second = cli.open("child_link", now="2026-11-23T11:00:00+03:00")
    cli.ok("case", "fire", first, "take", actor=OPERATOR, now="2026-11-23T12:00:00+03:00")
    cli.ok("case", "fire", second, "take", actor=SYSTEM, now="2026-11-23T12:30:00+03:00")
    return first, second


def test_audit_log_formats(any_cli: Cli) -> None:
    first, second = _two_cases(any_cli)
    as_array = any_cli.ok("audit", "log")
    assert [(e["case_id"], e["seq"]) for e in as_array] == [
        (first, 1),
        (second, 1),
        (first, 2),
        (second, 2),
    ]
    for entry in as_array:
        assert set(entry) >= ENTRY_KEYS

    jsonl = any_cli.run("audit", "log", "--format", "jsonl", as_json=False).stdout
    lines = [json.loads(line) for line in jsonl.splitlines()]
    assert lines == as_array

    text = any_cli.run("audit", "log", "--format", "csv", as_json=False).stdout
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["trigger"] for r in rows] == ["open", "open", "take", "take"]
    assert set(rows[0]) >= ENTRY_KEYS
    assert rows[0]["from_state"] == ""

    table = any_cli.run("audit", "log", as_json=False).stdout
    assert "pending → in_review" in table
    assert table.count("\n") == 2 + 4


def test_audit_log_filters(cli: Cli) -> None:
    first, _second = _two_cases(cli)
    assert [e["seq"] for e in cli.ok("audit", "log", "--case", first)] == [1, 2]
    assert [e["actor"] for e in cli.ok("audit", "log", "--actor", OPERATOR)] == [OPERATOR]
    window = cli.ok(
        "audit",
        "log",
        "--since",
        "2026-11-23T11:00:00+03:00",
        "--until",
        "2026-11-23T12:30:00+03:00",
    )
    assert [e["trigger"] for e in window] == ["open", "take"]
    assert cli.ok("audit", "log", "--case", "nope") == []
    assert cli.run("audit", "log", "--since", "monday", as_json=False).exit_code == 2


def test_audit_log_to_a_file(cli: Cli, tmp_path: Path) -> None:
    _two_cases(cli)
    target = tmp_path / "log.jsonl"
    summary = cli.ok("audit", "log", "--format", "jsonl", "-o", str(target))
    assert summary == {"file": str(target), "format": "jsonl", "entries": 4}
    assert len(target.read_text(encoding="utf-8").splitlines()) == 4
    csv_file = tmp_path / "log.csv"
    human = cli.run("audit", "log", "--format", "csv", "-o", str(csv_file), as_json=False)
    assert "4 entries written" in human.stdout
    assert csv_file.read_text(encoding="utf-8").startswith("seq,case_id,trigger")


def test_audit_log_streams_in_constant_memory(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = datetime(2026, 11, 23, 7, tzinfo=UTC)
    entry = LogEntry(
        case_id="c" * 36,
        seq=1,
        trigger="take",
        from_state="pending",
        to_state="in_review",
        actor=OPERATOR,
        reason=None,
        comment=None,
        changes={"applicant.full_name": {"before": "А Б В", "after": "А Б Г"}},
        correlation_id=None,
        at=at,
        recorded_at=at,
        prev_hash=GENESIS,
    ).sealed()
    count = 10_000

    def many(self: Engine, **_filters: Any) -> Iterator[LogEntry]:
        for seq in range(1, count + 1):
            # a fresh 1 kB comment each: holding the entries would cost over 10 MB
            yield LogEntry(**{**entry.__dict__, "seq": seq, "comment": f"{seq:05d}" + "x" * 1000})

    monkeypatch.setattr(Engine, "audit_log", many)
    target = tmp_path / "big.csv"
    tracemalloc.start()
    try:
        result = cli.run("audit", "log", "--format", "csv", "-o", str(target))
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["entries"] == count
    assert peak < 6_000_000, peak


def test_audit_verify_passes_then_names_the_first_forged_entry_7(any_cli: Cli) -> None:
    first, second = _two_cases(any_cli)
    any_cli.ok("case", "fire", first, "request_info", "--comment", "скан?", actor=OPERATOR)
    assert any_cli.ok("audit", "verify") == {"ok": True, "broken": {}}
    assert "verifies" in any_cli.run("audit", "verify", as_json=False).stdout

    tamper(any_cli.url, first, 2)
    error = any_cli.fails(7, "audit", "verify", actor=AUDITOR)
    assert error["error"] == "audit_failed"
    assert set(error["details"]["broken"]) == {first}
    assert error["details"]["cases"] == [
        {"case_id": first, "seq": 2, "problem": "content does not match its hash"}
    ]
    human = any_cli.run("audit", "verify", as_json=False)
    assert human.exit_code == 7
    assert f"case {first}, entry 2" in human.stderr
    assert second not in human.stderr


# ---- events (the outbox) ------------------------------------------------------------------------


def test_events_list_and_ack(any_cli: Cli) -> None:
    first, second = _two_cases(any_cli)
    events = any_cli.ok("events", "list")
    assert {e["kind"] for e in events} >= {"receipt"}
    for event in events:
        assert {"event_id", "case_id", "seq", "kind", "audience", "text", "created_at"} <= set(
            event
        )
        assert event["acked_at"] is None
    mine = any_cli.ok("events", "list", "--case", first)
    assert {e["case_id"] for e in mine} == {first}
    assert len(any_cli.ok("events", "list", "--limit", "1")) == 1
    assert "receipt" in any_cli.run("events", "list", as_json=False).stdout

    ids = [e["event_id"] for e in mine]
    acked = any_cli.ok("events", "ack", *ids)
    assert acked == {"acked": len(ids), "event_ids": ids}
    assert any_cli.ok("events", "ack", *ids)["acked"] == 0
    left = any_cli.ok("events", "list")
    assert {e["case_id"] for e in left} == {second}
    assert "acknowledged" in any_cli.run("events", "ack", ids[0], as_json=False).stdout
    assert any_cli.run("events", "ack", as_json=False).exit_code == 2
    assert any_cli.ok("events", "list", "--case", first) == []
