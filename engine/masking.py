"""Masking of personal data for logs and for the API's masked views (pure functions).

``mask_data`` walks dicts and lists and masks the values under :data:`PERSONAL_KEYS`, keeping a
hint an operator can use to tell records apart (SNILS ``***-***-*** 95``, a name's initials, the
last digits of a number) but not enough to identify the person. ``mask_text`` masks numbers that
look like personal identifiers inside free text. ``mask_event`` is a structlog processor that
applies both to a log event.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Mapping, MutableMapping
from functools import partial
from typing import Any, Final

STARS: Final = "***"
_STARS_THEN_SPACE: Final = f"{STARS} "

_SNILS_KEYS: Final = frozenset({"snils", "parent_snils", "child_snils"})
_NAME_KEYS: Final = frozenset(
    {
        "full_name",
        "parent_full_name",
        "child_full_name",
        "fio",
        "last_name",
        "first_name",
        "middle_name",
    }
)
_DATE_KEYS: Final = frozenset({"birth_date", "date_of_birth"})
_INN_KEYS: Final = frozenset({"inn", "parent_inn"})
_POLICY_KEYS: Final = frozenset(
    {
        "policy_number",
        "old_policy_number",
        "current_policy_number",
        "electronic_policy_number",
        "enp",
    }
)
_PHONE_KEYS: Final = frozenset({"phone", "mobile_phone"})
_EMAIL_KEYS: Final = frozenset({"email", "e_mail"})
_ADDRESS_KEYS: Final = frozenset(
    {"address", "registration_address", "actual_address", "postal_address"}
)
_PASSPORT_KEYS: Final = frozenset({"passport", "passport_series", "passport_number"})
_FILE_KEYS: Final = frozenset({"file_name"})

#: field names whose values are personal data, wherever they appear in a structure
PERSONAL_KEYS: Final[frozenset[str]] = (
    _SNILS_KEYS
    | _NAME_KEYS
    | _DATE_KEYS
    | _INN_KEYS
    | _POLICY_KEYS
    | _PHONE_KEYS
    | _EMAIL_KEYS
    | _ADDRESS_KEYS
    | _PASSPORT_KEYS
    | _FILE_KEYS
)


# runs of ``str.isalnum`` characters: word characters without the underscore
_ALNUM_RUN: Final = re.compile(r"[^\W_]+")
_NON_DIGITS: Final = re.compile(r"[^0-9]")
# Below U+0080 ``str.isalnum`` is exactly the ASCII letters and digits and ``[0-9]`` exactly the
# digits, so ASCII text (nearly all identifiers) is masked by ``bytes.translate``, a plain table
# lookup in C that is several times cheaper than ``str.translate`` or a regex with a callback;
# other text keeps the regexes (``encode`` would also refuse a lone surrogate there).
_ASCII_ALNUM: Final = (string.ascii_letters + string.digits).encode()
_ALNUM_TO_STAR: Final = bytes.maketrans(_ASCII_ALNUM, b"*" * len(_ASCII_ALNUM))
_NON_DIGIT_BYTES: Final = bytes(code for code in range(256) if code not in b"0123456789")


def _starred(match: re.Match[str]) -> str:
    return "*" * len(match.group())


def _star_all(value: str) -> str:
    """Every letter and digit as ``*``."""
    if value.isascii():
        return value.encode().translate(_ALNUM_TO_STAR).decode()
    return _ALNUM_RUN.sub(_starred, value)


def mask_tail(value: str, keep: int) -> str:
    """Replace every letter and digit with ``*`` except the last ``keep`` of them; punctuation
    and spaces stay so the shape remains recognisable."""
    if keep > 0:
        tail = value[-keep:]
        if tail.isalnum():  # usually the kept characters are all letters or digits: no walk
            return _star_all(value[: len(value) - len(tail)]) + tail
    # Find where the kept tail starts by walking back over it only; the head is masked in one
    # pass in C instead of character by character in Python.
    cut = len(value)
    kept = 0
    while cut and kept < keep:
        cut -= 1
        kept += value[cut].isalnum()
    return _star_all(value[:cut]) + value[cut:]


_keep_2: Final = partial(mask_tail, keep=2)
_keep_4: Final = partial(mask_tail, keep=4)


def mask_snils(value: str) -> str:
    """``112-233-445 95`` or ``11223344595`` -> ``***-***-*** 95``."""
    digits = (
        value.encode().translate(None, _NON_DIGIT_BYTES).decode()
        if value.isascii()
        else _NON_DIGITS.sub("", value)
    )
    if len(digits) == 11:
        return f"***-***-*** {digits[-2:]}"
    return _keep_2(value)


def mask_name(value: str) -> str:
    """``Иванова Мария Петровна`` -> ``И*** М*** П***``."""
    parts = value.split()
    if not parts:
        return STARS
    return _STARS_THEN_SPACE.join([part[0] for part in parts]) + STARS


def mask_date(value: str) -> str:
    """Keep the year only: ``1987-03-25`` -> ``1987-**-**``, ``25.03.1987`` -> ``**.**.1987``."""
    # the two shapes are 10 ASCII characters, digits but for two separators in fixed places
    if len(value) == 10 and value.isascii():
        if value[4] == "-" == value[7]:
            digits = value.replace("-", "")
            if len(digits) == 8 and digits.isdigit():
                return f"{value[:4]}-**-**"
        elif value[2] == "." == value[5]:
            digits = value.replace(".", "")
            if len(digits) == 8 and digits.isdigit():
                return f"**.**.{value[-4:]}"
    return STARS


def mask_email(value: str) -> str:
    """``maria.ivanova@mail.ru`` -> ``m***@mail.ru``."""
    local, at, domain = value.partition("@")
    if not at or not local:
        return STARS
    return f"{local[0]}{STARS}@{domain}"


def mask_file_name(value: str) -> str:
    """File names often carry the person's name; keep the extension only."""
    stem, dot, extension = value.rpartition(".")
    return f"{STARS}.{extension}" if dot and stem and len(extension) <= 5 else STARS


def _masker(key: str) -> Callable[[str], str]:
    if key in _SNILS_KEYS:
        return mask_snils
    if key in _NAME_KEYS:
        return mask_name
    if key in _DATE_KEYS:
        return mask_date
    if key in _INN_KEYS or key in _PHONE_KEYS:
        return _keep_2
    if key in _POLICY_KEYS:
        return _keep_4
    if key in _EMAIL_KEYS:
        return mask_email
    if key in _FILE_KEYS:
        return mask_file_name
    if key == "passport_number":
        return _keep_2
    if key == "passport_series":
        return _star_all
    return _stars


def _stars(_value: str) -> str:
    return STARS


# decided once per key, not per value: views mask a whole application on every read
_MASKERS: Final[dict[str, Callable[[str], str]]] = {key: _masker(key) for key in PERSONAL_KEYS}
# bound once: fetching the method for every key of every dict costs about as much as the lookup
_masker_for: Final = _MASKERS.get

# inside a passport object the generic names "series"/"number" are personal too
_PASSPORT_FIELDS: Final[dict[str, Callable[[str], str]]] = {
    "series": _star_all,
    "number": _keep_2,
    "issue_date": mask_date,
}
_passport_field_masker: Final = _PASSPORT_FIELDS.get


def _mask_leaf(value: Any, masker: Callable[[str], str]) -> Any:
    if type(value) is str:  # nearly every value: spare it the abstract-class checks below
        return masker(value)
    if value is None:
        return None
    if isinstance(value, Mapping):
        return {key: _mask_leaf(item, masker) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_mask_leaf(item, masker) for item in value)
    if isinstance(value, bool):
        return STARS
    return masker(str(value))


def _mask_passport(value: Any) -> Any:
    if type(value) is not dict and not isinstance(value, Mapping):
        return _mask_leaf(value, _stars)
    out: dict[Any, Any] = {}
    for key, item in value.items():
        masker = _passport_field_masker(key if type(key) is str else str(key), _stars)
        out[key] = masker(item) if type(item) is str else _mask_leaf(item, masker)
    return out


# JSON scalars outside personal keys are kept as they are, without a recursive call each
_SCALARS: Final = frozenset({str, int, float, bool, type(None)})


def mask_data(obj: Any) -> Any:
    """A copy of ``obj`` with the values under personal keys masked (dicts and lists walked)."""
    # exact dicts and lists skip the abstract-class checks, which cost more than a key's masking
    if type(obj) is dict or isinstance(obj, Mapping):
        out: dict[Any, Any] = {}
        for key, value in obj.items():
            name = key.lower() if isinstance(key, str) else key
            if name == "passport":
                out[key] = _mask_passport(value)
            elif (masker := _masker_for(name)) is not None:
                out[key] = masker(value) if type(value) is str else _mask_leaf(value, masker)
            elif type(value) in _SCALARS:
                out[key] = value
            else:
                out[key] = mask_data(value)
        return out
    if type(obj) is list:
        return [mask_data(item) for item in obj]
    if isinstance(obj, list | tuple):
        return type(obj)(mask_data(item) for item in obj)
    return obj


# Identifier-like numbers in free text. ASCII letters, digits, "_" and "-" next to a plain digit
# run mean it is part of something else (a UUID's last group, a hex hash), which stays intact.
# Every alternative can only start at the beginning of a run (look-behind) and every repetition
# is bounded, so masking stays linear on hostile input such as a megabyte without spaces.
_EDGE_BEFORE = r"(?<![0-9A-Za-z_])"
_EDGE_AFTER = r"(?![0-9A-Za-z_])"
_TEXT_PATTERNS: Final = re.compile(
    "|".join(
        [
            r"(?<![A-Za-z0-9._%+-])(?P<email>[A-Za-z0-9._%+-]{1,64}@"
            r"(?:[A-Za-z0-9-]{1,63}\.){1,8}[A-Za-z]{2,24})(?![A-Za-z0-9-])",
            rf"{_EDGE_BEFORE}(?P<snils>[0-9]{{3}}-[0-9]{{3}}-[0-9]{{3}}[ -][0-9]{{2}})"
            + _EDGE_AFTER,
            rf"{_EDGE_BEFORE}(?P<enp>[0-9]{{4}} [0-9]{{4}} [0-9]{{4}} [0-9]{{4}}){_EDGE_AFTER}",
            r"(?P<phone>(?:\+7|(?<![0-9])8)[ (-]{0,3}[0-9]{3}[ )-]{0,3}[0-9]{3}[ -]?[0-9]{2}"
            r"[ -]?[0-9]{2})" + _EDGE_AFTER,
            rf"{_EDGE_BEFORE}(?P<passport>[0-9]{{2}} ?[0-9]{{2}} (?:№ ?)?[0-9]{{6}}){_EDGE_AFTER}",
            r"(?<![0-9A-Za-z_-])(?P<digits>[0-9]{10,16})(?![0-9A-Za-z_-])",
        ]
    )
)


def _mask_match(match: re.Match[str]) -> str:
    kind = match.lastgroup or ""
    text = match.group(0)
    if kind == "email":
        return mask_email(text)
    if kind == "snils":
        return mask_snils(text)
    if kind == "enp":
        return mask_tail(text, 4)
    if kind in ("phone", "passport"):
        return mask_tail(text, 2)
    if len(text) == 11:
        return mask_snils(text)
    return mask_tail(text, 2 if len(text) in (10, 12) else 4)


def mask_text(text: str) -> str:
    """``text`` with SNILS-, passport-, ENP- and INN-like numbers (and phones, e-mails) masked."""
    return _TEXT_PATTERNS.sub(_mask_match, text)


def _mask_strings(value: Any) -> Any:
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, Mapping):
        return {key: _mask_strings(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_mask_strings(item) for item in value)
    return value


def mask_event(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: personal keys masked, identifiers in every string masked."""
    masked = _mask_strings(mask_data(dict(event_dict)))
    event_dict.clear()
    event_dict.update(masked)
    return event_dict


__all__ = [
    "PERSONAL_KEYS",
    "mask_data",
    "mask_date",
    "mask_email",
    "mask_event",
    "mask_name",
    "mask_snils",
    "mask_tail",
    "mask_text",
]
