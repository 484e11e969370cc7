"""``omsflow events``: the outbox of notifications the embedding service delivers."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.text import Text

from engine.cli import output
from engine.cli.context import settings

app = typer.Typer(
    help="Notifications waiting for delivery (the outbox), and acknowledging them.",
    no_args_is_help=True,
)


@app.command("list")
def list_events(
    ctx: typer.Context,
    case_id: Annotated[str | None, typer.Option("--case", metavar="ID")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1)] = 100,
) -> None:
    """Notifications not yet acknowledged, in the order they were recorded."""
    s = settings(ctx)
    with s.engine() as engine:
        events = engine.pending_events(limit=limit, case_id=case_id)
    if s.json:
        output.emit_json([output.event_json(e) for e in events])
        return
    out = output.console()
    if not events:
        out.print(Text("no pending notifications", style="dim"))
        return
    out.print(output.events_renderable(events))


@app.command("ack")
def ack(
    ctx: typer.Context,
    event_ids: Annotated[list[str], typer.Argument(metavar="EVENT_ID...")],
) -> None:
    """Acknowledge delivered notifications by their event_id (twice is harmless)."""
    s = settings(ctx)
    with s.engine() as engine:
        count = engine.ack_events(event_ids, s.actor)
    if s.json:
        output.emit_json({"acked": count, "event_ids": event_ids})
    else:
        output.console().print(f"{count} of {len(event_ids)} notification(s) acknowledged")
