"""``omsflow db``: the schema's migrations."""

from __future__ import annotations

import typer
from rich.text import Text

from engine.cli import output
from engine.cli.context import settings

app = typer.Typer(help="The database schema: migrate, show the revision.", no_args_is_help=True)


@app.command("upgrade")
def upgrade(ctx: typer.Context) -> None:
    """Migrate the schema to the newest revision (a fresh database is created this way)."""
    s = settings(ctx)
    with s.engine(migrate=False) as engine:
        before = engine.store.current_revision()
        engine.store.upgrade()
        after = engine.store.current_revision()
    if s.json:
        output.emit_json({"from": before, "to": after, "changed": before != after})
    elif before == after:
        output.console().print(f"already at the newest revision {after}")
    else:
        output.console().print(
            Text.assemble(
                "migrated ",
                (str(before or "an empty database"), "bold"),
                " → ",
                (str(after), "bold green"),
            )
        )


@app.command("current")
def current(ctx: typer.Context) -> None:
    """The schema revision of the database and the newest one this version knows."""
    s = settings(ctx)
    with s.engine(migrate=False) as engine:
        revision = engine.store.current_revision()
        head = engine.store.head_revision()
    if s.json:
        output.emit_json({"current": revision, "head": head, "up_to_date": revision == head})
        return
    state = (
        Text("up to date", style="green")
        if revision == head
        else Text("behind: run 'omsflow db upgrade'", style="yellow")
    )
    output.console().print(
        Text.assemble(
            "current ",
            (str(revision or "none (empty database)"), "bold"),
            f", head {head}: ",
            state,
        )
    )
