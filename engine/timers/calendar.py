"""The official Russian production calendar (производственный календарь) as data.

Which days are working days is decided every year by a government decree on transfers of days
off, so it cannot be computed: the calendar is loaded from ``data/ru_production_calendar.yaml``
and a year that is not in the data is an error (:class:`engine.errors.CalendarYearMissing`),
never a guess from the weekday. The :attr:`ProductionCalendar.fingerprint` identifies the data,
so deadlines computed with an older version of the calendar can be found and recomputed.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from types import MappingProxyType
from typing import Any

import yaml

from engine.errors import CalendarYearMissing

__all__ = ["ProductionCalendar", "YearData"]

_SATURDAY = 5
_DATA_PACKAGE = "engine.timers"
_DATA_FILE = "data/ru_production_calendar.yaml"


@dataclass(frozen=True)
class YearData:
    """One year of the calendar, as its decree states it.

    ``holidays`` are the non-working days that fall on Monday–Friday (public holidays, holidays
    moved off a weekend and transferred days off); ``working_weekends`` are the Saturdays and
    Sundays made working days by transfer; ``source`` names the decree.
    """

    holidays: frozenset[date]
    working_weekends: frozenset[date]
    source: str


class ProductionCalendar:
    """Working days of the official Russian production calendar (производственный календарь)."""

    def __init__(self, years: Mapping[int, YearData]) -> None:
        checked: dict[int, YearData] = {}
        for year, data in years.items():
            _check_year(year, data)
            checked[year] = data
        self._years: Mapping[int, YearData] = MappingProxyType(checked)
        self._fingerprint = _fingerprint(checked)
        # The data never changes, and every deadline counts over the same few weeks of days.
        self._working: dict[date, bool] = {}

    @classmethod
    def russia(cls) -> ProductionCalendar:
        """The calendar shipped with the engine (loaded once per process)."""
        return _shipped()

    @classmethod
    def from_yaml(cls, text: str) -> ProductionCalendar:
        """Parse the layout of ``data/ru_production_calendar.yaml``; ValueError if malformed."""
        try:
            loaded: Any = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError(f"production calendar is not valid YAML: {exc}") from exc
        if not isinstance(loaded, dict) or not isinstance(loaded.get("years"), dict):
            raise ValueError("production calendar must be a mapping with a 'years' mapping")
        years: dict[int, YearData] = {}
        for key, body in loaded["years"].items():
            year = _year_key(key)
            if not isinstance(body, dict):
                raise ValueError(f"production calendar year {year}: expected a mapping")
            unknown = set(body) - {"source", "holidays", "working_weekends"}
            if unknown:
                raise ValueError(f"production calendar year {year}: unknown keys {sorted(unknown)}")
            source = body.get("source")
            if not isinstance(source, str):
                raise ValueError(f"production calendar year {year}: 'source' must be a string")
            years[year] = YearData(
                holidays=_dates(year, "holidays", body.get("holidays")),
                working_weekends=_dates(year, "working_weekends", body.get("working_weekends")),
                source=source,
            )
        return cls(years)

    def to_yaml(self) -> str:
        """The data in the layout :meth:`from_yaml` reads (without the shipped file's comments)."""
        body = {
            "years": {
                year: {
                    "source": data.source,
                    "holidays": sorted(data.holidays),
                    "working_weekends": sorted(data.working_weekends),
                }
                for year, data in sorted(self._years.items())
            }
        }
        return yaml.safe_dump(body, allow_unicode=True, sort_keys=False)

    @property
    def years(self) -> frozenset[int]:
        """The years the calendar has data for."""
        return frozenset(self._years)

    def year_data(self, year: int) -> YearData:
        """The data of ``year``; CalendarYearMissing if the calendar does not cover it."""
        try:
            return self._years[year]
        except KeyError:
            raise CalendarYearMissing(year, self._years) from None

    def is_working_day(self, d: date) -> bool:
        """Whether ``d`` is a working day; CalendarYearMissing for a year not in the data."""
        known = self._working.get(d)
        if known is None:
            known = self._working[d] = _is_working_in(self.year_data(d.year), d)
        return known

    def non_working_days(self, year: int) -> list[date]:
        """Every non-working day of ``year``, ordinary weekends included, sorted."""
        data = self.year_data(year)
        return [d for d in _days_of(year) if not _is_working_in(data, d)]

    def working_weekend_days(self, year: int) -> list[date]:
        """The Saturdays and Sundays of ``year`` that are working days by transfer, sorted."""
        return sorted(self.year_data(year).working_weekends)

    def next_working_day(self, d: date) -> date:
        """The first working day on or after ``d``."""
        while not self.is_working_day(d):
            d += timedelta(days=1)
        return d

    @property
    def fingerprint(self) -> str:
        """SHA-256 (hex) of a canonical dump of the data; any change of the data changes it."""
        return self._fingerprint

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ProductionCalendar):
            return NotImplemented
        return dict(self._years) == dict(other._years)

    def __hash__(self) -> int:
        return hash(self.fingerprint)

    def __repr__(self) -> str:
        years = ", ".join(map(str, sorted(self._years)))
        return f"ProductionCalendar(years=[{years}], fingerprint={self.fingerprint[:12]})"


def _is_working_in(data: YearData, d: date) -> bool:
    if d in data.holidays:
        return False
    if d in data.working_weekends:
        return True
    return d.weekday() < _SATURDAY


def _fingerprint(years: Mapping[int, YearData]) -> str:
    canonical = {
        str(year): {
            "source": data.source,
            "holidays": [d.isoformat() for d in sorted(data.holidays)],
            "working_weekends": [d.isoformat() for d in sorted(data.working_weekends)],
        }
        for year, data in sorted(years.items())
    }
    dump = json.dumps(canonical, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(dump.encode("utf-8")).hexdigest()


@functools.cache
def _shipped() -> ProductionCalendar:
    text = importlib.resources.files(_DATA_PACKAGE).joinpath(_DATA_FILE).read_text(encoding="utf-8")
    return ProductionCalendar.from_yaml(text)


def _days_of(year: int) -> Iterable[date]:
    d = date(year, 1, 1)
    while d.year == year:
        yield d
        d += timedelta(days=1)


def _year_key(key: object) -> int:
    # YAML reads an unquoted 2024 as int and a quoted "2024" as str; both mean the same year.
    if isinstance(key, bool):
        raise ValueError(f"production calendar: {key!r} is not a year")
    if isinstance(key, int):
        return key
    if isinstance(key, str) and key.isdigit():
        return int(key)
    raise ValueError(f"production calendar: {key!r} is not a year")


def _dates(year: int, field: str, raw: object) -> frozenset[date]:
    if raw is None:
        return frozenset()
    if not isinstance(raw, list):
        raise ValueError(f"production calendar year {year}: '{field}' must be a list of dates")
    out: set[date] = set()
    for item in raw:
        # YAML turns an unquoted ISO date into a date; a quoted one stays a string.
        if isinstance(item, date):
            out.add(item)
        elif isinstance(item, str):
            try:
                out.add(date.fromisoformat(item))
            except ValueError as exc:
                raise ValueError(
                    f"production calendar year {year}: {field}: {item!r} is not a date"
                ) from exc
        else:
            raise ValueError(f"production calendar year {year}: {field}: {item!r} is not a date")
    return frozenset(out)


def _check_year(year: int, data: YearData) -> None:
    # A date filed under the wrong year or on the wrong kind of day is a typo in the data;
    # accepting it would silently shift deadlines.
    problems: list[str] = []
    if not data.source.strip():
        problems.append("the decree ('source') is empty")
    for d in sorted(data.holidays):
        if d.year != year:
            problems.append(f"holiday {d.isoformat()} is not in {year}")
        elif d.weekday() >= _SATURDAY:
            problems.append(f"holiday {d.isoformat()} is a weekend day (list only Mon–Fri)")
    for d in sorted(data.working_weekends):
        if d.year != year:
            problems.append(f"working weekend {d.isoformat()} is not in {year}")
        elif d.weekday() < _SATURDAY:
            problems.append(f"working weekend {d.isoformat()} is not a Saturday or Sunday")
    if problems:
        raise ValueError(f"production calendar year {year}: " + "; ".join(problems))
