"""Defects the model-based test found (tests/reliability/test_model.py), each pinned here.

- A deadline armed again while it runs is restarted, never doubled.
- A retry of a registry check fired by hand is not one of the check's failed attempts.
- ``fire_due_timers`` fires, in the same run and in time order, the timers that its own steps
  arm or move; a timer its steps paused stays paused.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from engine.api import Engine
from engine.testing import InMemoryRegistries, ManualClock, person
from tests.conftest import START

OP = "operator:ivanova"
SYSTEM = "system:pipeline"
PORTAL = "portal:gosuslugi"


def _open_deadlines(eng: Engine, case_id: str) -> list[str]:
    return sorted(d.name for d in eng.get_case(case_id).deadlines if d.status != "fired")


def _in_time_order(eng: Engine, case_id: str) -> bool:
    times = [e.at for e in eng.history(case_id)]
    return times == sorted(times)


def test_a_deadline_armed_again_is_restarted_not_doubled(db_url: str) -> None:
    clock = ManualClock(START)
    with Engine(db_url, clock=clock) as eng:
        case_id = eng.open_case("restore", person("restore", 1), PORTAL).id
        eng.fire(case_id, "take", OP)
        eng.fire(case_id, "request_info", OP, comment="Уточните адрес")
        eng.fire(case_id, "remind", SYSTEM)
        first = {d.name: d.due_at for d in eng.get_case(case_id).deadlines}["reply_final"]
        clock.advance(timedelta(hours=2))
        eng.fire(case_id, "remind", SYSTEM)
        finals = [d for d in eng.get_case(case_id).deadlines if d.name == "reply_final"]
        assert len(finals) == 1
        assert finals[0].due_at is not None
        assert first is not None
        assert finals[0].due_at >= first
        eng.fire(case_id, "withdraw", PORTAL)
        assert _open_deadlines(eng, case_id) == []
        assert eng.verify() == {}


def test_a_retry_fired_by_hand_is_not_a_failed_attempt(db_url: str) -> None:
    at = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
    clock = ManualClock(at)
    registries = InMemoryRegistries()
    registries.set_down("foms", "social_fund")
    with Engine(db_url, clock=clock, registries=registries.ports()) as eng:
        case_id = eng.open_case("restore", person("restore", 2), PORTAL).id
        eng.fire(case_id, "take", SYSTEM)
        eng.fire_due_timers()  # attempt 1 fails at 07:00: retry at 07:01
        eng.fire(case_id, "retry_check", SYSTEM)  # by hand: not the check's attempt
        clock.set(at + timedelta(minutes=1))
        eng.fire_due_timers()  # attempt 2 fails at 07:01: retry at 07:03
        last = eng.history(case_id)[-1]
        assert last.actor == "system:identity_match"
        assert "попытка 2 из 5" in (last.comment or "")
        check = {d.name: d for d in eng.get_case(case_id).deadlines}["registry_check"]
        assert check.due_at == at + timedelta(minutes=3)


def test_timers_armed_by_the_run_fire_in_the_same_run_in_time_order(db_url: str) -> None:
    clock = ManualClock(START)
    with Engine(db_url, clock=clock) as eng:
        first = eng.open_case("restore", person("restore", 3), PORTAL).id
        eng.fire(first, "take", OP)
        eng.fire(first, "request_info", OP, comment="Уточните адрес")
        clock.set(START + timedelta(days=2))
        later = eng.open_case("restore", person("restore", 4), PORTAL).id
        clock.set(START + timedelta(days=10))
        eng.fire_due_timers()
        # reply_reminder fired remind, which armed reply_final, due before the run's end
        case = eng.get_case(first)
        assert case.state == "rejected"
        assert [e.trigger for e in eng.history(first)][-2:] == ["remind", "expire"]
        assert _open_deadlines(eng, first) == []
        assert _in_time_order(eng, first)
        assert _in_time_order(eng, later)


def test_a_deadline_paused_by_a_check_in_the_run_stays_paused(db_url: str) -> None:
    monday = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)  # 10:00 in Moscow
    clock = ManualClock(monday)
    registries = InMemoryRegistries()
    data = person("restore", 5)
    registries.add_application_person(data)
    snils = data["applicant"]["snils"]  # type: ignore[index]
    registries.add_person(snils, data["applicant"]["full_name"], "1950-01-01")  # type: ignore[index]
    with Engine(db_url, clock=clock, registries=registries.ports()) as eng:
        case_id = eng.open_case("restore", data, PORTAL).id
        clock.set(monday + timedelta(days=2, hours=2))  # Wednesday 12:00
        eng.fire(case_id, "take", SYSTEM)
        clock.set(monday + timedelta(days=4, hours=4))  # Friday 14:00
        eng.fire_due_timers()
        case = eng.get_case(case_id)
        assert case.state == "needs_clarification"
        status = {d.name: d.status for d in case.deadlines}
        assert status["decision_target"] == "paused"
        assert status["decision_limit"] == "paused"
        assert _in_time_order(eng, case_id)
