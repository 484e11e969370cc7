"""Every definition's happy path and rejection path through the real engine and database."""

from __future__ import annotations

from typing import Any

import pytest

from engine.api import Engine
from engine.applications import example_application
from engine.errors import InvalidInput, NotPermitted

PORTAL = "portal:gosuslugi"
OP = "operator:ivanova"
SYSTEM = "system:foms"


def _open(eng: Engine, type_: str, **patch: Any) -> str:
    data = example_application(type_)
    data.update(patch)
    return eng.open_case(type_, data, PORTAL).id


def _walk(eng: Engine, case_id: str, steps: list[tuple[str, str, dict[str, Any]]]) -> None:
    for trigger, actor, kwargs in steps:
        before = eng.get_case(case_id, actor)
        assert trigger in before.allowed_triggers, (trigger, before.state)
        eng.fire(case_id, trigger, actor, **kwargs)


def _assert_consistent(eng: Engine, case_id: str) -> None:
    case = eng.get_case(case_id)
    history = eng.history(case_id)
    assert case.version == len(history)
    assert [e.seq for e in history] == list(range(1, len(history) + 1))
    assert history[-1].to_state == case.state
    assert eng.verify() == {}
    if case.terminal:
        assert case.deadlines == ()


HAPPY: dict[str, list[tuple[str, str, dict[str, Any]]]] = {
    "restore": [
        ("take", OP, {}),
        ("approve", OP, {}),
        ("issue_policy", SYSTEM, {}),
    ],
    "new_issue": [
        ("take", OP, {}),
        ("approve", OP, {}),
        ("produced", OP, {}),
        ("hand_over", OP, {}),
    ],
    "child_link": [
        ("take", SYSTEM, {}),
        ("approve", SYSTEM, {}),
    ],
    "replacement": [
        ("take", OP, {}),
        ("approve", OP, {}),
        ("issue_policy", SYSTEM, {}),
    ],
    "paper_duplicate": [
        ("take", OP, {}),
        ("approve", OP, {}),
    ],
}
FINAL = {
    "restore": "issued",
    "new_issue": "issued",
    "child_link": "approved",
    "replacement": "issued",
    "paper_duplicate": "in_production",
}


@pytest.mark.parametrize("type_", sorted(HAPPY))
def test_happy_path(eng: Engine, type_: str) -> None:
    case_id = _open(eng, type_)
    opened = eng.get_case(case_id, OP)
    assert opened.state == "pending"
    assert opened.label == "Ожидание обработки"
    assert opened.version == 1
    _walk(eng, case_id, HAPPY[type_])
    assert eng.get_case(case_id).state == FINAL[type_]
    _assert_consistent(eng, case_id)
    kinds = [e.kind for e in eng.case_events(case_id)]
    assert kinds[0] == "receipt"


@pytest.mark.parametrize("type_", sorted(HAPPY))
def test_rejection_then_resubmission_keeps_the_history(eng: Engine, type_: str) -> None:
    case_id = _open(eng, type_)
    take_as = SYSTEM if type_ == "child_link" else OP
    eng.fire(case_id, "take", take_as)
    with pytest.raises(InvalidInput) as info:
        eng.fire(case_id, "reject", OP)
    assert info.value.errors[0].field == "reason"
    assert eng.get_case(case_id).version == 2

    eng.fire(case_id, "reject", OP, reason="data_mismatch", comment="СНИЛС не совпадает")
    rejected = eng.get_case(case_id, PORTAL)
    assert rejected.state == "rejected"
    assert rejected.label == "Отклонено"
    assert rejected.allowed_triggers == ("resubmit",)
    event = eng.case_events(case_id)[-1]
    assert event.kind == "rejected"
    assert "data_mismatch" in event.text

    eng.fire(case_id, "resubmit", PORTAL)
    case = eng.get_case(case_id)
    assert case.state == "pending"
    history = eng.history(case_id)
    assert [e.trigger for e in history] == ["open", "take", "reject", "resubmit"]
    assert history[2].reason == "data_mismatch"
    _assert_consistent(eng, case_id)


def test_withdraw_before_the_decision_only(eng: Engine) -> None:
    case_id = _open(eng, "restore")
    eng.fire(case_id, "take", OP)
    eng.fire(case_id, "withdraw", PORTAL)
    case = eng.get_case(case_id, PORTAL)
    assert case.state == "withdrawn"
    assert case.terminal
    assert case.allowed_triggers == ()
    assert case.deadlines == ()

    other = _open(eng, "replacement")
    eng.fire(other, "take", OP)
    eng.fire(other, "approve", OP)
    with pytest.raises(NotPermitted) as info:
        eng.fire(other, "withdraw", PORTAL)
    assert info.value.state == "approved"


def test_roles_are_enforced_and_the_allowed_triggers_listed(eng: Engine) -> None:
    case_id = _open(eng, "restore")
    with pytest.raises(NotPermitted) as info:
        eng.fire(case_id, "take", PORTAL)
    assert info.value.role == "portal"
    assert info.value.allowed == ("withdraw",)
    with pytest.raises(NotPermitted) as info:
        eng.fire(case_id, "approve", OP)
    assert info.value.allowed == ("take",)
    with pytest.raises(NotPermitted):
        eng.fire(case_id, "take", "auditor:petrov")
    # a supervisor may do what an operator does
    eng.fire(case_id, "take", "supervisor:sidorov")
    assert eng.history(case_id)[-1].actor == "supervisor:sidorov"


def test_paper_duplicate_with_a_fee_waits_for_payment_and_goes_by_post(eng: Engine) -> None:
    data = example_application("paper_duplicate")
    data["payment"] = {"amount": 300, "paid": False}
    data["delivery"] = "post"
    data.setdefault("postal_address", "г. Москва, ул. Тверская, д. 1, кв. 1")
    case_id = eng.open_case("paper_duplicate", data, PORTAL).id
    eng.fire(case_id, "take", OP)
    with pytest.raises(NotPermitted) as info:
        eng.fire(case_id, "approve", OP)
    assert info.value.guard == "fee_settled"
    assert "request_payment" in info.value.allowed
    eng.fire(case_id, "request_payment", OP)
    with pytest.raises(InvalidInput) as bad:
        eng.fire(case_id, "pay", PORTAL, data={"payment": {"amount": 300, "paid": False}})
    assert bad.value.errors[0].rule == "payment_confirmed"
    eng.fire(case_id, "pay", PORTAL, data={"payment": {"amount": 300, "paid": True}})
    assert eng.get_case(case_id).state == "in_production"
    assert eng.get_case(case_id, OP).allowed_triggers == ("dispatch",)
    eng.fire(case_id, "dispatch", OP)
    eng.fire(case_id, "deliver", SYSTEM)
    assert eng.get_case(case_id).state == "delivered"
    pay = eng.history(case_id)[3]
    assert pay.changes == {"payment.paid": {"before": False, "after": True}}
    _assert_consistent(eng, case_id)


def test_data_is_masked_unless_revealed_and_reveal_is_logged(eng: Engine) -> None:
    data = example_application("restore")
    case_id = eng.open_case("restore", data, PORTAL).id
    shown = eng.get_case(case_id)
    raw_snils = data["applicant"]["snils"]
    digits = "".join(ch for ch in raw_snils if ch.isdigit())
    assert digits not in repr(shown.data)
    revealed = eng.get_case(case_id, "operator:ivanova", reveal=True)
    assert digits in repr(revealed.data)
    with eng.store.read() as tx:
        access = tx.access_entries(case_id)
    assert [(a["actor"], a["what"]) for a in access] == [("operator:ivanova", "reveal")]
