"""Finding F5 (fixed): a timer worker and an operator stepping the same case must not deadlock.

``fire_due_timers`` claims deadline rows (``FOR UPDATE SKIP LOCKED``) and then updates their
case row; ``Engine.fire`` updates the case row and then closes the case's deadlines. The two
take the same two locks in opposite orders. This test makes the interleaving deterministic
with SQLAlchemy events in the test only: the worker pauses right after its claim until the
operator has issued its case UPDATE. PostgreSQL then aborts one of them with "deadlock
detected", which reached the caller as ``StoreUnavailable`` (exit 1). The worker's claim now
locks the timer and its case together, so the operator waits for the case and then meets a
``Conflict`` at worst.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event

from engine.api import Engine
from engine.errors import Conflict, StoreUnavailable
from engine.testing import ManualClock, person
from tests.conftest import START

pytestmark = pytest.mark.pg


def test_a_worker_and_an_operator_on_one_case_do_not_deadlock(pg_url: str) -> None:
    later = START + timedelta(days=10)
    with Engine(pg_url, clock=ManualClock(START)) as eng:
        case_id = eng.open_case("restore", person("restore", 1), "portal:gosuslugi").id
    worker = Engine(pg_url, clock=ManualClock(later), migrate=False)
    operator = Engine(pg_url, clock=ManualClock(START), migrate=False)
    claimed, case_updated = threading.Event(), threading.Event()

    def after_claim(_c: Any, _cur: Any, statement: str, *_a: Any) -> None:
        if "FOR UPDATE" in statement and "deadlines" in statement and not claimed.is_set():
            claimed.set()
            case_updated.wait(5)  # hold the claimed deadline rows until the operator moved

    def before_update(_c: Any, _cur: Any, statement: str, *_a: Any) -> None:
        if statement.startswith("UPDATE cases"):
            case_updated.set()

    event.listen(worker.store.engine, "after_cursor_execute", after_claim)
    event.listen(operator.store.engine, "before_cursor_execute", before_update)
    errors: list[BaseException] = []

    def run_worker() -> None:
        try:
            worker.fire_due_timers()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run_worker)
    thread.start()
    assert claimed.wait(10)
    try:
        # the applicant withdraws: the step cancels the very deadlines the worker holds
        operator.fire(case_id, "withdraw", "portal:gosuslugi")
    except Conflict:
        pass  # losing the race to the worker is a fine answer
    except StoreUnavailable as exc:
        errors.append(exc)
    thread.join(30)
    worker.close()
    operator.close()
    assert not [e for e in errors if "deadlock" in str(e)], errors
    assert errors == []
