"""Public fakes for embedders' tests, rehearsals and the demo: a clock you move by hand.

These are fakes of the engine's own ports; tests never mock the database or the ORM.
"""

from __future__ import annotations

import threading
from datetime import date, datetime, timedelta
from typing import Any

from engine import applications
from engine.clock import ensure_utc
from engine.machines.checks import PersonRecord, Registries, RegistryUnavailable
from engine.timers.calendar import ProductionCalendar, YearData


class ManualClock:
    """A clock that stands still until told to move; thread-safe."""

    def __init__(self, start: datetime) -> None:
        self._now = ensure_utc(start, "start")
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta | None = None, **kwargs: float) -> datetime:
        """Move forward by ``delta`` or by ``timedelta(**kwargs)``; never backwards."""
        step = delta if delta is not None else timedelta(**kwargs)
        if step < timedelta(0):
            raise ValueError("a ManualClock never goes backwards")
        with self._lock:
            self._now += step
            return self._now

    def set(self, instant: datetime) -> datetime:
        """Jump to ``instant`` (not before the current time)."""
        target = ensure_utc(instant, "instant")
        with self._lock:
            if target < self._now:
                raise ValueError(f"{target.isoformat()} is before {self._now.isoformat()}")
            self._now = target
            return self._now


def make_snils(n: int) -> str:
    """The ``n``-th valid SNILS (formatted), for seeding tests, rehearsals and the demo."""
    # imported here: a host that only needs ManualClock (a timer worker) never loads the
    # application models behind the fields
    from engine.applications.fields import format_snils, snils_check_number  # noqa: PLC0415

    body = f"{2_000_000 + n:09d}"
    return format_snils(f"{body}{snils_check_number(body):02d}")


def person(type_: str, n: int) -> dict[str, Any]:
    """The example application of ``type_`` for the ``n``-th distinct person."""
    data = applications.example_application(type_)
    data["applicant"]["snils"] = make_snils(2 * n)
    if "parent_snils" in data:
        data["parent_snils"] = data["applicant"]["snils"]
    if isinstance(data.get("child"), dict):
        data["child"]["snils"] = make_snils(2 * n + 1)
    return data


class InMemoryRegistries:
    """Fake FOMS registry, Social Fund and insurers' registry in one object, seeded by hand.

    ``down`` names the registries that fail (``"foms"``, ``"social_fund"``, ``"insurers"``),
    to rehearse outages (``set_down`` checks the names); ``calls`` counts the look-ups made.
    """

    NAMES: tuple[str, ...] = ("foms", "social_fund", "insurers")
    """The registries this fake stands in for, as ``down`` names them."""

    def __init__(self) -> None:
        self.people: dict[str, PersonRecord] = {}
        self.policies: dict[str, str] = {}
        self.links: dict[str, str] = {}
        self.insurer_codes: set[str] = set()
        self.down: set[str] = set()
        self.calls = 0

    def ports(self) -> Registries:
        return Registries(foms=self, social_fund=self, insurers=self)

    def set_down(self, *names: str) -> None:
        """Make exactly ``names`` unavailable (none: every registry answers again)."""
        unknown = sorted(set(names) - set(self.NAMES))
        if unknown:
            raise ValueError(f"unknown registries {unknown}; known: {', '.join(self.NAMES)}")
        self.down = set(names)

    def _ask(self, registry: str) -> None:
        self.calls += 1
        if registry in self.down:
            raise RegistryUnavailable(registry, "timed out")

    def add_person(
        self,
        snils: str,
        full_name: str,
        birth_date: str,
        policy_number: str | None = None,
        policy_status: str = "active",
    ) -> None:
        """Seed a person (SNILS in any accepted notation, birth date ISO or DD.MM.YYYY)."""
        from engine.applications.fields import check_snils, parse_date  # noqa: PLC0415

        digits = check_snils(snils)
        self.people[digits] = PersonRecord(
            digits, full_name, parse_date(birth_date).isoformat(), policy_number
        )
        if policy_number:
            self.policies[policy_number] = policy_status

    def add_application_person(self, data: dict[str, Any], policy_status: str = "active") -> None:
        """Seed the registry so that an application's person matches it."""
        for who in ("applicant", "child"):
            person = data.get(who)
            if isinstance(person, dict) and person.get("snils"):
                self.add_person(person["snils"], person["full_name"], person["birth_date"])
        for key in ("policy_number", "old_policy_number", "current_policy_number"):
            if data.get(key):
                self.policies[str(data[key])] = policy_status

    # FomsRegistry
    def find_person(self, snils: str) -> PersonRecord | None:
        self._ask("foms")
        return self.people.get(snils)

    def policy_status(self, policy_number: str) -> str | None:
        self._ask("foms")
        return self.policies.get(policy_number)

    # SocialFund
    def snils_matches(self, snils: str, full_name: str, birth_date: str) -> bool:
        self._ask("social_fund")
        record = self.people.get(snils)
        return (
            record is not None
            and record.full_name.casefold() == full_name.casefold()
            and record.birth_date == birth_date
        )

    def linked_parent(self, child_snils: str) -> str | None:
        self._ask("social_fund")
        return self.links.get(child_snils)

    # InsurerRegistry
    def is_insurer(self, code: str) -> bool:
        self._ask("insurers")
        return code in self.insurer_codes


def with_day_off(base: ProductionCalendar, day: date) -> ProductionCalendar:
    """``base`` with ``day`` made a day off, as a (fictional) decree would."""
    years = {y: base.year_data(y) for y in base.years}
    data = years[day.year]
    years[day.year] = YearData(
        holidays=data.holidays | {day},
        working_weekends=data.working_weekends,
        source=data.source + " + test",
    )
    return ProductionCalendar(years)
