"""Values as the bare driver takes and gives them, in the forms the column types of schema.py use.

The step's hot statements run on the DBAPI cursor itself (see ``repository.Tx._run``), so the
conversions SQLAlchemy's types would do are done here, once per dialect, and must match them
exactly: a row written through either path reads the same through the other. SQLite keeps
datetimes as naive UTC text in SQLAlchemy's format, booleans as 0/1 and JSON as ``json.dumps``
text; PostgreSQL takes aware datetimes and ``Jsonb`` and gives back parsed JSON.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from psycopg.types.json import Jsonb

_NAMED = re.compile(r"(?<![:\w]):(\w+)")


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value.isoformat()} given to the store")
    return value.astimezone(UTC)


def _sqlite_time(value: datetime | None) -> str | None:
    # SQLAlchemy's SQLite DATETIME storage format: fixed width, so text order is time order.
    if value is None:
        return None
    return _aware(value).replace(tzinfo=None).isoformat(" ", "microseconds")


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
    text = json.dumps(value)
    return text, json.loads(text)


def _pg_json_stored(value: Any) -> tuple[Jsonb, Any]:
    stored = json.loads(json.dumps(value))
    return Jsonb(stored), stored


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
    json=json.dumps,
    json_out=json.loads,
    json_stored=_sqlite_json_stored,
    bool_out=bool,
)

POSTGRESQL = Codec(
    sql=_pg_sql,
    time=_pg_time,
    time_out=_pg_time_out,
    json=Jsonb,
    json_out=lambda value: value,
    json_stored=_pg_json_stored,
    bool_out=bool,
)


def codec_for(dialect: str) -> Codec:
    return POSTGRESQL if dialect == "postgresql" else SQLITE
