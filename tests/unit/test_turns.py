"""SQLite writers take turns: one at a time across threads and processes, forks included."""

from __future__ import annotations

import multiprocessing as mp
import threading
import time
from pathlib import Path
from typing import Any

from engine.store.repository import Store
from engine.store.turns import WriterTurns


def _try_from_child(lock_path: str, turns: WriterTurns | None, out: mp.Queue[bool]) -> None:
    import fcntl
    import os

    if turns is not None:
        # the parent's object, inherited by fork: it must open a file of its own
        turns.acquire()
        out.put(True)
        turns.release()
        return
    fd = os.open(lock_path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        out.put(False)
    else:
        out.put(True)


def _second_thread_waits(turns: WriterTurns) -> list[str]:
    """What happened, in order, when a thread asked for the turn this thread held."""
    order: list[str] = []
    with turns.turn():
        other = threading.Thread(target=lambda: _take(turns, order))
        other.start()
        time.sleep(0.2)
        order.append("first released")
    other.join(5)
    return order


def test_a_thread_waits_for_the_turn_and_gets_it_when_released(tmp_path: Path) -> None:
    turns = WriterTurns(str(tmp_path / "db-writers"))
    assert _second_thread_waits(turns) == ["first released", "second in"]


def _take(turns: WriterTurns, order: list[str]) -> None:
    with turns.turn():
        order.append("second in")


def _child(turns: WriterTurns, *, inherit: bool) -> tuple[Any, mp.Queue[bool]]:
    """A forked process that tries for the turn: with the parent's object, or on the file."""
    ctx = mp.get_context("fork")
    out: mp.Queue[bool] = ctx.Queue()
    child = ctx.Process(
        target=_try_from_child, args=(turns.lock_path, turns if inherit else None, out)
    )
    child.start()
    return child, out


def test_the_turn_is_reentrant_within_a_thread(tmp_path: Path) -> None:
    turns = WriterTurns(str(tmp_path / "db-writers"))
    with turns.turn(), turns.turn():
        pass
    # released for real: another process can take it now
    child, out = _child(turns, inherit=False)
    assert out.get(timeout=10) is True
    child.join(10)


def test_another_process_cannot_take_the_turn_while_it_is_held(tmp_path: Path) -> None:
    turns = WriterTurns(str(tmp_path / "db-writers"))
    with turns.turn():
        child, out = _child(turns, inherit=False)
        assert out.get(timeout=10) is False
        child.join(10)


def test_a_forked_child_queues_behind_its_parent(tmp_path: Path) -> None:
    turns = WriterTurns(str(tmp_path / "db-writers"))
    with turns.turn():
        # forked while the parent holds the turn, with the parent's object
        child, out = _child(turns, inherit=True)
        time.sleep(0.3)
        assert out.empty(), "the child got in while its parent held the turn"
    assert out.get(timeout=10) is True
    child.join(10)


def test_a_file_database_takes_turns_beside_its_file(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'office.db'}")
    try:
        assert store.turns is not None
        assert store.turns.lock_path == f"{tmp_path / 'office.db'}-writers"
    finally:
        store.dispose()
    memory = Store("sqlite://")
    try:
        assert memory.turns is not None
        assert memory.turns.lock_path is None
    finally:
        memory.dispose()


def test_without_a_lock_file_writers_still_take_turns_within_the_process(tmp_path: Path) -> None:
    turns = WriterTurns(str(tmp_path / "missing-dir" / "db-writers"))
    assert _second_thread_waits(turns) == ["first released", "second in"]
