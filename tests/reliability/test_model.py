"""Guarantee 4: the engine behaves as a small reference model of each definition says.

A Hypothesis ``RuleBasedStateMachine`` per application type drives the real Engine on a real
database (SQLite; PostgreSQL too with OMSFLOW_LONG_TESTS=1) with random triggers, actors of
every role, reasons, comments, data changes and clock jumps followed by ``fire_due_timers``.
The reference model is built here from the definition's YAML alone (states, transitions,
roles, requirements, deadlines); only the named guard functions are borrowed from the engine's
registry, because a definition refers to them by name. After every step: the state, the
triggers each role may fire, the armed deadlines, log length == version, ``verify()`` empty,
terminal cases without armed deadlines, and a refused trigger writes nothing.

Deadlines that run an automatic registry check (``check:``) have their own retry logic, which
this model does not reproduce: they are left out of the deadline comparison, and the steps
their timers take are only checked to be legal for ``system`` in the modelled state.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, rule

from engine.api import Engine
from engine.errors import InvalidInput, NotPermitted
from engine.machines.loader import default_definitions_dir
from engine.machines.registry import GUARDS, StepContext
from engine.testing import ManualClock, person
from tests.conftest import START
from tests.reliability.conftest import LONG, TABLES, record_figures

ROLES = ("portal", "operator", "supervisor", "system", "auditor")
ACTORS = {r: f"{r}:model" for r in ROLES}
DEFINITIONS = {
    d["type"]: d
    for d in (
        yaml.safe_load(p.read_text(encoding="utf-8"))
        for p in sorted(Path(default_definitions_dir()).glob("*.yaml"))
    )
}
EXAMPLES = 15 if LONG else 8
STEPS = 40 if LONG else 25
_counter = itertools.count(1)
_stats = {"runs": 0, "steps": 0, "accepted": 0, "refused": 0, "timer_steps": 0}


@dataclass
class Spec:
    """A deadline as the YAML says: its name, trigger, the states it lives in, its guards."""

    name: str
    trigger: str
    live: tuple[str, ...]
    when: tuple[str, ...]
    checked: bool


class Reference:
    """One definition, read from its YAML: what each trigger may do and what it arms."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw
        self.states: dict[str, dict[str, Any]] = raw["states"]
        self.transitions: dict[tuple[str, str], dict[str, Any]] = {}
        for tr in raw["transitions"]:
            sources = tr["source"] if isinstance(tr["source"], list) else [tr["source"]]
            for src in sources:
                self.transitions[(tr["trigger"], src)] = tr
        self.specs: dict[str, Spec] = {}
        for state, body in self.states.items():
            for d in body.get("deadlines", []):
                self.specs[d["name"]] = self._spec(d, state)
        for tr in raw["transitions"]:
            for d in tr.get("arms", []):
                sources = tr["source"] if isinstance(tr["source"], list) else [tr["source"]]
                for src in sources:
                    self.specs[d["name"]] = self._spec(d, tr["dest"] or src)
        self.triggers = sorted({t for t, _ in self.transitions})

    @staticmethod
    def _spec(d: dict[str, Any], armed_for: str) -> Spec:
        return Spec(
            d["name"],
            d["trigger"],
            tuple(d.get("while_in") or (armed_for,)),
            tuple(d.get("when", ())),
            bool(d.get("check")),
        )

    def roles(self, tr: dict[str, Any]) -> set[str]:
        roles = set(tr["roles"])
        if "operator" in roles:
            roles.add("supervisor")  # DOMAIN.md: a supervisor may do what an operator does
        return roles

    def terminal(self, state: str) -> bool:
        return bool(self.states[state].get("terminal"))


@dataclass
class ModelCase:
    id: str
    state: str
    version: int
    data: dict[str, Any]
    armed: set[str] = field(default_factory=set)
    flags: set[str] = field(default_factory=set)


def _ctx(case: ModelCase, trigger: str, role: str, **kw: Any) -> StepContext:
    return StepContext(
        case_type="",
        state=case.state,
        data=case.data,
        flags=frozenset(case.flags),
        trigger=trigger,
        actor_role=role,
        **kw,
    )


def _guards_pass(names: Any, ctx: StepContext) -> bool:
    return all(GUARDS[g](ctx) for g in names)


def make_machine(type_: str, backend: str) -> type[RuleBasedStateMachine]:
    ref = Reference(DEFINITIONS[type_])
    template: dict[str, Path] = {}

    class CaseMachine(RuleBasedStateMachine):
        cases = Bundle("cases")

        def __init__(self) -> None:
            super().__init__()
            self.tmp = Path(tempfile.mkdtemp(prefix="omsflow-model-"))
            self.clock = ManualClock(START)
            self.schema: str | None = None
            if backend == "sqlite":
                if "db" not in template:
                    # one migrated database copied per run: alembic once, not per example
                    base = Path(tempfile.mkdtemp(prefix="omsflow-template-")) / "t.db"
                    Engine(f"sqlite:///{base}").close()
                    template["db"] = base
                shutil.copy(template["db"], self.tmp / "m.db")
                self.url = f"sqlite:///{self.tmp / 'm.db'}"
            else:
                from tests.conftest import PG_URL, _pg_schema_url

                assert PG_URL
                self.schema = f"m_{uuid.uuid4().hex[:12]}"
                self.admin = sa.create_engine(
                    PG_URL.replace("postgresql://", "postgresql+psycopg://", 1)
                )
                with self.admin.begin() as conn:
                    conn.exec_driver_sql(f"CREATE SCHEMA {self.schema}")
                self.url = _pg_schema_url(self.schema)
            self.eng = Engine(self.url, clock=self.clock)
            self.model: dict[str, ModelCase] = {}
            _stats["runs"] += 1

        def teardown(self) -> None:
            self.eng.close()
            shutil.rmtree(self.tmp, ignore_errors=True)
            if self.schema:
                with self.admin.begin() as conn:
                    conn.exec_driver_sql(f"DROP SCHEMA {self.schema} CASCADE")
                self.admin.dispose()

        # ---- the reference model's transitions ------------------------------------------

        def _enter(self, case: ModelCase, tr: dict[str, Any], role: str, fired: str | None) -> None:
            """Apply an accepted step's effect on state, flags and armed deadlines."""
            dest = tr["dest"] or case.state
            ctx = _ctx(case, tr["trigger"], role)
            case.armed.discard(fired or "")
            fresh = list(tr.get("arms", []))
            if tr["dest"] is not None:
                reentry = {d["name"] for d in self.states(dest)} if dest == case.state else set()
                for name in sorted(case.armed):
                    spec = ref.specs[name]
                    if ref.terminal(dest) or dest not in spec.live or name in reentry:
                        case.armed.discard(name)
                fresh += [d for d in self.states(dest) if d["name"] not in case.armed]
            for d in fresh:
                if _guards_pass(d.get("when", ()), ctx) and not d.get("check"):
                    case.armed.add(d["name"])
            case.flags |= set(tr.get("sets_flags", ()))
            case.flags -= set(tr.get("clears_flags", ()))
            case.state = dest
            case.version += 1

        @staticmethod
        def states(state: str) -> list[dict[str, Any]]:
            return list(ref.states[state].get("deadlines", []))

        def _predict(
            self,
            case: ModelCase,
            trigger: str,
            role: str,
            reason: str | None,
            comment: str | None,
            changes: dict[str, Any] | None,
            valid_changes: bool,
        ) -> bool | None:
            """True: must be accepted; False: must be refused; None: the model cannot tell."""
            tr = ref.transitions.get((trigger, case.state))
            if tr is None or role not in ref.roles(tr):
                return False
            requires = set(tr.get("requires", ()))
            allowed_reasons = set(tr.get("reasons", ()))
            if "reason" in requires and not reason:
                return False
            if reason and reason not in allowed_reasons:
                return False
            if "comment" in requires and not (comment and comment.strip()):
                return False
            if changes and not tr.get("accepts_data"):
                return False
            if "data" in requires and not changes:
                return False
            if changes and not valid_changes:
                return False
            for v in tr.get("validators", ()):
                if v == "reply_not_empty" and not (changes or (comment and comment.strip())):
                    return False
                if v == "payment_confirmed" and not (
                    changes and (changes.get("payment") or {}).get("paid") is True
                ):
                    return False
                if v not in ("reply_not_empty", "payment_confirmed"):
                    return None
            data = dict(case.data)
            if changes and "payment" in changes:
                data["payment"] = {**(data.get("payment") or {}), **changes["payment"]}
            ctx = StepContext("", case.state, data, frozenset(case.flags), trigger, role)
            return _guards_pass(tr.get("guards", ()), ctx)

        def _apply_timer_entries(self, case: ModelCase, entries: list[Any]) -> None:
            for e in entries:
                assert e.actor == "system:timer", f"unexpected writer {e.actor} of {e.trigger}"
                assert e.seq == case.version + 1
                tr = ref.transitions.get((e.trigger, case.state))
                assert tr is not None, (e.trigger, case.state)
                assert "system" in ref.roles(tr), (e.trigger, case.state)
                name = (e.meta or {}).get("deadline")
                spec = ref.specs.get(name or "")
                assert spec is not None, f"timer entry without a known deadline: {e}"
                if not spec.checked:
                    assert name in case.armed, f"{name} fired but the model had it unarmed"
                    assert spec.trigger == e.trigger
                self._enter(case, tr, "system", name)
                assert case.state == e.to_state
                _stats["timer_steps"] += 1

        # ---- rules ----------------------------------------------------------------------

        @initialize(target=cases)
        def first_case(self) -> str:
            return self._open()

        @rule(target=cases)
        def open_case(self) -> str:
            return self._open()

        def _open(self) -> str:
            data = person(type_, next(_counter))
            view = self.eng.open_case(type_, data, "portal:gosuslugi")
            case = ModelCase(view.id, ref.raw["initial"], 1, data)
            ctx = _ctx(case, "open", "portal")
            for d in self.states(case.state):
                if _guards_pass(d.get("when", ()), ctx) and not d.get("check"):
                    case.armed.add(d["name"])
            self.model[view.id] = case
            _stats["steps"] += 1
            return view.id

        @rule(
            case_id=cases,
            trigger=st.sampled_from([*ref.triggers, "no_such_trigger"]),
            role=st.sampled_from(ROLES),
            reason=st.sampled_from(
                [None, "data_mismatch", "missing_documents", "no_reply", "bogus"]
            ),
            comment=st.sampled_from([None, "", "  ", "уточните адрес", "'; DROP TABLE cases; --"]),
            change=st.sampled_from(["none", "phone", "bad_phone", "pay"]),
        )
        def fire(
            self,
            case_id: str,
            trigger: str,
            role: str,
            reason: str | None,
            comment: str | None,
            change: str,
        ) -> None:
            self._fire(case_id, trigger, role, reason, comment, change)

        @rule(case_id=cases, data=st.data())
        def fire_plausible(self, case_id: str, data: st.DataObject) -> None:
            """Mostly what a real operator would send: a trigger of the state, well formed."""
            case = self.model[case_id]
            here = [tr for (t, src), tr in ref.transitions.items() if src == case.state]
            if not here:
                return
            tr = data.draw(st.sampled_from(here))
            roles = sorted(ref.roles(tr))
            # one draw in five tries any role: refusals by role stay in the mix
            anyone = data.draw(st.integers(0, 4)) == 0
            role = data.draw(st.sampled_from(ROLES if anyone else roles))
            reasons = list(tr.get("reasons", ()))
            reason = data.draw(st.sampled_from(reasons)) if reasons else None
            comment = (
                "комментарий"
                if data.draw(st.booleans()) or "comment" in tr.get("requires", ())
                else None
            )
            change = "none"
            if tr.get("accepts_data"):
                change = (
                    "pay"
                    if tr["trigger"] == "pay"
                    else data.draw(st.sampled_from(["none", "phone", "phone", "bad_phone"]))
                )
            self._fire(case_id, tr["trigger"], role, reason, comment, change)

        def _fire(
            self,
            case_id: str,
            trigger: str,
            role: str,
            reason: str | None,
            comment: str | None,
            change: str,
        ) -> None:
            case = self.model[case_id]
            changes: dict[str, Any] | None = {
                "none": None,
                "phone": {"applicant": {"phone": f"+7 912 000-00-{case.version % 100:02d}"}},
                "bad_phone": {"applicant": {"phone": "not a phone"}},
                "pay": {"payment": {"paid": True}},
            }[change]
            valid = change != "bad_phone" and not (change == "pay" and type_ != "paper_duplicate")
            expected = self._predict(case, trigger, role, reason, comment, changes, valid)
            before = self._counts()
            _stats["steps"] += 1
            try:
                outcome = self.eng.fire(
                    case_id, trigger, ACTORS[role], reason=reason, comment=comment, data=changes
                )
            except (NotPermitted, InvalidInput):
                _stats["refused"] += 1
                entries = self.eng.history(case_id)[case.version :]
                self._apply_timer_entries(case, entries)
                if not entries:
                    assert self._counts() == before, "a refused trigger wrote rows"
                assert expected is not True, f"{role} {trigger} in {case.state} was refused"
                return
            _stats["accepted"] += 1
            entries = self.eng.history(case_id)[case.version :]
            self._apply_timer_entries(case, entries[:-1])
            expected = self._predict(case, trigger, role, reason, comment, changes, valid)
            assert expected is not False, f"{role} {trigger} in {case.state} was accepted"
            tr = ref.transitions[(trigger, case.state)]
            self._enter(case, tr, role, None)
            assert outcome.entry.seq == case.version
            assert outcome.case.state == case.state

        @rule(hours=st.sampled_from([1, 5, 20, 26, 50, 75, 24 * 8, 24 * 35]))
        def time_passes(self, hours: int) -> None:
            now = self.clock.advance(hours=hours)
            self.eng.fire_due_timers()
            for case_id, case in self.model.items():
                entries = self.eng.history(case_id)[case.version :]
                self._apply_timer_entries(case, entries)
            due = [d for d in self.eng.timers(due_before=now, limit=1000) if d.status == "armed"]
            assert due == [], "fire_due_timers left due timers armed"

        # ---- invariants -----------------------------------------------------------------

        def _counts(self) -> dict[str, int]:
            with self.eng.store.read() as tx:
                return {
                    t: int(tx.conn.execute(sa.text(f"SELECT COUNT(*) FROM {t}")).scalar_one())
                    for t in TABLES
                }

        @invariant()
        def engine_agrees_with_the_model(self) -> None:
            assert self.eng.verify() == {}
            for case_id, case in self.model.items():
                history = self.eng.history(case_id)
                view = self.eng.get_case(case_id)
                assert len(history) == view.version == case.version
                assert view.state == case.state
                armed = {
                    d.name
                    for d in view.deadlines
                    if d.status in ("armed", "paused") and not ref.specs[d.name].checked
                }
                assert armed == case.armed, (case.state, armed, case.armed)
                if ref.terminal(case.state):
                    assert not [d for d in view.deadlines if d.status in ("armed", "paused")]
                for role in ROLES:
                    got = set(self.eng.get_case(case_id, ACTORS[role]).allowed_triggers)
                    want = {
                        t
                        for (t, src), tr in ref.transitions.items()
                        if src == case.state
                        and role in ref.roles(tr)
                        and _guards_pass(tr.get("guards", ()), _ctx(case, t, role))
                    }
                    assert got == want, (role, case.state, got, want)

    CaseMachine.__name__ = f"{type_}_{backend}"
    CaseMachine.TestCase.settings = settings(
        max_examples=EXAMPLES,
        stateful_step_count=STEPS,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        database=None,
    )
    return CaseMachine


@pytest.mark.timeout(1200)
@pytest.mark.parametrize("type_", sorted(DEFINITIONS))
def test_engine_matches_the_reference_model(type_: str) -> None:
    before = dict(_stats)
    make_machine(type_, "sqlite").TestCase().runTest()
    record_figures(
        f"test_engine_matches_the_reference_model[{type_}]",
        {k: _stats[k] - before[k] for k in _stats},
    )


@pytest.mark.pg
@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.skipif(not LONG, reason="long variant: set OMSFLOW_LONG_TESTS=1")
@pytest.mark.parametrize("type_", sorted(DEFINITIONS))
def test_engine_matches_the_reference_model_on_postgresql(type_: str) -> None:
    if not os.environ.get("OMSFLOW_TEST_PG_URL"):
        pytest.skip("OMSFLOW_TEST_PG_URL is not set")
    before = dict(_stats)
    make_machine(type_, "postgresql").TestCase().runTest()
    record_figures(
        f"test_engine_matches_the_reference_model_on_postgresql[{type_}]",
        {k: _stats[k] - before[k] for k in _stats},
    )
