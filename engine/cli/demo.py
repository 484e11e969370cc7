"""``omsflow demo``: plays :mod:`engine.demo` on a new SQLite file and prints what happened."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.table import Table
from rich.text import Text
from sqlalchemy.engine import make_url

from engine.cli import output
from engine.cli.context import Settings, settings
from engine.clock import SystemClock
from engine.demo import MOSCOW, DemoReport, local_time, run_demo

_SHORT = 8
_LINE = "{:<20}  {:<8}  {:<15}  {:<16}  {:<42}  {:<18}  {}"
_HEADINGS = ("when (Moscow)", "case", "type", "trigger", "from → to", "actor", "reason")


def _fresh_file(s: Settings, ctx: typer.Context, chosen: Path | None) -> Path:
    """The demo's database file: never an existing database.

    ``--file``, or ``--db`` when given on the command line (a SQLite URL), must not exist yet.
    Otherwise — ``--db`` from OMSFLOW_DB or the default — the demo leaves that database alone
    and makes ``omsflow-demo-<date>-<time>.db`` in the current directory.
    """
    root = ctx.find_root()
    source = root.get_parameter_source("db_url")
    if chosen is None and source is not None and source.name == "COMMANDLINE":
        url = make_url(s.db)
        if url.get_backend_name() != "sqlite" or not url.database:
            raise typer.BadParameter(
                "the demo makes a fresh SQLite database; give a sqlite:///FILE URL or --file",
                param_hint="'--db'",
            )
        chosen = Path(url.database)
    if chosen is not None:
        if chosen.exists():
            raise typer.BadParameter(
                f"{chosen} exists; the demo only writes to a new file", param_hint="'--file'"
            )
        return chosen
    stamp = (s.clock or SystemClock()).now().strftime("%Y%m%d-%H%M%S")
    candidate = Path(f"omsflow-demo-{stamp}.db")
    n = 2
    while candidate.exists():
        candidate = Path(f"omsflow-demo-{stamp}-{n}.db")
        n += 1
    return candidate


def _commands(url: str, report: DemoReport) -> list[str]:
    db = f"omsflow --db {shlex.quote(url)}"
    at = f"--clock {report.finished_at.astimezone(MOSCOW).isoformat()}"
    waiting = next((c for c in report.cases if c.state == "pending"), None)
    resubmitted = next((r for r in report.timeline if r.trigger == "resubmit"), None)
    commands = [f"{db} case list"]
    if waiting is not None:
        commands.append(f"{db} {at} --as operator:ivanova case show {waiting.id}")
    if resubmitted is not None:
        commands.append(
            f"{db} definitions graph {resubmitted.case_type} --case {resubmitted.case_id}"
        )
    commands.append(f"{db} audit verify")
    return commands


def demo(
    ctx: typer.Context,
    file: Annotated[
        Path | None,
        typer.Option(
            "--file",
            metavar="FILE",
            help="The new SQLite file (default: omsflow-demo-<date>-<time>.db here).",
        ),
    ] = None,
) -> None:
    """Five weeks of a back office around the New Year on a new SQLite database, in seconds."""
    s = settings(ctx)
    path = _fresh_file(s, ctx, file)
    url = f"sqlite:///{path}"
    with output.progress(s.progress, "playing five weeks of a back office"):
        report = run_demo(url)
    commands = _commands(url, report)
    if s.json:
        output.emit_json({"database": str(path), **report.to_json(), "try": commands})
        return
    out = output.console()
    out.print(
        Text.assemble(
            ("omsflow demo", "bold"),
            f" — a simulated back office from {local_time(report.started_at)} "
            f"to {local_time(report.finished_at)} (Moscow time)\n",
            "database: ",
            (str(path), "bold cyan"),
        )
    )
    out.print(Text("\ntimeline", style="bold"))
    out.print(Text(_LINE.format(*_HEADINGS), style="dim"), soft_wrap=True)
    for row in report.timeline:
        if row.note:
            out.print(Text(f"  ⏩ {row.note}", style="dim italic"), soft_wrap=True)
            continue
        timed = row.actor == "system:timer"
        line = _LINE.format(
            local_time(row.at),
            (row.case_id or "")[:_SHORT],
            row.case_type or "",
            ("⏱ " if timed else "") + (row.trigger or ""),
            f"{row.from_state or '∅'} → {row.to_state}",
            row.actor or "",
            row.reason or "",
        )
        out.print(Text(line.rstrip(), style="yellow" if timed else ""), soft_wrap=True)
    summary = Table(
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
        title="cases",
        title_justify="left",
    )
    for column in ("case", "type", "state / label", "overdue", "flags", "story"):
        summary.add_column(column, no_wrap=column != "story")
    for case in report.cases:
        state = output.state_text(case.state, terminal=case.terminal)
        state.append(f"\n{case.label}", style="dim")
        summary.add_row(
            case.id[:_SHORT],
            case.type,
            state,
            Text("yes", style="bold red") if case.overdue else Text("no", style="dim"),
            output.flags_text(case.flags, "\n"),
            report.stories[case.id],
        )
    out.print()
    out.print(summary)
    if report.broken:
        for brk in report.broken.values():
            out.print(f"✘ {brk}", style="bold red", markup=False)
    else:
        out.print(
            Text(
                f"✔ {len(report.cases)} hash chains verify; "
                f"{report.timers_fired} timers fired on the simulated clock",
                style="green",
            )
        )
    out.print("\nExplore the database (the full case ids are in 'case list'):")
    for command in commands:
        out.print(f"  {command}", markup=False, soft_wrap=True)
