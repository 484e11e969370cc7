"""``omsflow case ...``: every command, its JSON shape and every exit code it can give."""

from __future__ import annotations

import json
from pathlib import Path

from engine.applications import example_application
from engine.cli import app
from engine.demo import snils
from tests.cli.helpers import (
    AUDITOR,
    CASE_KEYS,
    DEADLINE_KEYS,
    ENTRY_KEYS,
    OPERATOR,
    PORTAL,
    Cli,
)

SNILS = "112-233-445 95"
SNILS_DIGITS = "11223344595"


def test_open_prints_the_id_and_show_gives_the_case(any_cli: Cli) -> None:
    data = json.dumps(example_application("restore"))
    opened = any_cli.run(
        "case", "open", "restore", "--data", "-", actor=PORTAL, stdin=data, as_json=False
    )
    assert opened.exit_code == 0, opened.stderr
    case_id = opened.stdout.strip()
    assert len(case_id) == 36

    case = any_cli.ok("case", "show", case_id, actor=OPERATOR)
    assert set(case) >= CASE_KEYS
    assert case["id"] == case_id
    assert case["type"] == "restore"
    assert case["state"] == "pending"
    assert case["label"] == "Ожидание обработки"
    assert case["version"] == 1
    assert case["allowed_triggers"] == ["take"]
    assert case["flags"] == []
    assert case["deadlines"]
    for deadline in case["deadlines"]:
        assert set(deadline) >= DEADLINE_KEYS
        assert deadline["due_at"].endswith("+00:00")
    assert case["created_at"] == "2026-11-23T07:00:00+00:00"


def test_open_with_json_prints_the_case_and_reads_a_file(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "application.json"
    path.write_text(json.dumps(example_application("new_issue")), encoding="utf-8")
    case = cli.ok("case", "open", "new_issue", "--data", str(path), actor=PORTAL)
    assert set(case) >= CASE_KEYS
    assert case["type"] == "new_issue"
    assert case["data"]["applicant"]["snils"] == "***-***-*** 95"


def test_show_masks_data_and_reveal_unmasks_it(cli: Cli) -> None:
    case_id = cli.open()
    masked = cli.run("case", "show", case_id, as_json=False)
    assert masked.exit_code == 0
    assert SNILS not in masked.stdout
    assert SNILS_DIGITS not in masked.stdout
    assert "***-***-*** 95" in masked.stdout
    assert "give --as" in masked.stdout

    revealed = cli.ok("case", "show", case_id, "--reveal", actor=AUDITOR)
    assert revealed["data"]["applicant"]["snils"] == SNILS_DIGITS
    human = cli.run("case", "show", case_id, "--reveal", actor=OPERATOR, as_json=False)
    assert SNILS_DIGITS in human.stdout
    assert "access log" in human.stdout


def test_reveal_needs_an_actor(cli: Cli) -> None:
    case_id = cli.open()
    result = cli.run("case", "show", case_id, "--reveal", as_json=False)
    assert result.exit_code == 2
    assert "--as" in result.stderr


def test_list_is_newest_first_and_filters(cli: Cli) -> None:
    first = cli.open("restore")
    second = cli.open("child_link", now="2026-11-23T10:05:00+03:00")
    cli.ok("case", "fire", second, "take", actor="system:foms", now="2026-11-23T10:06:00+03:00")
    cases = cli.ok("case", "list")
    assert isinstance(cases, list)
    assert [c["id"] for c in cases] == [second, first]
    for case in cases:
        assert set(case) >= CASE_KEYS
    assert [c["id"] for c in cli.ok("case", "list", "--type", "restore")] == [first]
    assert [c["id"] for c in cli.ok("case", "list", "--state", "in_review")] == [second]
    assert cli.ok("case", "list", "--overdue") == []
    assert len(cli.ok("case", "list", "--limit", "1")) == 1
    table = cli.run("case", "list", as_json=False)
    assert first in table.stdout
    assert "Ожидание обработки" in table.stdout
    assert cli.run("case", "list", "--state", "issued", as_json=False).stdout.strip() == "no cases"


def test_fire_steps_the_case_and_history_lists_the_entries(any_cli: Cli) -> None:
    case_id = any_cli.open()
    step = any_cli.ok("case", "fire", case_id, "take", actor=OPERATOR)
    assert set(step) >= {"case", "entry", "replayed", "timers_fired"}
    assert set(step["case"]) >= CASE_KEYS
    assert set(step["entry"]) >= ENTRY_KEYS
    assert step["case"]["state"] == "in_review"
    assert step["entry"]["from_state"] == "pending"
    assert step["replayed"] is False

    human = any_cli.run(
        "case",
        "fire",
        case_id,
        "request_info",
        "--comment",
        "нужен скан паспорта",
        actor=OPERATOR,
        as_json=False,
    )
    assert human.exit_code == 0, human.stderr
    assert "request_info" in human.stdout
    assert "needs_clarification" in human.stdout

    history = any_cli.ok("case", "history", case_id)
    assert isinstance(history, list)
    assert [e["seq"] for e in history] == [1, 2, 3]
    assert [e["trigger"] for e in history] == ["open", "take", "request_info"]
    for entry in history:
        assert set(entry) >= ENTRY_KEYS
        assert entry["case_id"] == case_id
    assert history[2]["comment"] == "нужен скан паспорта"
    assert history[0]["from_state"] is None
    table = any_cli.run("case", "history", case_id, as_json=False)
    assert "request_info" in table.stdout


def test_fire_with_data_masks_the_changes_unless_revealed(cli: Cli) -> None:
    case_id = cli.open()
    cli.ok("case", "fire", case_id, "take", actor=OPERATOR)
    cli.ok("case", "fire", case_id, "request_info", "--comment", "СНИЛС?", actor=OPERATOR)
    new = snils("156745302")
    reply = {"applicant": {"snils": new}}
    step = cli.ok(
        "case", "fire", case_id, "reply", "--data", "-", actor=PORTAL, stdin=json.dumps(reply)
    )
    change = step["entry"]["changes"]["applicant.snils"]
    assert change == {"before": "***-***-*** 95", "after": f"***-***-*** {new[-2:]}"}
    history = cli.run("case", "history", case_id)
    assert SNILS_DIGITS not in history.stdout
    assert new.replace("-", "").replace(" ", "") not in history.stdout
    revealed = cli.ok("case", "history", case_id, "--reveal", actor=AUDITOR)
    assert revealed[-1]["changes"]["applicant.snils"] == {
        "before": SNILS_DIGITS,
        "after": new.replace("-", "").replace(" ", ""),
    }


def test_a_retry_with_the_same_key_is_replayed(cli: Cli) -> None:
    data = json.dumps(example_application("restore"))
    args = ("case", "open", "restore", "--data", "-", "--key", "portal-req-1")
    first = cli.ok(*args, actor=PORTAL, stdin=data)
    again = cli.ok(*args, actor=PORTAL, stdin=data)
    assert again["id"] == first["id"]
    fire = ("case", "fire", first["id"], "take", "--key", "take-1")
    assert cli.ok(*fire, actor=OPERATOR)["replayed"] is False
    assert cli.ok(*fire, actor=OPERATOR)["replayed"] is True
    replayed = cli.run(*fire, actor=OPERATOR, as_json=False)
    assert "replayed" in replayed.stdout


# ---- exit codes ------------------------------------------------------------------------------


def test_unknown_case_is_not_found_3(any_cli: Cli) -> None:
    for args in (("case", "show", "nope"), ("case", "history", "nope")):
        error = any_cli.fails(3, *args)
        assert error["error"] == "not_found"
        assert error["details"] == {"kind": "case", "key": "nope"}
    assert any_cli.fails(3, "case", "fire", "nope", "take", actor=OPERATOR)["error"] == (
        "not_found"
    )
    human = any_cli.run("case", "show", "nope", as_json=False)
    assert human.exit_code == 3
    assert human.stdout == ""
    assert "case nope not found" in human.stderr


def test_invalid_application_lists_every_field_4(cli: Cli) -> None:
    data = example_application("restore")
    data["applicant"]["snils"] = "112-233-445 96"
    data["applicant"]["birth_date"] = "31.02.1987"
    error = cli.fails(
        4, "case", "open", "restore", "--data", "-", actor=PORTAL, stdin=json.dumps(data)
    )
    assert error["error"] == "invalid_input"
    fields = {e["field"] for e in error["details"]["errors"]}
    assert {"applicant.snils", "applicant.birth_date"} <= fields
    assert cli.ok("case", "list") == []
    human = cli.run(
        "case",
        "open",
        "restore",
        "--data",
        "-",
        actor=PORTAL,
        stdin=json.dumps(data),
        as_json=False,
    )
    assert human.exit_code == 4
    assert "applicant.snils" in human.stderr
    assert "applicant.birth_date" in human.stderr


def test_bad_json_in_data_is_invalid_input_on_the_field_data_4(cli: Cli) -> None:
    for text, rule in (("{not json", "json_syntax"), ("[1, 2]", "json_object")):
        error = cli.fails(4, "case", "open", "restore", "--data", "-", actor=PORTAL, stdin=text)
        assert error["details"]["errors"][0]["field"] == "data"
        assert error["details"]["errors"][0]["rule"] == rule


def test_a_decision_without_its_reason_is_invalid_input_4(cli: Cli) -> None:
    case_id = cli.open()
    cli.ok("case", "fire", case_id, "take", actor=OPERATOR)
    error = cli.fails(4, "case", "fire", case_id, "reject", actor=OPERATOR)
    assert error["details"]["errors"][0]["field"] == "reason"
    assert cli.ok("case", "show", case_id)["version"] == 2
    rejected = cli.ok(
        "case", "fire", case_id, "reject", "--reason", "data_mismatch", actor=OPERATOR
    )
    assert rejected["entry"]["reason"] == "data_mismatch"


def test_a_trigger_not_allowed_is_not_permitted_5_with_the_allowed_ones(any_cli: Cli) -> None:
    case_id = any_cli.open()
    error = any_cli.fails(5, "case", "fire", case_id, "approve", actor=OPERATOR)
    assert error["error"] == "not_permitted"
    assert error["details"]["allowed"] == ["take"]
    human = any_cli.run("case", "fire", case_id, "approve", actor=OPERATOR, as_json=False)
    assert human.exit_code == 5
    assert "take" in human.stderr


def test_an_auditor_reads_everything_and_changes_nothing_5(cli: Cli) -> None:
    case_id = cli.open()
    assert cli.ok("case", "show", case_id, actor=AUDITOR)["allowed_triggers"] == []
    data = json.dumps(example_application("child_link"))
    opened = cli.fails(5, "case", "open", "child_link", "--data", "-", actor=AUDITOR, stdin=data)
    assert opened["error"] == "not_permitted"
    assert cli.fails(5, "case", "fire", case_id, "take", actor=AUDITOR)["details"]["role"] == (
        "auditor"
    )
    assert cli.fails(5, "case", "fire", case_id, "withdraw", actor=AUDITOR)
    assert len(cli.ok("case", "list")) == 1
    assert cli.ok("case", "show", case_id)["version"] == 1


def test_a_stale_version_or_a_reused_key_is_a_conflict_6(any_cli: Cli) -> None:
    case_id = any_cli.open()
    error = any_cli.fails(
        6, "case", "fire", case_id, "take", "--expect-version", "7", actor=OPERATOR
    )
    assert error["error"] == "conflict"
    assert error["details"] == {"case_id": case_id, "expected": 7, "actual": 1}
    any_cli.ok(
        "case", "fire", case_id, "take", "--expect-version", "1", "--key", "k1", actor=OPERATOR
    )
    reused = any_cli.fails(
        6,
        "case",
        "fire",
        case_id,
        "request_info",
        "--comment",
        "x",
        "--key",
        "k1",
        actor=OPERATOR,
    )
    assert reused["error"] == "idempotency_mismatch"


def test_write_commands_need_an_actor_2(cli: Cli) -> None:
    data = json.dumps(example_application("restore"))
    opened = cli.run("case", "open", "restore", "--data", "-", stdin=data, as_json=False)
    assert opened.exit_code == 2
    assert "needs an actor" in opened.stderr
    assert "--as" in opened.stderr
    case_id = cli.open()
    fired = cli.run("case", "fire", case_id, "take", as_json=False)
    assert fired.exit_code == 2
    error = cli.fails(2, "case", "fire", case_id, "take")
    assert error["error"] == "usage"
    assert "--as" in error["message"]


def test_usage_errors_2(cli: Cli, tmp_path: Path) -> None:
    missing = cli.run("case", "show", as_json=False)
    assert missing.exit_code == 2
    assert cli.fails(2, "case", "show")["error"] == "usage"
    bad_actor = cli.run("case", "list", actor="boss:me", as_json=False)
    assert bad_actor.exit_code == 2
    assert "role:name" in bad_actor.stderr
    naive = cli.run("case", "list", now="2026-11-23T10:00:00", as_json=False)
    assert naive.exit_code == 2
    assert "UTC offset" in naive.stderr
    assert cli.run("case", "list", now="yesterday", as_json=False).exit_code == 2
    no_file = cli.run(
        "case", "open", "restore", "--data", str(tmp_path / "missing.json"), actor=PORTAL
    )
    assert no_file.exit_code == 2
    bad_db = cli.runner.invoke(app, ["--db", "::", "case", "list"])
    assert bad_db.exit_code == 2


def test_the_environment_variables_set_the_global_options(cli: Cli) -> None:
    env = {
        "OMSFLOW_DB": cli.url,
        "OMSFLOW_ACTOR": PORTAL,
        "OMSFLOW_CLOCK": "2026-11-24T09:30:00+03:00",
        "OMSFLOW_JSON": "1",
    }
    data = json.dumps(example_application("restore"))
    result = cli.runner.invoke(
        app,
        ["case", "open", "restore", "--data", "-"],
        input=data,
        env=env,
    )
    assert result.exit_code == 0, result.stderr
    case = json.loads(result.stdout)
    assert case["created_at"] == "2026-11-24T06:30:00+00:00"
    assert [c["id"] for c in cli.ok("case", "list")] == [case["id"]]
