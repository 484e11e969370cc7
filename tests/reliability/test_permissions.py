"""Guarantee 7: who may do what is exactly what the definitions say, and reveals are logged.

The matrix is built from the YAML: a role may fire a trigger in a source state iff the role is
listed in the transition's roles (a supervisor also where an operator is; an auditor never).
Every role is tried against every (trigger, source state) of every definition through the
compiled definitions the Engine loads (the step function whose result the facade commits),
with a case state built in that source state, so no path through the graph is needed. An
auditor then tries every write command of the CLI: exit 5, nothing written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml
from typer.testing import CliRunner

from engine.api import Engine
from engine.applications import example_application
from engine.cli import app
from engine.errors import InvalidInput, NotPermitted
from engine.machines.compiled import Actor, CaseState, StepRequest
from engine.machines.loader import default_definitions_dir
from engine.testing import ManualClock
from tests.conftest import START
from tests.reliability.conftest import counts

ROLES = ("portal", "operator", "supervisor", "system", "auditor")
AUDITOR = "auditor:kozlova"
DEFINITIONS = {
    d["type"]: d
    for d in (
        yaml.safe_load(p.read_text(encoding="utf-8"))
        for p in sorted(Path(default_definitions_dir()).glob("*.yaml"))
    )
}


def _may(role: str, tr: dict[str, Any]) -> bool:
    roles = set(tr["roles"])
    return role in roles or (role == "supervisor" and "operator" in roles)


def _request(tr: dict[str, Any], role: str) -> StepRequest:
    """A well-formed request for ``tr``: only the role can make it wrong."""
    reasons = tr.get("reasons") or []
    changes: dict[str, Any] = {}
    if tr["trigger"] == "pay":
        changes = {"payment": {"paid": True}}
    return StepRequest(
        trigger=tr["trigger"],
        actor=Actor(role, "matrix"),
        at=START,
        recorded_at=START,
        reason=reasons[0] if "reason" in tr.get("requires", ()) else None,
        comment="комментарий",
        changes=changes,
    )


def test_every_role_against_every_trigger_of_every_definition(figures: dict[str, Any]) -> None:
    with Engine("sqlite://", clock=ManualClock(START)) as eng:
        tried = allowed = refused = guard_refusals = 0
        wrong: list[str] = []
        for type_, raw in DEFINITIONS.items():
            compiled = eng.definitions.get(type_)
            for tr in raw["transitions"]:
                sources = tr["source"] if isinstance(tr["source"], list) else [tr["source"]]
                for src in sources:
                    case = CaseState(
                        "c",
                        type_,
                        raw["version"],
                        src,
                        3,
                        example_application(type_),
                        frozenset(),
                        "Europe/Moscow",
                        "0" * 64,
                    )
                    for role in ROLES:
                        tried += 1
                        want = _may(role, tr)
                        try:
                            compiled.step(case, _request(tr, role))
                            got = True
                        except NotPermitted as exc:
                            # a guard saying no is not a role refusal: the role was let through
                            got = exc.guard is not None
                            guard_refusals += exc.guard is not None
                        except InvalidInput:
                            # past the role check, refused on content: only a permitted role
                            # may get this far (checked below as got != want)
                            got = True
                        allowed += got
                        refused += not got
                        if got != want:
                            wrong.append(f"{type_}: {role} {tr['trigger']} in {src}: {got}")
                        in_allowed = tr["trigger"] in compiled.allowed_triggers(case, role)
                        if in_allowed and not want:
                            wrong.append(f"{type_}: {tr['trigger']} listed as allowed for {role}")
    assert wrong == []
    figures.update(
        {
            "role_trigger_pairs": tried,
            "allowed": allowed,
            "refused": refused,
            "guard_refusals": guard_refusals,
            "wrong": len(wrong),
        }
    )


def _cli(url: str, *args: str, stdin: str | None = None) -> Any:
    return CliRunner().invoke(
        app, ["--db", url, "--clock", "2026-11-23T10:00:00+03:00", "--json", *args], input=stdin
    )


def test_an_auditor_can_write_nothing_through_the_cli(
    sqlite_url: str, tmp_path: Path, figures: dict[str, Any]
) -> None:
    with Engine(sqlite_url, clock=ManualClock(START)) as eng:
        case_id = eng.open_case("restore", example_application("restore"), "portal:gosuslugi").id
    attempts = 0
    for type_ in DEFINITIONS:
        before = counts(sqlite_url)
        result = _cli(
            sqlite_url,
            "--as",
            AUDITOR,
            "case",
            "open",
            type_,
            "--data",
            "-",
            stdin=json.dumps(example_application(type_)),
        )
        assert result.exit_code == 5, result.stdout
        assert counts(sqlite_url) == before
        attempts += 1
    triggers = {t["trigger"] for raw in DEFINITIONS.values() for t in raw["transitions"]}
    for trigger in sorted(triggers):
        before = counts(sqlite_url)
        result = _cli(
            sqlite_url,
            "--as",
            AUDITOR,
            "case",
            "fire",
            case_id,
            trigger,
            "--comment",
            "x",
            "--reason",
            "data_mismatch",
        )
        assert result.exit_code == 5, (trigger, result.stdout)
        assert counts(sqlite_url) == before
        attempts += 1
    figures.update({"auditor_write_attempts": attempts, "written": 0})


def test_an_auditor_cannot_ack_events_or_fire_timers(sqlite_url: str) -> None:
    with Engine(sqlite_url, clock=ManualClock(START)) as eng:
        eng.open_case("restore", example_application("restore"), "portal:gosuslugi")
        event_id = eng.pending_events()[0].event_id
    later = "2026-12-30T10:00:00+03:00"
    before = counts(sqlite_url)
    acked = _cli(sqlite_url, "--as", AUDITOR, "events", "ack", event_id)
    fired = CliRunner().invoke(
        app, ["--db", sqlite_url, "--clock", later, "--json", "--as", AUDITOR, "timers", "run"]
    )
    engine = sa.create_engine(sqlite_url)
    with engine.connect() as conn:
        acked_rows = conn.execute(
            sa.text("SELECT COUNT(*) FROM outbox WHERE acked_at IS NOT NULL")
        ).scalar_one()
    engine.dispose()
    assert (acked.exit_code, fired.exit_code) == (5, 5)
    assert acked_rows == 0
    assert counts(sqlite_url) == before


def test_revealing_personal_data_is_logged(sqlite_url: str) -> None:
    with Engine(sqlite_url, clock=ManualClock(START)) as eng:
        case_id = eng.open_case("restore", example_application("restore"), "portal:gosuslugi").id
    before = counts(sqlite_url)
    masked = _cli(sqlite_url, "--as", AUDITOR, "case", "show", case_id)
    assert masked.exit_code == 0
    assert counts(sqlite_url) == before  # a masked read is not a personal-data read
    assert "Иванова" not in masked.stdout
    shown = _cli(sqlite_url, "--as", AUDITOR, "case", "show", case_id, "--reveal")
    assert shown.exit_code == 0
    assert "Иванова Мария Петровна" in shown.stdout
    after = counts(sqlite_url)
    assert after["access_log"] == before["access_log"] + 1
    engine = sa.create_engine(sqlite_url)
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT case_id, actor, what FROM access_log")).one()
    engine.dispose()
    assert tuple(row) == (case_id, AUDITOR, "reveal")
    # without an actor nobody can be held to account: refused, nothing logged
    anonymous = _cli(sqlite_url, "case", "show", case_id, "--reveal")
    assert anonymous.exit_code == 2
    assert counts(sqlite_url) == after
