"""Automatic checks against the (fake) registries, retries while a registry is down, outbox."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from engine.api import Engine
from engine.errors import InvalidInput, NotPermitted
from engine.testing import InMemoryRegistries, ManualClock, person

PORTAL = "portal:gosuslugi"
SYSTEM = "system:pipeline"
T0 = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)


@pytest.fixture
def registries() -> InMemoryRegistries:
    return InMemoryRegistries()


@pytest.fixture
def eng(db_url: str, clock: ManualClock, registries: InMemoryRegistries) -> Iterator[Engine]:
    with Engine(db_url, clock=clock, registries=registries.ports()) as engine:
        yield engine


def _taken(eng: Engine, type_: str, data: dict[str, object]) -> str:
    case_id = eng.open_case(type_, data, PORTAL).id
    eng.fire(case_id, "take", SYSTEM)
    return case_id


def test_restore_identity_match_approves(eng: Engine, registries: InMemoryRegistries) -> None:
    data = person("restore", 1)
    registries.add_application_person(data)
    case_id = _taken(eng, "restore", data)
    report = eng.fire_due_timers()
    assert report.fired == 1
    case = eng.get_case(case_id)
    assert case.state == "approved"
    last = eng.history(case_id)[-1]
    assert (last.trigger, last.actor) == ("approve", "system:identity_match")
    assert "registry_check" not in [d.name for d in case.deadlines]


def test_restore_mismatch_asks_for_clarification_naming_the_fields(
    eng: Engine, registries: InMemoryRegistries
) -> None:
    data = person("restore", 2)
    registries.add_application_person(data)
    snils = data["applicant"]["snils"]  # type: ignore[index]
    registries.add_person(snils, "Петрова Мария Петровна", "1990-01-01")
    case_id = _taken(eng, "restore", data)
    eng.fire_due_timers()
    case = eng.get_case(case_id)
    assert case.state == "needs_clarification"
    comment = eng.history(case_id)[-1].comment or ""
    assert "full_name" in comment
    assert "birth_date" in comment
    assert "full_name" in eng.case_events(case_id)[-1].text


def test_operator_take_leaves_the_case_to_the_operator(
    eng: Engine, registries: InMemoryRegistries
) -> None:
    case_id = eng.open_case("restore", person("restore", 3), PORTAL).id
    eng.fire(case_id, "take", "operator:ivanova")
    eng.fire_due_timers()
    assert eng.get_case(case_id).state == "in_review"
    assert registries.calls == 0


def test_child_link_inactive_policy_is_rejected(
    eng: Engine, registries: InMemoryRegistries
) -> None:
    data = person("child_link", 4)
    registries.add_application_person(data, policy_status="suspended")
    case_id = _taken(eng, "child_link", data)
    eng.fire_due_timers()
    last = eng.history(case_id)[-1]
    assert (last.to_state, last.reason) == ("rejected", "policy_inactive")


def test_child_link_linked_elsewhere_is_rejected(
    eng: Engine, registries: InMemoryRegistries
) -> None:
    data = person("child_link", 5)
    registries.add_application_person(data)
    registries.links[data["child"]["snils"].replace("-", "").replace(" ", "")] = "00000000000"  # type: ignore[index]
    case_id = _taken(eng, "child_link", data)
    eng.fire_due_timers()
    last = eng.history(case_id)[-1]
    assert (last.to_state, last.reason) == ("rejected", "snils_linked_elsewhere")


def test_child_link_match_approves_and_a_second_parent_is_refused(
    eng: Engine, registries: InMemoryRegistries
) -> None:
    data = person("child_link", 6)
    registries.add_application_person(data)
    case_id = _taken(eng, "child_link", data)
    eng.fire_due_timers()
    assert eng.get_case(case_id).state == "approved"
    other_parent = person("child_link", 7)
    other_parent["child"] = data["child"]
    with pytest.raises(InvalidInput) as info:
        eng.open_case("child_link", other_parent, PORTAL)
    assert info.value.reason == "snils_linked_elsewhere"
    assert "Социальный фонд" in (info.value.advice or "")


def test_a_registry_that_is_down_is_retried_with_backoff_then_escalated(
    eng: Engine, registries: InMemoryRegistries, clock: ManualClock
) -> None:
    data = person("restore", 8)
    registries.add_application_person(data)
    registries.down.add("foms")
    case_id = _taken(eng, "restore", data)
    eng.fire_due_timers()
    retries = [e for e in eng.history(case_id) if e.trigger == "retry_check"]
    assert len(retries) == 1
    assert "попытка 1 из 5" in (retries[0].comment or "")
    due = {d.name: d.due_at for d in eng.get_case(case_id).deadlines}["registry_check"]
    assert due == T0 + timedelta(minutes=1)
    # nothing is lost while the registry stays down: 1 + 2 + 4 + 8 minutes of backoff
    clock.advance(minutes=30)
    eng.fire_due_timers()
    history = eng.history(case_id)
    assert [e.trigger for e in history].count("retry_check") == 4
    assert history[-1].trigger == "escalate"
    assert [e.at - T0 for e in history if e.trigger in ("retry_check", "escalate")] == [
        timedelta(minutes=m) for m in (0, 1, 3, 7, 15)
    ]
    case = eng.get_case(case_id)
    assert case.state == "in_review"
    assert "escalated" in case.flags
    assert eng.case_events(case_id)[-1].audience == "operators"


def test_a_registry_back_up_before_the_limit_lets_the_check_pass(
    eng: Engine, registries: InMemoryRegistries, clock: ManualClock
) -> None:
    data = person("restore", 9)
    registries.add_application_person(data)
    registries.down.add("foms")
    case_id = _taken(eng, "restore", data)
    eng.fire_due_timers()
    registries.down.clear()
    clock.advance(minutes=1)
    eng.fire_due_timers()
    assert eng.get_case(case_id).state == "approved"


def test_outbox_is_read_in_order_and_acknowledged_once(eng: Engine) -> None:
    case_id = eng.open_case("restore", person("restore", 10), PORTAL).id
    eng.fire(case_id, "take", "operator:ivanova")
    pending = eng.pending_events()
    assert [e.kind for e in pending] == ["receipt", "taken"]
    assert len({e.event_id for e in pending}) == 2
    assert "получено" in pending[0].text
    assert eng.ack_events([pending[0].event_id], "system:portal-relay") == 1
    assert eng.ack_events([pending[0].event_id], "system:portal-relay") == 0
    assert [e.kind for e in eng.pending_events()] == ["taken"]
    with pytest.raises(NotPermitted):
        eng.ack_events([pending[1].event_id], "auditor:kozlova")
