"""What every command shares: the global options, turned into an Engine, an actor and a clock.

Parsing the options is the CLI's job; deciding anything about cases is the engine's.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import typer
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from engine.api import Engine
from engine.clock import Clock
from engine.errors import FieldError, InvalidInput
from engine.machines.compiled import Actor
from engine.testing import ManualClock


@dataclass(frozen=True)
class Settings:
    """The global options of one ``omsflow`` invocation."""

    db: str
    actor: str | None
    json: bool
    clock: Clock | None
    log_level: str
    log_level_given: bool = False

    def engine(self, *, migrate: bool = True) -> Engine:
        """An Engine on ``--db`` with the ``--clock`` (the system clock when not given)."""
        return Engine(self.db, clock=self.clock, migrate=migrate)

    def require_actor(self, what: str) -> str:
        """The ``--as`` actor; a usage error when the command needs one and none was given."""
        if self.actor is None:
            raise typer.BadParameter(
                f"{what} needs an actor: give --as ROLE:NAME (e.g. --as operator:ivanova) "
                "or set OMSFLOW_ACTOR",
                param_hint="'--as'",
            )
        return self.actor

    @property
    def progress(self) -> bool:
        """Progress bars only for a person at a terminal, never in machine-readable output."""
        return not self.json and sys.stdout.isatty()


def settings(ctx: typer.Context) -> Settings:
    found = ctx.find_object(Settings)
    if found is None:  # pragma: no cover - the root callback always sets it
        raise RuntimeError("omsflow settings are missing from the command context")
    return found


def check_db(url: str) -> str:
    try:
        make_url(url)
    except ArgumentError as exc:
        raise typer.BadParameter(
            f"{url!r} is not a database URL: {exc}", param_hint="'--db'"
        ) from None
    return url


def check_actor(text: str | None) -> str | None:
    if text is None:
        return None
    try:
        return str(Actor.parse(text))
    except InvalidInput as exc:
        problem = exc.errors[0]
        raise typer.BadParameter(
            f"{problem.message}; expected {problem.expected}", param_hint="'--as'"
        ) from None


def parse_instant(value: str, option: str) -> datetime:
    """An ISO-8601 instant with its UTC offset; a naive or malformed value is a usage error."""
    try:
        instant = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not an ISO-8601 instant (e.g. 2026-12-24T10:00:00+03:00)",
            param_hint=f"'{option}'",
        ) from None
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise typer.BadParameter(
            f"{value!r} has no UTC offset, so its moment would be a guess; "
            "add one, e.g. 2026-12-24T10:00:00+03:00 or ...Z",
            param_hint=f"'{option}'",
        )
    return instant


def manual_clock(value: str | None) -> ManualClock | None:
    return None if value is None else ManualClock(parse_instant(value, "--clock"))


_JSON_KINDS: dict[type, str] = {
    list: "array",
    str: "string",
    int: "number",
    float: "number",
    bool: "boolean",
    type(None): "null",
}


def read_data(source: str) -> Mapping[str, Any]:
    """The JSON object of ``--data FILE`` or ``--data -`` (standard input).

    A missing file is a usage error; text that is not a JSON object is invalid input on the
    field ``data``, like any other bad input.
    """
    if source == "-":
        raw = sys.stdin.buffer.read()
    else:
        path = Path(source)
        if not path.is_file():
            raise typer.BadParameter(f"no such file: {source}", param_hint="'--data'")
        raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            [
                FieldError(
                    "data",
                    "utf8",
                    f"not UTF-8 text: {exc.reason} at byte {exc.start}",
                    "a JSON object in UTF-8",
                )
            ]
        ) from None
    try:
        value = json.loads(text)
    except RecursionError:
        raise InvalidInput(
            [FieldError("data", "json_depth", "the JSON is nested too deeply", "a JSON object")]
        ) from None
    except json.JSONDecodeError as exc:
        raise InvalidInput(
            [
                FieldError(
                    "data",
                    "json_syntax",
                    f"not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}",
                    "a JSON object",
                )
            ]
        ) from None
    if not isinstance(value, dict):
        raise InvalidInput(
            [
                FieldError(
                    "data",
                    "json_object",
                    f"a JSON {_JSON_KINDS.get(type(value), 'value')} is not an object",
                    "a JSON object",
                )
            ]
        )
    return value
