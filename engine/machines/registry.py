"""Named Python building blocks that definitions refer to: guards, validators, notifications.

A definition names a guard (``policy_active``); the function lives here, registered with
``@guard("policy_active")``. The data never holds code, and an unknown name is refused when a
definition is loaded, with the known names listed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.errors import FieldError


@dataclass(frozen=True)
class StepContext:
    """What guards and validators may look at: the case before the step and the request."""

    case_type: str
    state: str
    data: Mapping[str, Any]
    flags: frozenset[str]
    trigger: str
    actor_role: str
    reason: str | None = None
    comment: str | None = None
    changes: Mapping[str, Any] = field(default_factory=dict)


Guard = Callable[[StepContext], bool]
Validator = Callable[[StepContext], list[FieldError]]

GUARDS: dict[str, Guard] = {}
VALIDATORS: dict[str, Validator] = {}


def guard(name: str) -> Callable[[Guard], Guard]:
    """Register a guard: a pure predicate that allows or refuses a transition."""

    def register(fn: Guard) -> Guard:
        GUARDS[name] = fn
        return fn

    return register


def validator(name: str) -> Callable[[Validator], Validator]:
    """Register a validator: returns the failed fields of a step's input (empty when valid)."""

    def register(fn: Validator) -> Validator:
        VALIDATORS[name] = fn
        return fn

    return register


def _fee_due(data: Mapping[str, Any]) -> bool:
    payment = data.get("payment") or {}
    return bool(payment.get("amount")) and not payment.get("paid")


@guard("fee_settled")
def fee_settled(ctx: StepContext) -> bool:
    """A paper duplicate goes to production only when no fee is due or it has been paid."""
    return not _fee_due(ctx.data)


@guard("fee_due")
def fee_due(ctx: StepContext) -> bool:
    """The case waits for a payment."""
    return _fee_due(ctx.data)


@guard("delivery_by_post")
def delivery_by_post(ctx: StepContext) -> bool:
    return ctx.data.get("delivery") == "post"


@guard("delivery_pickup")
def delivery_pickup(ctx: StepContext) -> bool:
    return ctx.data.get("delivery") == "pickup"


@guard("not_overdue")
def not_overdue(ctx: StepContext) -> bool:
    """An SLA flag is raised once: a second expiry of the same kind records nothing new."""
    return "overdue" not in ctx.flags


@validator("payment_confirmed")
def payment_confirmed(ctx: StepContext) -> list[FieldError]:
    """A payment step must carry ``payment.paid: true``."""
    payment = ctx.changes.get("payment")
    if isinstance(payment, Mapping) and payment.get("paid") is True:
        return []
    return [
        FieldError(
            "payment.paid",
            "payment_confirmed",
            "a payment step must confirm the payment",
            'data {"payment": {"paid": true}}',
        )
    ]


@validator("reply_not_empty")
def reply_not_empty(ctx: StepContext) -> list[FieldError]:
    """A reply to a clarification request must carry corrected data or a comment."""
    if ctx.changes or (ctx.comment and ctx.comment.strip()):
        return []
    return [
        FieldError(
            "data",
            "reply_not_empty",
            "a reply must carry corrected data, new attachments or a comment",
            "--data with the corrected fields, or --comment",
        )
    ]


@guard("taken_by_system")
def taken_by_system(ctx: StepContext) -> bool:
    """The automatic pipeline took the case: registry checks run; an operator's take skips them."""
    return ctx.actor_role == "system"


@guard("insurer_change")
def insurer_change(ctx: StepContext) -> bool:
    return ctx.data.get("reason") == "insurer_change"


@guard("damaged_policy")
def damaged_policy(ctx: StepContext) -> bool:
    """A replacement because the old policy was damaged (its 24-hour electronic SLA applies)."""
    return ctx.data.get("reason") == "damage"
