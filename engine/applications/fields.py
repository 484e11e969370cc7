"""Shared field types of the application models: strict validators that name the rule they apply.

Every validator here either returns a normalized value or raises a ``PydanticCustomError`` whose
type is a stable snake_case rule name listed in :data:`RULES`, whose context carries
``expected`` (what a correct value looks like) and, where the failure is a domain refusal,
``reason`` (a :class:`~engine.reasons.ReasonCode` value). :func:`field_errors` turns a pydantic
``ValidationError`` into the engine's :class:`~engine.errors.FieldError` list, mapping pydantic's
own error types onto rule names too, so callers never see pydantic vocabulary.

The module is pure: no database, no clock. Rules that compare with "today" read it from the
validation context (``{"today": date}``) because the engine's time is injected, never read here.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Annotated, Any, Final, Literal, Self
from zoneinfo import available_timezones

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    Strict,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from engine.errors import FieldError
from engine.reasons import ReasonCode

# --------------------------------------------------------------------------------------------
# Rule registry

RULES: Final[dict[str, str]] = {
    # generic rules, also the names pydantic's own error types are mapped onto
    "required": "the field is required",
    "unknown_field": "the field is not part of this application type",
    "wrong_type": "the JSON type of the value is wrong (no silent coercion)",
    "max_length": "the text is longer than the field allows",
    "max_items": "the list has more items than allowed",
    "allowed_values": "the value is not one of the allowed choices",
    "invalid_value": "the value is not acceptable",
    "conditional_required": "the field is required by another field's value",
    "conditional_forbidden": "the field must be absent given another field's value",
    # names
    "cyrillic_name": "a full name uses Cyrillic letters, spaces and hyphens only",
    "name_spacing": "name parts are separated by single spaces, no leading or trailing space",
    "name_parts": "a full name has 2 to 5 parts",
    "name_capitalisation": "each part (and each hyphenated half) starts with a capital letter",
    # dates
    "date_format": "a date is DD.MM.YYYY or YYYY-MM-DD",
    "real_date": "the date exists in the calendar",
    "not_future": "the date is not after today",
    "date_range": "the date is not before 1900-01-01",
    # identifiers
    "snils_format": "SNILS is 11 digits, written 112-233-445 95 or 11223344595",
    "snils_checksum": "the SNILS check number matches its first nine digits",
    "enp_format": "the unified policy number (ENP) is 16 digits",
    "enp_checksum": "the ENP check digit matches (FOMS / ISO-HL7 27931 Mod10)",
    "policy_format": "a policy number is an ENP, an old 13-digit number or series + number",
    "policy_series_number": "an old policy is 2 capital Latin letters and 10 digits",
    "inn_format": "INN is 10 digits (organisation) or 12 digits (person)",
    "inn_checksum": "the INN check digits match (FNS algorithm)",
    "passport_series": "a passport series is 4 digits",
    "passport_number": "a passport number is 6 digits",
    "division_code": "a passport division code is NNN-NNN",
    "passport_issue_age": "a Russian passport is issued at the age of 14 or later",
    "insurer_code": "an insurer (SMO) registry code is 5 digits",
    # contacts and text
    "phone_format": "a phone number has 10 digits (+7 / 8 prefix and punctuation allowed)",
    "email_format": "an e-mail address is local@domain.tld",
    "contact_required": "the applicant gives a phone number or an e-mail address",
    "text_empty": "the text is not blank",
    "printable_text": "the text has no control characters",
    "time_zone": "the region's zone is a known IANA time zone",
    "money_format": "an amount is a non-negative number of roubles with at most 2 decimals",
    # attachments
    "media_type": "an attachment is application/pdf, image/jpeg or image/png",
    "file_size": "an attachment is 1 byte to 5 MB",
    "file_name": "an attachment file name is a plain name with an extension",
    "file_extension": "the file name's extension matches the media type",
    "sha256_format": "the content hash is 64 hexadecimal digits (SHA-256)",
    "image_metadata": "images carry width, height and colour mode; PDF files do not",
    "image_required": "a photo or signature is a JPEG or PNG image",
    "photo_dimensions": "a photo for a plastic card is 320x400 px",
    "photo_colour": "a photo for a plastic card is black and white",
    "signature_dimensions": "a signature scan is 160x736 px",
    "signature_colour": "a signature scan is black and white",
    # application rules (engine.applications.models)
    "attachment_required": "a document this application needs is not attached",
    "attachment_kind_not_allowed": "this application type does not take that kind of document",
    "plastic_card_only": "photo and signature are attached only (and always) for a plastic card",
    "representative_not_allowed": "an online application is filed by the adult applicant only",
    "newborn_requires_mfc": "a newborn's policy is issued through an MFC, not online",
    "adult_only": "the applicant must be 18 or older",
    "representative_required": "an applicant under 14 is represented by a parent or guardian",
    "child_age": "the child is under 18",
    "issue_before_birth": "a document is not issued before its holder's birth",
    "expiry_after_today": "an expiry date, when given, is after today",
    "expiry_after_issue": "an expiry date, when given, is after the issue date",
    "parent_id_required": "the parent gives a SNILS or an INN",
    "parent_snils_mismatch": "the parent's SNILS equals the applicant's SNILS",
    "account_not_verified": "the parent's portal account is verified",
    "residence_changed_consistent": "a residence_change reason comes with residence_changed",
}


def fail(
    rule: str,
    message: str,
    expected: str | None = None,
    *,
    reason: ReasonCode | None = None,
) -> PydanticCustomError:
    """The error a validator raises: the rule name is the pydantic error type."""
    if rule not in RULES:
        # an unregistered name would silently break the stable vocabulary callers rely on
        raise KeyError(f"rule {rule!r} is not registered in RULES")
    ctx: dict[str, Any] = {"expected": expected or ""}
    if reason is not None:
        ctx["reason"] = reason.value
    # braces would be read as template fields by pydantic-core
    return PydanticCustomError(rule, message.replace("{", "(").replace("}", ")"), ctx)


def init_error(
    loc: tuple[str | int, ...],
    rule: str,
    message: str,
    value: Any,
    expected: str | None = None,
    *,
    reason: ReasonCode | None = None,
) -> InitErrorDetails:
    """One line of a ``ValidationError`` built by a model-level rule (see ``raise_errors``)."""
    return InitErrorDetails(type=fail(rule, message, expected, reason=reason), loc=loc, input=value)


def raise_errors(title: str, errors: Sequence[InitErrorDetails]) -> None:
    """Raise every collected rule failure at once, each at its own field path.

    A ``ValidationError`` raised inside a model validator keeps its line errors (locations are
    prefixed by pydantic with the enclosing path), which is how one model-level check reports
    several fields instead of a single error at the model's root.
    """
    if errors:
        raise ValidationError.from_exception_data(title, list(errors))


# --------------------------------------------------------------------------------------------
# Today, from the validation context


class MissingToday(RuntimeError):
    """A date rule ran without ``{"today": date}`` in the validation context (a programming
    error: it is deliberately not a ValueError so pydantic does not turn it into input errors)."""


def context_today(info: ValidationInfo) -> date:
    """The date rules compare with; taken from the context because the clock is injected."""
    ctx = info.context
    today = ctx.get("today") if isinstance(ctx, Mapping) else None
    if not isinstance(today, date) or isinstance(today, datetime):
        raise MissingToday(
            "validation needs context={'today': datetime.date}; "
            "use engine.applications.validate_application"
        )
    return today


def age_on(birth: date, today: date) -> int:
    """Completed years of age on ``today``."""
    years = today.year - birth.year
    if (today.month, today.day) < (birth.month, birth.day):
        years -= 1
    return years


# --------------------------------------------------------------------------------------------
# Text helpers

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _printable(value: str) -> str:
    text = value.strip()
    if not text:
        raise fail("text_empty", "must not be blank", "some text")
    if _CONTROL.search(text):
        raise fail("printable_text", "must not contain control characters", "plain text")
    return text


Address = Annotated[str, Strict(), StringConstraints(max_length=500), AfterValidator(_printable)]
ShortText = Annotated[str, Strict(), StringConstraints(max_length=200), AfterValidator(_printable)]

# --------------------------------------------------------------------------------------------
# Full names

_NAME_CHARS = re.compile(r"[А-ЯЁа-яё -]+")
_NAME_PART = re.compile(r"[А-ЯЁ][а-яё]*(?:-[А-ЯЁ][а-яё]*)*")
NAME_EXPECTED = "Cyrillic parts separated by single spaces, e.g. Петрова-Водкина Анна Сергеевна"
MIN_NAME_PARTS, MAX_NAME_PARTS = 2, 5


def check_full_name(value: str) -> str:
    """A full name as written in the passport: 2-5 capitalised Cyrillic parts."""
    if not _NAME_CHARS.fullmatch(value):
        raise fail(
            "cyrillic_name",
            "a full name may contain only Cyrillic letters, spaces and hyphens",
            NAME_EXPECTED,
        )
    parts = value.split(" ")
    if any(not part for part in parts):
        raise fail(
            "name_spacing",
            "name parts must be separated by single spaces, without leading or trailing spaces",
            NAME_EXPECTED,
        )
    if not MIN_NAME_PARTS <= len(parts) <= MAX_NAME_PARTS:
        raise fail(
            "name_parts",
            f"a full name has {MIN_NAME_PARTS} to {MAX_NAME_PARTS} parts, got {len(parts)}",
            NAME_EXPECTED,
        )
    for part in parts:
        if not _NAME_PART.fullmatch(part):
            raise fail(
                "name_capitalisation",
                f"name part {part!r} must start with a capital letter, the rest lower case "
                "(hyphens only between capitalised halves)",
                NAME_EXPECTED,
            )
    return value


FullName = Annotated[
    str,
    Strict(),
    StringConstraints(max_length=150),
    AfterValidator(check_full_name),
]


def normalize_name_key(value: str) -> str:
    """A comparison key for a full name: trimmed, single-spaced, lower case, ё read as е
    (registries spell the same person with either letter)."""
    return " ".join(value.split()).lower().replace("ё", "е")


# --------------------------------------------------------------------------------------------
# Dates

_DMY = re.compile(r"([0-9]{2})\.([0-9]{2})\.([0-9]{4})")
_YMD = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
DATE_EXPECTED = "DD.MM.YYYY or YYYY-MM-DD, e.g. 25.03.1987"
MIN_DATE: Final = date(1900, 1, 1)


def parse_date(value: object) -> date:
    """Accept DD.MM.YYYY or ISO YYYY-MM-DD (or a ``date`` from Python callers)."""
    if isinstance(value, datetime):
        raise fail("wrong_type", "a date, not a date and time", DATE_EXPECTED)
    if isinstance(value, date):
        return value
    if not isinstance(value, str):
        raise fail("wrong_type", "a date must be written as a string", DATE_EXPECTED)
    if len(value) > len("YYYY-MM-DD"):
        raise fail("date_format", "not a date in an accepted format", DATE_EXPECTED)
    if match := _DMY.fullmatch(value):
        day, month, year = match.groups()
    elif match := _YMD.fullmatch(value):
        year, month, day = match.groups()
    else:
        raise fail("date_format", "not a date in an accepted format", DATE_EXPECTED)
    try:
        return date(int(year), int(month), int(day))
    except ValueError:
        raise fail(
            "real_date", f"{value} is not a date of the calendar", "an existing date"
        ) from None


def _not_before_1900(value: date) -> date:
    if value < MIN_DATE:
        raise fail("date_range", "dates before 1900 are not accepted", "1900-01-01 or later")
    return value


def _not_future(value: date, info: ValidationInfo) -> date:
    today = context_today(info)
    if value > today:
        raise fail(
            "not_future",
            f"{value.isoformat()} is in the future (today is {today.isoformat()})",
            f"{today.isoformat()} or earlier",
        )
    return value


_DATE_SCHEMA = WithJsonSchema({"type": "string", "format": "date", "description": DATE_EXPECTED})

#: any real date from 1900 on, normalized to ISO in JSON output
DateValue = Annotated[
    date, BeforeValidator(parse_date), AfterValidator(_not_before_1900), _DATE_SCHEMA
]
#: a real date that is not after today: birth dates and issue dates
PastDate = Annotated[
    date,
    BeforeValidator(parse_date),
    AfterValidator(_not_before_1900),
    AfterValidator(_not_future),
    _DATE_SCHEMA,
]
BirthDate = PastDate
IssueDate = PastDate

# --------------------------------------------------------------------------------------------
# SNILS

_SNILS_FORMATTED = re.compile(r"([0-9]{3})-([0-9]{3})-([0-9]{3})[ -]([0-9]{2})")
_SNILS_PLAIN = re.compile(r"[0-9]{11}")
SNILS_EXPECTED = "11 digits, e.g. 112-233-445 95 or 11223344595"
#: the Pension Fund defines check numbers only for numbers above 001-001-998
SNILS_CHECKED_FROM: Final = 1001998


def snils_check_number(body: str) -> int:
    """The Pension Fund check number of a SNILS's nine-digit body.

    Digits are weighted 9..1 from the left; a sum under 100 is the check number, 100 and 101
    give 00, a larger sum is reduced modulo 101 and read by the same rule.
    """
    total = sum(int(digit) * weight for digit, weight in zip(body, range(9, 0, -1), strict=True))
    if total > 101:
        total %= 101
    return total if total < 100 else 0


def check_snils(value: str) -> str:
    """Validate a SNILS and return its 11 digits."""
    if match := _SNILS_FORMATTED.fullmatch(value):
        digits = "".join(match.groups())
    elif _SNILS_PLAIN.fullmatch(value):
        digits = value
    else:
        raise fail("snils_format", "not a SNILS", SNILS_EXPECTED)
    body, control = digits[:9], int(digits[9:])
    if int(body) > SNILS_CHECKED_FROM and snils_check_number(body) != control:
        raise fail(
            "snils_checksum",
            "the SNILS check number does not match its digits (a typo?)",
            f"check number {snils_check_number(body):02d} for {body[:3]}-{body[3:6]}-{body[6:]}",
        )
    return digits


Snils = Annotated[str, Strict(), StringConstraints(max_length=20), AfterValidator(check_snils)]


def format_snils(digits: str) -> str:
    """``11223344595`` -> ``112-233-445 95``."""
    return f"{digits[:3]}-{digits[3:6]}-{digits[6:9]} {digits[9:]}"


# --------------------------------------------------------------------------------------------
# Unified policy number (ENP) and older policy numbers

_ENP_GROUPED = re.compile(r"[0-9]{4} [0-9]{4} [0-9]{4} [0-9]{4}")
_DIGITS = re.compile(r"[0-9]+")
ENP_EXPECTED = "16 digits whose last digit is the check digit, e.g. 7788990011223344"


def mod10_check_digit(payload: str) -> int:
    """Check digit of the unified policy number (FOMS), the ISO/HL7 27931:2009 Mod10 scheme.

    The digits at odd positions counted from the right are read, in that order, as a number
    which is doubled; the digits at even positions, in the same order, are written in front of
    it; the digits of the result are summed and the sum is subtracted from the nearest multiple
    of ten not below it. (12345 -> 5, 401 -> 0, 9999 -> 4, 99999999 -> 8.)
    """
    from_right = payload[::-1]
    odd, even = from_right[0::2], from_right[1::2]
    combined = even + str(int(odd or "0") * 2)
    total = sum(int(digit) for digit in combined)
    return (10 - total % 10) % 10


def _enp_problem(value: str) -> tuple[str, str] | None:
    """(rule, why) when ``value`` is not an ENP, else None."""
    digits = value.replace(" ", "") if _ENP_GROUPED.fullmatch(value) else value
    if not (_DIGITS.fullmatch(digits) and len(digits) == 16):
        return "enp_format", "an ENP has exactly 16 digits"
    expected = mod10_check_digit(digits[:15])
    if int(digits[15]) != expected:
        return "enp_checksum", f"the check digit is {digits[15]}, the digits give {expected}"
    return None


def check_enp(value: str) -> str:
    """Validate a unified policy number and return its 16 digits."""
    problem = _enp_problem(value)
    if problem is not None:
        rule, why = problem
        raise fail(rule, f"not a valid unified policy number (ENP): {why}", ENP_EXPECTED)
    return value.replace(" ", "")


Enp = Annotated[str, Strict(), StringConstraints(max_length=24), AfterValidator(check_enp)]

PolicyFormat = Literal["enp", "policy_13_digits", "series_number"]
POLICY_FORMATS: Final[tuple[PolicyFormat, ...]] = ("enp", "policy_13_digits", "series_number")
_SERIES_NUMBER = re.compile(r"([A-Z]{2}) ?([0-9]{10})")
_SERIES_LIKE = re.compile(r"([^\W\d_]{2}) ?(.*)")
POLICY_EXPECTED = (
    "an ENP of 16 digits (check digit), an old 13-digit number, "
    "or a series of 2 capital Latin letters and a 10-digit number, e.g. AB 1234567890"
)


def classify_policy_number(value: str) -> tuple[PolicyFormat, str]:
    """Detect a policy number's format and return it with the normalized number.

    Each documented format is tried strictly; when none fits, the error names the format the
    value resembles most as its rule and explains why every format refused it.
    """
    enp_problem = _enp_problem(value)
    if enp_problem is None:
        return "enp", value.replace(" ", "")
    if _DIGITS.fullmatch(value) and len(value) == 13:
        return "policy_13_digits", value
    if match := _SERIES_NUMBER.fullmatch(value):
        series, number = match.groups()
        return "series_number", f"{series} {number}"

    why_13 = "an old number has exactly 13 digits"
    series_like = _SERIES_LIKE.fullmatch(value)
    if series_like and not series_like.group(1).isascii():
        why_series = "the series must be Latin letters (Cyrillic look-alikes are not accepted)"
    elif series_like and not series_like.group(1).isupper():
        why_series = "the series must be 2 capital Latin letters"
    elif series_like:
        why_series = "the number after the series must be exactly 10 digits"
    else:
        why_series = "a series of 2 capital Latin letters must come first"
    tried = f"ENP: {enp_problem[1]}; 13-digit: {why_13}; series + number: {why_series}"
    if enp_problem[0] == "enp_checksum":
        rule = "enp_checksum"
    elif series_like:
        rule = "policy_series_number"
    else:
        rule = "policy_format"
    raise fail(rule, f"not a policy number in any accepted format ({tried})", POLICY_EXPECTED)


def check_policy_number(value: str) -> str:
    return classify_policy_number(value)[1]


def detect_policy_format(value: str) -> PolicyFormat:
    """The format of an already valid (e.g. normalized) policy number."""
    return classify_policy_number(value)[0]


PolicyNumber = Annotated[
    str, Strict(), StringConstraints(max_length=24), AfterValidator(check_policy_number)
]

# --------------------------------------------------------------------------------------------
# INN

_INN_WEIGHTS_10: Final = (2, 4, 10, 3, 5, 9, 4, 6, 8)
_INN_WEIGHTS_11: Final = (7, 2, 4, 10, 3, 5, 9, 4, 6, 8)
_INN_WEIGHTS_12: Final = (3, 7, 2, 4, 10, 3, 5, 9, 4, 6, 8)


def _inn_digit(digits: str, weights: tuple[int, ...]) -> int:
    return sum(int(d) * w for d, w in zip(digits, weights, strict=False)) % 11 % 10


def inn_check_digits(payload: str) -> str:
    """The FNS check digit(s) for the first 9 (organisation) or 10 (person) digits of an INN."""
    if len(payload) == 9:
        return str(_inn_digit(payload, _INN_WEIGHTS_10))
    first = str(_inn_digit(payload, _INN_WEIGHTS_11))
    return first + str(_inn_digit(payload + first, _INN_WEIGHTS_12))


def _check_inn(value: str, lengths: tuple[int, ...], expected: str) -> str:
    if not (_DIGITS.fullmatch(value) and len(value) in lengths):
        kinds = " or ".join(f"{n} digits" for n in lengths)
        raise fail("inn_format", f"an INN here has {kinds}", expected)
    payload = value[:-2] if len(value) == 12 else value[:-1]
    if inn_check_digits(payload) != value[len(payload) :]:
        raise fail(
            "inn_checksum",
            "the INN check digits do not match its digits (a typo?)",
            f"check digits {inn_check_digits(payload)} for {payload}",
        )
    return value


def check_inn(value: str) -> str:
    """An organisation's (10 digits) or a person's (12 digits) INN."""
    return _check_inn(value, (10, 12), "10 or 12 digits, e.g. 7707083893 or 500100732259")


def check_person_inn(value: str) -> str:
    """A person's INN: 12 digits."""
    return _check_inn(value, (12,), "a person's INN: 12 digits, e.g. 500100732259")


def check_legal_inn(value: str) -> str:
    """An organisation's INN: 10 digits."""
    return _check_inn(value, (10,), "an organisation's INN: 10 digits, e.g. 7707083893")


Inn = Annotated[str, Strict(), StringConstraints(max_length=12), AfterValidator(check_inn)]
PersonInn = Annotated[
    str, Strict(), StringConstraints(max_length=12), AfterValidator(check_person_inn)
]
LegalInn = Annotated[
    str, Strict(), StringConstraints(max_length=10), AfterValidator(check_legal_inn)
]

# --------------------------------------------------------------------------------------------
# Passport


def check_passport_series(value: str) -> str:
    digits = value.replace(" ", "") if re.fullmatch(r"[0-9]{2} [0-9]{2}", value) else value
    if not re.fullmatch(r"[0-9]{4}", digits):
        raise fail("passport_series", "a passport series is 4 digits", "4 digits, e.g. 4508")
    return digits


def check_passport_number(value: str) -> str:
    if not re.fullmatch(r"[0-9]{6}", value):
        raise fail("passport_number", "a passport number is 6 digits", "6 digits, e.g. 123456")
    return value


def check_division_code(value: str) -> str:
    if re.fullmatch(r"[0-9]{6}", value):
        return f"{value[:3]}-{value[3:]}"
    if not re.fullmatch(r"[0-9]{3}-[0-9]{3}", value):
        raise fail("division_code", "a division code is NNN-NNN", "NNN-NNN, e.g. 770-001")
    return value


PassportSeries = Annotated[
    str, Strict(), StringConstraints(max_length=5), AfterValidator(check_passport_series)
]
PassportNumber = Annotated[
    str, Strict(), StringConstraints(max_length=6), AfterValidator(check_passport_number)
]
DivisionCode = Annotated[
    str, Strict(), StringConstraints(max_length=7), AfterValidator(check_division_code)
]


class Passport(BaseModel):
    """A Russian internal passport's details."""

    model_config = ConfigDict(extra="forbid")

    series: PassportSeries
    number: PassportNumber
    issue_date: IssueDate
    division_code: DivisionCode
    issued_by: ShortText | None = None


# --------------------------------------------------------------------------------------------
# Contacts, codes, zones

_PHONE_SHAPE = re.compile(r"\+?[0-9 ()-]{10,24}")
PHONE_EXPECTED = "10 digits, e.g. 9123456789, +7 912 345-67-89 or 8 (912) 345-67-89"


def check_phone(value: str) -> str:
    """A Russian phone number, returned as its 10 digits without the country prefix."""
    if not _PHONE_SHAPE.fullmatch(value):
        raise fail("phone_format", "not a phone number", PHONE_EXPECTED)
    digits = re.sub(r"[^0-9]", "", value)
    if value.startswith("+"):
        if len(digits) == 11 and digits[0] == "7":
            return digits[1:]
    elif len(digits) == 11 and digits[0] in "78":
        return digits[1:]
    elif len(digits) == 10:
        return digits
    raise fail("phone_format", f"a phone number has 10 digits, got {len(digits)}", PHONE_EXPECTED)


Phone = Annotated[str, Strict(), StringConstraints(max_length=24), AfterValidator(check_phone)]

# email-validator is not a dependency of the engine, so the check is a conservative regex:
# dot-atom local part and an ASCII (or punycode) domain with a letter TLD.
_EMAIL = re.compile(
    r"(?P<local>[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*)"
    r"@(?P<domain>(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
    r"(?:[A-Za-z]{2,63}|xn--[A-Za-z0-9-]{1,59}))"
)


def check_email(value: str) -> str:
    match = _EMAIL.fullmatch(value)
    if not match or len(match.group("local")) > 64:
        raise fail(
            "email_format", "not an e-mail address", "local@domain.tld, e.g. ivanova@mail.ru"
        )
    return f"{match.group('local')}@{match.group('domain').lower()}"


Email = Annotated[str, Strict(), StringConstraints(max_length=254), AfterValidator(check_email)]


def check_insurer_code(value: str) -> str:
    if not re.fullmatch(r"[0-9]{5}", value):
        raise fail(
            "insurer_code",
            "an insurer code is the SMO's 5-digit registry code",
            "5 digits, e.g. 77008",
        )
    return value


InsurerCode = Annotated[
    str, Strict(), StringConstraints(max_length=5), AfterValidator(check_insurer_code)
]

DEFAULT_ZONE: Final = "Europe/Moscow"


@lru_cache(maxsize=1)
def known_zones() -> frozenset[str]:
    """IANA zone names of the installed tz database (read once)."""
    return frozenset(available_timezones())


def check_zone(value: str) -> str:
    # membership, not ZoneInfo(value): a crafted key must never be read as a file path
    if value not in known_zones():
        raise fail("time_zone", f"{value!r} is not a known IANA time zone", "e.g. Europe/Moscow")
    return value


RegionZone = Annotated[str, Strict(), StringConstraints(max_length=64), AfterValidator(check_zone)]

_MONEY_TEXT = re.compile(r"[0-9]{1,7}(?:\.[0-9]{1,2})?")
MONEY_EXPECTED = "roubles, at most 2 decimals, e.g. 250 or 250.50"


def parse_money(value: object) -> Decimal:
    """A non-negative amount in roubles: a JSON number or a decimal string (the JSON output)."""
    if isinstance(value, bool):
        raise fail("wrong_type", "an amount is a number, not true/false", MONEY_EXPECTED)
    if isinstance(value, str):
        if len(value) > 10 or not _MONEY_TEXT.fullmatch(value):
            raise fail("money_format", "not an amount", MONEY_EXPECTED)
        return Decimal(value)
    if isinstance(value, int | float | Decimal):
        try:
            amount = Decimal(str(value))
        except InvalidOperation:
            raise fail("money_format", "not an amount", MONEY_EXPECTED) from None
        if (
            not amount.is_finite()
            or amount < 0
            or amount >= Decimal(10_000_000)
            or amount != amount.quantize(Decimal("0.01"))
        ):
            raise fail("money_format", f"{value} is not an acceptable amount", MONEY_EXPECTED)
        return amount
    raise fail("wrong_type", "an amount is a number", MONEY_EXPECTED)


Money = Annotated[
    Decimal,
    BeforeValidator(parse_money),
    PlainSerializer(lambda amount: f"{amount:.2f}", return_type=str, when_used="json"),
    WithJsonSchema({"type": ["number", "string"], "description": MONEY_EXPECTED}),
]

Sex = Literal["male", "female"]

# --------------------------------------------------------------------------------------------
# Attachments

MAX_ATTACHMENT_BYTES: Final = 5 * 1024 * 1024
MEDIA_TYPES: Final[dict[str, tuple[str, ...]]] = {
    "application/pdf": (".pdf",),
    "image/jpeg": (".jpg", ".jpeg"),
    "image/png": (".png",),
}
IMAGE_TYPES: Final = frozenset({"image/jpeg", "image/png"})
#: (width, height) in pixels of the images a plastic card needs; DOMAIN.md's figures
PHOTO_SIZE: Final = (320, 400)
SIGNATURE_SIZE: Final = (160, 736)

AttachmentKind = Literal[
    "passport_scan",
    "birth_certificate",
    "parent_passport",
    "old_policy",
    "photo",
    "signature",
    "damaged_policy",
    "supporting_document",
]
ColourMode = Literal["bw", "grayscale", "color"]


def _check_media_type(value: str) -> str:
    if value not in MEDIA_TYPES:
        raise fail(
            "media_type",
            f"{value!r} files are not accepted",
            ", ".join(MEDIA_TYPES),
            reason=ReasonCode.INVALID_SCAN,
        )
    return value


def _check_size(value: int) -> int:
    if not 0 < value <= MAX_ATTACHMENT_BYTES:
        raise fail(
            "file_size",
            f"a file of {value} bytes is not accepted",
            f"1 to {MAX_ATTACHMENT_BYTES} bytes (5 MB)",
            reason=ReasonCode.INVALID_SCAN,
        )
    return value


def _check_file_name(value: str) -> str:
    if (
        not value.strip()
        or value != value.strip()
        or _CONTROL.search(value)
        or any(ch in value for ch in '/\\:*?"<>|')
        or "." not in value.strip(".")
    ):
        raise fail(
            "file_name",
            "a file name is a plain name with an extension, without a path",
            "e.g. passport.pdf",
        )
    return value


def _check_sha256(value: str) -> str:
    if not re.fullmatch(r"[0-9a-fA-F]{64}", value):
        raise fail("sha256_format", "not a SHA-256 hash", "64 hexadecimal digits")
    return value.lower()


MediaType = Annotated[
    str, Strict(), StringConstraints(max_length=100), AfterValidator(_check_media_type)
]
FileName = Annotated[
    str, Strict(), StringConstraints(max_length=255), AfterValidator(_check_file_name)
]
FileSize = Annotated[int, Strict(), AfterValidator(_check_size)]
Sha256 = Annotated[str, Strict(), StringConstraints(max_length=64), AfterValidator(_check_sha256)]
Pixels = Annotated[int, Strict(), Field(ge=1, le=100_000)]


class Attachment(BaseModel):
    """Metadata of one uploaded file, as the portal sends it (the engine never sees content)."""

    model_config = ConfigDict(extra="forbid")

    kind: AttachmentKind
    file_name: FileName
    media_type: MediaType
    size: FileSize
    sha256: Sha256
    width: Pixels | None = None
    height: Pixels | None = None
    colour_mode: ColourMode | None = None

    @model_validator(mode="after")
    def _check_image(self) -> Self:
        scan = ReasonCode.INVALID_SCAN
        errors: list[InitErrorDetails] = []
        extensions = MEDIA_TYPES[self.media_type]
        if not self.file_name.lower().endswith(extensions):
            errors.append(
                init_error(
                    ("file_name",),
                    "file_extension",
                    f"the name does not end in {' or '.join(extensions)} of {self.media_type}",
                    self.file_name,
                    " or ".join(extensions),
                    reason=scan,
                )
            )
        is_image = self.media_type in IMAGE_TYPES
        for name in ("width", "height", "colour_mode"):
            value = getattr(self, name)
            if is_image and value is None:
                errors.append(
                    init_error(
                        (name,),
                        "image_metadata",
                        f"an image needs its {name}",
                        value,
                        "width and height in pixels and colour_mode bw, grayscale or color",
                        reason=scan,
                    )
                )
            elif not is_image and value is not None:
                errors.append(
                    init_error(
                        (name,),
                        "image_metadata",
                        f"a PDF file carries no {name}",
                        value,
                        "no value for a PDF file",
                        reason=scan,
                    )
                )
        if self.kind in ("photo", "signature"):
            errors.extend(self._card_image_errors())
        raise_errors("Attachment", errors)
        return self

    def _card_image_errors(self) -> list[InitErrorDetails]:
        scan = ReasonCode.INVALID_SCAN
        what = self.kind
        if self.media_type not in IMAGE_TYPES:
            return [
                init_error(
                    ("media_type",),
                    "image_required",
                    f"a {what} must be a JPEG or PNG image",
                    self.media_type,
                    "image/jpeg or image/png",
                    reason=scan,
                )
            ]
        errors: list[InitErrorDetails] = []
        width, height = PHOTO_SIZE if what == "photo" else SIGNATURE_SIZE
        if (
            self.width is not None
            and self.height is not None
            and (self.width, self.height) != (width, height)
        ):
            errors.append(
                init_error(
                    ("width",) if self.width != width else ("height",),
                    f"{what}_dimensions",
                    f"a {what} is {width}x{height} px, got {self.width}x{self.height}",
                    [self.width, self.height],
                    f"width {width}, height {height}",
                    reason=scan,
                )
            )
        if self.colour_mode is not None and self.colour_mode != "bw":
            errors.append(
                init_error(
                    ("colour_mode",),
                    f"{what}_colour",
                    f"a {what} must be black and white, got {self.colour_mode}",
                    self.colour_mode,
                    "bw",
                    reason=scan,
                )
            )
        return errors


def content_hash(content: bytes) -> str:
    """The ``sha256`` an attachment declares for ``content`` (for examples and tests)."""
    return hashlib.sha256(content).hexdigest()


# --------------------------------------------------------------------------------------------
# pydantic errors -> FieldError

_BUILTIN_RULES: Final[dict[str, str]] = {
    "missing": "required",
    "extra_forbidden": "unknown_field",
    "string_too_long": "max_length",
    "too_long": "max_items",
    "literal_error": "allowed_values",
    "enum": "allowed_values",
    "greater_than": "invalid_value",
    "greater_than_equal": "invalid_value",
    "less_than": "invalid_value",
    "less_than_equal": "invalid_value",
}
_TYPE_NAMES: Final[dict[str, str]] = {
    "string_type": "a string",
    "bool_type": "true or false",
    "int_type": "an integer",
    "int_from_float": "an integer",
    "list_type": "a list",
    "model_type": "an object",
    "model_attributes_type": "an object",
    "dict_type": "an object",
}
ROOT_FIELD: Final = "(root)"


def _expected_for(error_type: str, ctx: Mapping[str, Any]) -> str | None:
    if error_type == "missing":
        return "a value"
    if error_type == "extra_forbidden":
        return "no such field: remove it"
    if error_type == "string_too_long":
        return f"at most {ctx.get('max_length')} characters"
    if error_type == "too_long":
        return f"at most {ctx.get('max_length')} items"
    if error_type in ("literal_error", "enum"):
        return str(ctx.get("expected", "")) or None
    if error_type == "greater_than_equal":
        return f"a number of at least {ctx.get('ge')}"
    if error_type == "less_than_equal":
        return f"a number of at most {ctx.get('le')}"
    return _TYPE_NAMES.get(error_type)


def dotted(loc: Sequence[str | int]) -> str:
    """``("attachments", 0, "size")`` -> ``"attachments.0.size"``."""
    return ".".join(str(part) for part in loc) or ROOT_FIELD


def field_error(error: Mapping[str, Any]) -> tuple[FieldError, str | None]:
    """One pydantic error dict as a FieldError and the reason code it carries, if any."""
    error_type = str(error["type"])
    ctx: Mapping[str, Any] = error.get("ctx") or {}
    field = dotted(error["loc"])
    if error_type in RULES:
        expected = str(ctx.get("expected") or "") or None
        reason = ctx.get("reason")
        return (
            FieldError(field=field, rule=error_type, message=str(error["msg"]), expected=expected),
            str(reason) if reason else None,
        )
    if error_type in _BUILTIN_RULES:
        rule = _BUILTIN_RULES[error_type]
    elif error_type.endswith(("_type", "_parsing")) or error_type in _TYPE_NAMES:
        rule = "wrong_type"
    else:
        rule = "invalid_value"
    message = "unknown field" if rule == "unknown_field" else str(error["msg"])
    return (
        FieldError(
            field=field, rule=rule, message=message, expected=_expected_for(error_type, ctx)
        ),
        None,
    )


def field_errors(exc: ValidationError) -> list[tuple[FieldError, str | None]]:
    """Every error of ``exc`` as (FieldError, reason or None), in pydantic's order."""
    return [field_error(error) for error in exc.errors(include_url=False)]
