"""The root ``omsflow`` command: global options, error reporting, and the command tree.

Every error the engine raises leaves with its own exit code (3 not found, 4 invalid input,
5 not permitted, 6 conflict, 7 audit failed; 2 is a usage error) and, with ``--json``, as one
JSON object ``{"error", "message", "details"}`` on standard output.
"""

from __future__ import annotations

from typing import Annotated, Any, Protocol, cast

import typer
from sqlalchemy.exc import SQLAlchemyError
from typer.core import TyperGroup

from engine import logs
from engine.api import DEFAULT_URL
from engine.cli import audit, cases, db, definitions, events, output, timers
from engine.cli import demo as demo_command
from engine.cli.context import Settings, check_actor, check_db, manual_clock
from engine.errors import EngineError, StoreUnavailable


class _ClickError(Protocol):
    exit_code: int

    def format_message(self) -> str: ...


def _click_error(exc: BaseException) -> _ClickError | None:
    # Click's own exceptions, whether Typer vendors Click or not: an exit code and a message.
    if hasattr(exc, "exit_code") and callable(getattr(exc, "format_message", None)):
        return cast(_ClickError, exc)
    return None


class OmsflowGroup(TyperGroup):
    """The root group: turns errors into exit codes and, with ``--json``, JSON objects."""

    def invoke(self, ctx: Any) -> Any:  # Click's Context, vendored or not
        as_json = bool(ctx.params.get("json_output"))
        try:
            return super().invoke(ctx)
        except EngineError as exc:
            output.print_error(exc, as_json=as_json)
            raise typer.Exit(exc.exit_code) from None
        except SQLAlchemyError as exc:
            problem = StoreUnavailable(f"database error: {getattr(exc, 'orig', None) or exc}")
            output.print_error(problem, as_json=as_json)
            raise typer.Exit(problem.exit_code) from None
        except Exception as exc:
            usage = _click_error(exc)
            if as_json and usage is not None:
                output.print_usage_json(usage.format_message(), usage.exit_code)
                raise typer.Exit(usage.exit_code) from None
            raise


app = typer.Typer(
    name="omsflow",
    cls=OmsflowGroup,
    help="Back-office case engine for OMS policy applications: operators' and auditors' tool.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def root(
    ctx: typer.Context,
    db_url: Annotated[
        str,
        typer.Option(
            "--db", envvar="OMSFLOW_DB", metavar="URL", help="Database URL (SQLite or PostgreSQL)."
        ),
    ] = DEFAULT_URL,
    actor: Annotated[
        str | None,
        typer.Option(
            "--as",
            envvar="OMSFLOW_ACTOR",
            metavar="ROLE:NAME",
            help="Who acts: portal, operator, supervisor, system or auditor "
            "(e.g. operator:ivanova).",
        ),
    ] = None,
    json_output: Annotated[
        bool,
        typer.Option(
            "--json", envvar="OMSFLOW_JSON", help="Machine-readable: one JSON document on stdout."
        ),
    ] = False,
    clock: Annotated[
        str | None,
        typer.Option(
            "--clock",
            envvar="OMSFLOW_CLOCK",
            metavar="ISO-8601",
            help="Run as if it were this instant (with its UTC offset): for rehearsals, "
            "training and tests.",
        ),
    ] = None,
    log_level: Annotated[
        str | None,
        typer.Option(
            "--log-level",
            envvar="OMSFLOW_LOG_LEVEL",
            metavar="LEVEL",
            help="Engine log lines on stderr from this level: DEBUG, INFO, WARNING, ERROR "
            "(default WARNING; INFO for the worker).",
        ),
    ] = None,
) -> None:
    """omsflow: open, step and audit OMS policy application cases."""
    level = (log_level or "WARNING").upper()
    if level not in logs.LEVELS:
        raise typer.BadParameter(
            f"{log_level!r} is not one of {', '.join(logs.LEVELS)}", param_hint="'--log-level'"
        )
    ctx.obj = Settings(
        db=check_db(db_url),
        actor=check_actor(actor),
        json=json_output,
        clock=manual_clock(clock),
        log_level=level,
        log_level_given=log_level is not None,
    )
    logs.configure(level=level)


app.add_typer(db.app, name="db")
app.add_typer(definitions.app, name="definitions")
app.add_typer(cases.app, name="case")
app.add_typer(timers.app, name="timers")
app.command("worker")(timers.worker)
app.add_typer(audit.app, name="audit")
app.add_typer(events.app, name="events")
app.command("demo")(demo_command.demo)


def main() -> None:
    """The ``omsflow`` console script."""
    app()
