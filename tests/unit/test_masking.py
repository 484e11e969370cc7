"""Masking of personal data: per key, per text pattern, nested structures, and a property that no
valid SNILS survives masking."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.applications import example_application
from engine.masking import PERSONAL_KEYS, mask_data, mask_event, mask_text


@pytest.mark.parametrize(
    ("key", "value", "masked"),
    [
        ("snils", "112-233-445 95", "***-***-*** 95"),
        ("snils", "11223344595", "***-***-*** 95"),
        ("parent_snils", "11223344595", "***-***-*** 95"),
        ("full_name", "Иванова Мария Петровна", "И*** М*** П***"),
        ("full_name", "Петрова-Водкина Анна", "П*** А***"),
        ("birth_date", "1987-03-25", "1987-**-**"),
        ("birth_date", "25.03.1987", "**.**.1987"),
        ("policy_number", "7700001234567895", "************7895"),
        ("current_policy_number", "AB 1234567890", "** ******7890"),
        ("electronic_policy_number", "7700001234567895", "************7895"),
        ("old_policy_number", "1234567890123", "*********0123"),
        ("phone", "9123456789", "********89"),
        ("phone", "+7 912 345-67-89", "+* *** ***-**-89"),
        ("email", "maria.ivanova@mail.ru", "m***@mail.ru"),
        ("inn", "500100732259", "**********59"),
        ("parent_inn", "500100732259", "**********59"),
        ("registration_address", "г. Москва, ул. Льва Толстого, д. 16", "***"),
        ("actual_address", "г. Москва", "***"),
        ("postal_address", "119021, г. Москва", "***"),
        ("file_name", "паспорт_Иванова.pdf", "***.pdf"),
        ("passport_number", "123456", "****56"),
        ("passport_series", "4508", "****"),
    ],
)
def test_mask_per_key(key: str, value: str, masked: str) -> None:
    assert key in PERSONAL_KEYS
    assert mask_data({key: value}) == {key: masked}


@pytest.mark.parametrize(
    ("key", "value"), [("kind", "photo"), ("channel", "online"), ("size", 1000), ("number", "1")]
)
def test_other_keys_untouched(key: str, value: Any) -> None:
    assert mask_data({key: value}) == {key: value}


def test_none_and_non_strings_under_personal_keys() -> None:
    assert mask_data({"snils": None}) == {"snils": None}
    assert mask_data({"snils": 11223344595}) == {"snils": "***-***-*** 95"}
    assert mask_data({"phone": True}) == {"phone": "***"}
    assert mask_data({"SNILS": "11223344595"}) == {"SNILS": "***-***-*** 95"}


def test_passport_object_is_masked_field_by_field() -> None:
    passport = {
        "series": "4508",
        "number": "123456",
        "issue_date": "2007-04-12",
        "division_code": "770-001",
        "issued_by": "ОВД района Хамовники",
    }
    assert mask_data({"passport": passport}) == {
        "passport": {
            "series": "****",
            "number": "****56",
            "issue_date": "2007-**-**",
            "division_code": "***",
            "issued_by": "***",
        }
    }


def test_nested_structures_and_no_mutation() -> None:
    data = example_application("child_link")
    before = json.dumps(data, ensure_ascii=False)
    masked = mask_data({"case": {"data": data, "history": [data, (data,)]}})
    assert json.dumps(data, ensure_ascii=False) == before
    for copy in (
        masked["case"]["data"],
        masked["case"]["history"][0],
        masked["case"]["history"][1][0],
    ):
        assert copy["child"]["full_name"] == "И*** А*** С***"
        assert copy["applicant"]["snils"] == "***-***-*** 95"
        assert copy["parent_inn"] == "**********59"
        assert copy["confirmation"] == "sms"
    assert isinstance(masked["case"]["history"][1], tuple)


@pytest.mark.parametrize(
    "name", ["restore", "new_issue", "child_link", "replacement", "paper_duplicate"]
)
def test_examples_leak_nothing(name: str) -> None:
    data = example_application(name)
    text = json.dumps(mask_data(data), ensure_ascii=False)
    applicant = data["applicant"]
    for secret in (
        "11223344595",
        "112-233-445",
        "Иванова",
        "Мария",
        "123456",
        "912",
        "ivanova",
        "Толстого",
        "7700001234567895",
        "500100732259",
        "14563278980",
        "25.03",
        applicant["full_name"],
    ):
        assert secret not in text, secret


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("СНИЛС 112-233-445 95.", "СНИЛС ***-***-*** 95."),
        ("СНИЛС:11223344595", "СНИЛС:***-***-*** 95"),
        ("ЕНП 7700001234567895", "ЕНП ************7895"),
        ("ЕНП 7700 0012 3456 7895", "ЕНП **** **** **** 7895"),
        ("ИНН 500100732259", "ИНН **********59"),
        ("ИНН 7707083893", "ИНН ********93"),
        ("паспорт 45 08 123456", "паспорт ** ** ****56"),
        ("паспорт 4508 123456", "паспорт **** ****56"),
        ("паспорт 4508 № 123456", "паспорт **** № ****56"),
        ("полис 1234567890123", "полис *********0123"),
        ("тел. +7 (912) 345-67-89", "тел. +* (***) ***-**-89"),
        ("тел. 8 912 345 67 89", "тел. * *** *** ** 89"),
        ("mail maria.ivanova@mail.ru", "mail m***@mail.ru"),
    ],
)
def test_mask_text_patterns(text: str, masked: str) -> None:
    assert mask_text(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "case 123e4567-e89b-12d3-a456-426614174000 opened",
        "sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "version 42, 3 attachments, 2026-11-21",
        "deadline in 5 working days",
    ],
)
def test_mask_text_leaves_other_text_alone(text: str) -> None:
    assert mask_text(text) == text


@pytest.mark.parametrize(
    "hostile",
    ["a" * 300_000 + "@", ("a" * 100 + "@") * 3_000, "1" * 300_000, "+7" + " (" * 150_000],
)
def test_mask_text_is_linear_on_hostile_input(hostile: str) -> None:
    started = time.perf_counter()
    mask_text(hostile)
    assert time.perf_counter() - started < 2


def test_mask_event_processor() -> None:
    event: dict[str, Any] = {
        "event": "opened for СНИЛС 112-233-445 95",
        "snils": "11223344595",
        "data": {"applicant": {"full_name": "Иванова Мария Петровна"}},
        "note": ["ИНН 500100732259"],
    }
    out = mask_event(None, "info", event)
    assert out is event
    assert out == {
        "event": "opened for СНИЛС ***-***-*** 95",
        "snils": "***-***-*** 95",
        "data": {"applicant": {"full_name": "И*** М*** П***"}},
        "note": ["ИНН **********59"],
    }


# ------------------------------------------------------------------------------ property


def _reference_snils(body: int) -> str:
    digits = f"{body:09d}"
    total = sum(int(d) * w for d, w in zip(digits, range(9, 0, -1), strict=True))
    control = total if total < 100 else (0 if total in (100, 101) else total % 101 % 100)
    return f"{digits}{control:02d}"


valid_snils = st.integers(min_value=1001999, max_value=999_999_999).map(_reference_snils)
fillers = st.text(alphabet="абвгд ,.:;()\n", max_size=12)


@given(valid_snils, fillers, fillers, st.booleans())
def test_no_valid_snils_survives_mask_text(
    snils: str, before: str, after: str, formatted: bool
) -> None:
    written = f"{snils[:3]}-{snils[3:6]}-{snils[6:9]} {snils[9:]}" if formatted else snils
    masked = mask_text(f"{before} {written} {after}")
    assert written not in masked
    assert snils[:9] not in masked.replace("-", "").replace(" ", "")


@given(valid_snils, st.sampled_from(["snils", "parent_snils"]), st.booleans())
def test_no_valid_snils_survives_mask_data(snils: str, key: str, formatted: bool) -> None:
    written = f"{snils[:3]}-{snils[3:6]}-{snils[6:9]} {snils[9:]}" if formatted else snils
    data = {"applicant": {key: written}, "items": [{key: written}], "child": {"snils": written}}
    dumped = json.dumps(mask_data(data))
    assert written not in dumped
    assert snils[:9] not in dumped
