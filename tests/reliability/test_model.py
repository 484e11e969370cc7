"""Guarantee 4: the engine behaves as a small reference model of each definition says.

A Hypothesis ``RuleBasedStateMachine`` per application type drives the real Engine on a real
database (SQLite; PostgreSQL too with OMSFLOW_LONG_TESTS=1) with random triggers, actors of
every role, reasons, comments, data changes and clock jumps followed by ``fire_due_timers``.
The reference model is built here from the definition's YAML alone (states, transitions,
roles, requirements, deadlines with ``while_in``/``when``/``arms``/``check``); only the named
guard functions are borrowed from the engine's registry, because a definition refers to them by
name. After every step: the state, the triggers each role may fire, every armed deadline (the
list of names, duplicates included, no deadline left out) and the due instant of each armed
registry-check deadline, log length == version, ``verify()`` empty, terminal cases without
armed deadlines, a refused trigger writes nothing, a case's log in time order, and no timer
left armed past its due instant by a step on its case or by ``fire_due_timers``.

Registry checks (deadlines with ``check:``) run for real: the Engine under test is wired to an
``InMemoryRegistries``. Each case is opened with a registry scenario (what the FOMS registry,
the Social Fund and the insurers' registry hold about it), which rules may change later, and
rules take registries down and bring them back; clock jumps include minutes, so retries are
seen half-way. The model predicts every check step itself, with no help from
``engine.machines.checks``: with every registry the check consults answering, the decision the
scenario's table names (approve; request_info naming exactly the mismatching fields; reject
with its reason code), which must also be legal for ``system`` in the modelled state; with one
of them down, attempt n of ``attempts`` (failures counted since the deadline was armed) fires
``trigger`` and re-arms the deadline at its previous due instant + ``backoff_minutes`` *
2**(n-1), and attempt ``attempts`` fires ``on_exhausted`` and closes it. Every check step is
written by ``system:<check>`` at the deadline's modelled due instant.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import tempfile
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, rule

from engine.api import Engine
from engine.applications.fields import mod10_check_digit
from engine.errors import InvalidInput, NotPermitted
from engine.machines.loader import default_definitions_dir
from engine.machines.registry import GUARDS, StepContext
from engine.testing import InMemoryRegistries, ManualClock, make_snils, person
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
_stats = {
    "runs": 0,
    "steps": 0,
    "accepted": 0,
    "refused": 0,
    "timer_steps": 0,
    "check_decisions": 0,
    "check_retries": 0,
    "check_escalations": 0,
}
UNIT = {"minutes": timedelta(minutes=1), "hours": timedelta(hours=1)}
"""The units whose due instant the model computes itself (plain durations, no calendar)."""


# ---- the registries, as the model sees them -----------------------------------------------


@dataclass(frozen=True)
class Decision:
    """The step a check must take when its registries answer."""

    trigger: str
    reason: str | None = None
    fields: tuple[str, ...] = ()
    """The fields a request_info names as not matching the registry (exactly these)."""


APPROVE = Decision("approve")
INACTIVE = Decision("reject", "policy_inactive")


def _clarify(*fields: str) -> Decision:
    return Decision("request_info", fields=fields)


# What each check consults (README: the FOMS registry for person and policy status, the Social
# Fund for the SNILS check and links, the insurers' registry) and, per scenario, what the
# registries hold about the case and what the check must decide. The facts are seeded into the
# fake by ``_seed``; the decisions are the domain's, written here, not taken from the engine.
CHECK_PORTS: dict[str, frozenset[str]] = {
    "identity_match": frozenset({"foms"}),
    "child_policy_verification": frozenset({"foms", "social_fund"}),
    "insurer_known": frozenset({"insurers"}),
}
SCENARIOS: dict[str, dict[str, tuple[dict[str, Any], Decision]]] = {
    # restore: the applicant must be in the FOMS registry with the same name (any case) and
    # birth date; a registered policy that is neither active nor unknown is refused.
    "identity_match": {
        "registered": ({"person": "same"}, APPROVE),
        "registered_upper_case": ({"person": "upper"}, APPROVE),
        "policy_active": ({"person": "same", "policy": "active"}, APPROVE),
        "policy_unknown": ({"person": "same", "policy": None}, APPROVE),
        "policy_suspended": ({"person": "same", "policy": "suspended"}, INACTIVE),
        "policy_cancelled": ({"person": "same", "policy": "cancelled"}, INACTIVE),
        "unregistered": ({}, _clarify("snils")),
        "name_differs": ({"person": "name"}, _clarify("full_name")),
        "birth_differs": ({"person": "birth"}, _clarify("birth_date")),
        "both_differ": ({"person": "both"}, _clarify("full_name", "birth_date")),
        "differs_policy_suspended": (
            {"person": "name", "policy": "suspended"},
            _clarify("full_name"),
        ),
    },
    # child_link: the child's SNILS must match the Social Fund and the policy be known (else
    # clarify both), then active, then not linked to another parent's account.
    "child_policy_verification": {
        "verified": ({"child": "same", "status": "active"}, APPROVE),
        "linked_here": ({"child": "same", "status": "active", "link": "own"}, APPROVE),
        "linked_elsewhere": (
            {"child": "same", "status": "active", "link": "other"},
            Decision("reject", "snils_linked_elsewhere"),
        ),
        "policy_suspended": ({"child": "same", "status": "suspended"}, INACTIVE),
        "cancelled_and_linked_elsewhere": (
            {"child": "same", "status": "cancelled", "link": "other"},
            INACTIVE,
        ),
        "policy_unknown": ({"child": "same"}, _clarify("policy_number")),
        "child_differs": ({"child": "birth", "status": "active"}, _clarify("child.snils")),
        "child_unregistered": ({"status": "active"}, _clarify("child.snils")),
        "child_differs_suspended": (
            {"child": "birth", "status": "suspended"},
            _clarify("child.snils"),
        ),
        "nothing_known": ({}, _clarify("child.snils", "policy_number")),
    },
    # replacement with a change of insurer: the new insurer must be in the insurers' registry.
    "insurer_known": {
        "insurer_known": ({"insurer": True}, APPROVE),
        "insurer_unknown": ({}, _clarify("new_insurer")),
    },
}
FIELD_NAMES = {
    check: sorted({f for _, d in table.values() for f in d.fields})
    for check, table in SCENARIOS.items()
}


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def _enp(n: int) -> str:
    """The ``n``-th valid unified policy number: each child_link case has its own."""
    payload = f"77{n:013d}"
    return payload + str(mod10_check_digit(payload))


@dataclass
class Spec:
    """A deadline as the YAML says: its name, trigger, the states it lives in, its guards."""

    name: str
    trigger: str
    live: tuple[str, ...]
    when: tuple[str, ...]
    amount: int
    unit: str
    check: str | None
    attempts: int
    backoff_minutes: float
    on_exhausted: str | None


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
        self.checks = sorted({s.check for s in self.specs.values() if s.check})
        for s in self.specs.values():
            if s.check:
                assert s.check in SCENARIOS, f"no scenarios for the check {s.check!r}"
                assert s.unit in UNIT, f"{s.name}: the model times checks in minutes or hours"

    @staticmethod
    def _spec(d: dict[str, Any], armed_for: str) -> Spec:
        return Spec(
            d["name"],
            d["trigger"],
            tuple(d.get("while_in") or (armed_for,)),
            tuple(d.get("when", ())),
            int(d["amount"]),
            d["unit"],
            d.get("check"),
            # the defaults of the definition format (attempts 5, backoff 1 minute)
            int(d.get("attempts", 5)),
            float(d.get("backoff_minutes", 1.0)),
            d.get("on_exhausted"),
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
    n: int
    state: str
    version: int
    data: dict[str, Any]
    scenario: str | None
    armed: set[str] = field(default_factory=set)
    flags: set[str] = field(default_factory=set)
    due: dict[str, datetime] = field(default_factory=dict)
    """Due instants of the armed check deadlines."""
    failures: dict[str, int] = field(default_factory=dict)
    """Failed attempts of each armed check deadline since it was armed."""
    last_at: datetime | None = None


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
    scenario_names: list[str | None] = [*sorted(n for c in ref.checks for n in SCENARIOS[c])]
    scenario_names = scenario_names or [None]  # a type without checks: no scenario
    minutes = [1, 2, 4, 10] if ref.checks else []
    jumps = [*minutes, *(60 * h for h in (1, 5, 20, 26, 50, 75, 24 * 8, 24 * 35))]

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
            self.registries = InMemoryRegistries()
            self.down: frozenset[str] = frozenset()
            self.eng = Engine(self.url, clock=self.clock, registries=self.registries.ports())
            self.model: dict[str, ModelCase] = {}
            # numbers per run, not per process: the same steps must build the same data, or
            # Hypothesis cannot replay (and shrink) a run
            self.numbers = itertools.count(1)
            _stats["runs"] += 1

        def teardown(self) -> None:
            self.eng.close()
            shutil.rmtree(self.tmp, ignore_errors=True)
            if self.schema:
                with self.admin.begin() as conn:
                    conn.exec_driver_sql(f"DROP SCHEMA {self.schema} CASCADE")
                self.admin.dispose()

        # ---- the registries' contents ---------------------------------------------------

        def _seed(self, case: ModelCase) -> None:
            """Make the fake registries hold what the case's scenario says, and nothing else."""
            reg, data = self.registries, case.data
            applicant = data["applicant"]
            child = data.get("child") or {}
            policy = f"PN-{case.n}"  # the policy the FOMS registry records for the applicant
            for snils in (applicant.get("snils"), child.get("snils")):
                if snils:
                    reg.people.pop(_digits(snils), None)
                    reg.links.pop(_digits(snils), None)
            for number in (policy, data.get("policy_number")):
                reg.policies.pop(str(number), None)
            reg.insurer_codes.discard(str(data.get("new_insurer")))
            if case.scenario is None:
                return
            check = next(c for c in ref.checks if case.scenario in SCENARIOS[c])
            facts = SCENARIOS[check][case.scenario][0]
            record = facts.get("person")  # what the FOMS registry says of the applicant
            if record:
                name, other = applicant["full_name"], "Петрова Анна Ивановна"
                reg.add_person(
                    applicant["snils"],
                    {"upper": name.upper(), "name": other, "both": other}.get(record, name),
                    "1990-01-01" if record in ("birth", "both") else applicant["birth_date"],
                    policy_number=policy if "policy" in facts else None,
                    policy_status=facts.get("policy") or "active",
                )
                if "policy" in facts and facts["policy"] is None:
                    reg.policies.pop(policy)  # a policy number the registry has no status for
            if facts.get("child"):
                reg.add_person(
                    child["snils"],
                    child["full_name"],
                    "2018-01-01" if facts["child"] == "birth" else child["birth_date"],
                )
            if facts.get("status"):
                reg.policies[data["policy_number"]] = facts["status"]
            if facts.get("link"):
                own = data.get("parent_snils") or applicant["snils"]
                other = make_snils(10**6 + case.n)
                reg.links[_digits(child["snils"])] = _digits(
                    own if facts["link"] == "own" else other
                )
            if facts.get("insurer"):
                reg.insurer_codes.add(str(data["new_insurer"]))

        # ---- the reference model's transitions ------------------------------------------

        @staticmethod
        def _arm(case: ModelCase, d: dict[str, Any], at: datetime) -> None:
            name = d["name"]
            case.armed.add(name)
            spec = ref.specs[name]
            if spec.check:
                case.due[name] = at + spec.amount * UNIT[spec.unit]
                case.failures[name] = 0

        @staticmethod
        def _disarm(case: ModelCase, name: str) -> None:
            case.armed.discard(name)
            case.due.pop(name, None)
            case.failures.pop(name, None)

        def _enter(
            self, case: ModelCase, tr: dict[str, Any], role: str, fired: str | None, at: datetime
        ) -> None:
            """Apply an accepted step's effect on state, flags and armed deadlines."""
            dest = tr["dest"] or case.state
            ctx = _ctx(case, tr["trigger"], role)
            if fired:
                self._disarm(case, fired)
            fresh = list(tr.get("arms", []))
            if tr["dest"] is not None:
                reentry = {d["name"] for d in self.states(dest)} if dest == case.state else set()
                for name in sorted(case.armed):
                    spec = ref.specs[name]
                    if ref.terminal(dest) or dest not in spec.live or name in reentry:
                        self._disarm(case, name)
                fresh += [d for d in self.states(dest) if d["name"] not in case.armed]
            for d in fresh:
                if _guards_pass(d.get("when", ()), ctx):
                    self._arm(case, d, at)
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
                assert e.seq == case.version + 1
                name = (e.meta or {}).get("deadline")
                spec = ref.specs.get(name or "")
                assert spec is not None, f"timer entry without a known deadline: {e}"
                assert name in case.armed, f"{name} fired but the model had it unarmed"
                self._in_time_order(case, e)
                if spec.check:
                    self._apply_check(case, spec, e)
                else:
                    assert e.actor == "system:timer", f"unexpected writer {e.actor} of {e.trigger}"
                    assert spec.trigger == e.trigger
                    self._system_step(case, e, name)
                assert case.state == e.to_state
                _stats["timer_steps"] += 1

        def _system_step(self, case: ModelCase, e: Any, fired: str) -> None:
            tr = ref.transitions.get((e.trigger, case.state))
            assert tr is not None, (e.trigger, case.state)
            assert "system" in ref.roles(tr), (e.trigger, case.state)
            if e.reason is not None and tr.get("reason") != e.reason:
                assert e.reason in tr.get("reasons", ()), (e.trigger, e.reason)
            self._enter(case, tr, "system", fired, e.at)

        def _apply_check(self, case: ModelCase, spec: Spec, e: Any) -> None:
            """A check deadline's step: the decision, a retry, or the escalation."""
            assert spec.check is not None
            assert e.actor == f"system:{spec.check}", (e.actor, e.trigger)
            assert e.at == case.due[spec.name], ("check ran at", e.at, case.due[spec.name])
            retry_at: datetime | None = None
            if self.down & CHECK_PORTS[spec.check]:
                attempt = case.failures[spec.name] + 1
                if attempt >= spec.attempts:
                    want = Decision(spec.on_exhausted or spec.trigger)
                    _stats["check_escalations"] += 1
                else:
                    want = Decision(spec.trigger)
                    backoff = spec.backoff_minutes * 2 ** (attempt - 1)
                    retry_at = e.at + timedelta(minutes=backoff)
                    _stats["check_retries"] += 1
                assert f"попытка {attempt} из {spec.attempts}" in (e.comment or ""), e.comment
            else:
                assert case.scenario is not None
                want = SCENARIOS[spec.check][case.scenario][1]
                attempt = 0
                _stats["check_decisions"] += 1
                named = {f for f in FIELD_NAMES[spec.check] if f in (e.comment or "")}
                assert named == set(want.fields), (case.scenario, e.comment, want)
            got = (e.trigger, e.reason)
            assert got == (want.trigger, want.reason), (case.scenario, self.down, got, want)
            self._system_step(case, e, spec.name)
            if retry_at is not None:
                case.armed.add(spec.name)
                case.due[spec.name] = retry_at
                case.failures[spec.name] = attempt

        @staticmethod
        def _in_time_order(case: ModelCase, e: Any) -> None:
            # A timer steps its case at its due instant, so a late worker writes the history
            # a punctual one would have: in time order.
            if case.last_at is not None:
                assert e.at >= case.last_at, (
                    f"entry {e.seq} ({e.trigger} by {e.actor}) at {e.at.isoformat()} is "
                    f"before entry {e.seq - 1} at {case.last_at.isoformat()}"
                )
            case.last_at = e.at

        def _caught_up(self, case_ids: list[str]) -> None:
            """No timer of these cases is left armed before now (the model's check dues too)."""
            now = self.clock.now()
            for case_id in case_ids:
                late = [
                    (d.name, d.due_at)
                    for d in self.eng.get_case(case_id).deadlines
                    if d.status == "armed" and d.due_at is not None and d.due_at < now
                ]
                assert late == [], f"timers left armed past their due instant: {late}"
                model_late = {n: due for n, due in self.model[case_id].due.items() if due < now}
                assert model_late == {}, f"the model expected these checks run: {model_late}"

        # ---- rules ----------------------------------------------------------------------

        @initialize(
            target=cases,
            scenario=st.sampled_from(scenario_names),
            down=st.sets(st.sampled_from(InMemoryRegistries.NAMES))
            if ref.checks
            else st.just(set()),
        )
        def first_case(self, scenario: str | None, down: set[str]) -> str:
            self._set_down(down)  # a run may start with a registry down
            return self._open(scenario)

        def _set_down(self, down: set[str]) -> None:
            self.down = frozenset(down)
            self.registries.set_down(*sorted(down))

        @rule(target=cases, scenario=st.sampled_from(scenario_names))
        def open_case(self, scenario: str | None) -> str:
            return self._open(scenario)

        def _open(self, scenario: str | None) -> str:
            n = next(self.numbers)
            data = person(type_, n)
            # each case its own registry keys: policy number, insurer code (SNILS are distinct)
            if "policy_number" in data:
                data["policy_number"] = _enp(n)
            if "new_insurer" in data:
                data["new_insurer"] = f"{n % 100_000:05d}"
            at = self.clock.now()
            view = self.eng.open_case(type_, data, "portal:gosuslugi")
            case = ModelCase(view.id, n, ref.raw["initial"], 1, data, scenario, last_at=at)
            self._seed(case)
            ctx = _ctx(case, "open", "portal")
            for d in self.states(case.state):
                if _guards_pass(d.get("when", ()), ctx):
                    self._arm(case, d, at)
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
                # judged in the state the timers that caught up left the case in
                expected = self._predict(case, trigger, role, reason, comment, changes, valid)
                assert expected is not True, f"{role} {trigger} in {case.state} was refused"
                self._caught_up([case_id])
                return
            _stats["accepted"] += 1
            entries = self.eng.history(case_id)[case.version :]
            self._apply_timer_entries(case, entries[:-1])
            expected = self._predict(case, trigger, role, reason, comment, changes, valid)
            assert expected is not False, f"{role} {trigger} in {case.state} was accepted"
            tr = ref.transitions[(trigger, case.state)]
            self._in_time_order(case, entries[-1])
            assert entries[-1].at == self.clock.now()
            self._enter(case, tr, role, None, entries[-1].at)
            assert outcome.entry.seq == case.version
            assert outcome.case.state == case.state
            self._caught_up([case_id])

        @rule(minutes=st.sampled_from(jumps))
        def time_passes(self, minutes: int) -> None:
            now = self.clock.advance(minutes=minutes)
            self.eng.fire_due_timers()
            for case_id, case in self.model.items():
                entries = self.eng.history(case_id)[case.version :]
                self._apply_timer_entries(case, entries)
            due = [d for d in self.eng.timers(due_before=now, limit=1000) if d.status == "armed"]
            assert due == [], "fire_due_timers left due timers armed"
            self._caught_up(list(self.model))

        if ref.checks:

            @rule(case_id=cases, data=st.data())
            def pipeline_takes(self, case_id: str, data: st.DataObject) -> None:
                """The automatic pipeline takes a case, a waiting one if any: arms a check."""
                # in opening order: case ids are random, and the same steps must pick the same
                waiting = [c.id for c in self.model.values() if c.state == ref.raw["initial"]]
                if waiting:
                    case_id = data.draw(st.sampled_from(waiting))
                self._fire(case_id, "take", "system", None, None, "none")

            @rule(down=st.sets(st.sampled_from(InMemoryRegistries.NAMES)))
            def registries_go_down_or_come_back(self, down: set[str]) -> None:
                self._set_down(down)

            @rule(case_id=cases, scenario=st.sampled_from(scenario_names))
            def registry_records_change(self, case_id: str, scenario: str) -> None:
                self.model[case_id].scenario = scenario
                self._seed(self.model[case_id])

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
                open_ = [d for d in view.deadlines if d.status in ("armed", "paused")]
                armed = sorted(d.name for d in open_)
                # every deadline, each once: a list, so that a duplicate row shows too
                assert armed == sorted(case.armed), (case.state, armed, sorted(case.armed))
                due = {d.name: d.due_at for d in open_ if ref.specs[d.name].check}
                assert due == case.due, (case.state, due, case.due)
                if ref.terminal(case.state):
                    assert not open_
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
