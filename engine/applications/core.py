"""Application data of the five OMS application types: validation, changes, examples, keys.

What ``engine.applications`` offers, loaded by it on first use (see its docstring).
Everything here is pure (no database, no clock): "today" is always passed in. Failures are
raised as :class:`engine.errors.InvalidInput` with every failed field listed at once; a
refusal that maps onto a rejection reason of DOMAIN.md also carries ``reason`` and the
portal's ``advice``.

Changes (``validate_changes``) merge into the current data like this:

* a nested object in ``changes`` merges key by key into the current object;
* a ``null`` value removes the key (an optional field becomes absent);
* any other value, lists included, replaces the current value as a whole: ``attachments`` in
  ``changes`` is the complete new list (send the current items too to add one), which keeps
  removal and reordering expressible and the result obvious.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import date
from typing import Any, Final

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticCustomError

from engine.applications import MODEL_NAMES
from engine.applications.fields import (
    ROOT_FIELD,
    check_snils,
    content_hash,
    field_errors,
    normalize_name_key,
    parse_date,
)
from engine.applications.models import MODELS, ApplicationBase
from engine.errors import FieldError, InvalidInput
from engine.reasons import ReasonCode

#: when several refusals apply, the one reported as ``reason`` (all are in ``extra["reasons"]``)
REASON_PRIORITY: tuple[ReasonCode, ...] = (
    ReasonCode.REPRESENTATIVE_NOT_ALLOWED,
    ReasonCode.NEWBORN_REQUIRES_MFC,
    ReasonCode.MISSING_DOCUMENTS,
    ReasonCode.INVALID_SCAN,
)
REASON_PRIORITY += tuple(code for code in ReasonCode if code not in REASON_PRIORITY)


def application_model(name: str) -> type[BaseModel]:
    """The pydantic model of application type ``name``."""
    return _model(name)


def _model(name: str) -> type[ApplicationBase]:
    try:
        return MODELS[name]
    except KeyError:
        raise KeyError(
            f"unknown application type {name!r}; known types: {', '.join(MODEL_NAMES)}"
        ) from None


def validate_application(name: str, data: Mapping[str, Any], *, today: date) -> dict[str, Any]:
    """Validate a whole application and return its normalized, JSON-ready data.

    Raises InvalidInput listing every failed field (field rules and cross-field rules).
    """
    model = _model(name)
    context = {"today": today}
    try:
        instance = model.model_validate(data, context=context)
    except ValidationError as exc:
        raise _invalid(model, data, exc, context, today) from None
    return instance.model_dump(mode="json", exclude_none=True)


def _invalid(
    model: type[ApplicationBase],
    data: object,
    exc: ValidationError,
    context: Mapping[str, Any],
    today: date,
) -> InvalidInput:
    pairs = field_errors(exc)
    if isinstance(data, Mapping):
        # the model's own rules only run once every field validated; run them over the fields
        # that did, so the answer is complete (duplicates of rules that already ran drop out)
        rule_errors = model.rules(model.known_facts(data, context), today)
        if rule_errors:
            pairs += field_errors(ValidationError.from_exception_data(model.__name__, rule_errors))
    seen: set[tuple[str, str, str]] = set()
    errors: list[FieldError] = []
    reasons: list[str] = []
    for error, reason in pairs:
        key = (error.field, error.rule, error.message)
        if key in seen:
            continue
        seen.add(key)
        errors.append(error)
        if reason is not None and reason not in reasons:
            reasons.append(reason)
    ranked = [code for code in REASON_PRIORITY if code.value in reasons]
    if not ranked:
        return InvalidInput(errors)
    return InvalidInput(
        errors,
        reason=ranked[0].value,
        advice=ranked[0].advice,
        extra={"reasons": [code.value for code in ranked]},
    )


def merge_changes(current: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """``current`` with ``changes`` applied by the rule in the module docstring (no mutation)."""
    merged: dict[str, Any] = copy.deepcopy(dict(current))
    for key, value in changes.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_changes(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Leaves of nested dicts and lists by dotted path (``attachments.0.size``)."""
    out: dict[str, Any] = {}
    if isinstance(value, Mapping):
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            out.update(flatten(item, f"{prefix}.{index}" if prefix else str(index)))
    else:
        out[prefix] = value
    return out


def diff_fields(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Changed leaves: ``{path: {"before": old, "after": new}}``; absent reads as None."""
    old, new = flatten(before), flatten(after)
    return {
        path: {"before": old.get(path), "after": new.get(path)}
        for path in sorted(old.keys() | new.keys())
        if old.get(path) != new.get(path) or (path in old) != (path in new)
    }


def validate_changes(
    name: str,
    current: Mapping[str, Any],
    changes: Mapping[str, Any],
    *,
    today: date,
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Apply ``changes`` to ``current``, validate the result as a whole, return it with a diff.

    Objects merge key by key, ``null`` removes a key, lists (``attachments``) replace the current
    list whole (see the module docstring). The diff compares with ``current`` normalized when
    it is valid on its own (so a pure change of notation, e.g. DD.MM.YYYY to ISO, is not
    reported), else with ``current`` as given.
    """
    _model(name)
    if not isinstance(changes, Mapping):
        raise InvalidInput(
            [FieldError(ROOT_FIELD, "wrong_type", "changes must be an object", "an object")]
        )
    if not isinstance(current, Mapping):
        raise InvalidInput(
            [
                FieldError(
                    ROOT_FIELD, "wrong_type", "the current data must be an object", "an object"
                )
            ]
        )
    new_data = validate_application(name, merge_changes(current, changes), today=today)
    try:
        before: Mapping[str, Any] = validate_application(name, current, today=today)
    except InvalidInput:
        before = current
    return new_data, diff_fields(before, new_data)


def _attachment(
    kind: str, file_name: str, media_type: str, size: int, **image: Any
) -> dict[str, Any]:
    return {
        "kind": kind,
        "file_name": file_name,
        "media_type": media_type,
        "size": size,
        "sha256": content_hash(f"example {kind}".encode()),
        **image,
    }


_PASSPORT_SCAN = _attachment("passport_scan", "passport.pdf", "application/pdf", 734_003)
_PHOTO = _attachment(
    "photo", "photo.jpg", "image/jpeg", 48_213, width=320, height=400, colour_mode="bw"
)
_SIGNATURE = _attachment(
    "signature", "signature.png", "image/png", 10_240, width=160, height=736, colour_mode="bw"
)
_APPLICANT: Final[dict[str, Any]] = {
    "full_name": "Иванова Мария Петровна",
    "birth_date": "25.03.1987",
    "sex": "female",
    "snils": "112-233-445 95",
    "passport": {
        "series": "4508",
        "number": "123456",
        "issue_date": "12.04.2007",
        "division_code": "770-001",
        "issued_by": "ОВД района Хамовники гор. Москвы",
    },
    "phone": "+7 912 345-67-89",
    "email": "maria.ivanova@mail.ru",
    "registration_address": "г. Москва, ул. Льва Толстого, д. 16, кв. 5",
    "actual_address": "г. Москва, ул. Льва Толстого, д. 16, кв. 5",
}
_CHILD: Final[dict[str, Any]] = {
    "full_name": "Иванов Артём Сергеевич",
    "birth_date": "14.06.2019",
    "sex": "male",
    "snils": "145-632-789 80",
}

_EXAMPLES: Final[dict[str, dict[str, Any]]] = {
    "restore": {
        "applicant": _APPLICANT,
        "for_child": False,
        "old_policy_number": "7700001234567895",
        "attachments": [_PASSPORT_SCAN],
    },
    "new_issue": {
        "applicant": _APPLICANT,
        "reason": "insurer_change",
        "policy_form": "plastic",
        "channel": "online",
        "representative": False,
        "pickup_point": "МФЦ района Хамовники, Комсомольский пр-т, д. 28",
        "attachments": [_PASSPORT_SCAN, _PHOTO, _SIGNATURE],
    },
    "child_link": {
        "applicant": _APPLICANT,
        "child": _CHILD,
        "policy_number": "7730123456789017",
        "policy_issue_date": "20.06.2019",
        "parent_snils": "112-233-445 95",
        "parent_inn": "500100732259",
        "confirmation": "sms",
        "parent_account_verified": True,
    },
    "replacement": {
        "applicant": _APPLICANT,
        "reason": "insurer_change",
        "current_policy_number": "7700001234567895",
        "new_insurer": "77008",
        "residence_changed": False,
    },
    "paper_duplicate": {
        "applicant": _APPLICANT,
        "electronic_policy_number": "7700001234567895",
        "delivery": "post",
        "postal_address": "119021, г. Москва, ул. Льва Толстого, д. 16, кв. 5",
        "payment": {"amount": 250, "paid": True},
    },
}


def example_application(name: str) -> dict[str, Any]:
    """A realistic valid application of type ``name`` (a fresh copy, safe to modify)."""
    _model(name)
    return copy.deepcopy(_EXAMPLES[name])


def json_schema(name: str) -> dict[str, Any]:
    """The JSON Schema of application type ``name``."""
    return _model(name).model_json_schema()


def _person_of(name: str, data: Mapping[str, Any]) -> tuple[str, Any]:
    is_child_case = name == "child_link" or (name == "restore" and data.get("for_child") is True)
    key = "child" if is_child_case else "applicant"
    return key, data.get(key)


def subject_key(name: str, data: Mapping[str, Any]) -> str:
    """Stable key of the insured person the application is about (the child in a child's case).

    ``snils:<11 digits>`` when the person's SNILS is known, else
    ``person:<full name: single-spaced, lower case, ё as е>|<ISO birth date>``.
    """
    _model(name)
    where, person = _person_of(name, data)
    if not isinstance(person, Mapping):
        raise InvalidInput(
            [FieldError(where, "required", f"the {where}'s data is needed", "an object")]
        )
    try:
        snils = person.get("snils")
        if snils is not None:
            if not isinstance(snils, str):
                raise InvalidInput(
                    [FieldError(f"{where}.snils", "wrong_type", "a SNILS is a string", "a string")]
                )
            return f"snils:{check_snils(snils)}"
        full_name, birth_date = person.get("full_name"), person.get("birth_date")
        if not isinstance(full_name, str) or not full_name.strip():
            raise InvalidInput(
                [FieldError(f"{where}.full_name", "required", "the full name is needed", "a name")]
            )
        return f"person:{normalize_name_key(full_name)}|{parse_date(birth_date).isoformat()}"
    except PydanticCustomError as exc:
        field = f"{where}.snils" if exc.type.startswith("snils") else f"{where}.birth_date"
        expected = str((exc.context or {}).get("expected") or "") or None
        raise InvalidInput([FieldError(field, exc.type, exc.message(), expected)]) from None
