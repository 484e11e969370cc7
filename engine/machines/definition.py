"""The definition model: what a definition file may say, parsed by pydantic.

A definition is data (states, transitions, deadlines, names of guards, validators and
notifications); the static checks of ``engine.machines.loader`` decide whether it makes sense.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from engine.reasons import ReasonCode

Role = Literal["portal", "operator", "supervisor", "system", "auditor"]
ROLES: tuple[str, ...] = ("portal", "operator", "supervisor", "system", "auditor")
Unit = Literal["minutes", "hours", "calendar_days", "working_days"]
Requirement = Literal["reason", "comment", "data"]

_NAME = r"^[a-z][a-z0-9_]*$"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DeadlineSpec(_Frozen):
    """A deadline armed on entering a state (or by a transition), firing ``trigger`` on expiry.

    ``while_in`` lists the states in which the deadline stays armed (default: only the state it
    was armed for); leaving them cancels it. In ``paused_in`` states its clock stops and
    resumes with the time that was left (an SLA that does not count the applicant's delay).
    """

    name: str = Field(pattern=_NAME)
    amount: int = Field(ge=0)
    unit: Unit
    trigger: str = Field(pattern=_NAME)
    while_in: tuple[str, ...] = ()
    paused_in: tuple[str, ...] = ()
    when: tuple[str, ...] = ()
    """Guards evaluated when the deadline would be armed: it is armed only if all pass."""
    check: str | None = None
    """An automatic registry check run when the deadline falls due (see machines.checks).

    Its outcome decides the trigger; while a registry is down, ``trigger`` records the failed
    attempt and the check is retried after ``backoff_minutes`` doubling each time; after
    ``attempts`` failures ``on_exhausted`` fires instead.
    """
    attempts: int = Field(default=5, ge=1)
    backoff_minutes: float = Field(default=1.0, gt=0)
    on_exhausted: str | None = None
    description: str = ""


class StateSpec(_Frozen):
    """A state with the label the applicant sees on the portal."""

    label: str = Field(min_length=1)
    terminal: bool = False
    deadlines: tuple[DeadlineSpec, ...] = ()
    description: str = ""


class TransitionSpec(_Frozen):
    """One trigger from one or more source states.

    ``dest`` None means the step stays in its state (an internal transition: nothing is exited,
    no deadline is cancelled) and only records an event, arms deadlines or sets flags.
    """

    trigger: str = Field(pattern=_NAME)
    source: tuple[str, ...]
    dest: str | None
    roles: tuple[Role, ...] = Field(min_length=1)
    guards: tuple[str, ...] = ()
    validators: tuple[str, ...] = ()
    requires: tuple[Requirement, ...] = ()
    reasons: tuple[ReasonCode, ...] = ()
    reason: ReasonCode | None = None
    accepts_data: bool = False
    arms: tuple[DeadlineSpec, ...] = ()
    notify: tuple[str, ...] = ()
    sets_flags: tuple[str, ...] = ()
    clears_flags: tuple[str, ...] = ()
    description: str = ""

    @field_validator("source", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return (value,) if isinstance(value, str) else value

    @property
    def internal(self) -> bool:
        return self.dest is None

    def target(self, source: str) -> str:
        """The state the case is in after firing this transition from ``source``."""
        return source if self.dest is None else self.dest


class Definition(_Frozen):
    """One application type at one version."""

    type: str = Field(pattern=_NAME)
    version: int = Field(ge=1)
    title: str
    data_model: str
    initial: str
    open_roles: tuple[Role, ...] = ("portal", "operator", "supervisor")
    notify_on_open: tuple[str, ...] = ()
    states: dict[str, StateSpec] = Field(min_length=1)
    transitions: tuple[TransitionSpec, ...] = Field(min_length=1)
    description: str = ""

    @property
    def key(self) -> tuple[str, int]:
        return (self.type, self.version)

    def deadline_specs(self) -> dict[str, tuple[DeadlineSpec, str]]:
        """Every deadline by name, with the state it is armed for."""
        out: dict[str, tuple[DeadlineSpec, str]] = {}
        for state_name, state in self.states.items():
            for spec in state.deadlines:
                out[spec.name] = (spec, state_name)
        for tr in self.transitions:
            for spec in tr.arms:
                for src in tr.source:
                    out[spec.name] = (spec, tr.target(src))
        return out

    def live_states(self, spec: DeadlineSpec, armed_for: str) -> tuple[str, ...]:
        """States in which a deadline stays armed."""
        return spec.while_in or (armed_for,)
