"""Field validators against independent reference implementations, plus table tests.

The reference checks below are written from the published algorithms in a different shape from
the production code (Luhn-style doubling for the ENP, weights counted from the other end for
SNILS, one master weight list for INN, the calendar module for dates), so a shared mistake is
unlikely.
"""

from __future__ import annotations

import calendar
import operator
from datetime import date
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from engine.applications.fields import (
    RULES,
    Address,
    Attachment,
    BirthDate,
    DateValue,
    DivisionCode,
    Email,
    Enp,
    FullName,
    Inn,
    InsurerCode,
    LegalInn,
    Money,
    PassportNumber,
    PassportSeries,
    PersonInn,
    Phone,
    PolicyNumber,
    RegionZone,
    Snils,
    classify_policy_number,
    field_errors,
    inn_check_digits,
    mod10_check_digit,
    snils_check_number,
)

TODAY = date(2026, 11, 21)
CONTEXT = {"today": TODAY}
digits = st.text(alphabet="0123456789", min_size=1, max_size=1)


def check(annotation: Any, value: Any) -> Any:
    return TypeAdapter(annotation).validate_python(value, context=CONTEXT)


def rule_of(annotation: Any, value: Any) -> str:
    with pytest.raises(ValidationError) as caught:
        check(annotation, value)
    errors = field_errors(caught.value)
    assert len(errors) >= 1
    return errors[0][0].rule


def accepted(annotation: Any, value: Any) -> bool:
    try:
        check(annotation, value)
    except ValidationError:
        return False
    return True


# ------------------------------------------------------------------------------ references


def ref_snils_valid(number: str) -> bool:
    """Pension Fund rule; positions counted from the end of the nine-digit body."""
    body, control = number[:9], int(number[9:])
    if int(body) <= 1001998:
        return True
    total = sum(position * int(ch) for position, ch in enumerate(reversed(body), start=1))
    while total > 101:
        total -= 101
    return (0 if total in (100, 101) else total) == control


def ref_enp_valid(number: str) -> bool:
    """Luhn formulation of the Mod10 scheme: double every other digit from the right."""
    total = 0
    for index, ch in enumerate(reversed(number[:15])):
        value = int(ch)
        if index % 2 == 0:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return (total + int(number[15])) % 10 == 0


INN_MASTER_WEIGHTS = [3, 7, 2, 4, 10, 3, 5, 9, 4, 6, 8]


def ref_inn_control(prefix: str) -> int:
    weights = INN_MASTER_WEIGHTS[-len(prefix) :]
    total: int = sum(map(operator.mul, weights, map(int, prefix)))
    return total % 11 % 10


def ref_inn_valid(number: str) -> bool:
    if len(number) == 10:
        return ref_inn_control(number[:9]) == int(number[9])
    return ref_inn_control(number[:10]) == int(number[10]) and ref_inn_control(number[:11]) == int(
        number[11]
    )


def ref_date(day: int, month: int, year: int) -> date | None:
    if not (1 <= year <= 9999 and 1 <= month <= 12):
        return None
    if not 1 <= day <= calendar.monthrange(year, month)[1]:
        return None
    return date(year, month, day)


# ------------------------------------------------------------------------------ SNILS

snils_bodies = st.integers(min_value=1001999, max_value=999_999_999).map(lambda n: f"{n:09d}")


def ref_make_snils(body: str) -> str:
    for control in range(100):
        if ref_snils_valid(f"{body}{control:02d}"):
            return f"{body}{control:02d}"
    raise AssertionError("no control number")


@given(snils_bodies)
def test_valid_snils_accepted_in_both_notations(body: str) -> None:
    number = ref_make_snils(body)
    formatted = f"{number[:3]}-{number[3:6]}-{number[6:9]} {number[9:]}"
    assert check(Snils, number) == number
    assert check(Snils, formatted) == number


@given(st.text(alphabet="0123456789", min_size=11, max_size=11))
@example("11223344595")
@example("11223344596")
@example("00100199800")
def test_snils_agrees_with_reference(number: str) -> None:
    if ref_snils_valid(number):
        assert check(Snils, number) == number
    else:
        assert rule_of(Snils, number) == "snils_checksum"


@given(st.text(max_size=40))
def test_snils_never_crashes(text: str) -> None:
    plain = len(text) == 11 and all(ch in "0123456789" for ch in text)
    if not plain and not accepted(Snils, text):
        assert rule_of(Snils, text) in {"snils_format", "snils_checksum", "max_length"}


@pytest.mark.parametrize(
    ("body", "control"),
    [("112233445", 95), ("000000000", 0), ("087654321", 2), ("145632789", 80)],
)
def test_snils_check_number_table(body: str, control: int) -> None:
    assert snils_check_number(body) == control


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ("112-233-445 96", "snils_checksum"),
        ("112 233 445 95", "snils_format"),
        ("1122334459", "snils_format"),
        ("112-233-44595", "snils_format"),
        (" 11223344595", "snils_format"),
        ("１１２２３３４４５９５", "snils_format"),
        ("1" * 21, "max_length"),
        (11223344595, "wrong_type"),
    ],
)
def test_snils_rules(value: Any, rule: str) -> None:
    assert rule_of(Snils, value) == rule


# ------------------------------------------------------------------------------ ENP and policies


@pytest.mark.parametrize(
    ("payload", "digit"), [("12345", 5), ("401", 0), ("9999", 4), ("99999999", 8)]
)
def test_mod10_published_examples(payload: str, digit: int) -> None:
    # the worked examples of ISO/HL7 27931:2009 (Mod10), the scheme FOMS uses for the ENP
    assert mod10_check_digit(payload) == digit


@given(st.text(alphabet="0123456789", min_size=16, max_size=16))
@example("7700001234567895")
@example("7700001234567896")
def test_enp_agrees_with_reference(number: str) -> None:
    if ref_enp_valid(number):
        assert check(Enp, number) == number
        assert classify_policy_number(number) == ("enp", number)
    else:
        assert rule_of(Enp, number) == "enp_checksum"
        assert rule_of(PolicyNumber, number) == "enp_checksum"


@given(st.text(alphabet="0123456789", min_size=15, max_size=15))
def test_generated_enp_is_accepted(payload: str) -> None:
    number = payload + str(mod10_check_digit(payload))
    assert ref_enp_valid(number)
    grouped = " ".join(number[i : i + 4] for i in range(0, 16, 4))
    assert check(Enp, grouped) == number
    assert check(PolicyNumber, grouped) == number


@pytest.mark.parametrize(
    ("value", "fmt", "normalized"),
    [
        ("7700001234567895", "enp", "7700001234567895"),
        ("7700 0012 3456 7895", "enp", "7700001234567895"),
        ("1234567890123", "policy_13_digits", "1234567890123"),
        ("AB 1234567890", "series_number", "AB 1234567890"),
        ("XY0000000001", "series_number", "XY 0000000001"),
    ],
)
def test_policy_formats(value: str, fmt: str, normalized: str) -> None:
    assert classify_policy_number(value) == (fmt, normalized)
    assert check(PolicyNumber, value) == normalized


@pytest.mark.parametrize(
    ("value", "rule", "why"),
    [
        ("7700001234567896", "enp_checksum", "check digit"),
        ("12345", "policy_format", "13 digits"),
        ("ab 1234567890", "policy_series_number", "capital"),
        ("АВ 1234567890", "policy_series_number", "Latin"),
        ("AB 123456789", "policy_series_number", "10 digits"),
        ("AB-1234567890", "policy_series_number", "10 digits"),
        ("12345678901234", "policy_format", "16 digits"),
    ],
)
def test_policy_number_failures_explain_every_format(value: str, rule: str, why: str) -> None:
    with pytest.raises(ValidationError) as caught:
        check(PolicyNumber, value)
    error = field_errors(caught.value)[0][0]
    assert error.rule == rule
    for name in ("ENP", "13-digit", "series + number"):
        assert name in error.message
    assert why in error.message
    assert error.expected


def test_enp_rules() -> None:
    assert rule_of(Enp, "770000123456789") == "enp_format"
    assert rule_of(Enp, "AB 1234567890") == "enp_format"
    assert rule_of(Enp, "7700001234567896") == "enp_checksum"


# ------------------------------------------------------------------------------ INN


@given(st.text(alphabet="0123456789", min_size=10, max_size=10))
@example("7707083893")
def test_inn10_agrees_with_reference(number: str) -> None:
    assert accepted(Inn, number) == ref_inn_valid(number)
    assert accepted(LegalInn, number) == ref_inn_valid(number)
    assert rule_of(PersonInn, number) == "inn_format"
    if not ref_inn_valid(number):
        assert rule_of(Inn, number) == "inn_checksum"


@given(st.text(alphabet="0123456789", min_size=12, max_size=12))
@example("500100732259")
def test_inn12_agrees_with_reference(number: str) -> None:
    assert accepted(Inn, number) == ref_inn_valid(number)
    assert accepted(PersonInn, number) == ref_inn_valid(number)
    if not ref_inn_valid(number):
        assert rule_of(PersonInn, number) == "inn_checksum"


@given(st.text(alphabet="0123456789", min_size=10, max_size=10))
def test_generated_inn12_is_accepted(payload: str) -> None:
    number = payload + inn_check_digits(payload)
    assert ref_inn_valid(number)
    assert check(PersonInn, number) == number


@pytest.mark.parametrize(
    ("value", "rule"),
    [("77070838930", "inn_format"), ("7707-083893", "inn_format"), ("7707083894", "inn_checksum")],
)
def test_inn_rules(value: str, rule: str) -> None:
    assert rule_of(Inn, value) == rule


# ------------------------------------------------------------------------------ dates


@given(
    st.integers(min_value=0, max_value=99),
    st.integers(min_value=0, max_value=99),
    st.integers(min_value=0, max_value=9999),
)
@example(31, 2, 1987)
@example(29, 2, 2000)
@example(29, 2, 1900)
def test_dates_agree_with_calendar(day: int, month: int, year: int) -> None:
    reference = ref_date(day, month, year)
    for text in (f"{day:02d}.{month:02d}.{year:04d}", f"{year:04d}-{month:02d}-{day:02d}"):
        if reference is None:
            assert rule_of(DateValue, text) == "real_date"
        elif reference < date(1900, 1, 1):
            assert rule_of(DateValue, text) == "date_range"
        else:
            assert check(DateValue, text) == reference
            if reference <= TODAY:
                assert check(BirthDate, text) == reference
            else:
                assert rule_of(BirthDate, text) == "not_future"


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ("1987/03/25", "date_format"),
        ("25.3.1987", "date_format"),
        ("25.03.87", "date_format"),
        ("1987-03-25T00:00:00", "date_format"),
        ("31.04.2020", "real_date"),
        ("2026-11-22", "not_future"),
        ("31.12.1899", "date_range"),
        (19870325, "wrong_type"),
    ],
)
def test_date_rules(value: Any, rule: str) -> None:
    assert rule_of(BirthDate, value) == rule


def test_today_itself_is_not_future() -> None:
    assert check(BirthDate, "21.11.2026") == TODAY
    assert TypeAdapter(BirthDate).dump_python(TODAY, mode="json") == "2026-11-21"


# ------------------------------------------------------------------------------ names and text


@pytest.mark.parametrize(
    "value",
    [
        "Иванова Мария Петровна",
        "Петрова-Водкина Анна",
        "Ёлкин Пётр Семёнович",
        "Ли Ян",
        "Салтыков-Щедрин Михаил Евграфович",
    ],
)
def test_good_names(value: str) -> None:
    assert check(FullName, value) == value


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ("Ivanova Maria", "cyrillic_name"),
        ("Иванова Мария2", "cyrillic_name"),
        ("Иванова, Мария", "cyrillic_name"),
        ("Иванова  Мария", "name_spacing"),
        (" Иванова Мария", "name_spacing"),
        ("Иванова Мария ", "name_spacing"),
        ("Иванова", "name_parts"),
        ("А Б В Г Д Е", "name_parts"),
        ("иванова Мария", "name_capitalisation"),
        ("ИВАНОВА Мария", "name_capitalisation"),
        ("Петрова-водкина Анна", "name_capitalisation"),
        ("Петрова- Анна", "name_capitalisation"),
        ("-Петрова Анна", "name_capitalisation"),
        ("Я" * 151, "max_length"),
    ],
)
def test_name_rules(value: str, rule: str) -> None:
    assert rule_of(FullName, value) == rule


@pytest.mark.parametrize(
    ("value", "normalized"),
    [
        ("9123456789", "9123456789"),
        ("+7 912 345-67-89", "9123456789"),
        ("8 (912) 345-67-89", "9123456789"),
        ("79123456789", "9123456789"),
        ("(495) 123-45-67", "4951234567"),
    ],
)
def test_phones(value: str, normalized: str) -> None:
    assert check(Phone, value) == normalized


@pytest.mark.parametrize(
    "value", ["+8 912 345 67 89", "912345678", "+7 912 345-67-8", "912-345-67-89 доб. 1", "9" * 25]
)
def test_bad_phones(value: str) -> None:
    assert rule_of(Phone, value) in {"phone_format", "max_length"}


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("maria.ivanova@mail.ru", True),
        ("m+tag@Example.COM", True),
        ("user@xn--80a1acny.xn--p1ai", True),
        ("maria.ivanova@mail", False),
        ("maria..ivanova@mail.ru", False),
        ("мария@почта.рф", False),
        ("@mail.ru", False),
        ("a b@mail.ru", False),
    ],
)
def test_emails(value: str, ok: bool) -> None:
    if ok:
        assert check(Email, value).endswith(value.split("@")[1].lower())
    else:
        assert rule_of(Email, value) == "email_format"


@pytest.mark.parametrize(
    ("annotation", "value", "result"),
    [
        (PassportSeries, "4508", "4508"),
        (PassportSeries, "45 08", "4508"),
        (PassportNumber, "123456", "123456"),
        (DivisionCode, "770-001", "770-001"),
        (DivisionCode, "770001", "770-001"),
        (InsurerCode, "77008", "77008"),
        (RegionZone, "Asia/Vladivostok", "Asia/Vladivostok"),
        (Address, "  г. Москва, ул. Тверская, д. 1  ", "г. Москва, ул. Тверская, д. 1"),
    ],
)
def test_codes_accepted(annotation: Any, value: str, result: str) -> None:
    assert check(annotation, value) == result


@pytest.mark.parametrize(
    ("annotation", "value", "rule"),
    [
        (PassportSeries, "450", "passport_series"),
        (PassportSeries, "45-08", "passport_series"),
        (PassportNumber, "12345a", "passport_number"),
        (DivisionCode, "770 001", "division_code"),
        (InsurerCode, "7700", "insurer_code"),
        (RegionZone, "Europe/Atlantis", "time_zone"),
        (RegionZone, "../../etc/passwd", "time_zone"),
        (Address, " \t ", "text_empty"),
        (Address, "ул.\x00Тверская", "printable_text"),
        (Address, "д" * 501, "max_length"),
        (Money, -1, "money_format"),
        (Money, 1.005, "money_format"),
        (Money, "12,50", "money_format"),
        (Money, True, "wrong_type"),
        (Money, float("nan"), "money_format"),
    ],
)
def test_field_rules(annotation: Any, value: Any, rule: str) -> None:
    assert rule_of(annotation, value) == rule


@pytest.mark.parametrize(("value", "text"), [(250, "250.00"), (250.5, "250.50"), ("99.9", "99.90")])
def test_money(value: Any, text: str) -> None:
    amount = check(Money, value)
    assert TypeAdapter(Money).dump_python(amount, mode="json") == text


# ------------------------------------------------------------------------------ attachments

PDF = {
    "kind": "passport_scan",
    "file_name": "passport.pdf",
    "media_type": "application/pdf",
    "size": 1000,
    "sha256": "AB" * 32,
}
PHOTO = {
    "kind": "photo",
    "file_name": "photo.JPEG",
    "media_type": "image/jpeg",
    "size": 40_000,
    "sha256": "cd" * 32,
    "width": 320,
    "height": 400,
    "colour_mode": "bw",
}
SIGNATURE = dict(PHOTO, kind="signature", file_name="sig.png", media_type="image/png") | {
    "width": 160,
    "height": 736,
}


@pytest.mark.parametrize("data", [PDF, PHOTO, SIGNATURE])
def test_good_attachments(data: dict[str, Any]) -> None:
    attachment = check(Attachment, data)
    assert attachment.sha256 == data["sha256"].lower()


def test_attachment_of_exactly_5_mb() -> None:
    check(Attachment, dict(PDF, size=5 * 1024 * 1024))


@pytest.mark.parametrize(
    ("base", "patch", "field", "rule"),
    [
        (PDF, {"media_type": "image/gif"}, "media_type", "media_type"),
        (PDF, {"size": 5 * 1024 * 1024 + 1}, "size", "file_size"),
        (PDF, {"size": 0}, "size", "file_size"),
        (PDF, {"file_name": "C:\\scans\\passport.pdf"}, "file_name", "file_name"),
        (PDF, {"file_name": "passport"}, "file_name", "file_name"),
        (PDF, {"file_name": "passport.jpg"}, "file_name", "file_extension"),
        (PDF, {"sha256": "ab" * 31}, "sha256", "sha256_format"),
        (PDF, {"height": 10}, "height", "image_metadata"),
        (PDF, {"kind": "selfie"}, "kind", "allowed_values"),
        (PDF, {"pages": 3}, "pages", "unknown_field"),
        (PHOTO, {"colour_mode": None}, "colour_mode", "image_metadata"),
        (
            PHOTO,
            {
                "media_type": "application/pdf",
                "file_name": "p.pdf",
                "width": None,
                "height": None,
                "colour_mode": None,
            },
            "media_type",
            "image_required",
        ),
        (PHOTO, {"width": 400, "height": 320}, "width", "photo_dimensions"),
        (PHOTO, {"colour_mode": "grayscale"}, "colour_mode", "photo_colour"),
        (SIGNATURE, {"height": 160}, "height", "signature_dimensions"),
        (SIGNATURE, {"colour_mode": "color"}, "colour_mode", "signature_colour"),
        (PHOTO, {"width": 0}, "width", "invalid_value"),
        (PHOTO, {"width": "320"}, "width", "wrong_type"),
    ],
)
def test_attachment_rules(
    base: dict[str, Any], patch: dict[str, Any], field: str, rule: str
) -> None:
    data = {key: value for key, value in (base | patch).items() if value is not None}
    with pytest.raises(ValidationError) as caught:
        check(Attachment, data)
    errors = [error for error, _reason in field_errors(caught.value)]
    assert [(e.field, e.rule) for e in errors] == [(field, rule)]
    assert errors[0].rule in RULES


def test_scan_rules_carry_the_invalid_scan_reason() -> None:
    with pytest.raises(ValidationError) as caught:
        check(Attachment, dict(PHOTO, width=100, colour_mode="color"))
    found = field_errors(caught.value)
    assert {reason for _error, reason in found} == {"invalid_scan"}
    assert len(found) == 2


# ------------------------------------------------------------------------------ robustness


@settings(max_examples=50)
@given(st.one_of(st.text(), st.integers(), st.none(), st.booleans(), st.floats()))
def test_validators_only_ever_raise_validation_errors(value: Any) -> None:
    for annotation in (Snils, Enp, PolicyNumber, Inn, FullName, BirthDate, Phone, Email, Money):
        try:
            check(annotation, value)
        except ValidationError as exc:
            for error, _reason in field_errors(exc):
                assert error.rule in RULES or error.rule in {"wrong_type"}


def test_every_rule_has_a_description() -> None:
    for name, description in RULES.items():
        assert name == name.lower()
        assert name.replace("_", "").isalnum()
        assert description
