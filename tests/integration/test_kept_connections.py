"""Steps reuse the connection the last step left, never one that is stale, failed or in use."""

from __future__ import annotations

import json
import os
import select
import time
from typing import Any

import pytest
import sqlalchemy as sa

from engine.api import Engine
from engine.applications import example_application
from engine.errors import NotPermitted, StoreUnavailable
from engine.store import connections
from engine.testing import person


def _driver(eng: Engine) -> Any:
    """The DBAPI connection the next step will use (the top of the kept stack)."""
    idle = eng.store.kept._idle
    assert idle, "no connection was kept"
    return idle[-1][0].connection.dbapi_connection


def test_consecutive_steps_share_one_connection(eng: Engine) -> None:
    case = eng.open_case("restore", example_application("restore"), "portal:web")
    first = _driver(eng)
    eng.fire(case.id, "take", "operator:ivanova")
    assert _driver(eng) is first
    assert len(eng.store.kept._idle) == 1


def test_a_connection_idle_too_long_goes_back_to_the_pool(
    eng: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = eng.open_case("restore", example_application("restore"), "portal:web")
    kept = eng.store.kept._idle[-1][0]
    monkeypatch.setattr(connections, "REUSE_SECONDS", -1.0)
    eng.fire(case.id, "take", "operator:ivanova")
    assert kept.closed
    assert eng.store.kept._idle[-1][0] is not kept


def test_a_refused_step_leaves_no_transaction_open_on_the_kept_connection(eng: Engine) -> None:
    case = eng.open_case("restore", example_application("restore"), "portal:web")
    with pytest.raises(NotPermitted):
        eng.fire(case.id, "approve", "operator:ivanova")
    raw = _driver(eng)
    if eng.store.dialect == "postgresql":
        from psycopg.pq import TransactionStatus

        assert raw.info.transaction_status == TransactionStatus.IDLE
    else:
        assert not raw.in_transaction
    # and the next writer is not kept waiting by it
    eng.fire(case.id, "take", "operator:ivanova")


def _drop_kept_connection(eng: Engine, pg_url: str) -> Any:
    """Have the server end the connection the next step would take; returns that connection."""
    raw = _driver(eng)
    admin = sa.create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://", 1))
    with admin.begin() as conn:
        conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": raw.info.backend_pid})
    admin.dispose()
    # pg_terminate_backend only signals the backend: wait for its goodbye to arrive
    deadline = time.monotonic() + 10
    while not select.select([raw.fileno()], [], [], 0.05)[0]:
        assert time.monotonic() < deadline, "the server never closed the connection"
    return raw


@pytest.mark.pg
def test_a_connection_the_server_dropped_between_steps_is_not_used(pg_url: str) -> None:
    eng = Engine(pg_url)
    try:
        case = eng.open_case("restore", example_application("restore"), "portal:web")
        raw = _drop_kept_connection(eng, pg_url)
        step = eng.fire(case.id, "take", "operator:ivanova")  # on a fresh, pinged connection
        assert step.case.state == "in_review"
        assert _driver(eng) is not raw
        assert [e.trigger for e in eng.history(case.id)] == ["open", "take"]
    finally:
        eng.close()


@pytest.mark.pg
def test_a_connection_that_dies_in_a_step_fails_that_step_only(pg_url: str) -> None:
    eng = Engine(pg_url)
    try:
        case = eng.open_case("restore", example_application("restore"), "portal:web")
        _drop_kept_connection(eng, pg_url)
        # the poll said nothing: the connection is taken and dies on its first statement
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(connections, "_quiet", lambda _conn: True)
            with pytest.raises(StoreUnavailable):
                eng.fire(case.id, "take", "operator:ivanova")
        assert not eng.store.kept._idle
        step = eng.fire(case.id, "take", "operator:ivanova")
        assert step.case.state == "in_review"
        assert [e.trigger for e in eng.history(case.id)] == ["open", "take"]
    finally:
        eng.close()


def test_a_forked_child_never_uses_its_parents_kept_connection(eng: Engine) -> None:
    case = eng.open_case("restore", person("restore", 1), "portal:web")
    other = eng.open_case("restore", person("restore", 2), "portal:web")
    inherited = _driver(eng)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: one step of its own, then report and leave at once
        report: dict[str, Any] = {}
        try:
            report["kept_after_fork"] = len(eng.store.kept._idle)
            report["state"] = eng.fire(case.id, "take", "operator:ivanova").case.state
            report["on_inherited"] = _driver(eng) is inherited
        except BaseException as exc:  # the parent asserts on it
            report["error"] = repr(exc)
        finally:
            os.write(write, json.dumps(report).encode())
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        report = json.loads(pipe.read())
    os.waitpid(pid, 0)
    assert report == {"kept_after_fork": 0, "state": "in_review", "on_inherited": False}
    # the parent's connection is as it was: the child neither used nor closed it
    assert _driver(eng) is inherited
    assert eng.fire(other.id, "take", "operator:ivanova").case.state == "in_review"
    assert _driver(eng) is inherited
    assert [e.trigger for e in eng.history(case.id)] == ["open", "take"]
    assert eng.verify() == {}


def test_a_step_that_ends_after_the_engine_closed_keeps_no_connection(eng: Engine) -> None:
    case = eng.open_case("restore", example_application("restore"), "portal:web")
    conn = eng.store.kept.take()  # as a step in another thread holds it
    eng.close()
    eng.store.kept.give_back(conn, ok=True)
    assert conn.closed
    assert not eng.store.kept._idle
    assert case.state == "pending"
