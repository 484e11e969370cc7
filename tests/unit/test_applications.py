"""Whole applications: examples, complete error lists, changes with diffs, subject keys and the
corpus of bad applications (one per rule)."""

from __future__ import annotations

import copy
import time
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.applications import (
    MODEL_NAMES,
    RULES,
    application_model,
    detect_policy_format,
    example_application,
    json_schema,
    subject_key,
    validate_application,
    validate_changes,
)
from engine.applications.models import MODELS, ChildLinkApplication, ReplacementApplication
from engine.errors import FieldError, InvalidInput
from engine.reasons import ReasonCode

TODAY = date(2026, 11, 21)
CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "bad_applications.yaml"


def refused(name: str, data: Any, today: date = TODAY) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        validate_application(name, data, today=today)
    return caught.value


def pairs(exc: InvalidInput) -> set[tuple[str, str]]:
    return {(e.field, e.rule) for e in exc.errors}


# ------------------------------------------------------------------------------ examples


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("today", [TODAY, date(2027, 1, 1), date(2030, 6, 30)])
def test_every_example_validates(name: str, today: date) -> None:
    out = validate_application(name, example_application(name), today=today)
    assert isinstance(out, dict)
    assert out["applicant"]["full_name"]


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_normalized_output_validates_again_unchanged(name: str) -> None:
    once = validate_application(name, example_application(name), today=TODAY)
    assert validate_application(name, once, today=TODAY) == once


def test_output_is_normalized() -> None:
    out = validate_application("child_link", example_application("child_link"), today=TODAY)
    assert out["applicant"]["birth_date"] == "1987-03-25"
    assert out["applicant"]["snils"] == "11223344595"
    assert out["applicant"]["phone"] == "9123456789"
    assert out["applicant"]["passport"]["issue_date"] == "2007-04-12"
    assert out["policy_issue_date"] == "2019-06-20"
    assert out["region_zone"] == "Europe/Moscow"
    assert "policy_expiry_date" not in out


def test_example_is_a_fresh_copy() -> None:
    first = example_application("restore")
    first["applicant"]["full_name"] = "Петров Пётр"
    assert example_application("restore")["applicant"]["full_name"] == "Иванова Мария Петровна"


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_json_schema(name: str) -> None:
    schema = json_schema(name)
    assert "applicant" in schema["properties"]
    assert schema["additionalProperties"] is False
    assert application_model(name).model_json_schema() == schema


def test_model_names_match_the_models() -> None:
    assert tuple(MODELS) == MODEL_NAMES
    for name in MODEL_NAMES:
        assert name == MODELS[name].TYPE
        assert application_model(name) is MODELS[name]


def test_unknown_type_lists_known_names() -> None:
    with pytest.raises(KeyError) as caught:
        application_model("renewal")
    for name in MODEL_NAMES:
        assert name in str(caught.value)
    with pytest.raises(KeyError):
        validate_application("renewal", {}, today=TODAY)


def test_policy_format_is_reported() -> None:
    data = example_application("child_link")
    data["policy_number"] = "AB1234567890"
    out = validate_application("child_link", data, today=TODAY)
    assert out["policy_number"] == "AB 1234567890"
    assert detect_policy_format(out["policy_number"]) == "series_number"
    model = ChildLinkApplication.model_validate(data, context={"today": TODAY})
    assert model.policy_format == "series_number"
    replacement = ReplacementApplication.model_validate(
        example_application("replacement"), context={"today": TODAY}
    )
    assert replacement.policy_format == "enp"


def test_validation_without_today_is_a_programming_error() -> None:
    with pytest.raises(RuntimeError, match="today"):
        application_model("restore").model_validate(example_application("restore"))


# ------------------------------------------------------------------------------ all errors at once


def test_three_errors_yield_three_field_errors() -> None:
    data = example_application("restore")
    data["applicant"]["snils"] = "112-233-445 96"
    data["applicant"]["birth_date"] = "31.02.1987"
    data["attachments"][0]["size"] = 6 * 1024 * 1024
    exc = refused("restore", data)
    assert len(exc.errors) == 3
    assert pairs(exc) == {
        ("applicant.snils", "snils_checksum"),
        ("applicant.birth_date", "real_date"),
        ("attachments.0.size", "file_size"),
    }
    assert all(isinstance(e, FieldError) and e.message and e.expected for e in exc.errors)
    assert exc.reason == ReasonCode.INVALID_SCAN.value
    assert exc.advice == ReasonCode.INVALID_SCAN.advice


def test_cross_field_rules_are_listed_beside_field_errors() -> None:
    data = example_application("new_issue")
    data["representative"] = True
    data["pickup_point"] = ""
    data["attachments"] = data["attachments"][:1]
    exc = refused("new_issue", data)
    assert pairs(exc) == {
        ("pickup_point", "text_empty"),
        ("representative", "representative_not_allowed"),
        ("attachments", "attachment_required"),
    }
    messages = [e.message for e in exc.errors if e.rule == "attachment_required"]
    assert len(messages) == 2
    assert exc.reason == "representative_not_allowed"
    assert exc.details()["reasons"] == ["representative_not_allowed", "missing_documents"]


def test_rules_needing_a_failed_field_are_skipped_not_guessed() -> None:
    data = example_application("new_issue")
    data["applicant"]["birth_date"] = "2026-02-30"
    data["representative"] = True
    exc = refused("new_issue", data)
    # the age-based rules cannot run without a birth date; the representative rule can
    assert pairs(exc) == {
        ("applicant.birth_date", "real_date"),
        ("representative", "representative_not_allowed"),
    }


def test_wrong_json_types_are_refused_not_coerced() -> None:
    data = example_application("new_issue")
    data["representative"] = "false"
    data["attachments"][1]["width"] = 320.0
    data["applicant"]["snils"] = 11223344595
    data["applicant"]["passport"]["number"] = 123456
    exc = refused("new_issue", data)
    assert pairs(exc) == {
        ("representative", "wrong_type"),
        ("attachments.1.width", "wrong_type"),
        ("applicant.snils", "wrong_type"),
        ("applicant.passport.number", "wrong_type"),
    }


def test_not_an_object_is_refused() -> None:
    exc = refused("restore", ["not", "an", "object"])
    assert [(e.field, e.rule) for e in exc.errors] == [("(root)", "wrong_type")]


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_huge_strings_are_refused_quickly(name: str) -> None:
    huge = "9" * 2_000_000
    data = example_application(name)
    data["applicant"] = dict.fromkeys(data["applicant"], huge)
    data["region_zone"] = huge
    started = time.perf_counter()
    exc = refused(name, data)
    assert time.perf_counter() - started < 5
    rules = {e.rule for e in exc.errors}
    assert "max_length" in rules
    assert {e.field for e in exc.errors} >= {"applicant.full_name", "region_zone"}


def test_the_reason_ranks_channel_refusals_first() -> None:
    data = example_application("new_issue")
    data["applicant"]["birth_date"] = "01.06.2026"
    data["applicant"].pop("passport")
    data["representative"] = True
    exc = refused("new_issue", data)
    assert exc.reason == "representative_not_allowed"
    assert exc.details()["reasons"] == [
        "representative_not_allowed",
        "newborn_requires_mfc",
        "missing_documents",
    ]


def test_newborn_at_mfc_with_birth_certificate_is_accepted() -> None:
    data = example_application("new_issue")
    data.update(channel="mfc", representative=True, policy_form="paper")
    data["applicant"].update(birth_date="01.06.2026")
    data["applicant"].pop("passport")
    certificate = dict(data["attachments"][0], kind="birth_certificate", file_name="bc.pdf")
    data["attachments"] = [certificate]
    validate_application("new_issue", data, today=TODAY)


def test_child_restore_with_documents_is_accepted() -> None:
    data = example_application("restore")
    data["for_child"] = True
    data["child"] = {"full_name": "Иванов Артём Сергеевич", "birth_date": "14.06.2019"}
    scan = data["attachments"][0]
    data["attachments"] = [
        dict(scan, kind="birth_certificate", file_name="bc.pdf"),
        dict(scan, kind="parent_passport", file_name="parent.pdf"),
    ]
    out = validate_application("restore", data, today=TODAY)
    assert out["child"]["birth_date"] == "2019-06-14"


def test_child_restore_without_documents_names_missing_documents() -> None:
    data = example_application("restore")
    data["for_child"] = True
    data["child"] = {"full_name": "Иванов Артём Сергеевич", "birth_date": "14.06.2019"}
    exc = refused("restore", data)
    assert [e.rule for e in exc.errors] == ["attachment_required", "attachment_required"]
    assert exc.reason == "missing_documents"
    assert exc.advice == ReasonCode.MISSING_DOCUMENTS.advice


# ------------------------------------------------------------------------------ changes


def test_changes_merge_and_diff() -> None:
    current = validate_application("restore", example_application("restore"), today=TODAY)
    photo_scan = dict(current["attachments"][0], kind="old_policy", file_name="old.pdf")
    changes = {
        "applicant": {"phone": "8 (903) 111-22-33", "email": None},
        "attachments": [*current["attachments"], photo_scan],
    }
    new, diff = validate_changes("restore", current, changes, today=TODAY)
    assert new["applicant"]["phone"] == "9031112233"
    assert "email" not in new["applicant"]
    assert new["applicant"]["full_name"] == current["applicant"]["full_name"]
    assert diff["applicant.phone"] == {"before": "9123456789", "after": "9031112233"}
    assert diff["applicant.email"] == {"before": "maria.ivanova@mail.ru", "after": None}
    assert diff["attachments.1.kind"] == {"before": None, "after": "old_policy"}
    assert "applicant.full_name" not in diff
    assert "attachments.0.kind" not in diff
    # the inputs are left untouched
    assert current["applicant"]["phone"] == "9123456789"


def test_changes_replace_lists_as_a_whole() -> None:
    current = validate_application("new_issue", example_application("new_issue"), today=TODAY)
    changes = {"policy_form": "paper", "attachments": current["attachments"][:1]}
    new, diff = validate_changes("new_issue", current, changes, today=TODAY)
    assert [a["kind"] for a in new["attachments"]] == ["passport_scan"]
    assert diff["policy_form"] == {"before": "plastic", "after": "paper"}
    assert diff["attachments.1.kind"] == {"before": "photo", "after": None}
    assert diff["attachments.2.width"] == {"before": 160, "after": None}


def test_notation_only_changes_are_not_in_the_diff() -> None:
    raw = example_application("child_link")
    new, diff = validate_changes("child_link", raw, {"confirmation": "app"}, today=TODAY)
    assert diff == {"confirmation": {"before": "sms", "after": "app"}}
    assert new["child"]["birth_date"] == "2019-06-14"


def test_no_changes_give_an_empty_diff() -> None:
    current = validate_application("replacement", example_application("replacement"), today=TODAY)
    new, diff = validate_changes("replacement", current, {}, today=TODAY)
    assert new == current
    assert diff == {}


def test_invalid_changes_are_refused_with_every_error() -> None:
    current = validate_application(
        "paper_duplicate", example_application("paper_duplicate"), today=TODAY
    )
    changes = {"delivery": "pickup", "applicant": {"snils": "112-233-445 00"}, "colour": "red"}
    with pytest.raises(InvalidInput) as caught:
        validate_changes("paper_duplicate", current, changes, today=TODAY)
    assert pairs(caught.value) == {
        ("applicant.snils", "snils_checksum"),
        ("colour", "unknown_field"),
        ("office", "conditional_required"),
        ("postal_address", "conditional_forbidden"),
    }


def test_changes_must_be_an_object() -> None:
    current = example_application("restore")
    with pytest.raises(InvalidInput):
        validate_changes("restore", current, ["x"], today=TODAY)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ subject keys


def test_subject_key_by_snils() -> None:
    for name in ("restore", "new_issue", "replacement", "paper_duplicate"):
        assert subject_key(name, example_application(name)) == "snils:11223344595"
    # a child's case is about the child
    assert subject_key("child_link", example_application("child_link")) == "snils:14563278980"


def test_subject_key_of_a_child_restore() -> None:
    data = example_application("restore")
    data["for_child"] = True
    data["child"] = {"full_name": "Семёнов Артём Ильич", "birth_date": "14.06.2019"}
    assert subject_key("restore", data) == "person:семенов артем ильич|2019-06-14"


def test_subject_key_is_stable_across_notation() -> None:
    data = example_application("new_issue")
    data["applicant"].pop("snils")
    raw_key = subject_key("new_issue", data)
    out = validate_application("new_issue", data, today=TODAY)
    assert subject_key("new_issue", out) == raw_key == "person:иванова мария петровна|1987-03-25"
    formatted = example_application("new_issue")
    plain = copy.deepcopy(formatted)
    plain["applicant"]["snils"] = "11223344595"
    assert subject_key("new_issue", formatted) == subject_key("new_issue", plain)


def test_subject_key_of_bad_data() -> None:
    data = example_application("restore")
    data["applicant"]["snils"] = "112-233-445 96"
    with pytest.raises(InvalidInput) as caught:
        subject_key("restore", data)
    assert caught.value.errors[0].field == "applicant.snils"
    assert caught.value.errors[0].rule == "snils_checksum"
    with pytest.raises(InvalidInput):
        subject_key("restore", {"for_child": True})
    data = example_application("restore")
    data["applicant"].pop("snils")
    data["applicant"]["birth_date"] = "30.02.1987"
    with pytest.raises(InvalidInput) as caught:
        subject_key("restore", data)
    assert caught.value.errors[0].rule == "real_date"


# ------------------------------------------------------------------------------ corpus


def _expand(value: Any) -> Any:
    if isinstance(value, dict):
        if "$repeat" in value:
            return str(value["$repeat"]) * int(value["times"])
        if "$repeat_list" in value:
            return [copy.deepcopy(value["$repeat_list"]) for _ in range(int(value["times"]))]
        return {key: _expand(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_expand(item) for item in value]
    return value


def _set(data: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    node: Any = data
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        index = int(last)
        if index == len(node):
            node.append(value)
        else:
            node[index] = value
    elif value is None:
        node.pop(last, None)
    else:
        node[last] = value


def _load_corpus() -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = yaml.safe_load(CORPUS.read_text(encoding="utf-8"))["entries"]
    return entries


CORPUS_ENTRIES = _load_corpus()


def test_corpus_ids_are_unique() -> None:
    ids = [entry["id"] for entry in CORPUS_ENTRIES]
    assert len(ids) == len(set(ids))


def test_corpus_covers_every_rule() -> None:
    covered = {entry["expect"]["rule"] for entry in CORPUS_ENTRIES}
    assert set(RULES) - covered == set()
    assert covered - set(RULES) == set()


@pytest.mark.parametrize("entry", CORPUS_ENTRIES, ids=[e["id"] for e in CORPUS_ENTRIES])
def test_corpus_entry_is_refused_as_expected(entry: dict[str, Any]) -> None:
    data = example_application(entry["type"])
    for path, value in (entry.get("set") or {}).items():
        _set(data, path, _expand(value))
    exc = refused(entry["type"], data)
    expect = entry["expect"]
    wanted = {(expect["field"], expect["rule"])} | {
        (extra["field"], extra["rule"]) for extra in entry.get("also", [])
    }
    assert pairs(exc) == wanted, [str(e) for e in exc.errors]
    assert exc.reason == expect.get("reason")
    if exc.reason is not None:
        assert exc.advice == ReasonCode(exc.reason).advice
    for error in exc.errors:
        assert error.rule in RULES
        assert error.message
