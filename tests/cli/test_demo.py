"""``omsflow demo``: a fresh database with every type, the holidays crossed, timers fired."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine.cli import app
from tests.cli.helpers import run_process

TYPES = {"child_link", "new_issue", "paper_duplicate", "replacement", "restore"}


def test_the_demo_runs_as_a_process_and_leaves_a_database(tmp_path: Path) -> None:
    done = run_process(["demo"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    created = list(tmp_path.glob("omsflow-demo-*.db"))
    assert len(created) == 1
    out = done.stdout
    assert created[0].name in out
    assert "timeline" in out
    assert "no_reply" in out
    assert "New Year holidays" in out
    assert "hash chains verify" in out
    for type_ in TYPES:
        assert type_ in out
    assert "case list" in out

    # the database is there to explore with the other commands
    url = f"sqlite:///{created[0]}"
    listed = run_process(["--db", url, "--json", "case", "list"], cwd=tmp_path)
    cases = json.loads(listed.stdout)
    assert {c["type"] for c in cases} == TYPES
    verified = run_process(["--db", url, "audit", "verify"], cwd=tmp_path)
    assert verified.returncode == 0

    again = run_process(["demo"], cwd=tmp_path)
    assert again.returncode == 0
    assert len(list(tmp_path.glob("omsflow-demo-*.db"))) == 2


def test_the_demo_json_summary(tmp_path: Path) -> None:
    target = tmp_path / "demo.db"
    result = CliRunner().invoke(app, ["--json", "demo", "--file", str(target)])
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["database"] == str(target)
    assert target.exists()
    assert summary["audit_ok"] is True
    cases = summary["cases"]
    assert {c["type"] for c in cases} == TYPES
    states = {(c["type"], c["state"]) for c in cases}
    assert ("replacement", "rejected") in states
    assert ("paper_duplicate", "delivered") in states
    assert any(c["overdue"] for c in cases)
    timeline = [row for row in summary["timeline"] if row["trigger"]]
    no_reply = [row for row in timeline if row["reason"] == "no_reply"]
    assert len(no_reply) == 1
    assert no_reply[0]["actor"] == "system:timer"
    # the second term of a clarification crosses 31.12–10.01: it ends with 11 January
    assert no_reply[0]["at"] == "2027-01-11T21:00:00+00:00"
    triggers = [row["trigger"] for row in timeline]
    for trigger in ("resubmit", "reply", "remind", "expire", "produced", "flag_overdue"):
        assert trigger in triggers
    assert summary["finished_at"].startswith("2027-01-29")
    assert summary["try"]


def test_the_demo_never_reuses_a_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    existing = tmp_path / "taken.db"
    existing.write_bytes(b"")
    runner = CliRunner()
    result = runner.invoke(app, ["demo", "--file", str(existing)])
    assert result.exit_code == 2
    result = runner.invoke(app, ["--db", f"sqlite:///{existing}", "demo"])
    assert result.exit_code == 2
    result = runner.invoke(app, ["--db", "postgresql://nobody@localhost/x", "demo"])
    assert result.exit_code == 2
    # a --db from the environment is left alone: the demo makes its own file
    env = {"OMSFLOW_DB": f"sqlite:///{existing}"}
    result = runner.invoke(app, ["--clock", "2026-11-23T10:00:00+03:00", "demo"], env=env)
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "omsflow-demo-20261123-070000.db").exists()
    assert existing.read_bytes() == b""
