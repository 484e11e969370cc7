"""Deadline arithmetic: when a term ends, and how much of a paused SLA clock is left.

Pure functions of their arguments (no clock, no database). Day terms follow the Civil Code of
the Russian Federation: a term begins on the day after the event (art. 191), a working-day term
counts only working days of the production calendar, a term ends at the end of its last day in
the case's local time zone, and a calendar-day term ending on a non-working day ends on the next
working day (art. 193). Terms in minutes or hours are plain durations.

Day arithmetic is done on local dates of the case's zone and only the resulting local midnights
are turned into instants, so a day always means a local calendar day whatever the UTC offset.
Every instant returned is an aware UTC datetime.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from engine.clock import ensure_utc
from engine.timers.calendar import ProductionCalendar

__all__ = ["Unit", "compute_due", "remaining", "resume"]

_ZERO = timedelta(0)
_ONE_DAY = timedelta(days=1)


class Unit(StrEnum):
    """The unit a term is expressed in."""

    MINUTES = "minutes"
    HOURS = "hours"
    CALENDAR_DAYS = "calendar_days"
    WORKING_DAYS = "working_days"


def compute_due(
    event_at: datetime,
    amount: int,
    unit: Unit | str,
    zone: str,
    calendar: ProductionCalendar,
) -> datetime:
    """The instant (aware UTC) at which a term of ``amount`` ``unit`` after ``event_at`` ends.

    Day terms end at the local midnight (in ``zone``) that follows their last day. ValueError for
    a naive ``event_at``, a negative or non-integer ``amount``, an unknown unit or zone;
    CalendarYearMissing when the count reaches a year the calendar does not cover.
    """
    start = ensure_utc(event_at, "event_at")
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise ValueError(f"amount must be an integer, got {amount!r}")
    if amount < 0:
        raise ValueError(f"amount must be >= 0, got {amount}")
    kind = _unit(unit)
    tz = _zone(zone)

    if kind is Unit.MINUTES:
        return start + timedelta(minutes=amount)
    if kind is Unit.HOURS:
        return start + timedelta(hours=amount)

    event_day = start.astimezone(tz).date()
    if kind is Unit.WORKING_DAYS:
        last_day = event_day
        counted = 0
        while counted < amount:
            last_day += _ONE_DAY
            if calendar.is_working_day(last_day):
                counted += 1
    else:
        last_day = calendar.next_working_day(event_day + timedelta(days=amount))
    return _midnight(last_day + _ONE_DAY, tz)


def remaining(
    now: datetime,
    due: datetime,
    unit: Unit | str,
    zone: str,
    calendar: ProductionCalendar,
) -> timedelta:
    """Time left until ``due`` as seen at ``now``; never negative.

    For working-day terms only time within working days (local to ``zone``) counts, so a clock
    paused over a weekend or a holiday does not lose that time; for other units it is
    ``due - now``.
    """
    start = ensure_utc(now, "now")
    end = ensure_utc(due, "due")
    kind = _unit(unit)
    tz = _zone(zone)
    if end <= start:
        return _ZERO
    if kind is not Unit.WORKING_DAYS:
        return end - start

    left = _ZERO
    for day, day_start, day_end in _local_days(start, tz):
        if day_start >= end:
            break
        if calendar.is_working_day(day):
            left += min(end, day_end) - max(start, day_start)
    return left


def resume(
    now: datetime,
    left: timedelta,
    unit: Unit | str,
    zone: str,
    calendar: ProductionCalendar,
) -> datetime:
    """The new due instant (aware UTC) of a paused clock with ``left`` remaining resumed at ``now``.

    For working-day terms time is consumed only on working days (local to ``zone``): resumed on
    a non-working day, the clock starts at the next working day's 00:00. For other units it is
    ``now + left``. ValueError for a negative ``left``.
    """
    start = ensure_utc(now, "now")
    if left < _ZERO:
        raise ValueError(f"left must not be negative, got {left}")
    kind = _unit(unit)
    tz = _zone(zone)
    if kind is not Unit.WORKING_DAYS or left == _ZERO:
        return start + left

    for day, day_start, day_end in _local_days(start, tz):
        if not calendar.is_working_day(day):
            continue
        clock_from = max(start, day_start)
        available = day_end - clock_from
        # ``<=`` so that a clock running out exactly at a day's end lands on that local midnight
        # (the term's usual end) rather than on the next working day's start.
        if left <= available:
            return clock_from + left
        left -= available
    raise AssertionError("unreachable: the day sequence is unbounded")  # pragma: no cover


def _local_days(start: datetime, tz: ZoneInfo) -> Iterator[tuple[date, datetime, datetime]]:
    # Local days from the one containing ``start``, each with its bounds as UTC instants; the
    # bounds come from local midnights so a day is a local calendar day of any length.
    day = start.astimezone(tz).date()
    day_start = _midnight(day, tz)
    while True:
        next_day = day + _ONE_DAY
        day_end = _midnight(next_day, tz)
        yield day, day_start, day_end
        day, day_start = next_day, day_end


@functools.lru_cache(maxsize=4096)
def _midnight(day: date, tz: ZoneInfo) -> datetime:
    # cached: the deadlines of all cases fall on the same few weeks of local midnights
    return datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)


def _unit(value: Unit | str) -> Unit:
    try:
        return Unit(value)
    except ValueError:
        expected = ", ".join(u.value for u in Unit)
        raise ValueError(f"unknown deadline unit {value!r} (expected one of: {expected})") from None


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError, TypeError) as exc:
        raise ValueError(f"unknown time zone {name!r} (expected an IANA name)") from exc
