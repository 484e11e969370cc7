"""``omsflow`` as a real process: exit codes, clean JSON on stdout, logs on stderr."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from engine.applications import example_application
from tests.cli.helpers import NOW, OPERATOR, PORTAL, ROOT, Cli, run_process
from tests.cli.test_timers_audit_events import tamper


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'process.db'}"


def _open(url: str, cwd: Path) -> str:
    done = run_process(
        ["--db", url, "--clock", NOW, "--as", PORTAL, "case", "open", "restore", "--data", "-"],
        cwd=cwd,
        stdin=json.dumps(example_application("restore")),
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_every_exit_code_from_a_real_process(url: str, tmp_path: Path) -> None:
    case_id = _open(url, tmp_path)
    base = ["--db", url, "--clock", NOW, "--json"]
    expected = [
        (0, [*base, "case", "show", case_id], None),
        (2, [*base, "case", "fire", case_id, "take"], "usage"),
        (3, [*base, "case", "show", "no-such-case"], "not_found"),
        (4, [*base, "--as", OPERATOR, "case", "fire", case_id, "take", "--data", "-"], None),
        (5, [*base, "--as", OPERATOR, "case", "fire", case_id, "approve"], "not_permitted"),
        (
            6,
            [*base, "--as", OPERATOR, "case", "fire", case_id, "take", "--expect-version", "9"],
            "conflict",
        ),
    ]
    for code, args, error in expected:
        stdin = "not json" if "--data" in args else None
        done = run_process(args, cwd=tmp_path, stdin=stdin)
        assert done.returncode == code, (args, done.stdout, done.stderr)
        body = json.loads(done.stdout)
        if code:
            assert set(body) == {"error", "message", "details"}
            assert body["error"] == (error or "invalid_input")
    tamper(url, case_id, 1)
    done = run_process([*base, "audit", "verify"], cwd=tmp_path)
    assert done.returncode == 7
    assert json.loads(done.stdout)["details"]["cases"][0]["seq"] == 1


def test_usage_without_json_is_clicks_own(url: str, tmp_path: Path) -> None:
    done = run_process(["--db", url, "case", "nonsense"], cwd=tmp_path)
    assert done.returncode == 2
    assert done.stdout == ""
    assert "nonsense" in done.stderr
    helped = run_process(["--help"], cwd=tmp_path)
    assert helped.returncode == 0
    for command in ("db", "definitions", "case", "timers", "worker", "audit", "events", "demo"):
        assert command in helped.stdout


def test_logs_go_to_stderr_masked_and_stdout_stays_one_json_document(
    url: str, tmp_path: Path
) -> None:
    data = example_application("restore")
    done = run_process(
        [
            "--db",
            url,
            "--clock",
            NOW,
            "--as",
            PORTAL,
            "--json",
            "--log-level",
            "info",
            "case",
            "open",
            "restore",
            "--data",
            "-",
            "--comment",
            "СНИЛС 112-233-445 95",
        ],
        cwd=tmp_path,
        stdin=json.dumps(data),
    )
    assert done.returncode == 0, done.stderr
    case = json.loads(done.stdout)
    events = [json.loads(line) for line in done.stderr.splitlines()]
    steps = [e for e in events if e["event"] == "step"]
    assert steps
    assert steps[0]["case_id"] == case["id"]
    assert "112-233-445" not in done.stderr
    assert "11223344595" not in done.stderr
    quiet = run_process(["--db", url, "--json", "case", "list"], cwd=tmp_path)
    assert quiet.stderr == ""


def test_a_bad_log_level_is_a_usage_error(url: str, tmp_path: Path) -> None:
    done = run_process(["--db", url, "--log-level", "loud", "case", "list"], cwd=tmp_path)
    assert done.returncode == 2


def test_the_console_script(url: str, tmp_path: Path) -> None:
    script = shutil.which("omsflow")
    if script is None:
        pytest.skip("the omsflow script is not installed (pip install -e .)")
    case_id = _open(url, tmp_path)
    done = run_process(
        ["--db", url, "--json", "case", "show", case_id], cwd=tmp_path, program=[script]
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["id"] == case_id


def test_importing_the_package_configures_no_logging(tmp_path: Path) -> None:
    code = (
        "import structlog, engine, engine.api, engine.cli, engine.demo, engine.logs, "
        "engine.machines.graph\n"
        "assert not structlog.is_configured()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={"PYTHONPATH": str(ROOT), "PATH": ""},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def test_a_database_that_cannot_be_opened_is_reported(tmp_path: Path) -> None:
    cli = Cli(f"sqlite:///{tmp_path / 'missing-dir' / 'x.db'}")
    error = cli.fails(1, "case", "list")
    assert error["error"] == "store_unavailable"
