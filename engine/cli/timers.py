"""``omsflow timers`` and ``omsflow worker``: armed deadlines, firing the due ones."""

from __future__ import annotations

import contextlib
import importlib
from typing import Annotated

import typer
from rich.text import Text
from sqlalchemy.engine import make_url

from engine import logs
from engine.api import Engine, FireReport
from engine.cli import output
from engine.cli.context import Settings, parse_instant, settings
from engine.errors import EngineError

app = typer.Typer(help="Armed timers (deadlines) and firing the due ones.", no_args_is_help=True)


@app.command("list")
def list_timers(
    ctx: typer.Context,
    due: Annotated[bool, typer.Option("--due", help="Only those due now (or at --clock).")] = False,
    limit: Annotated[int, typer.Option("--limit", min=1)] = 100,
) -> None:
    """Armed and paused timers, soonest first."""
    s = settings(ctx)
    with s.engine() as engine:
        records = engine.timers(due_before=engine.clock.now() if due else None, limit=limit)
    if s.json:
        output.emit_json([output.deadline_json(d) for d in records])
        return
    out = output.console()
    if not records:
        out.print(Text("no timers" + (" due" if due else ""), style="dim"))
        return
    out.print(output.timers_table(records))


def _fire(s: Settings, engine: Engine, until: str | None) -> FireReport:
    limit = parse_instant(until, "--until") if until else None
    with output.progress(s.progress, "firing due timers") as advance:
        report = engine.fire_due_timers(limit, actor=s.actor)
        advance(report.fired + report.stale + report.failed)
    return report


def _show(s: Settings, report: FireReport) -> None:
    if s.json:
        output.emit_json(output.report_json(report))
    else:
        output.console().print(output.report_renderable(report))


@app.command("run")
def run(
    ctx: typer.Context,
    until: Annotated[
        str | None,
        typer.Option(
            "--until", metavar="ISO", help="Fire those due up to this instant (default: now)."
        ),
    ] = None,
) -> None:
    """Fire every timer due up to an instant, then exit."""
    s = settings(ctx)
    with s.engine() as engine:
        report = _fire(s, engine, until)
    _show(s, report)


class WorkerMissing(EngineError):
    code = "worker_missing"
    exit_code = 1

    def __init__(self, problem: str) -> None:
        super().__init__(f"the timer worker is not available in this installation: {problem}")


def worker(
    ctx: typer.Context,
    poll: Annotated[
        float,
        typer.Option("--poll", metavar="SECONDS", min=0.1, help="Look for due timers this often."),
    ] = 5.0,
    once: Annotated[
        bool, typer.Option("--once", help="Fire the due timers once and exit (for cron).")
    ] = False,
) -> None:
    """The long-running timer worker (Ctrl-C stops it)."""
    s = settings(ctx)
    with s.engine() as engine:
        if once:
            report = _fire(s, engine, None)
        else:
            try:
                # imported here: other commands never need the worker; building it checks
                # that APScheduler, which it imports only after its first catch-up, is there
                module = importlib.import_module("engine.timers.worker")
                worker = module.Worker(engine, poll_seconds=poll)
            except ImportError as exc:
                raise WorkerMissing(str(exc)) from None
            engine.refuse_auditor(s.actor, "run the timer worker")
            if not s.log_level_given:
                # a worker's log is its output: each timer fired and how late it was
                logs.configure(level="INFO")
            if not s.json:
                output.console(stderr=True).print(
                    f"timer worker on {make_url(engine.store.url).render_as_string()}, "
                    f"polling every {poll:g} s; Ctrl-C stops it",
                    style="dim",
                    markup=False,
                )
            # Ctrl-C is how an operator stops the worker: a normal end, not an error
            with contextlib.suppress(KeyboardInterrupt):
                worker.start()
            return
    _show(s, report)
