"""Values as the bare driver takes and gives them, in the forms the column types of schema.py use.

The step's hot statements run on the DBAPI cursor itself (see ``repository.Tx._run``), so the
conversions SQLAlchemy's types would do are done here, once per dialect, and must match them
exactly: a row written through either path reads the same through the other. SQLite keeps
datetimes as naive UTC text in SQLAlchemy's format, booleans as 0/1 and JSON as text;
PostgreSQL takes aware datetimes and ``Jsonb`` and gives back parsed JSON. JSON text is made
and read by orjson (``dumps``/``loads``, which SQLAlchemy's JSON columns use too): several
times faster than the json module on an application's kilobyte of Cyrillic text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache, lru_cache
from typing import Any

import orjson

_NAMED = re.compile(r"(?<![:\w]):(\w+)")
_ORJSON_OPTIONS = orjson.OPT_NON_STR_KEYS


def dumps(value: Any) -> str:
    """JSON text of ``value``; what orjson refuses (an integer past 64 bits) json.dumps writes."""
    try:
        return orjson.dumps(value, option=_ORJSON_OPTIONS).decode()
    except TypeError:
        return json.dumps(value)


def loads(text: str | bytes) -> Any:
    """The value of JSON text; what orjson refuses (NaN, which json.dumps once wrote) json reads."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value.isoformat()} given to the store")
    return value.astimezone(UTC)


# A step writes the same few instants (its time, its deadlines' due times) several times over.
@lru_cache(maxsize=1024)
def _sqlite_time(value: datetime | None) -> str | None:
    # SQLAlchemy's SQLite DATETIME storage format: fixed width, so text order is time order.
    if value is None:
        return None
    return _aware(value).replace(tzinfo=None).isoformat(" ", "microseconds")


# Due instants repeat (every deadline armed on one day ends at the same midnight): parse once.
@lru_cache(maxsize=4096)
def _sqlite_time_out(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value).replace(tzinfo=UTC)


def _pg_time(value: datetime | None) -> datetime | None:
    return None if value is None else _aware(value)


def _pg_time_out(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(UTC)


# ``json_stored`` gives the parameter for a JSON column and the value as it reads back after
# the round trip (tuples become lists, keys become strings), so that a remembered row equals
# the row a SELECT would return; SQLite reuses the text it writes to get it.


def _sqlite_json_stored(value: Any) -> tuple[str, Any]:
    text = dumps(value)
    return text, loads(text)


@dataclass(frozen=True)
class Codec:
    """One dialect's conversions and its placeholder style."""

    sql: Callable[[str], str]  # ``:name`` placeholders to the driver's own
    time: Callable[[datetime | None], Any]
    time_out: Callable[[Any], datetime | None]
    json: Callable[[Any], Any]
    json_out: Callable[[Any], Any]
    json_stored: Callable[[Any], tuple[Any, Any]]
    bool_out: Callable[[Any], bool]


@lru_cache(maxsize=512)
def _pg_sql(text: str) -> str:
    return _NAMED.sub(r"%(\1)s", text)


SQLITE = Codec(
    sql=lambda text: text,
    time=_sqlite_time,
    time_out=_sqlite_time_out,
    json=dumps,
    json_out=loads,
    json_stored=_sqlite_json_stored,
    bool_out=bool,
)


@cache
def _postgresql() -> Codec:
    # psycopg is imported by the first PostgreSQL store, not by every import of the engine:
    # a SQLite worker or CLI command starts ~0.1 s sooner without it.
    from psycopg.types.json import Jsonb  # noqa: PLC0415

    def json(value: Any) -> Jsonb:
        return Jsonb(value, dumps)

    def json_stored(value: Any) -> tuple[Jsonb, Any]:
        stored = loads(dumps(value))
        return json(stored), stored

    return Codec(
        sql=_pg_sql,
        time=_pg_time,
        time_out=_pg_time_out,
        json=json,
        json_out=lambda value: value,
        json_stored=json_stored,
        bool_out=bool,
    )


def codec_for(dialect: str) -> Codec:
    return _postgresql() if dialect == "postgresql" else SQLITE
