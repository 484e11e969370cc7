"""Every deadline of DOMAIN.md walked with a manual clock against the real database."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from engine.api import Engine
from engine.applications import example_application
from engine.errors import NotPermitted
from engine.testing import ManualClock, with_day_off
from engine.timers.calendar import ProductionCalendar

PORTAL = "portal:gosuslugi"
OP = "operator:ivanova"


def msk(*args: int) -> datetime:
    """A Moscow wall-clock time (UTC+3 all year) as an aware UTC instant."""
    return datetime(*args, tzinfo=UTC) - timedelta(hours=3)  # type: ignore[misc]


def _in_review(eng: Engine, type_: str = "restore", **patch: Any) -> str:
    data = example_application(type_)
    data.update(patch)
    case_id = eng.open_case(type_, data, PORTAL).id
    eng.fire(case_id, "take", "system:foms" if type_ == "child_link" else OP)
    return case_id


def _deadline(eng: Engine, case_id: str, name: str) -> datetime | None:
    for d in eng.get_case(case_id).deadlines:
        if d.name == name:
            return d.due_at
    return None


def _triggers(eng: Engine, case_id: str) -> list[str]:
    return [e.trigger for e in eng.history(case_id)]


def test_clarification_reminder_then_rejection_for_no_reply(
    eng: Engine, clock: ManualClock
) -> None:
    clock.set(msk(2026, 11, 23, 10, 0))  # Monday
    case_id = _in_review(eng)
    eng.fire(case_id, "request_info", OP, comment="Приложите скан паспорта")
    # two working days: Tuesday 24 and Wednesday 25, ending at midnight Moscow time
    assert _deadline(eng, case_id, "reply_reminder") == msk(2026, 11, 26, 0, 0)
    request = eng.case_events(case_id)[-1]
    assert request.kind == "info_requested"
    assert "25.11.2026 23:59" in request.text

    clock.set(msk(2026, 11, 25, 23, 59))
    assert eng.fire_due_timers().fired == 0
    clock.set(msk(2026, 11, 26, 0, 0))
    assert eng.fire_due_timers().fired == 1
    case = eng.get_case(case_id)
    assert case.state == "needs_clarification"
    assert eng.history(case_id)[-1].trigger == "remind"
    assert eng.history(case_id)[-1].actor == "system:timer"
    assert eng.case_events(case_id)[-1].kind == "reminder"
    # the second term counts from the reminder: Friday 27 and Monday 30
    assert _deadline(eng, case_id, "reply_final") == msk(2026, 12, 1, 0, 0)

    clock.set(msk(2026, 12, 3, 9, 0))
    report = eng.fire_due_timers()
    assert report.fired == 1
    case = eng.get_case(case_id)
    assert case.state == "rejected"
    last = eng.history(case_id)[-1]
    assert (last.trigger, last.reason) == ("expire", "no_reply")
    assert last.at == msk(2026, 12, 1, 0, 0)  # logical time: when it fell due
    assert last.recorded_at == msk(2026, 12, 3, 9, 0)  # wall time: when a worker got to it
    assert report.max_lateness_seconds == timedelta(days=2, hours=9).total_seconds()
    assert eng.case_events(case_id)[-1].kind == "rejected"
    assert case.deadlines == ()


def test_a_reply_in_time_cancels_what_is_pending(eng: Engine, clock: ManualClock) -> None:
    clock.set(msk(2026, 11, 23, 10, 0))
    case_id = _in_review(eng)
    eng.fire(case_id, "request_info", OP, comment="Уточните адрес")
    clock.set(msk(2026, 11, 25, 18, 0))
    eng.fire(case_id, "reply", PORTAL, comment="Адрес верный")
    assert [d.name for d in eng.get_case(case_id).deadlines] == [
        "decision_target",
        "decision_limit",
    ]
    with eng.store.read() as tx:
        statuses = dict(
            tx.conn.execute(
                sa.text("SELECT name, status FROM deadlines WHERE case_id = :c"), {"c": case_id}
            ).all()
        )
    assert statuses["reply_reminder"] == "cancelled"
    clock.set(msk(2026, 11, 27, 0, 0))
    eng.fire_due_timers()
    assert "remind" not in _triggers(eng, case_id)


def test_a_late_reply_meets_the_outcome_a_running_worker_would_have_given(
    eng: Engine, clock: ManualClock
) -> None:
    clock.set(msk(2026, 11, 23, 10, 0))
    case_id = _in_review(eng)
    eng.fire(case_id, "request_info", OP, comment="Приложите скан")
    clock.set(msk(2026, 12, 2, 10, 0))  # both terms are over; no worker ran meanwhile
    with pytest.raises(NotPermitted) as refused:
        eng.fire(case_id, "reply", PORTAL, comment="Вот скан")
    assert refused.value.state == "rejected"
    history = eng.history(case_id)
    assert [e.trigger for e in history][-2:] == ["remind", "expire"]
    assert [e.at for e in history][-2:] == [msk(2026, 11, 26, 0, 0), msk(2026, 12, 1, 0, 0)]


def test_a_reply_between_reminder_and_final_term_goes_through(
    eng: Engine, clock: ManualClock
) -> None:
    clock.set(msk(2026, 11, 23, 10, 0))
    case_id = _in_review(eng)
    eng.fire(case_id, "request_info", OP, comment="Приложите скан")
    clock.set(msk(2026, 11, 27, 10, 0))
    outcome = eng.fire(case_id, "reply", PORTAL, comment="Вот скан")
    assert [e.trigger for e in outcome.timers_fired] == ["remind"]
    assert outcome.case.state == "in_review"
    assert "reply_final" not in [d.name for d in outcome.case.deadlines]


def test_a_week_of_downtime_gives_the_same_history(tmp_path: Any) -> None:
    def run(catch_up_every: timedelta | None) -> list[tuple[str, datetime, str]]:
        clock = ManualClock(msk(2026, 11, 23, 10, 0))
        url = f"sqlite:///{tmp_path / f'h{catch_up_every}.db'}"
        with Engine(url, clock=clock) as eng:
            case_id = _in_review(eng)
            eng.fire(case_id, "request_info", OP, comment="Приложите скан")
            end = msk(2026, 12, 10, 0, 0)
            if catch_up_every:
                while clock.now() < end:
                    clock.advance(catch_up_every)
                    eng.fire_due_timers()
            else:
                clock.set(end)
                eng.fire_due_timers()
            return [(e.trigger, e.at, e.to_state) for e in eng.history(case_id)]

    assert run(timedelta(hours=1)) == run(None)


def test_the_decision_sla_pauses_while_the_applicant_owes_a_reply(
    eng: Engine, clock: ManualClock
) -> None:
    clock.set(msk(2026, 11, 23, 10, 0))  # Monday
    case_id = _in_review(eng)
    # 5 working days from Monday: Tue 24 .. Mon 30
    assert _deadline(eng, case_id, "decision_limit") == msk(2026, 12, 1, 0, 0)
    clock.set(msk(2026, 11, 24, 12, 0))
    eng.fire(case_id, "request_info", OP, comment="Уточните СНИЛС")
    paused = {d.name: d for d in eng.get_case(case_id).deadlines}["decision_limit"]
    assert paused.status == "paused"
    assert paused.due_at is None
    # left: half of Tuesday and Wed, Thu, Fri, Mon = 4.5 working days
    assert paused.remaining_seconds == timedelta(days=4, hours=12).total_seconds()
    clock.set(msk(2026, 11, 27, 12, 0))  # Friday noon: three working days later
    eng.fire(case_id, "reply", PORTAL, comment="СНИЛС верный")
    # the applicant's three working days are not counted against the operator
    assert _deadline(eng, case_id, "decision_limit") == msk(2026, 12, 4, 0, 0)
    clock.set(msk(2026, 12, 3, 23, 0))
    eng.fire_due_timers()
    assert not eng.get_case(case_id).overdue
    clock.set(msk(2026, 12, 4, 0, 0))
    eng.fire_due_timers()
    case = eng.get_case(case_id)
    assert case.overdue
    assert [c.id for c in eng.list_cases(overdue=True)] == [case_id]
    overdue = [e for e in eng.case_events(case_id) if e.kind == "overdue"]
    assert len(overdue) == 1
    assert overdue[0].audience == "supervisors"


def test_restore_decision_target_and_limit(eng: Engine, clock: ManualClock) -> None:
    clock.set(msk(2026, 11, 23, 10, 0))
    case_id = _in_review(eng)
    clock.set(msk(2026, 11, 27, 0, 0))  # 3 working days: Tue, Wed, Thu
    eng.fire_due_timers()
    case = eng.get_case(case_id)
    assert case.flags == ("target_missed",)
    assert not case.overdue
    clock.set(msk(2026, 12, 1, 0, 0))
    eng.fire_due_timers()
    assert eng.get_case(case_id).overdue
    eng.fire(case_id, "approve", OP)
    # approved on Tuesday 1 December: an electronic policy within 5 working days (2-8 Dec)
    assert _deadline(eng, case_id, "electronic_policy") == msk(2026, 12, 9, 0, 0)


def test_clarification_across_the_new_year_holidays(eng: Engine, clock: ManualClock) -> None:
    clock.set(msk(2026, 12, 29, 12, 0))  # Tuesday
    case_id = _in_review(eng)
    eng.fire(case_id, "request_info", OP, comment="Приложите свидетельство")
    # Wed 30 Dec counts; 31 Dec and 1-10 Jan are days off; Mon 11 Jan counts
    assert _deadline(eng, case_id, "reply_reminder") == msk(2027, 1, 12, 0, 0)


def test_clarification_across_a_transferred_working_saturday(
    eng: Engine, clock: ManualClock
) -> None:
    clock.set(msk(2027, 2, 18, 12, 0))  # Thursday
    case_id = _in_review(eng)
    eng.fire(case_id, "request_info", OP, comment="Приложите свидетельство")
    # Fri 19 and the working Saturday 20 February 2027
    assert _deadline(eng, case_id, "reply_reminder") == msk(2027, 2, 21, 0, 0)
    clock.set(msk(2027, 2, 21, 0, 0))
    eng.fire_due_timers()
    # from the reminder: Mon 22 and Tue 23 are days off; Wed 24 and Thu 25 count
    assert _deadline(eng, case_id, "reply_final") == msk(2027, 2, 26, 0, 0)


def test_new_issue_review_and_thirty_days_of_production(eng: Engine, clock: ManualClock) -> None:
    clock.set(msk(2026, 11, 23, 10, 0))
    case_id = eng.open_case("new_issue", example_application("new_issue"), PORTAL).id
    assert _deadline(eng, case_id, "review_limit") == msk(2026, 11, 25, 0, 0)
    clock.set(msk(2026, 11, 25, 0, 0))
    eng.fire_due_timers()
    assert eng.get_case(case_id).overdue
    clock.set(msk(2026, 11, 26, 9, 0))
    eng.fire(case_id, "take", OP)
    eng.fire(case_id, "approve", OP)
    kinds = [e.kind for e in eng.case_events(case_id)]
    assert kinds[-3:] == ["approved", "temporary_policy", "in_production"]
    # 26 Nov + 30 days = Sat 26 Dec, a day off: the term ends on Monday 28 Dec
    assert _deadline(eng, case_id, "production_limit") == msk(2026, 12, 29, 0, 0)


def test_child_link_verification_escalates_after_thirty_minutes(
    eng: Engine, clock: ManualClock
) -> None:
    clock.set(msk(2026, 11, 28, 23, 50))  # Saturday night: minutes ignore the calendar
    case_id = _in_review(eng, "child_link")
    assert _deadline(eng, case_id, "verification_escalation") == msk(2026, 11, 29, 0, 20)
    clock.set(msk(2026, 11, 29, 0, 20))
    eng.fire_due_timers()
    case = eng.get_case(case_id)
    assert case.state == "in_review"
    assert "escalated" in case.flags
    assert eng.case_events(case_id)[-1].audience == "support"


def test_damaged_policy_replacement_is_due_in_24_hours(eng: Engine, clock: ManualClock) -> None:
    clock.set(msk(2026, 11, 23, 10, 0))
    damaged = example_application("replacement")
    damaged.update(reason="damage")
    damaged.pop("new_insurer", None)
    case_id = eng.open_case("replacement", damaged, PORTAL).id
    assert _deadline(eng, case_id, "damage_replacement") == msk(2026, 11, 24, 10, 0)
    other = eng.open_case("replacement", _other_person("replacement"), PORTAL).id
    assert _deadline(eng, other, "damage_replacement") is None


def _other_person(type_: str) -> dict[str, Any]:
    data = example_application(type_)
    data["applicant"]["snils"] = example_application("child_link")["child"]["snils"]
    return data


def test_a_timer_whose_step_is_no_longer_valid_is_marked_stale(
    eng: Engine, clock: ManualClock
) -> None:
    clock.set(msk(2026, 11, 23, 10, 0))
    case_id = _in_review(eng)
    eng.fire(case_id, "request_info", OP, comment="?")
    with eng.store.write() as tx:  # a state the definition cannot produce, to force staleness
        tx.conn.execute(
            sa.text("UPDATE cases SET state = 'approved' WHERE id = :c"), {"c": case_id}
        )
    clock.set(msk(2026, 11, 26, 0, 0))
    report = eng.fire_due_timers()
    assert (report.fired, report.stale) == (0, 1)
    assert "remind" not in _triggers(eng, case_id)


def test_recompute_moves_deadlines_when_the_calendar_changes(
    db_url: str, clock: ManualClock
) -> None:
    clock.set(msk(2026, 11, 23, 10, 0))
    base = ProductionCalendar.russia()
    with Engine(db_url, clock=clock, calendar=base) as eng:
        case_id = _in_review(eng)
        eng.fire(case_id, "request_info", OP, comment="?")
        before = _deadline(eng, case_id, "reply_reminder")
    assert before == msk(2026, 11, 26, 0, 0)
    # a (fictional) decree makes Wednesday 25 November 2026 a day off
    with Engine(db_url, clock=clock, calendar=with_day_off(base, date(2026, 11, 25))) as eng:
        moved = eng.recompute_deadlines()
        assert [(m.case_id, m.name) for m in moved] == [(case_id, "reply_reminder")]
        assert moved[0].new_due_at == msk(2026, 11, 27, 0, 0)
        assert _deadline(eng, case_id, "reply_reminder") == msk(2026, 11, 27, 0, 0)
        # decision deadlines are paused: they move when they resume, not now
        assert eng.recompute_deadlines() == []
