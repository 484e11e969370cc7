"""The limit: record the exact SQL an engine phase issues, replay it through the bare driver.

A ``Recorder`` listens on the engine's SQLAlchemy ``Engine`` (``before_cursor_execute``,
``commit``, ``rollback``) and keeps every statement with the parameters the driver received,
already bound (JSON as text, SQLite datetimes as text, PostgreSQL datetimes as objects), and
the transaction boundaries, and which statements the engine sent in one PostgreSQL pipeline.
``replay_*`` runs the same events through ``sqlite3`` or ``psycopg`` on an identical copy of
the database, at the same durability settings, pipelined where the engine's were: what is
left is the database's own cost, with no engine on top.
"""

from __future__ import annotations

import pickle
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any

import sqlalchemy as sa

from engine.store.checkpoints import Checkpointer
from engine.store.turns import WriterTurns

# ("x", statement, parameters, executemany, pipelined) | ("c",) | ("r",)
Event = tuple[Any, ...]


@dataclass
class Recorder:
    """Collects the events of one SQLAlchemy engine while ``on`` is set.

    Each event is kept pickled until ``take``: thousands of live parameter dicts and tuples
    made the garbage collector's passes over the engine's process longer, which cost the
    timed engine 60-80 µs a step (a fifth of it) that the engine never pays when nothing
    listens. Bytes are not tracked by the collector; pickling costs ~1.5 µs a statement.
    """

    engine: sa.engine.Engine
    on: bool = False
    events: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        sa.event.listen(self.engine, "before_cursor_execute", self._execute)
        sa.event.listen(self.engine, "commit", self._commit)
        sa.event.listen(self.engine, "rollback", self._rollback)

    def _execute(
        self,
        _conn: Any,
        cursor: Any,
        statement: str,
        parameters: Any,
        _context: Any,
        executemany: bool,
    ) -> None:
        if self.on:
            event = ("x", statement, parameters, executemany, _pipelined(cursor))
            self.events.append(_dumps(event))

    def _commit(self, _conn: Any) -> None:
        if self.on:
            self.events.append(_COMMIT)

    def _rollback(self, _conn: Any) -> None:
        if self.on:
            self.events.append(_ROLLBACK)

    def take(self) -> list[Event]:
        """The events since the last take."""
        out, self.events = self.events, []
        return [pickle.loads(e) for e in out]  # noqa: S301 (its own bytes, never a file's)


def _pipelined(cursor: Any) -> bool:
    """Whether a psycopg cursor's connection is in pipeline mode (never so for sqlite3)."""
    pgconn = getattr(cursor.connection, "pgconn", None)
    return pgconn is not None and pgconn.pipeline_status != 0


def _dumps(event: Event) -> bytes:
    return pickle.dumps(event, protocol=pickle.HIGHEST_PROTOCOL)


_COMMIT, _ROLLBACK = _dumps(("c",)), _dumps(("r",))


def statements(events: Sequence[Event]) -> int:
    return sum(1 for e in events if e[0] == "x")


def _many(event: Event) -> bool:
    # SQLAlchemy reports executemany=True for the row-by-row INSERT ... RETURNING it runs to
    # keep parameter order (insertmanyvalues); those reach the driver as single executes.
    params = event[2]
    return (
        bool(event[3]) and isinstance(params, list) and isinstance(params[0], tuple | list | dict)
    )


def _drain(cursor: Any) -> None:
    # A SELECT's rows are part of its cost: fetch them as the engine does.
    if cursor.description is not None:
        cursor.fetchall()


class SqliteLimit:
    """A bare connection to the limit database, with exactly the engine's pragmas (omsflow
    ``Store._sqlite_connect``), and the database's checkpoints, made as the engine makes its
    own: by a thread that takes the writers' turn for its second pass (a turn across
    processes when ``processes``)."""

    def __init__(self, path: str, synchronous: str, *, processes: bool = False) -> None:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous}")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute("PRAGMA wal_autocheckpoint=0")
        self.conn = conn
        turns = WriterTurns(f"{path}-writers" if processes else None)
        self.checkpoints = Checkpointer(path, synchronous, turns)

    def replay(self, events: Sequence[Event]) -> float:
        """Replay through ``sqlite3``; returns the seconds it took.

        A write transaction holds the writers' turn from its ``BEGIN IMMEDIATE`` to its end,
        and its commit wakes the checkpoints, as the engine's do; the time includes finishing
        the checkpoints the replay left to do (``workloads._drain`` does the same for the
        engine).
        """
        conn, checkpoints = self.conn, self.checkpoints
        cursor = conn.cursor()
        execute, executemany = cursor.execute, cursor.executemany
        turns = checkpoints.turns
        held = False
        start = time.perf_counter()
        for event in events:
            kind = event[0]
            if kind == "x":
                if event[1] == "BEGIN IMMEDIATE":
                    turns.acquire()
                    held = True
                if _many(event):
                    executemany(event[1], event[2])
                else:
                    execute(event[1], event[2])
                    _drain(cursor)
            else:
                if kind == "c":
                    checkpoints.committed()
                    conn.commit()
                else:
                    conn.rollback()
                if held:
                    turns.release()
                    held = False
        if held:
            turns.release()
        # what the checkpoints have left, finished in the replay's own time (as the engine's)
        checkpoints.checkpoint()
        return time.perf_counter() - start

    def close(self) -> None:
        self.checkpoints.close()
        self.conn.close()


def replay_psycopg(conn: Any, events: Sequence[Event]) -> float:
    """Replay through ``psycopg`` (a non-autocommit connection, as SQLAlchemy uses it).

    Statements the engine sent in one pipeline go out in one here, each on a cursor of its
    own as the engine's (consecutive pipelined statements are taken for one pipeline: the
    engine never sends two with nothing between them).
    """
    cursor = conn.cursor()
    start = time.perf_counter()
    for piped, run in groupby(events, key=lambda e: e[0] == "x" and e[4]):
        if piped:
            sent = [(conn.cursor(), e) for e in run]
            with conn.pipeline():
                for each, e in sent:
                    each.execute(e[1], e[2])
            for each, _e in sent:
                _drain(each)
            continue
        for event in run:
            kind = event[0]
            if kind == "x":
                if _many(event):
                    cursor.executemany(event[1], event[2])
                else:
                    cursor.execute(event[1], event[2])
                    _drain(cursor)
            elif kind == "c":
                conn.commit()
            else:
                conn.rollback()
    return time.perf_counter() - start


Replayer = Callable[[Sequence[Event]], float]
