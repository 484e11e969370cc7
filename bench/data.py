"""The databases the benchmark runs on: filler built once by bulk INSERT/COPY, then cloned.

Filler rows are realistic in shape and size (a restore application's JSON, two log rows and
two deadlines per case, 5 % of cases overdue, 60 % pending with both decision deadlines armed
far in the future), but their hash chains are not real: nothing in a step verifies them.
SQLite bases are cached as files under bench/out/cache/, PostgreSQL bases as databases
``omsflow_bench_base_<size>``; each run works on two fresh clones, one for the engine and one
for the bare-driver replay, so both start from the same bytes.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa

from engine.store.repository import (
    LOG_FIELDS,
    CaseRecord,
    DeadlineRecord,
    Store,
    normalize_url,
)
from engine.testing import person

OUT = Path(__file__).resolve().parent / "out"
FILLER_AT = datetime(2026, 1, 12, 7, 0, tzinfo=UTC)
FAR_DUE = datetime(2031, 6, 2, 7, 0, tzinfo=UTC)
HEX = "0123456789abcdef"

# the columns as the engine writes them (the filler must look like the engine's own rows)
CASE_COLS = list(CaseRecord.__dataclass_fields__)
LOG_COLS = list(LOG_FIELDS)
DEADLINE_COLS = [f for f in DeadlineRecord.__dataclass_fields__ if f != "id"]


def case_id(prefix: int, i: int) -> str:
    """Deterministic ids: filler, due-timer and probe cases never collide with uuid4 ones."""
    return f"{prefix:08x}-0000-4000-8000-{i:012x}"


def _fake_hash(i: int, seq: int) -> str:
    return (f"{i:016x}{seq:08x}" * 3)[:64]


def _kind(i: int) -> str:
    # 5 % overdue (in review, flagged), 60 % pending with armed deadlines, 35 % issued
    slot = i % 20
    return "overdue" if slot == 0 else ("pending" if slot <= 12 else "issued")


def rows(
    prefix: int, start: int, count: int, *, due: datetime | None = None
) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]]:
    """(case, log rows, deadline rows) per case; ``due`` makes pending cases due then."""
    template = person("restore", 0)
    for i in range(start, start + count):
        data = dict(template)
        data["applicant"] = {**template["applicant"], "snils": f"{i:011d}"}
        created = FILLER_AT + timedelta(seconds=30 * i % (300 * 86400))
        cid = case_id(prefix, i)
        kind = _kind(i) if due is None else "pending"
        state = {"pending": "pending", "issued": "issued", "overdue": "in_review"}[kind]
        flags = ["overdue"] if kind == "overdue" else []
        case = {
            "id": cid,
            "type": "restore",
            "definition_version": 1,
            "state": state,
            "version": 2,
            "is_open": kind != "issued",
            "overdue": kind == "overdue",
            "flags": flags,
            "data": data,
            "zone": "Europe/Moscow",
            "subject_key": f"bench:{prefix:x}:{i}",
            "last_hash": _fake_hash(i, 2),
            "created_at": created,
            "updated_at": created + timedelta(hours=1),
        }
        log = [
            {
                "case_id": cid,
                "seq": seq,
                "trigger": trig,
                "from_state": frm,
                "to_state": to,
                "actor": actor,
                "reason": None,
                "comment": None,
                "changes": {},
                "meta": {"type": "restore", "definition_version": 1} if seq == 1 else {},
                "correlation_id": None,
                "at": created + timedelta(minutes=seq),
                "recorded_at": created + timedelta(minutes=seq),
                "prev_hash": "0" * 64 if seq == 1 else _fake_hash(i, seq - 1),
                "hash": _fake_hash(i, seq),
            }
            for seq, trig, frm, to, actor in (
                (1, "open", None, "pending", "portal:web"),
                (2, "take", "pending", state, "operator:bench"),
            )
        ]
        status = "armed" if kind == "pending" else ("fired" if kind == "overdue" else "cancelled")
        deadlines = [
            {
                "case_id": cid,
                "name": name,
                "trigger": trig,
                "amount": amount,
                "unit": "working_days",
                "zone": "Europe/Moscow",
                "status": status,
                "event_at": created,
                "due_at": (due if due is not None and n == 0 else FAR_DUE + timedelta(seconds=i)),
                "remaining_seconds": None,
                "resumed_at": None,
                "armed_seq": 1,
                "closed_seq": None if status == "armed" else 2,
                "closed_at": None if status == "armed" else created + timedelta(days=1),
                "calendar": "bench",
            }
            for n, (name, trig, amount) in enumerate(
                (("decision_target", "target_missed", 3), ("decision_limit", "flag_overdue", 5))
            )
        ]
        yield case, log, deadlines


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, datetime):
        # SQLAlchemy's SQLite DATETIME text form, naive UTC (engine.store.schema.UTCDateTime)
        return value.astimezone(UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, dict | list):
        return json.dumps(value)
    if isinstance(value, bool):
        return int(value)
    return value


def _pg_value(value: Any) -> Any:
    # COPY's text format: PostgreSQL parses JSON text into jsonb itself
    if isinstance(value, dict | list):
        return json.dumps(value)
    return value


def _insert_sql(table: str, cols: list[str], mark: str) -> str:
    quoted = ", ".join(f'"{c}"' for c in cols)
    return f"INSERT INTO {table} ({quoted}) VALUES ({', '.join([mark] * len(cols))})"


def fill_sqlite(
    path: str, prefix: int, start: int, count: int, *, due: datetime | None = None
) -> None:
    """Bulk INSERT in big transactions (synchronous OFF while building: it is a cache)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")
    sqls = [
        _insert_sql(t, c, "?")
        for t, c in (
            ("cases", CASE_COLS),
            ("transition_log", LOG_COLS),
            ("deadlines", DEADLINE_COLS),
        )
    ]
    batch: tuple[list[Any], list[Any], list[Any]] = ([], [], [])

    def flush() -> None:
        conn.execute("BEGIN")
        for sql, values in zip(sqls, batch, strict=True):
            conn.executemany(sql, values)
            values.clear()
        conn.execute("COMMIT")

    for case, log, deadlines in rows(prefix, start, count, due=due):
        batch[0].append(tuple(_sqlite_value(case[c]) for c in CASE_COLS))
        batch[1].extend(tuple(_sqlite_value(r[c]) for c in LOG_COLS) for r in log)
        batch[2].extend(tuple(_sqlite_value(r[c]) for c in DEADLINE_COLS) for r in deadlines)
        if len(batch[0]) >= 20_000:
            flush()
    flush()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def fill_pg(
    conninfo: str, prefix: int, start: int, count: int, *, due: datetime | None = None
) -> None:
    """COPY the rows in (the fastest bulk path PostgreSQL has).

    The foreign keys' per-row triggers are off while copying (``session_replication_role``,
    a superuser's setting): the rows are generated consistent, and checking 2 million
    references one by one is what made a 1M build take hours.
    """
    with psycopg.connect(conninfo) as conn, conn.cursor() as cur:
        cur.execute("SET session_replication_role = replica")
        for table, cols, pick in (
            ("cases", CASE_COLS, lambda r: [r[0]]),
            ("transition_log", LOG_COLS, lambda r: r[1]),
            ("deadlines", DEADLINE_COLS, lambda r: r[2]),
        ):
            quoted = ", ".join(f'"{c}"' for c in cols)
            with cur.copy(f"COPY {table} ({quoted}) FROM STDIN") as copy:
                for triple in rows(prefix, start, count, due=due):
                    for row in pick(triple):
                        copy.write_row([_pg_value(row[c]) for c in cols])
        conn.commit()
        cur.execute("ANALYZE")
        conn.commit()


@dataclass
class Pair:
    """The two identical databases of one run, and how to reach them."""

    backend: str
    engine_url: str
    limit_url: str
    drop: list[str]


def sqlite_path(url: str) -> str:
    return sa.engine.make_url(url).database or ""


def conninfo(url: str) -> str:
    """A libpq URI for psycopg from a SQLAlchemy URL (keeps ``options=-csearch_path=...``)."""
    return (
        sa.engine.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    )


def sqlite_pair(size: int, *, smoke: bool, root: Path = OUT) -> Pair:
    cache = root / "cache" / f"sqlite-{size}.db"
    cache.parent.mkdir(parents=True, exist_ok=True)
    if smoke or not cache.exists():
        tmp = cache.with_suffix(".building")
        for p in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
            p.unlink(missing_ok=True)
        _upgrade(f"sqlite:///{tmp}")
        fill_sqlite(str(tmp), 0xF111, 0, size)
        tmp.rename(cache)
    _upgrade(f"sqlite:///{cache}")
    work = root / "work"
    work.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in ("engine", "limit"):
        target = work / f"sqlite-{name}.db"
        for p in (target, Path(f"{target}-wal"), Path(f"{target}-shm")):
            p.unlink(missing_ok=True)
        shutil.copyfile(cache, target)
        paths.append(f"sqlite:///{target}")
    return Pair("sqlite", paths[0], paths[1], [])


def _upgrade(url: str) -> None:
    """A base cached by an older version is migrated to the engine's schema (at the head: one
    SELECT), as a deployment's database would be."""
    store = Store(url)
    store.upgrade()
    store.dispose()


def _search_path(url: str) -> str | None:
    options = sa.engine.make_url(url).query.get("options")
    text = options if isinstance(options, str) else ""
    return text.split("search_path=", 1)[1] if "search_path=" in text else None


def pg_pair(server_url: str, size: int, *, smoke: bool) -> Pair:
    """Database mode: a cached base database cloned by TEMPLATE. Schema mode (the URL pins a
    ``search_path``, as the test fixture does): two fresh sibling schemas, filled each time."""
    schema = _search_path(server_url)
    url = sa.engine.make_url(normalize_url(server_url))
    if schema is not None:
        names = [f"{schema}_e", f"{schema}_l"]
        urls = []
        with psycopg.connect(conninfo(server_url), autocommit=True) as conn:
            for name in names:
                conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
                conn.execute(f"CREATE SCHEMA {name}")
                u = url.update_query_dict({"options": f"-csearch_path={name}"})
                urls.append(u.render_as_string(hide_password=False))
        for text in urls:
            _upgrade(text)
            fill_pg(conninfo(text), 0xF111, 0, size)
        return Pair("postgresql", urls[0], urls[1], [f"SCHEMA {n}" for n in names])
    base = f"omsflow_bench_base_{size}"
    admin = conninfo(url.render_as_string(hide_password=False))
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (base,)).fetchone()
        if smoke or not exists:
            conn.execute(f"DROP DATABASE IF EXISTS {base}_building")
            conn.execute(f"CREATE DATABASE {base}_building")
            building = url.set(database=f"{base}_building").render_as_string(hide_password=False)
            _upgrade(building)
            fill_pg(conninfo(building), 0xF111, 0, size)
            conn.execute(f"DROP DATABASE IF EXISTS {base}")
            conn.execute(f"ALTER DATABASE {base}_building RENAME TO {base}")
        _upgrade(url.set(database=base).render_as_string(hide_password=False))
        urls = []
        for name in ("omsflow_bench_engine", "omsflow_bench_limit"):
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {name} TEMPLATE {base}")
            urls.append(url.set(database=name).render_as_string(hide_password=False))
    return Pair("postgresql", urls[0], urls[1], [])


def settle(backend: str, url: str) -> None:
    """Write out what preparing a database left dirty, before anything on it is timed.

    Copying a 1M-case base leaves gigabytes of dirty pages: written back by the kernel while
    the engine's first phases ran (the limit's replay comes later, on a settled disk), they
    took the disk from the engine's commits alone. PostgreSQL's clone and bulk fill are its
    own dirty buffers: a CHECKPOINT writes them now instead of during a phase. Both reach
    every database of the machine or server, not only ``url``'s.
    """
    if backend == "postgresql":
        with psycopg.connect(conninfo(url), autocommit=True) as conn:
            conn.execute("CHECKPOINT")
    os.sync()


def drop_pair(pair: Pair) -> None:
    if pair.backend != "postgresql" or not pair.drop:
        return
    with psycopg.connect(conninfo(pair.engine_url), autocommit=True) as conn:
        for what in pair.drop:
            conn.execute(f"DROP {what} CASCADE")
