"""SQLite's WAL checkpoints, run by a thread of their own instead of inside a step's commit.

By default SQLite checkpoints inside the commit that takes the WAL past 1,000 pages: that
commit copies the WAL's pages into the database file and flushes it, ~4.5 ms here, once every
~50 steps; at ``synchronous=NORMAL`` that is a fifth of the average step, and each such step is
a latency spike. The engine's connections turn it off (``wal_autocheckpoint=0``) and a thread
checkpoints instead: woken by the commits, it runs a PASSIVE checkpoint about every
``interval`` while writes come in, on a connection of its own, while the writers go on (SQLite
copies and flushes with the GIL released).

A passive checkpoint never waits, so under a steady stream of writes it always trails the last
few commits, and SQLite restarts the WAL from its start only when a writer finds all of it
copied: the WAL would grow without end. Once it holds ``restart_frames`` frames, the thread
takes the writers' turn for a second pass, which copies the few frames written during the
first, and the next writer restarts the WAL. Writers wait for that pass (one flush of the
database file) once every few checkpoints instead of paying a whole checkpoint at each.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import weakref
from typing import Any

import structlog

from engine.store.forks import renew_after_fork
from engine.store.turns import WriterTurns

log = structlog.get_logger("omsflow.store")

INTERVAL = 0.02  # ~50 steps' worth of WAL at NORMAL: the 1,000 pages SQLite would wait for
RESTART_FRAMES = 4000  # 16 MB of 4 KiB pages


class Checkpointer:
    """The checkpoints of one SQLite database file, for the writers of this process."""

    def __init__(
        self,
        path: str,
        synchronous: str,
        turns: WriterTurns,
        *,
        interval: float = INTERVAL,
        restart_frames: int = RESTART_FRAMES,
    ) -> None:
        self.path = path
        # the checkpointing connection's own setting decides whether a checkpoint flushes
        self.synchronous = synchronous
        self.turns = turns
        self.interval = interval
        self.restart_frames = restart_frames
        self.checkpoints = 0  # made by this process: passes that copied the WAL
        self.restarts = 0  # second passes under the writers' turn
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._start_lock = threading.Lock()
        # held while the thread is inside SQLite: a fork waits for it (see _before_fork)
        self._busy = threading.Lock()
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        # a forked child's inherited connection: held, never used, never closed
        self._inherited: list[sqlite3.Connection] = []
        _LIVE.add(self)
        renew_after_fork(self)

    def committed(self) -> None:
        """A write transaction committed (or is about to): a checkpoint follows soon."""
        if self._wake.is_set():
            return
        self._wake.set()
        if self._thread is None:
            self._start()

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is not None or self._closing.is_set():
                return
            thread = threading.Thread(target=self._run, name="omsflow-checkpoints", daemon=True)
            self._thread = thread
            thread.start()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            # the commits of one interval share a checkpoint
            if self._closing.wait(self.interval):
                return
            self._wake.clear()
            # ``close`` sets closing before it wakes: a wake-up cleared here was its own
            if self._closing.is_set():
                return
            try:
                self.checkpoint()
            except sqlite3.Error as exc:
                # the next commit's wake-up tries again; SQLite's data is never at stake
                log.warning("checkpoint_failed", path=self.path, error=str(exc))

    def checkpoint(self) -> tuple[int, int]:
        """One checkpoint (two passes when the WAL is long); the WAL's frames and those copied."""
        with self._busy:
            log_frames, copied = _passive(self._connection())
        if copied >= 0:
            self.checkpoints += 1
        if log_frames >= self.restart_frames:
            # the turn first: the thread never waits for it while a fork waits for the thread
            with self.turns.turn(), self._busy:
                log_frames, copied = _passive(self._connection())
            self.restarts += 1
        return log_frames, copied

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            self._conn = conn
        return self._conn

    def close(self) -> None:
        """Stop the thread (after the checkpoint it is making, if any) and its connection."""
        self._closing.set()
        self._wake.set()
        with self._start_lock:
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _forked(self) -> None:
        # The child has no thread, whatever its parent ran, and must not touch the parent's
        # SQLite handle: closing it could checkpoint and delete the parent's WAL.
        if self._conn is not None:
            self._inherited.append(self._conn)
        self._conn = None
        self._thread = None
        # fresh synchronization objects: the parent's thread may have been inside any of them
        closed = self._closing.is_set()
        self._closing = threading.Event()
        if closed:
            self._closing.set()
        self._wake = threading.Event()
        self._start_lock = threading.Lock()
        self._busy = threading.Lock()


def _passive(conn: sqlite3.Connection) -> tuple[int, int]:
    # fetchall: a statement stepped only once keeps its read snapshot, which would stop the
    # next writer from restarting the WAL
    row: Any = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()[0]
    return int(row[1]), int(row[2])


_LIVE: weakref.WeakSet[Checkpointer] = weakref.WeakSet()
_PAUSED: list[Checkpointer] = []


def _before_fork() -> None:
    # A child forked while the thread is inside SQLite would inherit SQLite's process-wide
    # mutexes (its allocator's, the file's lock list) held by a thread it does not have: its
    # first SQLite call would wait forever. The fork waits for the checkpoint to end.
    for checkpointer in list(_LIVE):
        checkpointer._busy.acquire()
        _PAUSED.append(checkpointer)


def _after_fork_in_parent() -> None:
    while _PAUSED:
        _PAUSED.pop()._busy.release()


def _after_fork_in_child() -> None:
    # the child's checkpointers renew their locks themselves (``_forked``)
    _PAUSED.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork,
        after_in_parent=_after_fork_in_parent,
        after_in_child=_after_fork_in_child,
    )
