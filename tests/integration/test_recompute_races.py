"""A calendar recompute that commits while a step or a timer batch holds what it read.

``recompute_deadlines`` moves armed deadlines without the case's lock or version: a step that
computed a pause from the old due instant, or a batch that remembered the old one, must notice
and work again from what is now stored, never write what it computed from the old instant.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import event

from engine.api import Engine
from engine.testing import ManualClock, person, with_day_off
from engine.timers.calendar import ProductionCalendar
from tests.conftest import START

OP = "operator:ivanova"


def _a_day_off_added() -> ProductionCalendar:
    """The Russian calendar with Wednesday 25 November 2026 made a day off."""
    return with_day_off(ProductionCalendar.russia(), date(2026, 11, 25))


def _once_after(eng: Engine, marker: str, meanwhile: Any) -> list[int]:
    calls: list[int] = []

    def after(_c: Any, _cur: Any, statement: str, *_a: Any) -> None:
        if not calls and marker in statement:
            calls.append(1)
            meanwhile()

    event.listen(eng.store.engine, "after_cursor_execute", after)
    return calls


def _remainders(eng: Engine, case_id: str) -> dict[str, float | None]:
    return {d.name: d.remaining_seconds for d in eng.get_case(case_id).deadlines}


def test_a_pause_computed_from_a_due_instant_that_moved_meanwhile_is_computed_again(
    db_url: str,
) -> None:
    clock = ManualClock(START)
    moved = _a_day_off_added()
    with Engine(db_url, clock=clock) as old:
        case_id = old.open_case("restore", person("restore", 1), "portal:web").id
        old.fire(case_id, "take", OP)
        control = old.open_case("restore", person("restore", 2), "portal:web").id
        old.fire(control, "take", OP)
    clock.advance(timedelta(hours=1))
    with (
        Engine(db_url, clock=clock, calendar=moved) as first,
        Engine(db_url, clock=clock, calendar=moved) as second,
    ):
        # the recompute commits right after the step read the case's deadlines
        calls = _once_after(first, "FROM deadlines WHERE case_id =", second.recompute_deadlines)
        first.fire(case_id, "request_info", OP, comment="Уточните адрес")
        assert calls == [1]
        # the same step after the recompute, with nothing in between
        first.fire(control, "request_info", OP, comment="Уточните адрес")
        paused = _remainders(first, case_id)
        assert paused == _remainders(first, control)
        assert paused["decision_target"] is not None
        assert [e.trigger for e in first.history(case_id)] == ["open", "take", "request_info"]
        assert first.verify() == {}


def test_a_batch_never_fires_a_remembered_timer_that_a_recompute_moved_past_the_run(
    pg_url: str,
) -> None:
    # PostgreSQL only: a SQLite batch holds the database's write lock from its claim on, so
    # a recompute cannot commit in between
    db_url = pg_url
    clock = ManualClock(START)
    with Engine(db_url, clock=clock) as old:
        case_id = old.open_case("restore", person("restore", 3), "portal:web").id
        # taken by a robot: its registry check falls due at once, the decision target later
        old.fire(case_id, "take", "system:robot")
        target = {d.name: d.due_at for d in old.get_case(case_id).deadlines}["decision_target"]
    assert target is not None
    until = target + timedelta(hours=15)  # past the old target, before the moved one
    clock.set(until)
    moved = _a_day_off_added()
    with (
        Engine(db_url, clock=clock, calendar=moved) as worker,
        Engine(db_url, clock=clock, calendar=moved) as ops,
    ):
        # the recompute commits once the batch has read the case's deadlines
        calls = _once_after(worker, "FROM deadlines WHERE case_id IN", ops.recompute_deadlines)
        worker.fire_due_timers(batch=1)
        assert calls == [1]
        assert "target_missed" not in [e.trigger for e in worker.history(case_id)]
        due = {d.name: d for d in worker.get_case(case_id).deadlines}
        assert due["decision_target"].status == "armed"
        assert due["decision_target"].due_at == target + timedelta(days=1)
        # the next run fires nothing early either
        worker.fire_due_timers()
        assert "target_missed" not in [e.trigger for e in worker.history(case_id)]
        assert worker.verify() == {}
