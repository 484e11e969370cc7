"""Writers of one SQLite file take turns through an operating-system lock.

SQLite lets one writer in at a time and makes the others wait in its busy handler, which
sleeps 1, 2, 5, 10 ms and more between tries: a writer that arrives while another commits
sleeps a millisecond or more even when the lock was free again after a tenth of that, and the
cores stay idle meanwhile. Here each writer of a process queues on a thread lock and the
processes queue on an ``flock`` of a file beside the database, which wakes the next writer the
moment the lock is released. A writer may compute its next step while another one waits on
the disk: with several writers, the engine's own work hides under the flush.

The lock only orders writers; correctness stays with SQLite's own locking (``BEGIN
IMMEDIATE``), so a writer that does not take turns (the sqlite3 shell, an older process) is
still safe: it falls back on the busy handler.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from engine.store.forks import renew_after_fork

try:
    import fcntl
except ImportError:  # pragma: no cover - not a POSIX system: threads still take turns
    fcntl = None  # type: ignore[assignment]


class WriterTurns:
    """One SQLite database's writer queue, for every thread and process that opens it."""

    def __init__(self, lock_path: str | None) -> None:
        self.lock_path = lock_path
        self._thread = threading.RLock()
        self._depth = 0
        self._fd: int | None = None
        renew_after_fork(self)

    def _forked(self) -> None:
        # The child of a fork holds no turn, whatever its parent held, and must not share the
        # parent's open file: flock locks belong to the open file, so a shared one would let
        # parent and child in together.
        self._thread = threading.RLock()
        self._depth = 0
        if self._fd is not None:
            os.close(self._fd)
        self._fd = None

    def _file(self) -> int | None:
        if self.lock_path is None or fcntl is None:
            return None
        if self._fd is None:
            try:
                self._fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError:
                # No lock file here (a read-only or missing folder): SQLite's busy handler
                # still orders the writers, and SQLite reports a folder it cannot use.
                return None
        return self._fd

    @contextmanager
    def turn(self) -> Iterator[None]:
        """Hold the database's writer turn for the block (re-entrant within a thread)."""
        self.acquire()
        try:
            yield
        finally:
            self.release()

    def acquire(self) -> None:
        self._thread.acquire()
        self._depth += 1
        if self._depth == 1:
            fd = self._file()
            if fd is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                except BaseException:
                    self._depth -= 1
                    self._thread.release()
                    raise

    def release(self) -> None:
        self._depth -= 1
        try:
            if self._depth == 0 and self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._thread.release()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
        self._fd = None
