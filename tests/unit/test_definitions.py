"""Static checks of definitions: the shipped ones pass, each kind of broken one is named."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from engine.errors import InvalidDefinition
from engine.machines.loader import DefinitionRegistry, default_definitions_dir, parse_definition

SHIPPED = sorted(default_definitions_dir().glob("*.yaml"))
TYPES = {"restore", "new_issue", "child_link", "replacement", "paper_duplicate"}
CORE_TRIGGERS = {"take", "request_info", "reply", "approve", "reject", "resubmit", "withdraw"}

BASE = """
type: sample
version: 1
title: Sample
data_model: restore
initial: pending
states:
  pending: {label: Ожидание обработки}
  in_review: {label: В работе}
  approved: {label: Одобрено, terminal: true}
transitions:
  - {trigger: take, source: pending, dest: in_review, roles: [operator]}
  - {trigger: approve, source: in_review, dest: approved, roles: [operator]}
"""


def _with(**patch: object) -> str:
    raw = yaml.safe_load(BASE)
    raw.update(patch)
    return yaml.safe_dump(raw, allow_unicode=True)


def _refused(text: str) -> InvalidDefinition:
    with pytest.raises(InvalidDefinition) as info:
        parse_definition(text, "broken.yaml")
    assert info.value.path == "broken.yaml"
    assert str(info.value).startswith("broken.yaml: ")
    return info.value


def test_every_type_is_shipped_and_loads() -> None:
    registry = DefinitionRegistry.from_dir()
    assert set(registry.types()) == TYPES
    for compiled in registry.all():
        triggers = {t.trigger for t in compiled.definition.transitions}
        assert triggers >= CORE_TRIGGERS, compiled.definition.type
        assert compiled.definition.states["rejected"].label == "Отклонено"


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_definition_passes_every_check(path: Path) -> None:
    parse_definition(path.read_text(encoding="utf-8"), str(path))


def test_the_base_sample_is_valid() -> None:
    assert parse_definition(BASE, "ok.yaml").type == "sample"


def test_unknown_state_in_a_transition() -> None:
    raw = yaml.safe_load(BASE)
    raw["transitions"].append(
        {"trigger": "park", "source": "in_review", "dest": "parked", "roles": ["operator"]}
    )
    err = _refused(yaml.safe_dump(raw))
    assert "unknown state 'parked' in transition 'park'" in err.problem
    assert err.states == ("parked",)


def test_unknown_initial_state() -> None:
    err = _refused(_with(initial="nowhere"))
    assert "unknown initial state 'nowhere'" in err.problem


def test_unknown_guard_lists_the_known_ones() -> None:
    raw = yaml.safe_load(BASE)
    raw["transitions"][1]["guards"] = ["policy_is_shiny"]
    err = _refused(yaml.safe_dump(raw))
    assert "unknown guard 'policy_is_shiny'" in err.problem
    assert "fee_settled" in err.problem
    assert "'approve'" in err.problem


def test_unknown_validator_lists_the_known_ones() -> None:
    raw = yaml.safe_load(BASE)
    raw["transitions"][1]["validators"] = ["nope"]
    err = _refused(yaml.safe_dump(raw))
    assert "unknown validator 'nope'" in err.problem
    assert "reply_not_empty" in err.problem


def test_unknown_data_model() -> None:
    err = _refused(_with(data_model="spaceship"))
    assert "unknown data model 'spaceship'" in err.problem
    assert "restore" in err.problem


def test_unreachable_state() -> None:
    raw = yaml.safe_load(BASE)
    raw["states"]["orphan"] = {"label": "Сирота", "terminal": True}
    err = _refused(yaml.safe_dump(raw, allow_unicode=True))
    assert "unreachable from initial state 'pending': orphan" in err.problem
    assert err.states == ("orphan",)


def test_trap_state_without_a_way_out() -> None:
    raw = yaml.safe_load(BASE)
    raw["states"]["approved"]["terminal"] = False
    err = _refused(yaml.safe_dump(raw, allow_unicode=True))
    assert "non-terminal state 'approved' has no way out" in err.problem


def test_an_internal_step_is_not_a_way_out() -> None:
    raw = yaml.safe_load(BASE)
    raw["states"]["approved"]["terminal"] = False
    raw["transitions"].append(
        {"trigger": "note", "source": "approved", "dest": None, "roles": ["operator"]}
    )
    err = _refused(yaml.safe_dump(raw, allow_unicode=True))
    assert "non-terminal state 'approved' has no way out" in err.problem


def test_terminal_state_with_transitions_out() -> None:
    raw = yaml.safe_load(BASE)
    raw["transitions"].append(
        {"trigger": "reopen", "source": "approved", "dest": "pending", "roles": ["operator"]}
    )
    err = _refused(yaml.safe_dump(raw, allow_unicode=True))
    assert "terminal state 'approved' has transitions out: reopen" in err.problem


def test_duplicate_trigger_from_the_same_source() -> None:
    raw = yaml.safe_load(BASE)
    raw["transitions"].append(
        {"trigger": "take", "source": "pending", "dest": "approved", "roles": ["operator"]}
    )
    err = _refused(yaml.safe_dump(raw, allow_unicode=True))
    assert "duplicate trigger 'take' from state 'pending'" in err.problem


def test_deadline_whose_trigger_neither_leaves_nor_stays() -> None:
    raw = yaml.safe_load(BASE)
    raw["states"]["in_review"]["deadlines"] = [
        {"name": "late", "amount": 1, "unit": "working_days", "trigger": "take"}
    ]
    err = _refused(yaml.safe_dump(raw, allow_unicode=True))
    assert "deadline 'late' fires 'take', which neither leaves nor stays in state 'in_review'" in (
        err.problem
    )


def test_deadline_trigger_the_system_may_not_fire() -> None:
    raw = yaml.safe_load(BASE)
    raw["states"]["in_review"]["deadlines"] = [
        {"name": "late", "amount": 1, "unit": "working_days", "trigger": "approve"}
    ]
    err = _refused(yaml.safe_dump(raw, allow_unicode=True))
    assert "which role 'system' may not fire" in err.problem


def test_deadline_with_an_unknown_unit() -> None:
    raw = yaml.safe_load(BASE)
    raw["states"]["in_review"]["deadlines"] = [
        {"name": "late", "amount": 1, "unit": "fortnights", "trigger": "approve"}
    ]
    err = _refused(yaml.safe_dump(raw, allow_unicode=True))
    assert "states.in_review.deadlines.0.unit" in err.problem


def test_reject_without_reason_codes() -> None:
    raw = yaml.safe_load(BASE)
    raw["transitions"][1]["requires"] = ["reason"]
    err = _refused(yaml.safe_dump(raw, allow_unicode=True))
    assert "requires a reason but lists no reasons" in err.problem


def test_unknown_reason_code_and_role() -> None:
    raw = yaml.safe_load(BASE)
    raw["transitions"][1]["reasons"] = ["bad_hair_day"]
    assert "transitions.1.reasons.0" in _refused(yaml.safe_dump(raw)).problem
    raw = yaml.safe_load(BASE)
    raw["transitions"][1]["roles"] = ["janitor"]
    assert "transitions.1.roles.0" in _refused(yaml.safe_dump(raw)).problem


def test_not_yaml_and_not_a_mapping() -> None:
    assert "not valid YAML" in _refused("states: [unclosed").problem
    assert "mapping at the top level" in _refused("- a\n- b\n").problem


def test_two_files_with_the_same_type_and_version(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(BASE, encoding="utf-8")
    (tmp_path / "b.yaml").write_text(BASE, encoding="utf-8")
    with pytest.raises(InvalidDefinition, match="sample version 1 is defined twice"):
        DefinitionRegistry.from_dir(tmp_path)


def test_an_empty_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidDefinition, match="no definition files"):
        DefinitionRegistry.from_dir(tmp_path)
