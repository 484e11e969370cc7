"""``omsflow definitions ...``: listing, checks, schema, example, and the diagram of each type."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from engine.applications import example_application
from engine.machines.loader import default_definitions_dir
from tests.cli.helpers import OPERATOR, PORTAL, Cli

TYPES = ["child_link", "new_issue", "paper_duplicate", "replacement", "restore"]


def test_list_gives_every_type(cli: Cli) -> None:
    listed = cli.ok("definitions", "list")
    assert [d["type"] for d in listed] == TYPES
    for d in listed:
        assert {"type", "version", "title", "initial", "states", "triggers", "path"} <= set(d)
    table = cli.run("definitions", "list", as_json=False)
    assert "Восстановление полиса ОМС" in table.stdout


def test_show_gives_states_labels_and_transitions(cli: Cli) -> None:
    shown = cli.ok("definitions", "show", "restore")
    assert shown["type"] == "restore"
    assert shown["states"]["pending"]["label"] == "Ожидание обработки"
    assert {t["trigger"] for t in shown["transitions"]} >= {"take", "approve", "reject"}
    human = cli.run("definitions", "show", "new_issue", as_json=False)
    assert human.exit_code == 0
    assert "in_production" in human.stdout
    assert "30 calendar_days" in human.stdout


def test_an_unknown_type_is_not_found_3(cli: Cli) -> None:
    for command in ("show", "schema", "example", "graph"):
        error = cli.fails(3, "definitions", command, "passport")
        assert error["error"] == "not_found"
        assert "restore" in error["message"]


def test_validate_checks_the_folder_and_given_files(cli: Cli) -> None:
    result = cli.ok("definitions", "validate")
    assert result["ok"] is True
    assert {f["type"] for f in result["files"]} == set(TYPES)
    one = cli.ok("definitions", "validate", str(default_definitions_dir() / "restore.v1.yaml"))
    assert [f["type"] for f in one["files"]] == ["restore"]
    human = cli.run("definitions", "validate", as_json=False)
    assert human.exit_code == 0
    assert "restore v1" in human.stdout


def test_validate_names_each_broken_file_4(cli: Cli, tmp_path: Path) -> None:
    source = yaml.safe_load((default_definitions_dir() / "restore.v1.yaml").read_text("utf-8"))
    source["states"]["limbo"] = {"label": "Нигде"}
    trap = tmp_path / "trap.yaml"
    trap.write_text(yaml.safe_dump(source, allow_unicode=True), encoding="utf-8")
    broken = tmp_path / "broken.yaml"
    broken.write_text("type: [unclosed", encoding="utf-8")
    good = default_definitions_dir() / "child_link.v1.yaml"
    error = cli.fails(4, "definitions", "validate", str(trap), str(broken), str(good))
    assert error["error"] == "invalid_definition"
    files = {Path(f["path"]).name: f for f in error["details"]["files"]}
    assert files["child_link.v1.yaml"]["ok"] is True
    assert "limbo" in files["trap.yaml"]["error"]["message"]
    assert files["trap.yaml"]["error"]["details"]["states"] == ["limbo"]
    assert "YAML" in files["broken.yaml"]["error"]["message"]
    human = cli.run("definitions", "validate", str(trap), as_json=False)
    assert human.exit_code == 4
    assert "limbo" in human.stderr
    twice = cli.fails(4, "definitions", "validate", str(good), str(good))
    assert "defined twice" in twice["message"] + json.dumps(twice["details"])


@pytest.mark.parametrize("type_", TYPES)
def test_schema_and_example_agree_and_the_example_opens(cli: Cli, type_: str) -> None:
    schema = cli.ok("definitions", "schema", type_, as_json=False)
    assert schema["type"] == "object"
    assert "applicant" in schema["properties"]
    example = cli.run("definitions", "example", type_, as_json=False)
    assert json.loads(example.stdout) == example_application(type_)
    opened = cli.run("case", "open", type_, "--data", "-", actor=PORTAL, stdin=example.stdout)
    assert opened.exit_code == 0, opened.stdout


@pytest.mark.parametrize("type_", TYPES)
def test_the_mermaid_diagram_of_each_type(cli: Cli, type_: str) -> None:
    result = cli.run("definitions", "graph", type_, as_json=False)
    assert result.exit_code == 0, result.stderr
    text = result.stdout
    assert "flowchart TD" in text
    assert "Ожидание обработки" in text
    assert "-->|" in text
    assert "terminal" in text
    assert "linkStyle" not in text


@pytest.mark.parametrize("type_", TYPES)
def test_the_dot_diagram_of_each_type(cli: Cli, type_: str) -> None:
    text = cli.run("definitions", "graph", type_, "--format", "dot", as_json=False).stdout
    assert text.startswith("digraph ")
    assert "peripheries=2" in text
    assert text.rstrip().endswith("}")


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
@pytest.mark.parametrize("type_", TYPES)
def test_the_svg_diagram_of_each_type(cli: Cli, type_: str, tmp_path: Path) -> None:
    target = tmp_path / f"{type_}.svg"
    written = cli.ok("definitions", "graph", type_, "--format", "svg", "-o", str(target))
    assert written["file"] == str(target)
    svg = target.read_text(encoding="utf-8")
    assert "<svg" in svg
    assert "Ожидание обработки" in svg


def test_svg_without_graphviz_is_a_clear_error(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    error = cli.fails(1, "definitions", "graph", "restore", "--format", "svg")
    assert error["error"] == "graphviz_missing"
    assert "install Graphviz" in error["message"]


def test_the_diagram_of_a_case_highlights_its_path(cli: Cli, tmp_path: Path) -> None:
    case_id = cli.open("restore")
    cli.ok("case", "fire", case_id, "take", actor=OPERATOR)
    body = cli.ok("definitions", "graph", "restore", "--case", case_id)
    assert body["case_id"] == case_id
    assert "class s_in_review current" in body["diagram"]
    assert "class s_pending visited" in body["diagram"]
    assert "linkStyle 0,1 " in body["diagram"]
    dot = cli.run(
        "definitions", "graph", "restore", "--case", case_id, "--format", "dot", as_json=False
    )
    assert '"pending" -> "in_review" [label="take", color="#2b8a3e"' in dot.stdout
    target = tmp_path / "case.mmd"
    human = cli.run(
        "definitions", "graph", "restore", "--case", case_id, "-o", str(target), as_json=False
    )
    assert str(target) in human.stdout
    assert target.read_text(encoding="utf-8") == body["diagram"]
    other = cli.fails(4, "definitions", "graph", "new_issue", "--case", case_id)
    assert other["details"]["errors"][0]["field"] == "case"
    assert cli.fails(3, "definitions", "graph", "restore", "--case", "nope")
