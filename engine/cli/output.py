"""Everything the CLI prints: one JSON document on stdout with ``--json``, Rich for people.

Errors go to standard error (in red, every failed field listed) or, with ``--json``, to
standard output as ``{"error": code, "message": text, "details": {...}}``. Personal data in
the log's ``changes`` is masked with the engine's own masking rules unless revealed.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from datetime import UTC, datetime
from typing import Any, TextIO
from zoneinfo import ZoneInfo

import typer
from rich import box
from rich.console import Console, Group, RenderableType
from rich.json import JSON
from rich.padding import Padding
from rich.panel import Panel
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from engine.api import CaseView, FireReport
from engine.errors import EngineError
from engine.machines.log import LogEntry
from engine.masking import mask_data
from engine.store.repository import DeadlineRecord, OutboxEvent

# ---- streams -------------------------------------------------------------------------------


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def console(*, stderr: bool = False) -> Console:
    """A Rich console on the current stdout (or stderr).

    Off a terminal Rich assumes 80 columns; a pipe or a file gets wide lines instead, so that
    ids and timestamps are not wrapped mid-word (``COLUMNS`` still wins when set).
    """
    stream = sys.stderr if stderr else sys.stdout
    width = None if _is_terminal(stream) or "COLUMNS" in os.environ else 200
    return Console(file=stream, width=width, highlight=False)


def jsonable(value: Any) -> Any:
    """``value`` with datetimes as ISO-8601 text (with offset), sets and tuples as lists."""
    if isinstance(value, datetime):
        return value.isoformat()
    if is_dataclass(value) and not isinstance(value, type):
        return jsonable(asdict(value))
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, frozenset | set):
        return sorted(jsonable(v) for v in value)
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def dumps(value: Any, *, indent: int | None = 2) -> str:
    separators = None if indent else (",", ":")
    return json.dumps(jsonable(value), ensure_ascii=False, indent=indent, separators=separators)


def emit_json(value: Any) -> None:
    """Print one JSON document on standard output."""
    typer.echo(dumps(value))


# ---- errors --------------------------------------------------------------------------------


def error_json(code: str, message: str, details: Mapping[str, Any]) -> dict[str, Any]:
    return {"error": code, "message": message, "details": dict(details)}


def print_error(exc: EngineError, *, as_json: bool) -> None:
    """Report an engine error: JSON on stdout with ``--json``, else red text on stderr."""
    details = exc.details()
    if as_json:
        emit_json(error_json(exc.code, str(exc), details))
        return
    err = console(stderr=True)
    errors = details.get("errors")
    if isinstance(errors, list) and errors:
        head = "invalid input"
        if details.get("reason"):
            head += f" (reason: {details['reason']})"
        err.print(f"error: {head}", style="bold red", markup=False)
        for item in errors:
            tail = f" (expected: {item['expected']})" if item.get("expected") else ""
            err.print(
                f"  • {item['field']}: {item['message']} [{item['rule']}]{tail}",
                style="red",
                markup=False,
            )
        if details.get("advice"):
            err.print(f"  advice: {details['advice']}", style="yellow", markup=False)
        return
    err.print(f"error: {exc}", style="bold red", markup=False)
    # errors that gather several problems (broken chains, broken files) list each one
    for line in getattr(exc, "lines", ()):
        err.print(f"  • {line}", style="red", markup=False)


def print_usage_json(message: str, exit_code: int) -> None:
    emit_json(error_json("usage", message, {"exit_code": exit_code}))


# ---- time ----------------------------------------------------------------------------------


def when(at: datetime | None, zone: str | None = None, *, short: bool = False) -> str:
    """An instant for people: local time of the case's zone (UTC without one).

    ``short`` leaves out the zone's abbreviation, for columns whose heading names it.
    """
    if at is None:
        return "—"
    local = at.astimezone(ZoneInfo(zone)) if zone else at.astimezone(UTC)
    return local.strftime("%Y-%m-%d %H:%M" if short else "%Y-%m-%d %H:%M %Z")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    minutes = int(seconds // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    parts = [f"{days}d"] if days else []
    if hours or days:
        parts.append(f"{hours}h")
    parts.append(f"{mins}m")
    return " ".join(parts)


# ---- JSON shapes ---------------------------------------------------------------------------


def mask_changes(changes: Mapping[str, Any]) -> dict[str, Any]:
    """A log entry's ``changes`` (``{"a.b.c": {"before": x, "after": y}}``) masked.

    Each dotted path is put back into its nested place so that ``mask_data`` applies exactly
    the rule it applies to case data (a ``passport.number`` is personal, a ``reason`` is not).
    """
    out: dict[str, Any] = {}
    for path, value in changes.items():
        parts = path.split(".")
        nested: Any = value
        for part in reversed(parts):
            nested = {part: nested}
        masked = mask_data(nested)
        for part in parts:
            masked = masked[part]
        out[path] = masked
    return out


def entry_json(entry: LogEntry, *, reveal: bool = False) -> dict[str, Any]:
    """A log entry: ``LogEntry.to_json()`` with personal data in ``changes`` masked."""
    out = entry.to_json()
    if not reveal:
        out["changes"] = mask_changes(entry.changes)
    return out


def deadline_json(d: DeadlineRecord) -> dict[str, Any]:
    return {
        "id": d.id,
        "case_id": d.case_id,
        "name": d.name,
        "trigger": d.trigger,
        "status": d.status,
        "due_at": jsonable(d.due_at),
        "amount": d.amount,
        "unit": d.unit,
        "zone": d.zone,
        "event_at": jsonable(d.event_at),
        "remaining_seconds": d.remaining_seconds,
    }


def event_json(e: OutboxEvent) -> dict[str, Any]:
    return {
        "event_id": e.event_id,
        "case_id": e.case_id,
        "seq": e.seq,
        "kind": e.kind,
        "audience": e.audience,
        "text": e.text,
        "payload": jsonable(e.payload),
        "created_at": jsonable(e.created_at),
        "acked_at": jsonable(e.acked_at),
    }


def report_json(report: FireReport) -> dict[str, Any]:
    return {
        "fired": report.fired,
        "stale": report.stale,
        "failed": report.failed,
        "max_lateness_seconds": report.max_lateness_seconds,
        "outcomes": [
            {
                "case_id": o.deadline.case_id,
                "deadline": o.deadline.name,
                "trigger": o.deadline.trigger,
                "due_at": jsonable(o.deadline.due_at),
                "fired": o.fired,
                "seq": o.seq,
                "lateness_seconds": o.lateness.total_seconds(),
                "problem": o.problem,
            }
            for o in report.outcomes
        ],
    }


# ---- Rich renderables ----------------------------------------------------------------------

_STATE_STYLE = {
    "rejected": "red",
    "withdrawn": "dim",
    "approved": "green",
    "issued": "green",
    "delivered": "green",
    "needs_clarification": "yellow",
}


def state_text(state: str, label: str | None = None, *, terminal: bool = False) -> Text:
    style = _STATE_STYLE.get(state, "bold" if terminal else "cyan")
    text = Text(state, style=style)
    if label:
        text.append(f" ({label})", style="default")
    return text


def flags_text(flags: Iterable[str], sep: str = " ") -> Text:
    text = Text()
    for flag in flags:
        if text:
            text.append(sep)
        text.append(flag, style="bold red" if flag == "overdue" else "yellow")
    return text


def case_renderable(case: CaseView, *, revealed: bool) -> RenderableType:
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    head.add_row("id", case.id)
    head.add_row("type", f"{case.type} v{case.definition_version}")
    head.add_row("state", state_text(case.state, case.label, terminal=case.terminal))
    head.add_row("version", str(case.version))
    head.add_row("flags", flags_text(case.flags) if case.flags else Text("—", style="dim"))
    head.add_row("zone", case.zone)
    head.add_row("created", when(case.created_at, case.zone))
    head.add_row("updated", when(case.updated_at, case.zone))
    allowed = ", ".join(case.allowed_triggers) if case.allowed_triggers else "—"
    head.add_row("you may fire", Text(allowed, style="green" if case.allowed_triggers else "dim"))
    parts: list[RenderableType] = [head]
    if case.deadlines:
        deadlines = _table("name", "trigger", "status", "due", "term", "left")
        deadlines.title = "deadlines"
        deadlines.title_justify = "left"
        for d in case.deadlines:
            deadlines.add_row(
                d.name,
                d.trigger,
                Text(d.status, style="yellow" if d.status == "paused" else "default"),
                when(d.due_at, case.zone),
                f"{d.amount} {d.unit}",
                duration(d.remaining_seconds) if d.remaining_seconds is not None else "",
            )
        parts.append(deadlines)
    title = "data (revealed — this read is in the access log)" if revealed else "data (masked)"
    parts.append(
        Panel(JSON.from_data(dict(case.data), ensure_ascii=False), title=title, expand=False)
    )
    return Panel(Group(*parts), title=f"{case.type} case", title_align="left", expand=False)


_UUID = 36


def _table(*columns: str, wrap: Iterable[str] = (), ids: Iterable[str] = ()) -> Table:
    """A plain table: ids, names and times stay on one line; only the ``wrap`` columns (free
    text) wrap, so a narrow terminal squeezes the prose rather than split an id to copy."""
    wrapping, uuids = set(wrap), set(ids)
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for column in columns:
        table.add_column(
            column,
            no_wrap=column not in wrapping,
            overflow="fold",
            min_width=_UUID if column in uuids else None,
        )
    return table


def cases_table(cases: Sequence[CaseView]) -> Table:
    table = _table("id", "type", "state", "ver", "flags", "updated (local)", ids=["id"])
    for c in cases:
        state = state_text(c.state, terminal=c.terminal)
        state.append(f"\n{c.label}", style="dim")
        table.add_row(
            c.id,
            c.type,
            state,
            str(c.version),
            flags_text(c.flags, "\n"),
            when(c.updated_at, c.zone, short=True),
        )
    return table


def history_table(entries: Sequence[LogEntry], zone: str | None, *, reveal: bool) -> Table:
    table = _table(
        "seq",
        "at",
        "trigger",
        "from → to",
        "actor",
        "reason",
        "comment",
        "changes",
        wrap=["from → to", "comment", "changes"],
    )
    for e in entries:
        changes = e.changes if reveal else mask_changes(e.changes)
        table.add_row(
            str(e.seq),
            when(e.at, zone, short=True),
            Text(e.trigger, style="bold"),
            f"{e.from_state or '∅'} → {e.to_state}",
            e.actor,
            e.reason or "",
            e.comment or "",
            "\n".join(f"{path}: {_change(value)}" for path, value in changes.items()),
        )
    return table


def _change(value: Any) -> str:
    if isinstance(value, Mapping) and {"before", "after"} <= value.keys():
        return f"{value['before']} → {value['after']}"
    return str(value)


def timers_table(records: Sequence[DeadlineRecord]) -> Table:
    table = _table("id", "case", "name", "trigger", "status", "due (local)", "term", ids=["case"])
    for d in records:
        table.add_row(
            str(d.id),
            d.case_id,
            d.name,
            d.trigger,
            d.status,
            when(d.due_at, d.zone, short=True)
            if d.due_at
            else f"paused, {duration(d.remaining_seconds)} left",
            f"{d.amount} {d.unit}",
        )
    return table


def events_renderable(events: Sequence[OutboxEvent]) -> RenderableType:
    """Each notification as a heading line (its id to acknowledge) and its text below."""
    lines: list[RenderableType] = []
    for e in events:
        lines.append(
            Text.assemble(
                (e.event_id, "bold"),
                "  ",
                (e.kind, "cyan"),
                f" → {e.audience}  ",
                (f"case {e.case_id[:8]}  {when(e.created_at)}", "dim"),
            )
        )
        lines.append(Padding(Text(e.text), (0, 0, 0, 4)))
    return Group(*lines)


def report_renderable(report: FireReport) -> RenderableType:
    summary = Text()
    summary.append(f"{report.fired} fired", style="bold green" if report.fired else "dim")
    summary.append(f", {report.stale} stale", style="yellow" if report.stale else "dim")
    summary.append(f", {report.failed} failed", style="bold red" if report.failed else "dim")
    if report.fired:
        summary.append(f"; latest was {duration(report.max_lateness_seconds)} late")
    if not report.outcomes:
        return summary
    table = _table("case", "deadline", "trigger", "due (local)", "result", ids=["case"])
    for o in report.outcomes:
        result = (
            Text(f"fired (entry {o.seq})", style="green")
            if o.fired
            else Text(o.problem or "not fired", style="yellow")
        )
        table.add_row(
            o.deadline.case_id,
            o.deadline.name,
            o.deadline.trigger,
            when(o.deadline.due_at, o.deadline.zone, short=True),
            result,
        )
    return Group(summary, table)


# ---- progress ------------------------------------------------------------------------------


@contextmanager
def progress(
    show: bool, description: str, total: float | None = None
) -> Iterator[Callable[..., None]]:
    """A transient Rich progress bar when ``show``; yields ``advance(n=1)``.

    ``total`` None draws a pulsing bar: the engine's bulk calls do not report their size.
    """
    if not show:
        yield lambda n=1: None
        return
    columns = [
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn() if total else TextColumn("{task.completed:.0f}"),
        TimeElapsedColumn(),
    ]
    with Progress(*columns, console=console(), transient=True) as bar:
        task = bar.add_task(description, total=total)

        def advance(n: float = 1) -> None:
            bar.advance(task, n)

        yield advance
