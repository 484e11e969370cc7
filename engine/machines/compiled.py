"""A definition compiled into one ``transitions`` Machine, and the pure step computation.

``step(case, request)`` computes everything a step changes - the new state, data and flags,
the log entry, deadlines to arm, cancel, pause and resume, notifications - without touching a
database; the facade commits the ``StepResult`` in one transaction. The Machine is shared by
every case of its (type, version): a case is never attached to it, its trigger is called
through ``machine.events[name]`` on a transient object.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from transitions import EventData, Machine

from engine import applications
from engine.errors import FieldError, InvalidInput, NotPermitted
from engine.machines.definition import ROLES, DeadlineSpec, Definition, TransitionSpec
from engine.machines.log import LogEntry
from engine.machines.registry import GUARDS, VALIDATORS, StepContext

OPEN_TRIGGER = "open"
DEFAULT_ZONE = "Europe/Moscow"
_ACTOR_NAME = re.compile(r"[\w.@-]{1,64}")


@dataclass(frozen=True)
class Actor:
    """Who fires a step, written ``role:name`` (e.g. ``operator:ivanova``)."""

    role: str
    name: str

    @classmethod
    def parse(cls, text: str) -> Actor:
        role, sep, name = text.partition(":")
        # fullmatch: '$' would also accept a name ending in a newline, forging log lines
        if not sep or role not in ROLES or not _ACTOR_NAME.fullmatch(name):
            raise InvalidInput(
                [
                    FieldError(
                        "actor",
                        "actor_format",
                        f"{text!r} is not a valid actor",
                        f"role:name with role one of {', '.join(ROLES)}, e.g. operator:ivanova",
                    )
                ]
            )
        return cls(role, name)

    def __str__(self) -> str:
        return f"{self.role}:{self.name}"


@dataclass(frozen=True)
class CaseState:
    """What the core needs to know of a case before a step."""

    id: str
    type: str
    definition_version: int
    state: str
    version: int
    data: Mapping[str, Any]
    flags: frozenset[str]
    zone: str
    last_hash: str
    active_deadlines: Mapping[str, bool] = field(default_factory=dict)
    """Armed deadlines by name; the value says whether the deadline is paused."""


@dataclass(frozen=True)
class StepRequest:
    trigger: str
    actor: Actor
    at: datetime
    recorded_at: datetime
    reason: str | None = None
    comment: str | None = None
    changes: Mapping[str, Any] = field(default_factory=dict)
    correlation_id: str | None = None
    deadline: str | None = None
    """The deadline whose expiry fires this step (timer steps only)."""


@dataclass(frozen=True)
class DeadlineArm:
    spec: DeadlineSpec
    event_at: datetime


@dataclass(frozen=True)
class StepResult:
    """Everything one step changes; committed by the facade as one transaction."""

    case_id: str
    from_state: str | None
    to_state: str
    version: int
    data: Mapping[str, Any]
    flags: frozenset[str]
    entry: LogEntry
    arm: tuple[DeadlineArm, ...] = ()
    cancel: tuple[str, ...] = ()
    pause: tuple[str, ...] = ()
    resume: tuple[str, ...] = ()
    notify: tuple[str, ...] = ()

    @property
    def state_changed(self) -> bool:
        return self.from_state != self.to_state


class _Transient:
    """The throw-away model the shared Machine steps; holds only the state name."""

    def __init__(self, state: str) -> None:
        self.state = state


def _roles(tr: TransitionSpec) -> frozenset[str]:
    # A supervisor may do what an operator does (DOMAIN.md, "Who acts").
    roles = set(tr.roles)
    if "operator" in roles:
        roles.add("supervisor")
    return frozenset(roles)


def local_date(at: datetime, zone: str) -> date:
    """The calendar date of an instant in a case's zone (what "today" means for the applicant)."""
    return at.astimezone(ZoneInfo(zone)).date()


class CompiledDefinition:
    """One definition version: its Machine, its deadlines by name, and the step logic."""

    def __init__(self, definition: Definition, path: str = "") -> None:
        self.definition = definition
        self.path = path
        self.deadlines = definition.deadline_specs()
        self._by_source: dict[tuple[str, str], TransitionSpec] = {}
        self._roles: dict[tuple[str, str], frozenset[str]] = {}
        # per state, in definition order: what allowed_triggers walks on every view
        self._from_state: dict[str, list[tuple[TransitionSpec, frozenset[str]]]] = {}
        for tr in definition.transitions:
            roles = _roles(tr)
            for src in tr.source:
                self._by_source[(tr.trigger, src)] = tr
                self._roles[(tr.trigger, src)] = roles
                self._from_state.setdefault(src, []).append((tr, roles))
        self.machine = Machine(
            model=None,
            states=list(definition.states),
            initial=definition.initial,
            auto_transitions=False,
            send_event=True,
            transitions=[
                {
                    "trigger": tr.trigger,
                    "source": list(tr.source),
                    "dest": tr.dest,
                    "conditions": [partial(_run_guard, g) for g in tr.guards],
                }
                for tr in definition.transitions
            ],
        )

    # ---- queries -------------------------------------------------------------------------

    def label(self, state: str) -> str:
        return self.definition.states[state].label

    def is_terminal(self, state: str) -> bool:
        return self.definition.states[state].terminal

    def transition(self, trigger: str, state: str) -> TransitionSpec | None:
        return self._by_source.get((trigger, state))

    def allowed_triggers(self, case: CaseState, role: str) -> list[str]:
        """Triggers ``role`` may fire on ``case`` now (state, role and guards all allow)."""
        out = []
        for tr, roles in self._from_state.get(case.state, ()):
            if role not in roles:
                continue
            if tr.guards:
                ctx = _context(case, tr.trigger, role, None, None, case.data, {})
                if not all(GUARDS[g](ctx) for g in tr.guards):
                    continue
            out.append(tr.trigger)
        return out

    # ---- computing steps -----------------------------------------------------------------

    def open(
        self,
        case_id: str,
        data: Mapping[str, Any],
        request: StepRequest,
    ) -> StepResult:
        """The first step of a case: validate its data, enter the initial state."""
        d = self.definition
        if request.actor.role not in d.open_roles:
            raise NotPermitted(
                f"role {request.actor.role!r} may not open a {d.type} case",
                trigger=OPEN_TRIGGER,
                state="-",
                role=request.actor.role,
                allowed=[],
            )
        zone = zone_of(data)
        today = local_date(request.at, zone)
        clean = applications.validate_application(d.data_model, data, today=today)
        entry = LogEntry(
            case_id=case_id,
            seq=1,
            trigger=OPEN_TRIGGER,
            from_state=None,
            to_state=d.initial,
            actor=str(request.actor),
            reason=None,
            comment=request.comment,
            changes={},
            correlation_id=request.correlation_id,
            at=request.at,
            recorded_at=request.recorded_at,
            prev_hash="0" * 64,
            meta={"type": d.type, "definition_version": d.version},
        ).sealed()
        opened = CaseState(case_id, d.type, d.version, d.initial, 1, clean, frozenset(), zone, "")
        ctx = _context(opened, OPEN_TRIGGER, request.actor.role, None, None, clean, {})
        arm = _armable(d.states[d.initial].deadlines, ctx, request.at)
        return StepResult(
            case_id=case_id,
            from_state=None,
            to_state=d.initial,
            version=1,
            data=clean,
            flags=frozenset(),
            entry=entry,
            arm=arm,
            notify=d.notify_on_open,
        )

    def step(self, case: CaseState, request: StepRequest) -> StepResult:
        """Compute one step; raises NotPermitted or InvalidInput and then nothing is written."""
        role = request.actor.role
        tr = self.transition(request.trigger, case.state)
        if tr is None or role not in self._roles[(tr.trigger, case.state)]:
            where = (
                f"in state {case.state!r}"
                if tr is None
                else f"by role {role!r} in state {case.state!r}"
            )
            raise NotPermitted(
                f"trigger {request.trigger!r} is not allowed {where}",
                trigger=request.trigger,
                state=case.state,
                role=role,
                allowed=self.allowed_triggers(case, role),
            )

        reason, errors = self._check_request(tr, request)
        data: Mapping[str, Any] = case.data
        diff: dict[str, Any] = {}
        refusal: InvalidInput | None = None
        if request.changes:
            try:
                data, diff = applications.validate_changes(
                    self.definition.data_model,
                    case.data,
                    request.changes,
                    today=local_date(request.at, case.zone),
                )
            except InvalidInput as exc:
                refusal = exc
                errors.extend(exc.errors)
        ctx = _context(case, tr.trigger, role, reason, request.comment, data, request.changes)
        for name in tr.validators:
            errors.extend(VALIDATORS[name](ctx))
        if errors:
            if refusal is not None:
                # keep the domain reason (e.g. invalid_scan) and its advice for the portal
                raise InvalidInput(
                    errors, reason=refusal.reason, advice=refusal.advice, extra=refusal.extra
                )
            raise InvalidInput(errors)

        failed: list[str] = []
        model = _Transient(case.state)
        if not self.machine.events[tr.trigger].trigger(model, ctx=ctx, failed=failed):
            raise NotPermitted(
                f"trigger {tr.trigger!r} refused by guard {failed[0]!r}",
                trigger=tr.trigger,
                state=case.state,
                role=role,
                allowed=self.allowed_triggers(case, role),
                guard=failed[0],
            )
        to_state: str = model.state
        flags = (case.flags | set(tr.sets_flags)) - set(tr.clears_flags)
        arm, cancel, pause, resume = self._deadline_effects(case, tr, to_state, request, ctx)
        entry = LogEntry(
            case_id=case.id,
            seq=case.version + 1,
            trigger=tr.trigger,
            from_state=case.state,
            to_state=to_state,
            actor=str(request.actor),
            reason=reason,
            comment=request.comment,
            changes=diff,
            correlation_id=request.correlation_id,
            at=request.at,
            recorded_at=request.recorded_at,
            prev_hash=case.last_hash,
            meta={"deadline": request.deadline} if request.deadline else {},
        ).sealed()
        return StepResult(
            case_id=case.id,
            from_state=case.state,
            to_state=to_state,
            version=case.version + 1,
            data=data,
            flags=frozenset(flags),
            entry=entry,
            arm=arm,
            cancel=cancel,
            pause=pause,
            resume=resume,
            notify=tr.notify,
        )

    def _check_request(
        self, tr: TransitionSpec, request: StepRequest
    ) -> tuple[str | None, list[FieldError]]:
        errors: list[FieldError] = []
        reason = tr.reason.value if tr.reason else None
        allowed = [r.value for r in tr.reasons]
        if "reason" in tr.requires and not request.reason:
            errors.append(
                FieldError(
                    "reason",
                    "reason_required",
                    f"{tr.trigger!r} needs a reason code",
                    f"one of {', '.join(allowed)}",
                )
            )
        elif request.reason and request.reason not in allowed:
            errors.append(
                FieldError(
                    "reason",
                    "reason_code",
                    f"{request.reason!r} is not a reason {tr.trigger!r} accepts",
                    f"one of {', '.join(allowed)}" if allowed else "no reason for this trigger",
                )
            )
        elif request.reason:
            reason = request.reason
        if "comment" in tr.requires and not (request.comment and request.comment.strip()):
            errors.append(
                FieldError(
                    "comment", "comment_required", f"{tr.trigger!r} needs a comment", "a text"
                )
            )
        if request.changes and not tr.accepts_data:
            errors.append(
                FieldError(
                    "data",
                    "data_not_accepted",
                    f"{tr.trigger!r} does not change application data",
                    "no data",
                )
            )
        if "data" in tr.requires and not request.changes:
            errors.append(
                FieldError("data", "data_required", f"{tr.trigger!r} needs data", "a JSON object")
            )
        return reason, errors

    def _deadline_effects(
        self,
        case: CaseState,
        tr: TransitionSpec,
        to_state: str,
        request: StepRequest,
        ctx: StepContext,
    ) -> tuple[tuple[DeadlineArm, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
        arm = list(_armable(tr.arms, ctx, request.at))
        # A transition that arms a deadline already running restarts it: one row per name.
        restart = [
            a.spec.name
            for a in arm
            if a.spec.name in case.active_deadlines and a.spec.name != request.deadline
        ]
        cancel: list[str] = list(restart)
        pause: list[str] = []
        resume: list[str] = []
        if tr.internal:
            return tuple(arm), tuple(cancel), (), ()
        entering = self.definition.states[to_state]
        reentry = {s.name for s in entering.deadlines} if to_state == case.state else set()
        for name, paused in case.active_deadlines.items():
            if name == request.deadline or name in restart:
                continue
            spec, armed_for = self.deadlines[name]
            live = self.definition.live_states(spec, armed_for)
            if entering.terminal or to_state not in live or name in reentry:
                cancel.append(name)
            elif to_state in spec.paused_in and not paused:
                pause.append(name)
            elif to_state not in spec.paused_in and paused:
                resume.append(name)
        still = set(case.active_deadlines) - set(cancel) - {request.deadline}
        armed = {a.spec.name for a in arm}
        fresh = [s for s in entering.deadlines if s.name not in still and s.name not in armed]
        arm.extend(_armable(fresh, ctx, request.at))
        return tuple(arm), tuple(cancel), tuple(pause), tuple(resume)


def zone_of(data: Mapping[str, Any]) -> str:
    """The case's time zone: the application's ``region_zone``, else Moscow.

    Raw input may name no real zone; Moscow then stands in for computing "today", and the
    validation of ``region_zone`` reports the field.
    """
    zone = data.get("region_zone")
    if not isinstance(zone, str) or not zone:
        return DEFAULT_ZONE
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        return DEFAULT_ZONE
    return zone


def _context(
    case: CaseState,
    trigger: str,
    role: str,
    reason: str | None,
    comment: str | None,
    data: Mapping[str, Any],
    changes: Mapping[str, Any],
) -> StepContext:
    return StepContext(
        case_type=case.type,
        state=case.state,
        data=data,
        flags=case.flags,
        trigger=trigger,
        actor_role=role,
        reason=reason,
        comment=comment,
        changes=changes,
    )


def _armable(
    specs: Iterable[DeadlineSpec], ctx: StepContext, at: datetime
) -> tuple[DeadlineArm, ...]:
    return tuple(DeadlineArm(s, at) for s in specs if all(GUARDS[g](ctx) for g in s.when))


def _run_guard(name: str, event: EventData) -> bool:
    ok = GUARDS[name](event.kwargs["ctx"])
    if not ok:
        event.kwargs["failed"].append(name)
    return ok
