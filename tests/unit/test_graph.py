"""State diagrams (pure): every state, label and trigger drawn; a case's path highlighted."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from engine.machines.definition import Definition
from engine.machines.graph import Step, to_dot, to_mermaid
from engine.machines.loader import DefinitionRegistry

REGISTRY = DefinitionRegistry.from_dir()
DEFINITIONS = {c.definition.type: c.definition for c in REGISTRY.all()}
TYPES = sorted(DEFINITIONS)

RESTORE_PATH: list[Step] = [
    (None, "open", "pending"),
    ("pending", "take", "in_review"),
    ("in_review", "request_info", "needs_clarification"),
    ("needs_clarification", "remind", "needs_clarification"),
]


def _tiny(label: str = "Ожидание") -> Definition:
    return Definition.model_validate(
        {
            "type": "tiny",
            "version": 2,
            "title": 'Тест "кавычек" <и> #знаков',
            "data_model": "restore",
            "initial": "pending",
            "states": {
                "pending": {
                    "label": label,
                    "deadlines": [
                        {"name": "nudge", "amount": 2, "unit": "working_days", "trigger": "poke"}
                    ],
                },
                "end": {"label": "Конец", "terminal": True},
            },
            "transitions": [
                {"trigger": "poke", "source": "pending", "dest": None, "roles": ["system"]},
                {"trigger": "finish", "source": "pending", "dest": "end", "roles": ["operator"]},
            ],
        }
    )


@pytest.mark.parametrize("type_", TYPES)
def test_mermaid_draws_every_state_and_transition(type_: str) -> None:
    d = DEFINITIONS[type_]
    text = to_mermaid(d)
    assert text.startswith("---\ntitle: ")
    assert "flowchart TD" in text
    for name, state in d.states.items():
        assert f"s_{name}" in text
        assert state.label in text
        if state.terminal:
            assert re.search(rf's_{name}\(\(\("{re.escape(state.label)}<br/>{name}"\)\)\)', text)
    for tr in d.transitions:
        for source in tr.source:
            arrow = "-.->" if tr.internal else "-->"
            dest = source if tr.internal else tr.dest
            pattern = rf's_{source} {re.escape(arrow)}\|"(⏱ )?{tr.trigger}"\| s_{dest}\n'
            assert re.search(pattern, text), (source, tr.trigger)
    assert f"__start__ --> s_{d.initial}" in text
    assert "linkStyle" not in text
    assert "visited" not in text.split("classDef visited")[1]


@pytest.mark.parametrize("type_", TYPES)
def test_dot_draws_every_state_and_transition(type_: str) -> None:
    d = DEFINITIONS[type_]
    text = to_dot(d)
    assert text.startswith(f'digraph "{type_}_v{d.version}" {{')
    assert text.rstrip().endswith("}")
    for name, state in d.states.items():
        node = re.search(rf'^    "{name}" \[(.*)\];$', text, re.M)
        assert node, name
        assert state.label in node.group(1)
        assert ("peripheries=2" in node.group(1)) == state.terminal
    edges = re.findall(r'^    "(\w+)" -> "(\w+)" \[label="([^"]+)"(.*)\];$', text, re.M)
    assert len(edges) == sum(len(tr.source) for tr in d.transitions)
    for source, dest, label, rest in edges:
        assert ("style=dashed" in rest) == (source == dest)
        assert label.removeprefix("⏱ ") in {tr.trigger for tr in d.transitions}


def test_deadlines_are_shown_on_their_states() -> None:
    d = DEFINITIONS["restore"]
    mermaid = to_mermaid(d)
    assert "⏱ 3 working_days → target_missed" in mermaid
    assert "⏱ 2 working_days → remind" in mermaid
    assert "⏱ 2 working_days → expire (after remind)" in mermaid
    assert 's_needs_clarification -->|"⏱ expire"| s_rejected' in mermaid
    assert 's_in_review -->|"approve"| s_approved' in mermaid
    dot = to_dot(DEFINITIONS["new_issue"])
    assert "⏱ 30 calendar_days → flag_overdue" in dot


def test_a_path_is_highlighted_in_mermaid() -> None:
    text = to_mermaid(DEFINITIONS["restore"], RESTORE_PATH)
    assert "class s_pending,s_in_review visited" in text
    assert "class s_needs_clarification current" in text
    links = [line for line in text.splitlines() if "-->" in line or "-.->" in line]
    styled = re.search(r"linkStyle ([\d,]+) stroke:#2b8a3e", text)
    assert styled
    taken = [links[int(i)].strip() for i in styled.group(1).split(",")]
    assert taken == [
        "__start__ --> s_pending",
        's_pending -->|"take"| s_in_review',
        's_in_review -->|"request_info"| s_needs_clarification',
        's_needs_clarification -.->|"⏱ remind"| s_needs_clarification',
    ]


def test_a_path_is_highlighted_in_dot() -> None:
    text = to_dot(DEFINITIONS["restore"], RESTORE_PATH)
    green = [line for line in text.splitlines() if "->" in line and "#2b8a3e" in line]
    assert len(green) == 4
    assert any('"needs_clarification" -> "needs_clarification"' in g for g in green)
    assert 'style="dashed,bold"' in text
    current = re.search(r'^    "needs_clarification" \[(.*)\];$', text, re.M)
    assert current
    assert "Helvetica-Bold" in current.group(1)
    assert '"approved" [label="Одобрено\\napproved' in text


def test_steps_the_definition_does_not_know_are_ignored() -> None:
    path: list[Step] = [
        (None, "open", "pending"),
        ("pending", "teleport", "issued"),
        ("pending", "take", "nowhere"),
    ]
    text = to_mermaid(DEFINITIONS["restore"], path)
    assert "linkStyle 0 " in text
    assert "class s_pending,s_issued visited" in text
    assert " current\n" not in text
    assert "nowhere" not in text
    assert to_dot(DEFINITIONS["restore"], [("x", "y", "z")]).count("#2b8a3e") == 0


def test_text_is_escaped_for_each_format() -> None:
    d = _tiny('Ждём "ответа" <быстро> #1')
    mermaid = to_mermaid(d)
    assert "#quot;ответа#quot;" in mermaid
    assert "#lt;быстро#gt;" in mermaid
    assert "#35;1" in mermaid
    assert 's_end((("Конец<br/>end")))' in mermaid
    assert 's_pending -.->|"⏱ poke"| s_pending' in mermaid
    dot = to_dot(d)
    assert r"Ждём \"ответа\" <быстро> #1" in dot
    assert r"Тест \"кавычек\"" in dot


def test_diagrams_are_pure_functions() -> None:
    d = DEFINITIONS["paper_duplicate"]
    assert to_mermaid(d) == to_mermaid(d)
    assert to_dot(d, RESTORE_PATH[:1]) == to_dot(d, RESTORE_PATH[:1])


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
@pytest.mark.parametrize("type_", TYPES)
def test_graphviz_accepts_the_dot(type_: str) -> None:
    done = subprocess.run(
        ["dot", "-Tsvg"],
        input=to_dot(DEFINITIONS[type_], RESTORE_PATH) + to_dot(_tiny()),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("<svg") == 2
