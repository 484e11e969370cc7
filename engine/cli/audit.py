"""``omsflow audit``: the transition log, streamed, and the verification of its hash chains."""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer
from rich.text import Text

from engine.checkpoint import load_key, verify_against_checkpoint, write_checkpoint
from engine.cli import output
from engine.cli.context import parse_instant, settings
from engine.errors import AuditFailed
from engine.machines.log import ChainBreak, LogEntry

app = typer.Typer(help="The transition log and its verification.", no_args_is_help=True)


class LogFormat(StrEnum):
    table = "table"
    jsonl = "jsonl"
    csv = "csv"
    json = "json"


CSV_COLUMNS = (
    "seq",
    "case_id",
    "trigger",
    "from_state",
    "to_state",
    "actor",
    "reason",
    "comment",
    "changes",
    "at",
    "recorded_at",
    "correlation_id",
    "meta",
    "prev_hash",
    "hash",
)
_TABLE = "{seq:>5}  {at:<20}  {case_id:<36}  {trigger:<14}  {move:<44}  {actor:<22}  {reason}"


class ChainsBroken(AuditFailed):
    """``AuditFailed`` with the first broken entry of each case spelled out."""

    def __init__(self, broken: dict[str, ChainBreak]) -> None:
        super().__init__({cid: str(brk) for cid, brk in broken.items()})
        self.breaks = broken
        self.lines = [str(b) for b in broken.values()]

    def details(self) -> dict[str, Any]:
        return {
            **super().details(),
            "cases": [
                {"case_id": b.case_id, "seq": b.seq, "problem": b.problem}
                for b in self.breaks.values()
            ],
        }


@contextmanager
def _target(path: Path | None) -> Iterator[TextIO]:
    if path is None:
        yield sys.stdout
        return
    with path.open("w", encoding="utf-8", newline="") as handle:
        yield handle


class _Writer:
    """Writes entries one by one in a format; holds one entry at a time, whatever the log size."""

    def __init__(self, stream: TextIO, fmt: LogFormat) -> None:
        self.stream = stream
        self.fmt = fmt
        self.count = 0
        self.csv = csv.writer(stream) if fmt is LogFormat.csv else None

    def begin(self) -> None:
        if self.csv is not None:
            self.csv.writerow(CSV_COLUMNS)
        elif self.fmt is LogFormat.json:
            self.stream.write("[")
        elif self.fmt is LogFormat.table:
            head = _TABLE.format(
                seq="seq",
                at="at (UTC)",
                case_id="case",
                trigger="trigger",
                move="from → to",
                actor="actor",
                reason="reason",
            )
            self.stream.write(head + "\n" + "─" * len(head) + "\n")

    def write(self, entry: LogEntry) -> None:
        data = output.entry_json(entry)
        if self.csv is not None:
            row = {**data, "changes": output.dumps(data["changes"], indent=None)}
            row["meta"] = output.dumps(data["meta"], indent=None)
            self.csv.writerow(["" if row[c] is None else row[c] for c in CSV_COLUMNS])
        elif self.fmt is LogFormat.jsonl:
            self.stream.write(output.dumps(data, indent=None) + "\n")
        elif self.fmt is LogFormat.json:
            self.stream.write(
                ("," if self.count else "") + "\n  " + output.dumps(data, indent=None)
            )
        else:
            line = _TABLE.format(
                seq=entry.seq,
                at=entry.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ"),
                case_id=entry.case_id,
                trigger=entry.trigger,
                move=f"{entry.from_state or '∅'} → {entry.to_state}",
                actor=entry.actor,
                reason=entry.reason or "",
            )
            self.stream.write(line.rstrip() + "\n")
        self.count += 1

    def end(self) -> None:
        if self.fmt is LogFormat.json:
            self.stream.write("\n]\n" if self.count else "]\n")
        self.stream.flush()


@app.command("log")
def log(
    ctx: typer.Context,
    case_id: Annotated[str | None, typer.Option("--case", metavar="ID")] = None,
    actor: Annotated[str | None, typer.Option("--actor", metavar="ROLE:NAME")] = None,
    since: Annotated[
        str | None, typer.Option("--since", metavar="ISO", help="Entries at or after.")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", metavar="ISO", help="Entries before.")
    ] = None,
    fmt: Annotated[
        LogFormat | None,
        typer.Option(
            "--format",
            help="table, jsonl, csv or json (one JSON array); default: table, or json with --json.",
        ),
    ] = None,
    out_file: Annotated[
        Path | None, typer.Option("-o", "--output", metavar="FILE", help="Write to FILE.")
    ] = None,
) -> None:
    """The transition log in write order, streamed (constant memory on any size).

    Personal data in 'changes' is masked.
    """
    s = settings(ctx)
    start = parse_instant(since, "--since") if since else None
    end = parse_instant(until, "--until") if until else None
    chosen = fmt or (LogFormat.json if s.json else LogFormat.table)
    with s.engine() as engine, _target(out_file) as stream:
        writer = _Writer(stream, chosen)
        show = s.progress and out_file is not None
        with output.progress(show, f"writing {out_file}") as advance:
            writer.begin()
            for entry in engine.audit_log(case_id=case_id, actor=actor, since=start, until=end):
                writer.write(entry)
                advance()
            writer.end()
    if out_file is None:
        return
    if s.json:
        output.emit_json({"file": str(out_file), "format": chosen.value, "entries": writer.count})
    else:
        output.console().print(f"{writer.count} entries written to {out_file} ({chosen.value})")


KeyFileOption = Annotated[
    Path | None,
    typer.Option(
        "--key-file",
        metavar="FILE",
        help="The checkpoint signing key (default: the OMSFLOW_CHECKPOINT_KEY variable).",
    ),
]


class CheckpointBroken(AuditFailed):
    """Cases whose log no longer extends the head a signed checkpoint recorded."""

    def __init__(self, path: Path, problems: dict[str, str]) -> None:
        super().__init__(problems)
        self.path = path
        self.lines = [f"case {cid}: {problem}" for cid, problem in problems.items()]
        self.args = (f"{len(problems)} case(s) do not extend the checkpoint {path}",)

    def details(self) -> dict[str, Any]:
        return {**super().details(), "checkpoint": str(self.path)}


@app.command("verify")
def verify(
    ctx: typer.Context,
    checkpoint: Annotated[
        Path | None,
        typer.Option(
            "--checkpoint",
            metavar="FILE",
            help="Also check that every case's log extends the head this signed checkpoint "
            "recorded (detects a truncated tail whose case head was rewritten too).",
        ),
    ] = None,
    key_file: KeyFileOption = None,
) -> None:
    """Check every case's hash chain; exit 7 naming the first broken entry of each broken case."""
    s = settings(ctx)
    # the key is checked before any work: a missing key is the caller's mistake, not the log's
    key = load_key(key_file) if checkpoint is not None else b""
    with s.engine() as engine, output.progress(s.progress, "verifying hash chains"):
        broken = engine.verify()
        problems = (
            verify_against_checkpoint(engine, checkpoint, key) if checkpoint is not None else {}
        )
    if broken:
        raise ChainsBroken(broken)
    if checkpoint is not None and problems:
        raise CheckpointBroken(checkpoint, problems)
    if s.json:
        out: dict[str, Any] = {"ok": True, "broken": {}}
        if checkpoint is not None:
            out["checkpoint"] = str(checkpoint)
        output.emit_json(out)
    else:
        what = " and extends the checkpoint" if checkpoint is not None else ""
        output.console().print(Text(f"✔ every case's hash chain verifies{what}", style="green"))


@app.command("checkpoint")
def checkpoint_command(
    ctx: typer.Context,
    out_file: Annotated[
        Path, typer.Option("-o", "--output", metavar="FILE", help="Write the checkpoint here.")
    ],
    key_file: KeyFileOption = None,
) -> None:
    """Export a signed checkpoint of every case's head hash (keep it outside the database).

    'audit verify --checkpoint FILE' later proves that no case's log lost entries since.
    """
    s = settings(ctx)
    key = load_key(key_file)
    with s.engine() as engine:
        count = write_checkpoint(engine, out_file, key)
    if s.json:
        output.emit_json({"file": str(out_file), "cases": count})
    else:
        output.console().print(f"checkpoint of {count} case(s) written to {out_file}")
