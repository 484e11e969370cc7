"""The engine's error tree: every error the API raises derives from EngineError.

Each error carries its data as attributes (not only in the message) so that the CLI, the API
and embedding services can act on it; ``code`` is a stable machine-readable name and
``exit_code`` the CLI's exit status for it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any


class EngineError(Exception):
    """Base of every error the engine raises on purpose."""

    code = "engine_error"
    exit_code = 1

    def details(self) -> dict[str, Any]:
        """The error's data as JSON-ready values (for ``--json`` output and logs)."""
        return {}


class NotFound(EngineError):
    """A case, definition or other named thing does not exist."""

    code = "not_found"
    exit_code = 3

    def __init__(self, kind: str, key: object) -> None:
        self.kind = kind
        self.key = key
        super().__init__(f"{kind} {key!s} not found")

    def details(self) -> dict[str, Any]:
        return {"kind": self.kind, "key": str(self.key)}


@dataclass(frozen=True)
class FieldError:
    """One failed rule on one field of the input."""

    field: str
    rule: str
    message: str
    expected: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {
            "field": self.field,
            "rule": self.rule,
            "message": self.message,
            "expected": self.expected,
        }

    def __str__(self) -> str:
        tail = f" (expected: {self.expected})" if self.expected else ""
        return f"{self.field}: {self.message} [{self.rule}]{tail}"


class InvalidInput(EngineError):
    """The input broke one or more rules; every failed field is listed and nothing was written.

    ``reason`` is set when the refusal maps onto a rejection reason code of DOMAIN.md
    (e.g. ``insurer_change_limit``), with ``advice`` the text the portal can show.
    """

    code = "invalid_input"
    exit_code = 4

    def __init__(
        self,
        errors: Iterable[FieldError],
        *,
        reason: str | None = None,
        advice: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.errors: tuple[FieldError, ...] = tuple(errors)
        self.reason = reason
        self.advice = advice
        self.extra: dict[str, Any] = dict(extra or {})
        head = f"invalid input ({reason})" if reason else "invalid input"
        lines = "; ".join(str(e) for e in self.errors)
        super().__init__(f"{head}: {lines}" if lines else head)

    def details(self) -> dict[str, Any]:
        out: dict[str, Any] = {"errors": [e.as_dict() for e in self.errors]}
        if self.reason:
            out["reason"] = self.reason
        if self.advice:
            out["advice"] = self.advice
        out.update(self.extra)
        return out


class NotPermitted(EngineError):
    """The trigger may not be fired now: wrong state, wrong role, or a guard said no."""

    code = "not_permitted"
    exit_code = 5

    def __init__(
        self,
        message: str,
        *,
        trigger: str,
        state: str,
        role: str,
        allowed: Sequence[str],
        guard: str | None = None,
    ) -> None:
        self.trigger = trigger
        self.state = state
        self.role = role
        self.allowed = tuple(allowed)
        self.guard = guard
        allowed_text = ", ".join(self.allowed) or "none"
        super().__init__(f"{message}; allowed now for {role}: {allowed_text}")

    def details(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "trigger": self.trigger,
            "state": self.state,
            "role": self.role,
            "allowed": list(self.allowed),
        }
        if self.guard:
            out["guard"] = self.guard
        return out


class Conflict(EngineError):
    """The case changed under the caller: stale expected version or a concurrent step."""

    code = "conflict"
    exit_code = 6

    def __init__(self, case_id: str, expected: int | None, actual: int | None) -> None:
        self.case_id = case_id
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"case {case_id} changed concurrently: expected version {expected}, found {actual}"
        )

    def details(self) -> dict[str, Any]:
        return {"case_id": self.case_id, "expected": self.expected, "actual": self.actual}


class TransactionConflict(Conflict):
    """The database rolled a transaction back because of a concurrent one; try again."""

    def __init__(self, problem: str) -> None:
        EngineError.__init__(self, f"concurrent transactions collided, try again: {problem}")
        self.case_id = ""
        self.expected = None
        self.actual = None
        self.problem = problem

    def details(self) -> dict[str, Any]:
        return {"problem": self.problem}


class IdempotencyMismatch(EngineError):
    """An idempotency key was reused with other content."""

    code = "idempotency_mismatch"
    exit_code = 6

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"idempotency key {key!r} was already used for a different request")

    def details(self) -> dict[str, Any]:
        return {"key": self.key}


class InvalidDefinition(EngineError):
    """A definition file failed a static check; names the file, the problem and the states."""

    code = "invalid_definition"
    exit_code = 4

    def __init__(self, path: str, problem: str, states: Sequence[str] = ()) -> None:
        self.path = path
        self.problem = problem
        self.states = tuple(states)
        super().__init__(f"{path}: {problem}")

    def details(self) -> dict[str, Any]:
        return {"path": self.path, "problem": self.problem, "states": list(self.states)}


class CalendarYearMissing(EngineError):
    """A working-day computation reached a year the production calendar does not cover."""

    code = "calendar_year_missing"
    exit_code = 4

    def __init__(self, year: int, known: Iterable[int]) -> None:
        self.year = year
        self.known = tuple(sorted(known))
        super().__init__(
            f"the production calendar has no data for {year} "
            f"(known years: {', '.join(map(str, self.known))}); add the year's decree to the data"
        )

    def details(self) -> dict[str, Any]:
        return {"year": self.year, "known": list(self.known)}


class AuditFailed(EngineError):
    """A hash chain did not verify."""

    code = "audit_failed"
    exit_code = 7

    def __init__(self, broken: dict[str, str]) -> None:
        self.broken = dict(broken)
        super().__init__(f"{len(self.broken)} case(s) with a broken transition log")

    def details(self) -> dict[str, Any]:
        return {"broken": self.broken}


class StoreUnavailable(EngineError):
    """The database could not be reached or refused the operation for a reason of its own."""

    code = "store_unavailable"
    exit_code = 1
