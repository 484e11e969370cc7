"""Rules across cases (pure): decided from the person's other cases, which the facade reads."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from engine.errors import FieldError, InvalidInput
from engine.reasons import ReasonCode


@dataclass(frozen=True)
class OtherCase:
    """What the rules need to know of another case of the same person."""

    id: str
    type: str
    state: str
    is_open: bool
    data: Mapping[str, Any]
    opened_on: date
    approved: bool


APPROVED_STATES = frozenset({"approved", "issued", "in_production", "ready_for_pickup"})


def _parent(data: Mapping[str, Any]) -> Any:
    applicant = data.get("applicant")
    own = applicant.get("snils") if isinstance(applicant, Mapping) else None
    return data.get("parent_snils") or own


def _check_link(data: Mapping[str, Any], others: Sequence[OtherCase]) -> None:
    """A child's policy linked to another parent's account cannot be linked again here."""
    for other in others:
        if other.type == "child_link" and other.approved and _parent(other.data) != _parent(data):
            code = ReasonCode.SNILS_LINKED_ELSEWHERE
            raise InvalidInput(
                [
                    FieldError(
                        "child.snils",
                        code.value,
                        "the child's SNILS is already linked to another parent's account",
                        "a child whose policy is not linked to another account",
                    )
                ],
                reason=code.value,
                advice=code.advice,
                extra={"linked_case_id": other.id},
            )


def check_open(
    type_: str, data: Mapping[str, Any], others: Sequence[OtherCase], today: date
) -> None:
    """Refuse an application that the person's other cases forbid; nothing is written."""
    for other in others:
        if other.type == type_ and other.is_open:
            raise InvalidInput(
                [
                    FieldError(
                        "applicant",
                        "duplicate_open_case",
                        f"this person already has an open {type_} case: {other.id}",
                        "finish or withdraw the open case first",
                    )
                ],
                extra={"open_case_id": other.id},
            )
    if type_ == "child_link":
        _check_link(data, others)
    if type_ == "replacement" and data.get("reason") == "insurer_change":
        if data.get("residence_changed"):
            return
        for other in others:
            if (
                other.type == "replacement"
                and other.data.get("reason") == "insurer_change"
                and other.approved
                and other.opened_on.year == today.year
            ):
                code = ReasonCode.INSURER_CHANGE_LIMIT
                raise InvalidInput(
                    [
                        FieldError(
                            "reason",
                            code.value,
                            f"the insurer was already changed in {today.year} (case {other.id})",
                            "one change of insurer per calendar year unless the residence changed",
                        )
                    ],
                    reason=code.value,
                    advice=code.advice,
                    extra={"previous_case_id": other.id},
                )
