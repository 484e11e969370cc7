"""Load definition files, check them statically, and compile each into a Machine.

data file -> pydantic ``Definition`` -> named checks -> ``CompiledDefinition``. Every failed
check raises ``InvalidDefinition`` naming the file, the problem and the states involved.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

import yaml
from pydantic import ValidationError

from engine.applications import MODEL_NAMES
from engine.errors import InvalidDefinition, NotFound
from engine.machines.checks import CHECKS
from engine.machines.compiled import CompiledDefinition
from engine.machines.definition import DeadlineSpec, Definition
from engine.machines.notifications import TEMPLATES
from engine.machines.registry import GUARDS, VALIDATORS

StaticCheck = Callable[[Definition], None]


class _Problem(Exception):
    def __init__(self, problem: str, states: Iterable[str] = ()) -> None:
        super().__init__(problem)
        self.problem = problem
        self.states = tuple(states)


def _known(kind: str, name: str, known: Iterable[str]) -> str:
    return f"unknown {kind} {name!r} (known: {', '.join(sorted(known)) or 'none'})"


def check_states_known(d: Definition) -> None:
    if d.initial not in d.states:
        raise _Problem(f"unknown initial state {d.initial!r}", [d.initial])
    for tr in d.transitions:
        for name in (*tr.source, *([tr.dest] if tr.dest else [])):
            if name not in d.states:
                raise _Problem(f"unknown state {name!r} in transition {tr.trigger!r}", [name])
    for spec, armed_for in d.deadline_specs().values():
        for name in (*spec.while_in, *spec.paused_in):
            if name not in d.states:
                raise _Problem(f"unknown state {name!r} in deadline {spec.name!r}", [name])
        if spec.while_in and armed_for not in spec.while_in:
            raise _Problem(
                f"deadline {spec.name!r} is armed in {armed_for!r} but not live there (while_in)",
                [armed_for],
            )


def check_names_known(d: Definition) -> None:
    if d.data_model not in MODEL_NAMES:
        raise _Problem(_known("data model", d.data_model, MODEL_NAMES))
    for kind in d.notify_on_open:
        if kind not in TEMPLATES:
            raise _Problem(_known("notification", kind, TEMPLATES))
    for state in d.states.values():
        for spec in state.deadlines:
            _check_when(spec)
    for tr in d.transitions:
        for g in tr.guards:
            if g not in GUARDS:
                raise _Problem(_known("guard", g, GUARDS) + f" in transition {tr.trigger!r}")
        for v in tr.validators:
            if v not in VALIDATORS:
                raise _Problem(
                    _known("validator", v, VALIDATORS) + f" in transition {tr.trigger!r}"
                )
        for spec in tr.arms:
            _check_when(spec)
        for kind in tr.notify:
            if kind not in TEMPLATES:
                raise _Problem(_known("notification", kind, TEMPLATES) + f" in {tr.trigger!r}")


def _check_when(spec: DeadlineSpec) -> None:
    for g in spec.when:
        if g not in GUARDS:
            raise _Problem(_known("guard", g, GUARDS) + f" in deadline {spec.name!r}")
    if spec.check is not None and spec.check not in CHECKS:
        raise _Problem(_known("check", spec.check, CHECKS) + f" in deadline {spec.name!r}")


def check_unique_triggers(d: Definition) -> None:
    seen: set[tuple[str, str]] = set()
    for tr in d.transitions:
        for src in tr.source:
            if (tr.trigger, src) in seen:
                raise _Problem(f"duplicate trigger {tr.trigger!r} from state {src!r}", [src])
            seen.add((tr.trigger, src))


def check_reachable(d: Definition) -> None:
    reached = {d.initial}
    frontier = [d.initial]
    while frontier:
        state = frontier.pop()
        for tr in d.transitions:
            if state in tr.source and tr.dest and tr.dest not in reached:
                reached.add(tr.dest)
                frontier.append(tr.dest)
    lost = sorted(set(d.states) - reached)
    if lost:
        raise _Problem(
            f"state(s) unreachable from initial state {d.initial!r}: {', '.join(lost)}", lost
        )


def check_ways_out(d: Definition) -> None:
    for name, state in d.states.items():
        leaving = [tr for tr in d.transitions if name in tr.source and tr.target(name) != name]
        if state.terminal and leaving:
            raise _Problem(
                f"terminal state {name!r} has transitions out: "
                f"{', '.join(tr.trigger for tr in leaving)}",
                [name],
            )
        if not state.terminal and not leaving:
            raise _Problem(f"non-terminal state {name!r} has no way out (a trap state)", [name])


def check_deadlines(d: Definition) -> None:
    names: set[str] = set()
    for state in d.states.values():
        for spec in state.deadlines:
            if spec.name in names:
                raise _Problem(f"duplicate deadline name {spec.name!r}")
            names.add(spec.name)
    for tr in d.transitions:
        for spec in tr.arms:
            if spec.name in names:
                raise _Problem(f"duplicate deadline name {spec.name!r}")
            names.add(spec.name)
    for spec, armed_for in d.deadline_specs().values():
        triggers = [spec.trigger, *([spec.on_exhausted] if spec.on_exhausted else [])]
        for live in d.live_states(spec, armed_for):
            if live in spec.paused_in:
                continue
            for trigger in triggers:
                _check_fires(d, spec.name, trigger, live)


def _check_fires(d: Definition, deadline: str, trigger: str, state: str) -> None:
    fired = [tr for tr in d.transitions if tr.trigger == trigger and state in tr.source]
    if not fired:
        raise _Problem(
            f"deadline {deadline!r} fires {trigger!r}, which neither leaves nor "
            f"stays in state {state!r}",
            [state],
        )
    if "system" not in fired[0].roles:
        raise _Problem(
            f"deadline {deadline!r} fires {trigger!r}, which role 'system' may not "
            f"fire from {state!r}",
            [state],
        )


def check_reasons(d: Definition) -> None:
    for tr in d.transitions:
        if "reason" in tr.requires and not tr.reasons:
            raise _Problem(f"transition {tr.trigger!r} requires a reason but lists no reasons")
        if tr.reason and "reason" in tr.requires:
            raise _Problem(f"transition {tr.trigger!r} both fixes and requires a reason")
        if "data" in tr.requires and not tr.accepts_data:
            raise _Problem(f"transition {tr.trigger!r} requires data but does not accept it")


STATIC_CHECKS: tuple[StaticCheck, ...] = (
    check_states_known,
    check_names_known,
    check_unique_triggers,
    check_reachable,
    check_ways_out,
    check_deadlines,
    check_reasons,
)


def parse_definition(text: str, path: str) -> Definition:
    """Parse one definition file and run every static check on it."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidDefinition(path, f"not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise InvalidDefinition(path, "a definition must be a mapping at the top level")
    try:
        definition = Definition.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise InvalidDefinition(path, f"field {where}: {first['msg']}") from exc
    for check in STATIC_CHECKS:
        try:
            check(definition)
        except _Problem as problem:
            raise InvalidDefinition(path, problem.problem, problem.states) from None
    return definition


def load_file(path: Path) -> CompiledDefinition:
    """Load, check and compile one definition file."""
    return CompiledDefinition(
        parse_definition(path.read_text(encoding="utf-8"), str(path)), str(path)
    )


def default_definitions_dir() -> Path:
    """``OMSFLOW_DEFINITIONS`` if set, else the ``definitions/`` folder beside the package."""
    env = os.environ.get("OMSFLOW_DEFINITIONS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "definitions"


class DefinitionRegistry:
    """Every loaded (type, version), each compiled once; cases pin their version."""

    def __init__(self, compiled: Iterable[CompiledDefinition]) -> None:
        self._by_key: dict[tuple[str, int], CompiledDefinition] = {}
        for c in compiled:
            if c.definition.key in self._by_key:
                raise InvalidDefinition(
                    c.path, f"{c.definition.type} version {c.definition.version} is defined twice"
                )
            self._by_key[c.definition.key] = c

    @classmethod
    def from_dir(cls, directory: Path | None = None) -> DefinitionRegistry:
        folder = directory or default_definitions_dir()
        files = sorted(folder.glob("*.yaml"))
        if not files:
            raise InvalidDefinition(str(folder), "no definition files (*.yaml) found")
        return cls(load_file(p) for p in files)

    def get(self, type_: str, version: int | None = None) -> CompiledDefinition:
        """The given version, or the latest version of the type when ``version`` is None."""
        if version is None:
            versions = [v for (t, v) in self._by_key if t == type_]
            if not versions:
                raise NotFound("definition", f"{type_} (known: {', '.join(self.types())})")
            version = max(versions)
        try:
            return self._by_key[(type_, version)]
        except KeyError:
            raise NotFound("definition", f"{type_} v{version}") from None

    def types(self) -> list[str]:
        return sorted({t for t, _ in self._by_key})

    def all(self) -> list[CompiledDefinition]:
        return [self._by_key[k] for k in sorted(self._by_key)]
