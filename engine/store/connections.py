"""Connections kept between steps, so that a busy engine does not check one out per step.

A checkout from SQLAlchemy's pool costs about 9 us on SQLite and, with ``pool_pre_ping``, a
round trip on PostgreSQL (about 100 us here, an eighth of a step); giving it back rolls it
back. A step instead takes a connection that the last step left, if that was less than
``REUSE_SECONDS`` ago, and leaves it behind with no transaction open. A connection idle for
longer goes back to the pool and the step checks out a fresh one, pinged as before, so a
server restart meets a checked connection after a quiet spell; a connection that failed is
never kept, and one that died drops the others kept with it (they share its fate).

A kept PostgreSQL connection is looked at before reuse, without a round trip: an idle
connection's socket has nothing to read unless the server closed it or said why it is about
to (a restart, ``pg_terminate_backend``, an idle timeout). Such a connection is dropped and
the step checks out a pinged one, so a server that went away between two steps costs no
failed step.

A process forked from one that holds kept connections must never use them: parent and child
would talk on one socket (PostgreSQL) or one SQLite handle, whose locks the child does not
hold. The child drops the kept connections without a word on the wire (closing one would end
the parent's session) and drops the pool's the same way (``Engine.dispose(close=False)``,
as SQLAlchemy advises for a fork); its steps check out connections of their own.
"""

from __future__ import annotations

import select
import threading
import time
from typing import Any

from sqlalchemy.engine import Connection, Engine

from engine.store.forks import renew_after_fork

REUSE_SECONDS = 1.0


class StepConnections:
    """A stack of idle connections of one SQLAlchemy engine, newest on top."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._idle: list[tuple[Connection, float]] = []
        self._lock = threading.Lock()
        self._closed = False
        # SQLite has no server to go away
        self._has_socket = engine.dialect.name == "postgresql"
        # a forked child's inherited driver connections: held, never used, never closed
        self._inherited: list[Any] = []
        renew_after_fork(self)

    def _forked(self) -> None:
        self._lock = threading.Lock()
        for conn, _since in self._idle:
            self._inherited.append(_disown(conn))
        self._idle = []
        self.engine.dispose(close=False)

    def take(self) -> Connection:
        now = time.monotonic()
        stale: list[Connection] = []
        conn: Connection | None = None
        with self._lock:
            while self._idle:
                kept, since = self._idle.pop()
                if now - since <= REUSE_SECONDS:
                    conn = kept
                    break
                stale.append(kept)
        if conn is not None and self._has_socket and not _quiet(conn):
            conn.invalidate()
            stale.append(conn)
            conn = None
        for old in stale:
            old.close()
        return conn if conn is not None else self.engine.connect()

    def give_back(self, conn: Connection, ok: bool) -> None:
        """Keep ``conn`` for the next step when the step ended well; otherwise close it."""
        if ok and not conn.invalidated and not conn.closed and not conn.in_transaction():
            try:
                _end_driver_transaction(conn)
            except Exception:
                conn.invalidate()
            else:
                with self._lock:
                    if not self._closed:
                        self._idle.append((conn, time.monotonic()))
                        return
        if self._closed and not conn.closed:
            # the store was disposed meanwhile: its pool would not close this one
            conn.invalidate()
            conn.close()
            return
        died = conn.invalidated
        conn.close()
        if died:
            self.close()

    def close(self, *, final: bool = False) -> None:
        """Close the kept connections; ``final`` (the store is disposed): keep none from now,
        not even one that a step in another thread gives back later."""
        with self._lock:
            self._closed = self._closed or final
            idle, self._idle = self._idle, []
        for conn, _since in idle:
            conn.close()


def _quiet(conn: Connection) -> bool:
    """Whether an idle connection's socket has nothing to read (a poll, no round trip)."""
    try:
        fileno = conn.connection.dbapi_connection.fileno()  # type: ignore[union-attr]
        readable, _, _ = select.select([fileno], [], [], 0)
    except Exception:  # closed already: the driver refuses to give its socket
        return False
    return not readable


def _end_driver_transaction(conn: Connection) -> None:
    # A step's reads run on the driver's cursor outside SQLAlchemy's transaction; psycopg
    # opens one for them implicitly. A step that ended before writing (a replay, a refusal)
    # leaves it open: roll it back as the pool would have (a no-op for a driver with none).
    conn.connection.dbapi_connection.rollback()  # type: ignore[union-attr]


def _disown(conn: Connection) -> Any:
    """Part ``conn`` from its driver connection without touching it (SQLAlchemy's recipe for
    a connection inherited across a fork); returns the driver connection, to be held."""
    fairy: Any = conn.connection
    dbapi = fairy.dbapi_connection
    record = getattr(fairy, "_connection_record", None)
    if record is not None:
        record.dbapi_connection = None
    fairy.dbapi_connection = None
    return dbapi
