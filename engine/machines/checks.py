"""Automatic checks against the external registries, behind replaceable ports.

The FOMS registry (person and policy status), the Social Fund's SNILS check and the insurers'
registry are reached through the protocols below; the engine is handed implementations (an
in-memory fake lives in ``engine.testing``). A check is a pure function of the application
data and the ports: it answers which trigger the system fires - approve, request_info with the
mismatching fields named, or reject with a reason code - or raises ``RegistryUnavailable`` when
a port is down, and the timer runner retries with backoff.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from engine.errors import EngineError
from engine.reasons import ReasonCode


class RegistryUnavailable(EngineError):
    """A registry did not answer (down, timed out); the check is retried later."""

    code = "registry_unavailable"
    exit_code = 1

    def __init__(self, registry: str, problem: str) -> None:
        self.registry = registry
        self.problem = problem
        super().__init__(f"{registry} unavailable: {problem}")


@dataclass(frozen=True)
class PersonRecord:
    """What the FOMS registry knows of an insured person."""

    snils: str
    full_name: str
    birth_date: str
    """ISO date."""
    policy_number: str | None = None


class FomsRegistry(Protocol):
    def find_person(self, snils: str) -> PersonRecord | None: ...

    def policy_status(self, policy_number: str) -> str | None:
        """``active``, ``suspended``, ``cancelled``, or None for an unknown policy."""
        ...


class SocialFund(Protocol):
    def snils_matches(self, snils: str, full_name: str, birth_date: str) -> bool: ...

    def linked_parent(self, child_snils: str) -> str | None:
        """The SNILS of the parent whose account the child's policy is linked to, if any."""
        ...


class InsurerRegistry(Protocol):
    def is_insurer(self, code: str) -> bool: ...


@dataclass(frozen=True)
class Registries:
    """The ports an engine's automatic checks use."""

    foms: FomsRegistry
    social_fund: SocialFund
    insurers: InsurerRegistry


@dataclass(frozen=True)
class CheckOutcome:
    """The system step a check decided on."""

    trigger: str
    reason: str | None = None
    comment: str | None = None


Check = Callable[[Mapping[str, Any], Registries], CheckOutcome]
CHECKS: dict[str, Check] = {}


def check(name: str) -> Callable[[Check], Check]:
    """Register an automatic check under the name definitions use."""

    def register(fn: Check) -> Check:
        CHECKS[name] = fn
        return fn

    return register


def _clarify(fields: list[str]) -> CheckOutcome:
    return CheckOutcome(
        "request_info",
        comment="Данные не совпадают с реестром, проверьте поля: " + ", ".join(fields),
    )


def _inactive(status: str | None) -> CheckOutcome:
    return CheckOutcome(
        "reject",
        reason=ReasonCode.POLICY_INACTIVE.value,
        comment=f"Полис в реестре ОМС: {status}",
    )


def _person(data: Mapping[str, Any]) -> Mapping[str, Any]:
    child = data.get("child")
    if data.get("for_child") and isinstance(child, Mapping):
        return child
    applicant = data.get("applicant")
    return applicant if isinstance(applicant, Mapping) else {}


@check("identity_match")
def identity_match(data: Mapping[str, Any], ports: Registries) -> CheckOutcome:
    """Restore: the person must be in the FOMS registry with the same name and birth date."""
    person = _person(data)
    snils = person.get("snils")
    if not snils:
        return _clarify(["snils"])
    record = ports.foms.find_person(snils)
    if record is None:
        return _clarify(["snils"])
    mismatched = [
        field
        for field, theirs in (("full_name", record.full_name), ("birth_date", record.birth_date))
        if str(person.get(field, "")).casefold() != theirs.casefold()
    ]
    if mismatched:
        return _clarify(mismatched)
    if record.policy_number:
        status = ports.foms.policy_status(record.policy_number)
        if status not in (None, "active"):
            return _inactive(status)
    return CheckOutcome("approve", comment="Личность подтверждена реестром ФОМС")


@check("child_policy_verification")
def child_policy_verification(data: Mapping[str, Any], ports: Registries) -> CheckOutcome:
    """Child link: the child's SNILS and policy must check out, and be linked nowhere else."""
    child = data.get("child") if isinstance(data.get("child"), Mapping) else {}
    assert isinstance(child, Mapping)
    mismatched = []
    snils = child.get("snils")
    if snils and not ports.social_fund.snils_matches(
        snils, str(child.get("full_name", "")), str(child.get("birth_date", ""))
    ):
        mismatched.append("child.snils")
    status = ports.foms.policy_status(str(data.get("policy_number", "")))
    if status is None:
        mismatched.append("policy_number")
    if mismatched:
        return _clarify(mismatched)
    if status != "active":
        return _inactive(status)
    if snils:
        parent = ports.social_fund.linked_parent(snils)
        own = data.get("parent_snils") or (data.get("applicant") or {}).get("snils")
        if parent is not None and parent != own:
            return CheckOutcome(
                "reject",
                reason=ReasonCode.SNILS_LINKED_ELSEWHERE.value,
                comment="СНИЛС ребёнка привязан к другой учётной записи",
            )
    return CheckOutcome("approve", comment="Полис ребёнка подтверждён реестрами")


@check("insurer_known")
def insurer_known(data: Mapping[str, Any], ports: Registries) -> CheckOutcome:
    """Replacement with a change of insurer: the new insurer must be in the insurers' registry."""
    code = data.get("new_insurer")
    if code and not ports.insurers.is_insurer(str(code)):
        return _clarify(["new_insurer"])
    return CheckOutcome("approve", comment="Страховая организация найдена в реестре")
