"""``omsflow case``: open, show, list, fire and read the history of cases."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.text import Text

from engine.cli import output
from engine.cli.context import read_data, settings

app = typer.Typer(help="Open, inspect and step cases.", no_args_is_help=True)

DataOption = Annotated[
    str | None,
    typer.Option(
        "--data",
        metavar="FILE|-",
        help="A JSON object from a file, or from standard input with '-'.",
    ),
]
KeyOption = Annotated[
    str | None,
    typer.Option(
        "--key",
        help="Idempotency key: a retry with the same key and content returns the first result.",
    ),
]


@app.command("open")
def open_case(
    ctx: typer.Context,
    type_: Annotated[str, typer.Argument(metavar="TYPE", help="Application type.")],
    data: Annotated[
        str,
        typer.Option(
            "--data",
            metavar="FILE|-",
            help="The application as a JSON object, from a file or '-' for standard input "
            "(see 'definitions example TYPE').",
        ),
    ],
    key: KeyOption = None,
    comment: Annotated[str | None, typer.Option("--comment", help="A note for the log.")] = None,
) -> None:
    """Open a case; prints its id (with --json, the case)."""
    s = settings(ctx)
    actor = s.require_actor("opening a case")
    application = read_data(data)
    with s.engine() as engine:
        case = engine.open_case(type_, application, actor, key=key, comment=comment)
    if s.json:
        output.emit_json(case.to_json())
    else:
        typer.echo(case.id)


@app.command("show")
def show(
    ctx: typer.Context,
    case_id: Annotated[str, typer.Argument(metavar="ID")],
    reveal: Annotated[
        bool,
        typer.Option(
            "--reveal",
            help="Show personal data unmasked; the read is written to the access log (needs --as).",
        ),
    ] = False,
) -> None:
    """State, label, version, data (masked), deadlines and the triggers --as may fire."""
    s = settings(ctx)
    actor = s.require_actor("--reveal") if reveal else s.actor
    with s.engine() as engine:
        case = engine.get_case(case_id, actor, reveal=reveal)
    if s.json:
        output.emit_json(case.to_json())
        return
    out = output.console()
    out.print(output.case_renderable(case, revealed=reveal))
    if actor is None:
        out.print(Text("give --as ROLE:NAME to see the triggers you may fire", style="dim"))


@app.command("list")
def list_cases(
    ctx: typer.Context,
    type_: Annotated[str | None, typer.Option("--type", help="Only this type.")] = None,
    state: Annotated[str | None, typer.Option("--state", help="Only in this state.")] = None,
    overdue: Annotated[bool, typer.Option("--overdue", help="Only overdue cases.")] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many.")] = 50,
) -> None:
    """Cases, newest first (data masked)."""
    s = settings(ctx)
    with s.engine() as engine:
        cases = engine.list_cases(
            type_=type_, state=state, overdue=True if overdue else None, limit=limit
        )
    if s.json:
        output.emit_json([c.to_json() for c in cases])
        return
    out = output.console()
    if not cases:
        out.print(Text("no cases", style="dim"))
        return
    out.print(output.cases_table(cases))


@app.command("fire")
def fire(
    ctx: typer.Context,
    case_id: Annotated[str, typer.Argument(metavar="ID")],
    trigger: Annotated[str, typer.Argument(metavar="TRIGGER")],
    reason: Annotated[
        str | None, typer.Option("--reason", metavar="CODE", help="Reason code of a decision.")
    ] = None,
    comment: Annotated[str | None, typer.Option("--comment", metavar="TEXT")] = None,
    data: DataOption = None,
    expect_version: Annotated[
        int | None,
        typer.Option(
            "--expect-version",
            metavar="N",
            help="Refuse (exit 6) unless the case is still at this version.",
        ),
    ] = None,
    key: KeyOption = None,
) -> None:
    """Step a case: fire TRIGGER as --as."""
    s = settings(ctx)
    actor = s.require_actor("firing a trigger")
    changes = read_data(data) if data is not None else None
    with s.engine() as engine:
        outcome = engine.fire(
            case_id,
            trigger,
            actor,
            reason=reason,
            comment=comment,
            data=changes,
            expected_version=expect_version,
            key=key,
        )
    if s.json:
        output.emit_json(
            {
                **outcome.to_json(),
                "entry": output.entry_json(outcome.entry),
                "replayed": outcome.replayed,
                "timers_fired": [output.entry_json(e) for e in outcome.timers_fired],
            }
        )
        return
    out = output.console()
    for e in outcome.timers_fired:
        out.print(
            Text.assemble(
                ("⏱ due first: ", "yellow"),
                (e.trigger, "bold"),
                f"  {e.from_state} → {e.to_state}",
            )
        )
    case = outcome.case
    line = Text.assemble(
        ("✔ " if not outcome.replayed else "↺ replayed: ", "green"),
        (outcome.entry.trigger, "bold"),
        f"  {outcome.entry.from_state} → ",
        output.state_text(case.state, case.label, terminal=case.terminal),
        f"  version {case.version}",
    )
    out.print(line)
    if case.flags:
        out.print(Text.assemble("flags: ", output.flags_text(case.flags)))


@app.command("history")
def history(
    ctx: typer.Context,
    case_id: Annotated[str, typer.Argument(metavar="ID")],
    reveal: Annotated[
        bool,
        typer.Option(
            "--reveal",
            help="Show changed personal data unmasked; logged like 'case show --reveal'.",
        ),
    ] = False,
) -> None:
    """The case's transition log, oldest first."""
    s = settings(ctx)
    with s.engine() as engine:
        if reveal:
            # the engine logs a reveal per case read; the history shows that case's data
            case = engine.get_case(case_id, s.require_actor("--reveal"), reveal=True)
        else:
            case = engine.get_case(case_id)
        entries = engine.history(case_id)
    if s.json:
        output.emit_json([output.entry_json(e, reveal=reveal) for e in entries])
        return
    out = output.console()
    out.print(
        Text.assemble(
            (f"{case.type} case {case.id}", "bold"),
            "  now ",
            output.state_text(case.state, case.label, terminal=case.terminal),
        )
    )
    out.print(output.history_table(entries, case.zone, reveal=reveal))
