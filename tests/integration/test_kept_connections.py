"""Steps reuse the connection the last step left, never one that is stale, failed or in use."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from engine.api import Engine
from engine.applications import example_application
from engine.errors import NotPermitted, StoreUnavailable
from engine.store import connections


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


@pytest.mark.pg
def test_a_connection_the_server_dropped_fails_one_step_and_is_not_kept(pg_url: str) -> None:
    eng = Engine(pg_url)
    try:
        case = eng.open_case("restore", example_application("restore"), "portal:web")
        pid = _driver(eng).info.backend_pid
        admin = sa.create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://", 1))
        with admin.begin() as conn:
            conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        admin.dispose()
        with pytest.raises(StoreUnavailable):
            eng.fire(case.id, "take", "operator:ivanova")
        assert not eng.store.kept._idle
        step = eng.fire(case.id, "take", "operator:ivanova")  # a fresh, pinged connection
        assert step.case.state == "in_review"
        assert [e.trigger for e in eng.history(case.id)] == ["open", "take"]
    finally:
        eng.close()
