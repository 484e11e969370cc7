"""Commit computed steps: the one place where a ``StepResult`` becomes rows.

Used by the facade for operators' and portal steps and by the timer runner for timer steps, so
both write the same things in the same transaction: the case row under its version check, the
log entry, the deadline changes (armed, cancelled, paused, resumed, fired), the outbox rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

import structlog

from engine.errors import EngineError, NotFound
from engine.machines.compiled import Actor, CaseState, CompiledDefinition, StepRequest, StepResult
from engine.machines.loader import DefinitionRegistry
from engine.machines.notifications import render
from engine.reasons import ReasonCode
from engine.store.repository import CaseRecord, DeadlineRecord, NewDeadline, Tx, Write
from engine.timers.calendar import ProductionCalendar
from engine.timers.deadlines import compute_due, remaining, resume

log = structlog.get_logger("omsflow.step")
TIMER_ACTOR = Actor("system", "timer")


@dataclass(frozen=True)
class Loaded:
    """A case read for a step: its row, its definition and its open deadlines."""

    record: CaseRecord
    compiled: CompiledDefinition
    deadlines: list[DeadlineRecord]

    def armed(self, deadline_id: int) -> DeadlineRecord | None:
        """The deadline as the case holds it now, if it is still armed (not paused, not closed)."""
        for d in self.deadlines:
            if d.id == deadline_id:
                return d if d.status == "armed" else None
        return None

    def state(self) -> CaseState:
        r = self.record
        return CaseState(
            id=r.id,
            type=r.type,
            definition_version=r.definition_version,
            state=r.state,
            version=r.version,
            data=r.data,
            flags=r.flags,
            zone=r.zone,
            last_hash=r.last_hash,
            active_deadlines={d.name: d.status == "paused" for d in self.deadlines},
        )


@dataclass(frozen=True)
class StepWrite:
    """One step's rows, ready to write: ``Stepper.prepare`` computes it, ``apply`` writes it."""

    result: StepResult
    case: CaseRecord
    read_version: int | None  # the version the step was computed from; None: a new case
    data_changed: bool  # False: the step left the application as it was read
    cancel: list[int]
    pause: list[tuple[DeadlineRecord, timedelta]]  # as read, and its working time left
    resume: list[tuple[int, datetime]]  # deadline id, new due instant
    arm: list[NewDeadline]
    outbox: list[tuple[str, str, str, dict[str, Any]]]
    now: datetime


@dataclass(frozen=True)
class TimerOutcome:
    deadline: DeadlineRecord
    fired: bool
    seq: int | None
    lateness: timedelta
    problem: str | None = None


class Stepper:
    """Reads cases for steps and commits their results inside a caller's transaction."""

    def __init__(self, registry: DefinitionRegistry, calendar: ProductionCalendar) -> None:
        self.registry = registry
        self.calendar = calendar

    def load(self, tx: Tx, case_id: str, *, lock: bool = False) -> Loaded:
        """The case and its open deadlines; with ``lock``, the case row is locked for ``tx``
        (PostgreSQL; a SQLite writer holds the whole database already)."""
        record, opened = tx.load_case(case_id, lock=lock)
        if record is None:
            raise NotFound("case", case_id)
        return Loaded(record, self.registry.get(record.type, record.definition_version), opened)

    def due(self, unit: str, amount: int, event_at: datetime, zone: str) -> datetime:
        return compute_due(event_at, amount, unit, zone, self.calendar)

    def recomputed_due(self, d: DeadlineRecord) -> datetime:
        """A deadline's due instant under the current calendar, from its original event."""
        if d.resumed_at is not None:
            left = timedelta(seconds=d.remaining_seconds or 0.0)
            return resume(d.resumed_at, left, d.unit, d.zone, self.calendar)
        return self.due(d.unit, d.amount, d.event_at, d.zone)

    def commit(
        self,
        tx: Tx,
        loaded: Loaded | None,
        compiled: CompiledDefinition,
        result: StepResult,
        *,
        zone: str,
        now: datetime,
        subject_key: str = "",
        also: Callable[[], None] | None = None,
    ) -> None:
        """Write one computed step (and what ``also`` writes, sent with it); raises Conflict if
        the case moved since it was read."""
        write = self.prepare(loaded, compiled, result, zone=zone, now=now, subject_key=subject_key)
        self.apply(tx, write, also)

    def prepare(
        self,
        loaded: Loaded | None,
        compiled: CompiledDefinition,
        result: StepResult,
        *,
        zone: str,
        now: datetime,
        subject_key: str = "",
    ) -> StepWrite:
        """Everything the step writes, computed without the database.

        Due instants, paused remainders and notification texts are worked out here, so that
        a caller can do it before it opens the write transaction and hold the database's
        write lock only for the statements themselves.
        """
        entry = result.entry
        is_open = not compiled.is_terminal(result.to_state)
        case = CaseRecord(
            id=result.case_id,
            type=compiled.definition.type,
            definition_version=compiled.definition.version,
            state=result.to_state,
            version=result.version,
            is_open=is_open,
            overdue="overdue" in result.flags,
            flags=result.flags,
            data=dict(result.data),
            zone=zone,
            subject_key=subject_key if loaded is None else loaded.record.subject_key,
            last_hash=entry.hash,
            created_at=entry.at if loaded is None else loaded.record.created_at,
            updated_at=now,
        )
        open_deadlines = loaded.deadlines if loaded is not None else []
        at = entry.at
        by_name = {d.name: d for d in open_deadlines}
        pauses = []
        for name in result.pause:
            d = by_name[name]
            assert d.due_at is not None
            pauses.append((d, remaining(at, d.due_at, d.unit, d.zone, self.calendar)))
        resumes = []
        for name in result.resume:
            d = by_name[name]
            left = timedelta(seconds=d.remaining_seconds or 0.0)
            resumes.append((d.id, resume(at, left, d.unit, d.zone, self.calendar)))
        arms = [
            NewDeadline(
                name=arm.spec.name,
                trigger=arm.spec.trigger,
                amount=arm.spec.amount,
                unit=arm.spec.unit,
                zone=zone,
                event_at=arm.event_at,
                due_at=self.due(arm.spec.unit, arm.spec.amount, arm.event_at, zone),
                calendar=self.calendar.fingerprint if arm.spec.unit.endswith("days") else None,
            )
            for arm in result.arm
        ]
        return StepWrite(
            result=result,
            case=case,
            read_version=None if loaded is None else loaded.record.version,
            # a step without changes hands the data it was given back as it is
            data_changed=loaded is None or result.data is not loaded.record.data,
            cancel=[by_name[n].id for n in result.cancel if n in by_name],
            pause=pauses,
            resume=resumes,
            arm=arms,
            outbox=self._notifications(compiled, result, arms, now),
            now=now,
        )

    def apply(self, tx: Tx, write: StepWrite, also: Callable[[], None] | None = None) -> None:
        """Write a prepared step; raises Conflict if the case moved since it was read."""
        tx.run_staged(self.stage(tx, write, also))
        self.logged(write)

    def stage(
        self, tx: Tx, write: StepWrite, also: Callable[[], None] | None = None
    ) -> list[Write]:
        """A prepared step's statements, built for ``tx.run_staged`` (then ``logged``), and
        after them those of ``also`` (the ``Tx`` writes that go with the step).

        Built before the write lock is taken, so that the lock is held for the statements.
        """
        with tx.staging() as writes:
            self._write(tx, write)
            if also is not None:
                also()
        return writes

    def _write(self, tx: Tx, write: StepWrite) -> None:
        result, case = write.result, write.case
        entry = result.entry
        if write.read_version is None:
            tx.insert_case(case)
        else:
            tx.update_case(
                case.id,
                write.read_version,
                state=case.state,
                version=case.version,
                is_open=case.is_open,
                flags=case.flags,
                data=case.data if write.data_changed else None,
                last_hash=case.last_hash,
                updated_at=case.updated_at,
            )
        tx.append_log(entry)
        at, seq = entry.at, entry.seq
        tx.close_deadlines(write.cancel, "cancelled", seq, at)
        for deadline, left in write.pause:
            tx.pause_deadline(deadline, left.total_seconds())
        for deadline_id, due_at in write.resume:
            tx.resume_deadline(deadline_id, due_at, at)
        tx.insert_deadlines(case.id, seq, write.arm)
        tx.add_outbox(case.id, seq, write.outbox, write.now)

    def logged(self, write: StepWrite) -> None:
        """Log a written step."""
        result, case, entry = write.result, write.case, write.result.entry
        log.info(
            "step",
            case_id=case.id,
            type=case.type,
            definition_version=case.definition_version,
            trigger=entry.trigger,
            actor=entry.actor,
            from_state=result.from_state,
            to_state=result.to_state,
            version=result.version,
        )

    def _notifications(
        self,
        compiled: CompiledDefinition,
        result: StepResult,
        armed: list[NewDeadline],
        now: datetime,
    ) -> list[tuple[str, str, str, dict[str, Any]]]:
        if not result.notify:
            return []
        entry = result.entry
        zone = ZoneInfo(str(result.data.get("region_zone") or "Europe/Moscow"))
        # The applicant is told the last moment of the term, in local time.
        due = min((d.due_at for d in armed), default=None)
        due_text = _local_minute(due - timedelta(seconds=1), zone) if due else None
        deadline = entry.meta.get("deadline") if entry.meta else None
        found = compiled.deadlines.get(deadline) if deadline else None
        spec = found[0] if found else None
        context: dict[str, Any] = {
            "case_id": result.case_id,
            "title": compiled.definition.title,
            "label": compiled.label(result.to_state),
            "state": result.to_state,
            "comment": entry.comment,
            "due": due_text,
            "due_at": due.isoformat() if due else None,
            "reason": entry.reason,
            "advice": ReasonCode(entry.reason).advice if entry.reason else None,
            "deadline": (spec.description or spec.name) if spec else deadline,
            "trigger": entry.trigger,
        }
        items = []
        for kind in result.notify:
            n = render(kind, context)
            items.append((n.kind, n.audience, n.text, dict(n.payload)))
        return items

    def fire_timer(
        self, tx: Tx, deadline: DeadlineRecord, now: datetime, loaded: Loaded | None = None
    ) -> TimerOutcome:
        """Fire one due timer at its due instant; a timer whose step is no longer valid is stale."""
        loaded = loaded or self.load(tx, deadline.case_id)
        current = loaded.armed(deadline.id)
        if current is None:
            assert deadline.due_at is not None
            lateness = max(now - deadline.due_at, timedelta(0))
            return TimerOutcome(deadline, False, None, lateness, "no longer armed")
        return self.fire_as(tx, loaded, current, current.trigger, TIMER_ACTOR, now)

    def fire_as(
        self,
        tx: Tx,
        loaded: Loaded,
        deadline: DeadlineRecord,
        trigger: str,
        actor: Actor,
        now: datetime,
        *,
        reason: str | None = None,
        comment: str | None = None,
        retry_at: datetime | None = None,
    ) -> TimerOutcome:
        """Fire ``trigger`` for a due deadline, at the deadline's due instant (logical time).

        The deadline is then closed as fired, or as stale when the step is refused; with
        ``retry_at`` it stays armed and falls due again then (a retried registry check).
        """
        assert deadline.due_at is not None
        lateness = max(now - deadline.due_at, timedelta(0))
        request = StepRequest(
            trigger,
            actor,
            deadline.due_at,
            now,
            reason=reason,
            comment=comment,
            deadline=deadline.name,
        )
        try:
            result = loaded.compiled.step(loaded.state(), request)
        except EngineError as exc:
            tx.close_due(deadline, "stale", loaded.record.version, now)
            log.warning(
                "timer_stale", case_id=deadline.case_id, deadline=deadline.name, problem=str(exc)
            )
            return TimerOutcome(deadline, False, None, lateness, str(exc))
        # the timer's closing goes with the step's writes (``Tx.run_staged``)
        closing = (
            partial(tx.close_due, deadline, "fired", result.entry.seq, now)
            if retry_at is None
            else None
        )
        self.commit(
            tx, loaded, loaded.compiled, result, zone=loaded.record.zone, now=now, also=closing
        )
        if retry_at is not None:
            tx.move_deadline(deadline.id, retry_at, deadline.calendar or "")
        log.info(
            "timer_fired",
            case_id=deadline.case_id,
            deadline=deadline.name,
            trigger=trigger,
            due_at=deadline.due_at.isoformat(),
            late_seconds=lateness.total_seconds(),
        )
        return TimerOutcome(deadline, True, result.entry.seq, lateness)


def _local_minute(at: datetime, zone: ZoneInfo) -> str:
    """DD.MM.YYYY HH:MM in ``zone`` (strftime costs several times as much)."""
    t = at.astimezone(zone)
    return f"{t.day:02d}.{t.month:02d}.{t.year:04d} {t.hour:02d}:{t.minute:02d}"
