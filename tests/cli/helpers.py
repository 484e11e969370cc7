"""Helpers of the CLI tests: ``omsflow`` through Click's runner and as a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from engine.applications import example_application
from engine.cli import app

ROOT = Path(__file__).resolve().parents[2]
# Monday 23 November 2026, 10:00 in Moscow: the START of tests/conftest.py
NOW = "2026-11-23T10:00:00+03:00"
OPERATOR = "operator:ivanova"
PORTAL = "portal:gosuslugi"
SYSTEM = "system:foms"
AUDITOR = "auditor:kozlova"

CASE_KEYS = {
    "id",
    "type",
    "definition_version",
    "state",
    "label",
    "version",
    "data",
    "flags",
    "deadlines",
    "allowed_triggers",
    "created_at",
    "updated_at",
}
DEADLINE_KEYS = {"name", "trigger", "due_at"}
ENTRY_KEYS = {
    "seq",
    "case_id",
    "trigger",
    "from_state",
    "to_state",
    "actor",
    "reason",
    "comment",
    "changes",
    "at",
    "hash",
}
ERROR_KEYS = {"error", "message", "details"}


@dataclass
class Cli:
    """``omsflow --db URL --clock NOW [--as ACTOR] [--json] ARGS`` in process."""

    url: str
    now: str = NOW
    runner: CliRunner = field(default_factory=CliRunner)

    def run(
        self,
        *args: str,
        actor: str | None = None,
        as_json: bool = True,
        now: str | None = None,
        stdin: str | None = None,
        env: dict[str, str] | None = None,
    ) -> Result:
        head = ["--db", self.url, "--clock", now or self.now]
        if actor:
            head += ["--as", actor]
        if as_json:
            head.append("--json")
        return self.runner.invoke(app, [*head, *args], input=stdin, env=env)

    def ok(self, *args: str, **kwargs: Any) -> Any:
        """Run with --json, assert exit 0 and return the parsed JSON document."""
        result = self.run(*args, **kwargs)
        assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
        return json.loads(result.stdout)

    def fails(self, code: int, *args: str, **kwargs: Any) -> dict[str, Any]:
        """Run with --json, assert the exit code and the error object; return the object."""
        result = self.run(*args, **kwargs)
        assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
        body: dict[str, Any] = json.loads(result.stdout)
        assert set(body) == ERROR_KEYS
        return body

    def open(
        self, type_: str = "restore", actor: str = PORTAL, now: str | None = None, **patch: Any
    ) -> str:
        data = example_application(type_)
        data.update(patch)
        case = self.ok(
            "case", "open", type_, "--data", "-", actor=actor, stdin=json.dumps(data), now=now
        )
        case_id: str = case["id"]
        return case_id


def run_process(
    args: Sequence[str], *, cwd: Path, stdin: str | None = None, program: Sequence[str] = ()
) -> subprocess.CompletedProcess[str]:
    """``python -m engine.cli ARGS`` (or ``program``) as a real process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMSFLOW_")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    command = [*(program or (sys.executable, "-m", "engine.cli")), *args]
    return subprocess.run(
        command,
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
