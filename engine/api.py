"""The Engine facade: the one place that wires the store, the machines, the timers and the clock.

Back-office services embed this class; the CLI is a thin shell over it. Every write is one
transaction: validation and the step are computed first (nothing is written when they fail),
then the case row, its log entry, deadlines, outbox rows and idempotency key commit together.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from itertools import groupby
from pathlib import Path
from typing import Any, TypeVar

import structlog
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError

from engine import applications
from engine.clock import Clock, SystemClock, ensure_utc
from engine.errors import (
    Conflict,
    EngineError,
    FieldError,
    IdempotencyMismatch,
    InvalidInput,
    NotFound,
    NotPermitted,
    TransactionConflict,
)
from engine.machines.checks import CHECKS, Registries, RegistryUnavailable
from engine.machines.compiled import Actor, StepRequest, local_date, zone_of
from engine.machines.definition import DeadlineSpec
from engine.machines.loader import DefinitionRegistry
from engine.machines.log import ChainBreak, LogEntry, canonical_json, verify_chain
from engine.machines.rules import APPROVED_STATES, OtherCase, check_open
from engine.masking import mask_data
from engine.stepping import Loaded, Stepper, TimerOutcome
from engine.store.repository import (
    CaseRecord,
    DeadlineRecord,
    OutboxEvent,
    Store,
    Tx,
    is_unique_violation,
)
from engine.timers.calendar import ProductionCalendar

DEFAULT_URL = "sqlite:///omsflow.db"
OPEN_INDEX = "uq_cases_open_subject_type"
# Optimistic tries of a step before it takes the case under the lock (a busy case).
_OPTIMISTIC_ATTEMPTS = 2
_FIRST_BATCH = 8  # timers in the first batch of a run (then 32, 128, ... up to ``batch``)
_T = TypeVar("_T")
_log = structlog.get_logger("omsflow.engine")


@dataclass(frozen=True)
class DeadlineView:
    name: str
    trigger: str
    status: str
    due_at: datetime | None
    unit: str
    amount: int
    remaining_seconds: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "trigger": self.trigger,
            "status": self.status,
            "due_at": self.due_at.isoformat() if self.due_at else None,
            "unit": self.unit,
            "amount": self.amount,
            "remaining_seconds": self.remaining_seconds,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> DeadlineView:
        due = raw.get("due_at")
        return cls(
            name=raw["name"],
            trigger=raw["trigger"],
            status=raw["status"],
            due_at=datetime.fromisoformat(due) if due else None,
            unit=raw["unit"],
            amount=raw["amount"],
            remaining_seconds=raw.get("remaining_seconds"),
        )


@dataclass(frozen=True)
class CaseView:
    """A case as the API shows it: data masked unless revealed, deadlines, allowed triggers."""

    id: str
    type: str
    definition_version: int
    state: str
    label: str
    version: int
    terminal: bool
    data: Mapping[str, Any]
    flags: tuple[str, ...]
    deadlines: tuple[DeadlineView, ...]
    allowed_triggers: tuple[str, ...]
    zone: str
    created_at: datetime
    updated_at: datetime

    @property
    def overdue(self) -> bool:
        return "overdue" in self.flags

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "definition_version": self.definition_version,
            "state": self.state,
            "label": self.label,
            "version": self.version,
            "terminal": self.terminal,
            "data": dict(self.data),
            "flags": list(self.flags),
            "overdue": self.overdue,
            "deadlines": [d.to_json() for d in self.deadlines],
            "allowed_triggers": list(self.allowed_triggers),
            "zone": self.zone,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> CaseView:
        return cls(
            id=raw["id"],
            type=raw["type"],
            definition_version=raw["definition_version"],
            state=raw["state"],
            label=raw["label"],
            version=raw["version"],
            terminal=raw["terminal"],
            data=raw["data"],
            flags=tuple(raw["flags"]),
            deadlines=tuple(DeadlineView.from_json(d) for d in raw["deadlines"]),
            allowed_triggers=tuple(raw["allowed_triggers"]),
            zone=raw["zone"],
            created_at=datetime.fromisoformat(raw["created_at"]),
            updated_at=datetime.fromisoformat(raw["updated_at"]),
        )


class StepOutcome:
    """What a step returns: the case after it, its log entry, and whether it was a replay.

    ``case`` may be handed in as a function of the case as the step left it, called when
    ``case`` is first read: a service that only needs the step committed (the usual caller)
    does not pay for masking the application and working out the allowed triggers, about a
    tenth of a SQLite step.
    """

    __slots__ = ("_case", "entry", "replayed", "timers_fired")

    def __init__(
        self,
        case: CaseView | Callable[[], CaseView],
        entry: LogEntry,
        replayed: bool = False,
        timers_fired: tuple[LogEntry, ...] = (),
    ) -> None:
        self._case = case
        self.entry = entry
        self.replayed = replayed
        self.timers_fired = timers_fired

    @property
    def case(self) -> CaseView:
        case = self._case
        if not isinstance(case, CaseView):
            case = self._case = case()
        return case

    def to_json(self) -> dict[str, Any]:
        return {"case": self.case.to_json(), "entry": self.entry.to_json()}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StepOutcome):
            return NotImplemented
        return (self.case, self.entry, self.replayed, self.timers_fired) == (
            other.case,
            other.entry,
            other.replayed,
            other.timers_fired,
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"StepOutcome(case={self.case!r}, entry={self.entry!r}, replayed={self.replayed!r},"
            f" timers_fired={self.timers_fired!r})"
        )


@dataclass(frozen=True)
class MovedDeadline:
    """A deadline that a calendar update moved."""

    case_id: str
    name: str
    old_due_at: datetime | None
    new_due_at: datetime


@dataclass
class FireReport:
    """What ``fire_due_timers`` did.

    ``outcomes`` holds every timer's outcome, or with ``keep_outcomes`` off (the worker's
    catch-up after downtime, which must not grow with the number of timers it fires) the
    failed ones only; the counts and the worst lateness are exact either way.
    """

    fired: int = 0
    stale: int = 0
    failed: int = 0
    outcomes: list[TimerOutcome] = field(default_factory=list)
    max_lateness_seconds: float = 0.0
    keep_outcomes: bool = True

    def add(self, outcome: TimerOutcome, *, failed: bool = False) -> None:
        if failed:
            self.failed += 1
        elif outcome.fired:
            self.fired += 1
            late = outcome.lateness.total_seconds()
            self.max_lateness_seconds = max(self.max_lateness_seconds, late)
        else:
            self.stale += 1
        if failed or self.keep_outcomes:
            self.outcomes.append(outcome)


def _request_hash(payload: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()


def _entry_from_json(raw: Mapping[str, Any]) -> LogEntry:
    return LogEntry(
        case_id=raw["case_id"],
        seq=raw["seq"],
        trigger=raw["trigger"],
        from_state=raw["from_state"],
        to_state=raw["to_state"],
        actor=raw["actor"],
        reason=raw["reason"],
        comment=raw["comment"],
        changes=raw["changes"],
        correlation_id=raw["correlation_id"],
        at=datetime.fromisoformat(raw["at"]),
        recorded_at=datetime.fromisoformat(raw["recorded_at"]),
        prev_hash=raw["prev_hash"],
        hash=raw["hash"],
        meta=raw.get("meta", {}),
    )


def _step_request(
    trigger: str,
    who: Actor,
    now: datetime,
    reason: str | None,
    comment: str | None,
    data: Mapping[str, Any] | None,
    correlation_id: str | None,
) -> StepRequest:
    return StepRequest(
        trigger,
        who,
        now,
        now,
        reason=reason,
        comment=comment,
        changes=dict(data or {}),
        correlation_id=correlation_id,
    )


def _replayed(stored: Mapping[str, Any]) -> StepOutcome:
    return StepOutcome(
        CaseView.from_json(stored["case"]), _entry_from_json(stored["entry"]), replayed=True
    )


class Engine:
    """Open with a database URL; every method is safe to call from many threads and processes."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        clock: Clock | None = None,
        definitions: DefinitionRegistry | Path | None = None,
        calendar: ProductionCalendar | None = None,
        migrate: bool = True,
        synchronous: str = "FULL",
        registries: Registries | None = None,
    ) -> None:
        self.clock: Clock = clock or SystemClock()
        self.registries = registries
        if isinstance(definitions, DefinitionRegistry):
            self.definitions = definitions
        else:
            self.definitions = DefinitionRegistry.from_dir(definitions)
        self.calendar = calendar or ProductionCalendar.russia()
        self.store = Store(url, synchronous=synchronous)
        self.stepper = Stepper(self.definitions, self.calendar)
        if migrate:
            self.store.upgrade()

    def close(self) -> None:
        self.store.dispose()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def now(self) -> datetime:
        """The engine clock's current instant (aware UTC)."""
        return ensure_utc(self.clock.now(), "clock time")

    @staticmethod
    def _actor(actor: Actor | str) -> Actor:
        return actor if isinstance(actor, Actor) else Actor.parse(actor)

    # ---- writing -------------------------------------------------------------------------

    def open_case(
        self,
        type_: str,
        data: Mapping[str, Any],
        actor: Actor | str,
        *,
        key: str | None = None,
        comment: str | None = None,
        correlation_id: str | None = None,
    ) -> CaseView:
        """Open a case of the latest version of ``type_``; returns it as the actor sees it."""
        _check_text(type=type_, comment=comment, key=key, correlation_id=correlation_id)
        return self._keyed(
            key, lambda: self._open_case(type_, data, actor, key, comment, correlation_id)
        )

    def _keyed(self, key: str | None, run: Callable[[], _T]) -> _T:
        if key is None:
            return run()
        try:
            return run()
        except (IntegrityError, EngineError) as exc:
            if isinstance(exc, IntegrityError) and not is_unique_violation(exc):
                raise
            if isinstance(exc, IdempotencyMismatch):
                raise
            # Maybe a concurrent request with the same key committed first, and this one met
            # its effects (a conflict, a duplicate, a trigger no longer allowed): run once
            # more, to answer with its stored result (or meet the same refusal again).
            return run()

    def _open_case(
        self,
        type_: str,
        data: Mapping[str, Any],
        actor: Actor | str,
        key: str | None,
        comment: str | None,
        correlation_id: str | None,
    ) -> CaseView:
        who = self._actor(actor)
        if not isinstance(data, Mapping):
            raise InvalidInput([_not_object("data")])
        compiled = self.definitions.get(type_)
        now = self.now()
        case_id = str(uuid.uuid4())
        request = StepRequest("open", who, now, now, comment=comment, correlation_id=correlation_id)
        result = compiled.open(case_id, data, request)
        zone = zone_of(result.data)
        subject = applications.subject_key(compiled.definition.data_model, result.data)
        fingerprint = (
            _request_hash(
                {
                    "op": "open",
                    "type": type_,
                    "data": dict(data),
                    "actor": str(who),
                    "comment": comment,
                }
            )
            if key is not None
            else ""
        )
        today = local_date(now, zone)
        write = self.stepper.prepare(
            None, compiled, result, zone=zone, now=now, subject_key=subject
        )
        try:
            with self.store.optimistic() as tx:
                staged = self.stepper.stage(tx, write)
                with tx.writing():
                    if key is not None:
                        replay = self._replay(tx, key, fingerprint)
                        if replay is not None:
                            return CaseView.from_json(replay["case"])
                    others = [self._other(r) for r in tx.cases_of_subject(subject)]
                    check_open(type_, result.data, others, today)
                    tx.run_staged(staged)
                    if key is not None:
                        view = self._view(tx, case_id, who, reveal=False)
                        stored = {"case": view.to_json()}
                        tx.put_idempotency(key, fingerprint, case_id, stored, now)
                self.stepper.logged(write)
                if key is None:
                    view = self._view(tx, case_id, who, reveal=False)  # see _fire_optimistic
        except IntegrityError as exc:
            message = str(exc.orig)
            if not is_unique_violation(exc) or (
                OPEN_INDEX not in message and "cases.subject_key" not in message
            ):
                raise
            # A concurrent open for the same person won; refuse as the rule would have.
            with self.store.read() as tx:
                others = [self._other(r) for r in tx.cases_of_subject(subject)]
            check_open(type_, result.data, others, today)
            raise
        return view

    def fire(
        self,
        case_id: str,
        trigger: str,
        actor: Actor | str,
        *,
        reason: str | None = None,
        comment: str | None = None,
        data: Mapping[str, Any] | None = None,
        expected_version: int | None = None,
        key: str | None = None,
        correlation_id: str | None = None,
    ) -> StepOutcome:
        """Fire ``trigger`` on a case; first fires the case's timers that are already due."""
        _check_text(
            case_id=case_id,
            trigger=trigger,
            reason=reason,
            comment=comment,
            key=key,
            correlation_id=correlation_id,
        )
        return self._keyed(
            key,
            lambda: self._fire(
                case_id,
                trigger,
                actor,
                reason,
                comment,
                data,
                expected_version,
                key,
                correlation_id,
            ),
        )

    def _fire(
        self,
        case_id: str,
        trigger: str,
        actor: Actor | str,
        reason: str | None,
        comment: str | None,
        data: Mapping[str, Any] | None,
        expected_version: int | None,
        key: str | None,
        correlation_id: str | None,
    ) -> StepOutcome:
        who = self._actor(actor)
        if data is not None and not isinstance(data, Mapping):
            raise InvalidInput([_not_object("data")])
        fingerprint = (
            _request_hash(
                {
                    "op": "fire",
                    "case_id": case_id,
                    "trigger": trigger,
                    "actor": str(who),
                    "reason": reason,
                    "comment": comment,
                    "data": dict(data or {}),
                    "expected_version": expected_version,
                }
            )
            if key is not None
            else ""
        )
        for _attempt in range(_OPTIMISTIC_ATTEMPTS):
            quick = self._fire_optimistic(
                case_id,
                trigger,
                who,
                reason,
                comment,
                data,
                expected_version,
                key,
                fingerprint,
                correlation_id,
            )
            if quick is not None:
                return quick
        error: EngineError | None = None
        now = self.now()
        with self.store.write() as tx:
            if key is not None:
                replay = self._replay(tx, key, fingerprint)
                if replay is not None:
                    return _replayed(replay)
            # under the case's lock: a writer that commits meanwhile waits instead of making
            # this last try a Conflict for a caller who asked for no version
            loaded = self._load_expected(tx, case_id, expected_version, lock=True)
            timer_entries = self._catch_up(tx, loaded, now)
            if timer_entries:
                loaded = self.stepper.load(tx, case_id)
            request = _step_request(trigger, who, now, reason, comment, data, correlation_id)
            try:
                result = loaded.compiled.step(loaded.state(), request)
            except EngineError as exc:
                # The timers that caught up stay committed: they happened whatever this step is.
                error = exc
            else:
                self.stepper.commit(
                    tx, loaded, loaded.compiled, result, zone=loaded.record.zone, now=now
                )
                outcome = StepOutcome(
                    self._view(tx, case_id, who, reveal=False),
                    result.entry,
                    timers_fired=tuple(timer_entries),
                )
                if key is not None:
                    tx.put_idempotency(key, fingerprint, case_id, outcome.to_json(), now)
        if error is not None:
            raise error
        return outcome

    def _load_expected(
        self, tx: Tx, case_id: str, expected_version: int | None, *, lock: bool = False
    ) -> Loaded:
        loaded = self.stepper.load(tx, case_id, lock=lock)
        if expected_version is not None and loaded.record.version != expected_version:
            raise Conflict(case_id, expected_version, loaded.record.version)
        return loaded

    def _fire_optimistic(
        self,
        case_id: str,
        trigger: str,
        who: Actor,
        reason: str | None,
        comment: str | None,
        data: Mapping[str, Any] | None,
        expected_version: int | None,
        key: str | None,
        fingerprint: str,
        correlation_id: str | None,
    ) -> StepOutcome | None:
        """The step computed from a read and written only if the case is still as read.

        Returns None when the case has timers due (they fire first, under the lock) or when
        another writer stepped the case in between: the caller then tries again.
        """
        now = self.now()
        with self.store.optimistic() as tx:
            if key is not None:
                replay = self._replay(tx, key, fingerprint)
                if replay is not None:
                    return _replayed(replay)
            loaded = self._load_expected(tx, case_id, expected_version)
            if any(d.status == "armed" and d.due_at and d.due_at <= now for d in loaded.deadlines):
                return None
            request = _step_request(trigger, who, now, reason, comment, data, correlation_id)
            result = loaded.compiled.step(loaded.state(), request)
            write = self.stepper.prepare(
                loaded, loaded.compiled, result, zone=loaded.record.zone, now=now
            )
            staged = self.stepper.stage(tx, write)
            try:
                with tx.writing():
                    if key is not None:
                        replay = self._replay(tx, key, fingerprint)
                        if replay is not None:
                            return _replayed(replay)
                    tx.run_staged(staged)
                    if key is not None:
                        outcome = StepOutcome(
                            self._view(tx, case_id, who, reveal=False), result.entry
                        )
                        tx.put_idempotency(key, fingerprint, case_id, outcome.to_json(), now)
            except Conflict as exc:
                # a deadline that moved under the step is no news of the case's version
                if expected_version is not None and not isinstance(exc, TransactionConflict):
                    raise
                return None
            self.stepper.logged(write)
            if key is None:
                # after the commit, from what the transaction wrote: the lock is not held
                # while the view is built, and it is built only when read
                after = self.stepper.load(tx, case_id)
                outcome = StepOutcome(partial(Engine._show, after, who, reveal=False), result.entry)
            return outcome

    def _catch_up(self, tx: Tx, loaded: Loaded, now: datetime) -> list[LogEntry]:
        entries: list[LogEntry] = []
        while True:
            due = tx.due_deadlines(now, limit=1, case_id=loaded.record.id)
            if not due:
                return entries
            outcome = self._fire_deadline(tx, due[0], now)
            if outcome.seq is not None:
                entry = tx.entry(loaded.record.id, outcome.seq)
                if entry is not None:
                    entries.append(entry)

    def _fire_deadline(self, tx: Tx, deadline: DeadlineRecord, now: datetime) -> TimerOutcome:
        loaded = self.stepper.load(tx, deadline.case_id)
        found = loaded.compiled.deadlines.get(deadline.name)
        current = loaded.armed(deadline.id)
        if found is None or found[0].check is None or current is None:
            return self.stepper.fire_timer(tx, deadline, now, loaded)
        return self._run_check(tx, loaded, current, found[0], now)

    def _run_check(
        self, tx: Tx, loaded: Loaded, deadline: DeadlineRecord, spec: DeadlineSpec, now: datetime
    ) -> TimerOutcome:
        """Run an automatic registry check; on a registry failure retry with backoff."""
        assert spec.check is not None
        assert deadline.due_at is not None
        lateness = max(now - deadline.due_at, timedelta(0))
        if self.registries is None:
            # No registries wired in (an engine without integrations): nothing to check with.
            tx.close_deadlines([deadline.id], "stale", loaded.record.version, now)
            return TimerOutcome(deadline, False, None, lateness, "no registries configured")
        actor = Actor("system", spec.check)
        try:
            decided = CHECKS[spec.check](loaded.record.data, self.registries)
        except RegistryUnavailable as exc:
            # the check's own failed attempts, not a retry someone fired by hand
            failures = sum(
                1
                for e in tx.history(deadline.case_id)
                if e.seq > deadline.armed_seq
                and e.trigger == spec.trigger
                and e.actor == str(actor)
            )
            attempt = failures + 1
            if attempt >= spec.attempts:
                trigger = spec.on_exhausted or spec.trigger
                comment = f"{exc}; попытка {attempt} из {spec.attempts}, передано оператору"
                return self.stepper.fire_as(
                    tx, loaded, deadline, trigger, actor, now, comment=comment
                )
            retry_at = deadline.due_at + timedelta(
                minutes=spec.backoff_minutes * 2 ** (attempt - 1)
            )
            comment = f"{exc}; попытка {attempt} из {spec.attempts}, повтор {retry_at.isoformat()}"
            return self.stepper.fire_as(
                tx, loaded, deadline, spec.trigger, actor, now, comment=comment, retry_at=retry_at
            )
        return self.stepper.fire_as(
            tx,
            loaded,
            deadline,
            decided.trigger,
            actor,
            now,
            reason=decided.reason,
            comment=decided.comment,
        )

    def refuse_auditor(self, actor: Actor | str | None, what: str) -> None:
        """Raise NotPermitted when ``actor`` is an auditor: auditors read, never write."""
        who = self._actor(actor) if actor is not None else None
        if who is not None and who.role == "auditor":
            raise NotPermitted(
                f"an auditor may not {what}", trigger=what, state="-", role=who.role, allowed=[]
            )

    def _replay(self, tx: Tx, key: str, fingerprint: str) -> dict[str, Any] | None:
        stored = tx.get_idempotency(key)
        if stored is None:
            return None
        if stored[0] != fingerprint:
            raise IdempotencyMismatch(key)
        return stored[1]

    @staticmethod
    def _other(record: CaseRecord) -> OtherCase:
        return OtherCase(
            id=record.id,
            type=record.type,
            state=record.state,
            is_open=record.is_open,
            data=record.data,
            opened_on=local_date(record.created_at, record.zone),
            approved=record.state in APPROVED_STATES,
        )

    # ---- timers --------------------------------------------------------------------------

    def fire_due_timers(
        self,
        until: datetime | None = None,
        *,
        batch: int = 200,
        actor: Actor | str | None = None,
        keep_outcomes: bool = True,
    ) -> FireReport:
        """Fire every timer due up to ``until`` (default: now), oldest first, in batches.

        Each batch commits once (8 timers first, growing to ``batch``; on PostgreSQL at most 64
        savepoints, the subtransactions a transaction holds before it slows every session of
        the server); each timer's step runs in its own savepoint, so one case that fails is
        rolled back alone. Timers that the fired steps arm and that fall due before ``until``
        fire too. Several processes may run this at once on PostgreSQL. An ``actor`` who asks
        for it is checked: an auditor changes nothing. With ``keep_outcomes`` off the report
        keeps counts, the worst lateness and the failures only, so that memory stays flat
        however many timers a catch-up fires.
        """
        self.refuse_auditor(actor, "fire timers")
        limit = ensure_utc(until, "until") if until else self.now()
        report = FireReport(keep_outcomes=keep_outcomes)
        # Cases whose timer failed in this run: they wait for the next run instead of
        # heading every batch and holding up the timers behind them.
        failed: set[str] = set()
        # The first batches are small and grow to ``batch``: a worker starting on a long
        # catch-up commits its oldest timers within a few steps, not after a full batch.
        size = min(batch, _FIRST_BATCH)
        while True:
            now = self.now()
            with self.store.write() as tx:
                budget = tx.savepoint_budget
                due = tx.due_deadlines(
                    limit,
                    limit=size if budget is None else min(size, budget),
                    skip_locked=True,
                    skip_cases=frozenset(failed),
                )
                claimed = list(dict.fromkeys(d.case_id for d in due))
                tx.prefetch(claimed)
                for case_id in claimed:
                    if not self._catch_up_case(tx, case_id, limit, now, report):
                        failed.add(case_id)
            if not due:
                return report
            size = min(batch, size * 4)

    def _catch_up_case(
        self, tx: Tx, case_id: str, until: datetime, now: datetime, report: FireReport
    ) -> bool:
        """Fire one case's timers due by ``until`` in due order, each in its own savepoint.

        The next timer is taken from the case as it is after the last one, so a timer that a
        fired step armed, moved (a registry retry) or paused is seen as it now is, and the
        case's log stays in time order. Returns False when a timer failed: its savepoint is
        rolled back, it stays due, and the case's later timers wait with it.
        """
        while tx.savepoint_room():
            due = tx.due_deadlines(until, limit=1, case_id=case_id)
            if not due:
                return True
            deadline = due[0]
            try:
                with tx.savepoint():
                    outcome = self._fire_deadline(tx, deadline, now)
            except (OperationalError, InterfaceError):
                raise  # the database itself failed: no other timer can fire either
            except Exception as exc:
                # One case that cannot step (another worker stepped it meanwhile, or the
                # database refused its rows) must not hold up the rest.
                problem = str(exc.orig) if isinstance(exc, DBAPIError) else str(exc)
                if not isinstance(exc, EngineError):
                    _log.error(
                        "timer_failed",
                        case_id=case_id,
                        deadline=deadline.name,
                        problem=problem,
                        exc_info=True,
                    )
                report.add(TimerOutcome(deadline, False, None, timedelta(0), problem), failed=True)
                return False
            report.add(outcome)
        # the transaction's savepoints are spent: this case's later timers, and the cases
        # claimed after it, stay due and head the next batch
        return True

    def recompute_deadlines(self, *, batch: int = 500) -> list[MovedDeadline]:
        """Recompute every armed day-unit deadline under the current calendar data.

        Run after the calendar data changed (the government published next year's
        transfers); each deadline is recomputed from its original event and unit, and every one
        that moved is logged and returned.
        """
        fingerprint = self.calendar.fingerprint
        moved: list[MovedDeadline] = []
        while True:
            with self.store.write() as tx:
                rows = tx.calendar_deadlines(fingerprint, limit=batch)
                for d in rows:
                    new_due = self.stepper.recomputed_due(d)
                    if tx.move_deadline(d.id, new_due, fingerprint) and new_due != d.due_at:
                        moved.append(MovedDeadline(d.case_id, d.name, d.due_at, new_due))
                        _log.info(
                            "deadline_moved",
                            case_id=d.case_id,
                            deadline=d.name,
                            old_due_at=d.due_at.isoformat() if d.due_at else None,
                            new_due_at=new_due.isoformat(),
                        )
            if len(rows) < batch:
                return moved

    def next_due(self) -> datetime | None:
        with self.store.read() as tx:
            return tx.next_due()

    def timers(
        self, *, due_before: datetime | None = None, limit: int = 100
    ) -> list[DeadlineRecord]:
        with self.store.read() as tx:
            return tx.list_deadlines(due_before=due_before, limit=limit)

    # ---- reading -------------------------------------------------------------------------

    def get_case(
        self, case_id: str, actor: Actor | str | None = None, *, reveal: bool = False
    ) -> CaseView:
        """A case; personal data is masked unless ``reveal``, which is itself logged."""
        who = self._actor(actor) if actor is not None else None
        if reveal:
            if who is None:
                raise InvalidInput([_missing_actor()])
            with self.store.write() as tx:
                view = self._view(tx, case_id, who, reveal=True)
                tx.log_access(case_id, str(who), "reveal", self.now())
                return view
        with self.store.read() as tx:
            return self._view(tx, case_id, who, reveal=False)

    def _view(self, tx: Tx, case_id: str, who: Actor | None, *, reveal: bool) -> CaseView:
        return self._show(self.stepper.load(tx, case_id), who, reveal=reveal)

    @staticmethod
    def _show(loaded: Loaded, who: Actor | None, *, reveal: bool) -> CaseView:
        r = loaded.record
        compiled = loaded.compiled
        allowed = compiled.allowed_triggers(loaded.state(), who.role) if who else []
        return CaseView(
            id=r.id,
            type=r.type,
            definition_version=r.definition_version,
            state=r.state,
            label=compiled.label(r.state),
            version=r.version,
            terminal=compiled.is_terminal(r.state),
            data=r.data if reveal else mask_data(r.data),
            flags=tuple(sorted(r.flags)),
            deadlines=tuple(
                DeadlineView(
                    d.name, d.trigger, d.status, d.due_at, d.unit, d.amount, d.remaining_seconds
                )
                for d in loaded.deadlines
            ),
            allowed_triggers=tuple(allowed),
            zone=r.zone,
            created_at=r.created_at,
            updated_at=r.updated_at,
        )

    def list_cases(
        self,
        *,
        type_: str | None = None,
        state: str | None = None,
        overdue: bool | None = None,
        limit: int = 50,
    ) -> list[CaseView]:
        """Cases newest first, data masked."""
        with self.store.read() as tx:
            records = tx.list_cases(type_=type_, state=state, overdue=overdue, limit=limit)
            return [self._view(tx, r.id, None, reveal=False) for r in records]

    def history(self, case_id: str) -> list[LogEntry]:
        with self.store.read() as tx:
            if tx.get_case(case_id) is None:
                raise NotFound("case", case_id)
            return tx.history(case_id)

    def audit_log(
        self,
        *,
        case_id: str | None = None,
        actor: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Iterator[LogEntry]:
        """Stream the transition log in write order; constant memory on any size."""
        with self.store.read() as tx:
            yield from tx.iter_log(case_id=case_id, actor=actor, since=since, until=until)

    def verify(self) -> dict[str, ChainBreak]:
        """Check every case's hash chain against its recorded head; returns the broken ones."""
        broken: dict[str, ChainBreak] = {}
        with self.store.read() as tx:
            heads = {cid: head for cid, _version, head in tx.case_heads()}
            stream = tx.iter_log(order_by_case=True)
            for case_id, entries in groupby(stream, key=lambda e: e.case_id):
                problem = verify_chain(entries, heads.pop(case_id, None))
                if problem:
                    broken[case_id] = problem
        for case_id in heads:
            broken[case_id] = ChainBreak(case_id, 1, "the case has no log entries")
        return broken

    # ---- outbox --------------------------------------------------------------------------

    def pending_events(self, *, limit: int = 100, case_id: str | None = None) -> list[OutboxEvent]:
        """Notifications not yet acknowledged, in the order they were recorded."""
        with self.store.read() as tx:
            return tx.pending_outbox(limit=limit, case_id=case_id)

    def case_events(self, case_id: str) -> list[OutboxEvent]:
        with self.store.read() as tx:
            return tx.case_outbox(case_id)

    def ack_events(self, event_ids: Sequence[str], actor: Actor | str | None = None) -> int:
        """Acknowledge delivered notifications; acknowledging twice is harmless.

        An auditor reads everything and changes nothing, acknowledgements included.
        """
        self.refuse_auditor(actor, "acknowledge notifications")
        with self.store.write() as tx:
            return tx.ack_outbox(list(event_ids), self.now())


def _check_text(**fields: str | None) -> None:
    """Refuse text that is not valid Unicode (lone surrogates): it cannot be stored or hashed."""
    errors = []
    for name, value in fields.items():
        if value is None:
            continue
        if not isinstance(value, str):
            errors.append(FieldError(name, "wrong_type", f"{name} must be a string", "text"))
            continue
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            errors.append(
                FieldError(name, "invalid_unicode", f"{name} is not valid Unicode", "UTF-8 text")
            )
    if errors:
        raise InvalidInput(errors)


def _not_object(name: str) -> FieldError:
    return FieldError(name, "json_object", f"{name} must be a JSON object", '{"field": "value"}')


def _missing_actor() -> FieldError:
    return FieldError(
        "actor", "actor_required", "revealing personal data needs an actor", "role:name"
    )
