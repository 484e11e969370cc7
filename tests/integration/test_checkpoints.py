"""SQLite's WAL is checkpointed by a thread of the engine's, never inside a step's commit.

The writers' connections have SQLite's automatic checkpoint off; the thread copies the WAL
into the database file while steps go on, and once the WAL is long it takes the writers' turn
for a second pass, so that the WAL restarts from its start instead of growing for as long as
writes keep coming.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from structlog.testing import capture_logs

from engine.api import Engine
from engine.store.checkpoints import Checkpointer
from engine.store.turns import WriterTurns
from engine.testing import ManualClock, person


def _open(engine: Engine, first: int, n: int) -> list[str]:
    return [
        engine.open_case("restore", person("restore", first + i), "portal:web").id for i in range(n)
    ]


def _wal_frames(db: Path) -> int:
    """Frames the WAL file has room for: its size, which only a restart keeps down."""
    with sqlite3.connect(db) as conn:
        page = int(conn.execute("PRAGMA page_size").fetchone()[0])
    return os.path.getsize(f"{db}-wal") // (page + 24)


def _settled(engine: Engine, checkpoints: int) -> None:
    deadline = time.monotonic() + 10
    cp = engine.store.checkpoints
    assert cp is not None
    while cp.checkpoints < checkpoints and time.monotonic() < deadline:
        time.sleep(0.005)


def test_the_writers_leave_checkpoints_to_the_thread(tmp_path: Path, clock: ManualClock) -> None:
    db = tmp_path / "omsflow.db"
    engine = Engine(f"sqlite:///{db}", clock=clock, synchronous="NORMAL")
    try:
        cp = engine.store.checkpoints
        assert cp is not None
        with engine.store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
        ids = _open(engine, 0, 5)
        _settled(engine, 1)
        assert cp.checkpoints >= 1
        # everything written so far is in the database file: a reader of the file alone
        # (the WAL's frames all copied) sees every case
        log_frames, copied = cp.checkpoint()
        assert log_frames == copied
        assert len(engine.list_cases(limit=50)) == len(ids)
    finally:
        engine.close()


def test_the_wal_restarts_under_a_steady_stream_of_steps(
    tmp_path: Path, clock: ManualClock
) -> None:
    db = tmp_path / "omsflow.db"
    engine = Engine(f"sqlite:///{db}", clock=clock, synchronous="NORMAL")
    try:
        cp = engine.store.checkpoints
        assert cp is not None
        # a short WAL and a checkpoint at every chance: the first passes always trail the
        # writes, and only the second pass under the writers' turn lets the WAL restart
        cp.restart_frames = 200
        cp.interval = 0.001
        ids = _open(engine, 0, 150)
        for cid in ids:
            engine.fire(cid, "take", "operator:op")
            engine.fire(cid, "request_info", "operator:op", comment="Уточните адрес")
        assert cp.restarts >= 1
        # 450 commits of several pages each: thousands of frames without a restart
        assert _wal_frames(db) < 1000
    finally:
        engine.close()
    assert cp._thread is not None
    assert not cp._thread.is_alive()


def _child(engine: Engine, queue: Any) -> None:
    # the parent's engine, inherited: its checkpoints start a thread of the child's own
    cp = engine.store.checkpoints
    assert cp is not None
    _open(engine, 1000, 5)
    _settled(engine, 1)
    queue.put((cp.checkpoints, cp._thread is not None and cp._thread.is_alive()))
    engine.close()


def test_a_forked_process_checkpoints_on_its_own(tmp_path: Path, clock: ManualClock) -> None:
    url = f"sqlite:///{tmp_path / 'omsflow.db'}"
    engine = Engine(url, clock=clock, synchronous="NORMAL")
    try:
        cp = engine.store.checkpoints
        assert cp is not None
        _open(engine, 0, 3)
        _settled(engine, 1)
        ctx = mp.get_context("fork")
        queue = ctx.Queue()
        child = ctx.Process(target=_child, args=(engine, queue))
        child.start()
        made, alive = queue.get(timeout=30)
        child.join(timeout=30)
        assert child.exitcode == 0
        assert made >= 1
        assert alive
        # the parent's thread and connection are untouched by the child's
        before = cp.checkpoints
        _open(engine, 2000, 3)
        _settled(engine, before + 1)
        assert cp.checkpoints > before
        assert len(engine.list_cases(limit=50)) == 11
    finally:
        engine.close()


def test_an_in_memory_database_has_no_checkpoints(clock: ManualClock) -> None:
    engine = Engine("sqlite://", clock=clock)
    try:
        assert engine.store.checkpoints is None
    finally:
        engine.close()


def test_a_close_that_lands_as_the_thread_takes_its_wake_up_still_stops_it(
    tmp_path: Path,
) -> None:
    db = tmp_path / "omsflow.db"
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
    cp = Checkpointer(str(db), "NORMAL", WriterTurns(None), interval=0.001)

    class CloseFirst(threading.Event):
        def clear(self) -> None:
            # close() runs between the thread's wait and its clear: its wake-up is cleared
            cp._closing.set()
            self.set()
            super().clear()

    cp._wake = CloseFirst()
    cp.committed()
    assert cp._thread is not None
    cp._thread.join(timeout=10)
    assert not cp._thread.is_alive()
    cp.close()


def test_a_checkpoint_that_fails_is_logged_and_the_thread_goes_on(tmp_path: Path) -> None:
    # a folder that does not exist: SQLite cannot open the file, and the engine still runs
    missing = tmp_path / "gone" / "omsflow.db"
    cp = Checkpointer(str(missing), "NORMAL", WriterTurns(None), interval=0.001)
    with capture_logs() as logs:
        for _ in range(2):
            before = len(logs)
            cp.committed()
            deadline = time.monotonic() + 10
            while len(logs) == before and time.monotonic() < deadline:
                time.sleep(0.005)
        assert cp._thread is not None
        assert cp._thread.is_alive()
        cp.close()
    failed = [e for e in logs if e["event"] == "checkpoint_failed"]
    assert len(failed) == 2
    assert failed[0]["path"] == str(missing)
    assert failed[0]["log_level"] == "warning"
    assert cp.checkpoints == 0
