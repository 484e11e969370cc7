"""Deadline arithmetic (Civil Code RF art. 191, 193) against hand-counted cases and properties.

Expected instants are written by hand from the production calendar: a day term ends at the local
midnight that follows its last day, given here in UTC (Moscow is UTC+3, Vladivostok UTC+10).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from engine.errors import CalendarYearMissing
from engine.timers.calendar import ProductionCalendar
from engine.timers.deadlines import Unit, compute_due, remaining, resume

MSK = "Europe/Moscow"
VVO = "Asia/Vladivostok"
RUSSIAN_ZONES = [
    "Europe/Kaliningrad",
    "Europe/Moscow",
    "Europe/Samara",
    "Asia/Yekaterinburg",
    "Asia/Novosibirsk",
    "Asia/Irkutsk",
    "Asia/Vladivostok",
    "Asia/Kamchatka",
]
DAY_UNITS = [Unit.WORKING_DAYS, Unit.CALENDAR_DAYS]

# Hypothesis must not write a database into the working tree, and the calendar loops are fast
# but vary in length.
PROPERTY = settings(max_examples=300, deadline=None, database=None)

CAL = ProductionCalendar.russia()


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


CASES = [
    # id, event (UTC), amount, unit, zone, expected due (UTC)
    (
        # Fri 2025-03-07 12:00 MSK; term starts Sat; Mon 10 and Tue 11 March are the two days.
        "2 working days across a weekend",
        "2025-03-07T09:00",
        2,
        Unit.WORKING_DAYS,
        MSK,
        "2025-03-11T21:00",
    ),
    (
        # Mon 2025-03-03 23:00 MSK is still Monday: Tue 4 and Wed 5 count.
        "local date Moscow: still Monday",
        "2025-03-03T20:00",
        2,
        Unit.WORKING_DAYS,
        MSK,
        "2025-03-05T21:00",
    ),
    (
        # The same instant is Tue 2025-03-04 06:00 in Vladivostok: Wed 5 and Thu 6 count.
        "local date Vladivostok: already Tuesday",
        "2025-03-03T20:00",
        2,
        Unit.WORKING_DAYS,
        VVO,
        "2025-03-06T14:00",
    ),
    (
        # Tue 2025-12-30: 31 Dec 2025 and 1–11 Jan 2026 are off; Mon 12 and Tue 13 Jan count.
        "New Year holidays 2025/2026",
        "2025-12-30T10:00",
        2,
        Unit.WORKING_DAYS,
        MSK,
        "2026-01-13T21:00",
    ),
    (
        # Same in Vladivostok: ends at 00:00 VLAT on Wed 14 January 2026.
        "New Year holidays 2025/2026 in Vladivostok",
        "2025-12-30T01:00",
        2,
        Unit.WORKING_DAYS,
        VVO,
        "2026-01-13T14:00",
    ),
    (
        # Thu 2025-10-30: Fri 31 Oct (1), Sat 1 Nov is a working day (2).
        "working Saturday 1 Nov 2025 counts",
        "2025-10-30T10:00",
        2,
        Unit.WORKING_DAYS,
        MSK,
        "2025-11-01T21:00",
    ),
    (
        # Fri 2025-10-31: Sat 1 Nov (1); Sun 2, Mon 3 (transferred day off), Tue 4 (holiday)
        # are off; Wed 5 Nov (2).
        "day off Mon 3 Nov 2025 skipped",
        "2025-10-31T10:00",
        2,
        Unit.WORKING_DAYS,
        MSK,
        "2025-11-05T21:00",
    ),
    (
        # 5 working days from Mon 2024-04-22: 23–26 Apr, then Sat 27 Apr (working), ends 28 Apr.
        "working Saturday 27 Apr 2024 counts",
        "2024-04-22T08:00",
        5,
        Unit.WORKING_DAYS,
        MSK,
        "2024-04-27T21:00",
    ),
    (
        # Fri 2024-12-27: Sat 28 Dec working (1); 29 Dec–8 Jan off; Thu 9 Jan 2025 (2).
        "2024/2025 year end",
        "2024-12-27T10:00",
        2,
        Unit.WORKING_DAYS,
        MSK,
        "2025-01-09T21:00",
    ),
    (
        # Thu 2027-02-18: Fri 19 (1), Sat 20 Feb 2027 working (2).
        "working Saturday 20 Feb 2027 counts",
        "2027-02-18T10:00",
        2,
        Unit.WORKING_DAYS,
        MSK,
        "2027-02-20T21:00",
    ),
    (
        # The event day ends the term: 23:59:59 of Monday, the day itself.
        "0 working days ends with the event day",
        "2025-03-03T10:00",
        0,
        Unit.WORKING_DAYS,
        MSK,
        "2025-03-03T21:00",
    ),
    (
        # Thu 2025-04-10 + 30 days = Sat 10 May (8–11 May off) → Mon 12 May 2025.
        "30 calendar days ending on holidays move forward",
        "2025-04-10T10:00",
        30,
        Unit.CALENDAR_DAYS,
        MSK,
        "2025-05-12T21:00",
    ),
    (
        # Fri 2025-01-10 + 30 days = Sun 9 Feb → Mon 10 Feb 2025.
        "30 calendar days ending on a Sunday",
        "2025-01-10T10:00",
        30,
        Unit.CALENDAR_DAYS,
        MSK,
        "2025-02-10T21:00",
    ),
    (
        # Wed 2025-04-02 + 30 days = Fri 2 May 2025, a day off transferred from 4 January;
        # 3–4 May are the weekend, so the term ends on Mon 5 May.
        "30 calendar days ending on a transferred day off",
        "2025-04-02T10:00",
        30,
        Unit.CALENDAR_DAYS,
        MSK,
        "2025-05-05T21:00",
    ),
    (
        # Tue 2025-04-01 + 30 days = Thu 1 May 2025, a holiday; 2–4 May are off too → Mon 5 May.
        "30 calendar days ending on 1 May",
        "2025-04-01T10:00",
        30,
        Unit.CALENDAR_DAYS,
        MSK,
        "2025-05-05T21:00",
    ),
    (
        # Tue 2025-03-04 + 30 days = Thu 3 Apr 2025, a working day: no move.
        "30 calendar days ending on a working day",
        "2025-03-04T10:00",
        30,
        Unit.CALENDAR_DAYS,
        MSK,
        "2025-04-03T21:00",
    ),
    (
        # 2025-03-31 20:00 UTC is already Tue 1 April 06:00 in Vladivostok: + 30 = Thu 1 May
        # (holiday) → Mon 5 May, ending at 00:00 VLAT on Tue 6 May.
        "30 calendar days, Vladivostok local date",
        "2025-03-31T20:00",
        30,
        Unit.CALENDAR_DAYS,
        VVO,
        "2025-05-05T14:00",
    ),
    ("15 minutes", "2025-05-01T10:07", 15, Unit.MINUTES, MSK, "2025-05-01T10:22"),
    ("24 hours over a holiday", "2025-05-08T09:30", 24, Unit.HOURS, VVO, "2025-05-09T09:30"),
    ("0 hours", "2025-05-08T09:30", 0, "hours", MSK, "2025-05-08T09:30"),
    ("unit given as a string", "2025-03-07T09:00", 2, "working_days", MSK, "2025-03-11T21:00"),
]


@pytest.mark.parametrize(
    ("event", "amount", "unit", "zone", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_compute_due(event: str, amount: int, unit: Unit | str, zone: str, expected: str) -> None:
    due = compute_due(utc(event), amount, unit, zone, CAL)
    assert due == utc(expected)
    assert due.utcoffset() == timedelta(0)


def test_result_does_not_depend_on_the_event_offset() -> None:
    # The same instant written with another offset is the same event.
    at_utc = utc("2025-03-03T20:00")
    at_plus5 = at_utc.astimezone(timezone(timedelta(hours=5)))
    for unit in Unit:
        assert compute_due(at_plus5, 3, unit, VVO, CAL) == compute_due(at_utc, 3, unit, VVO, CAL)


def test_naive_event_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        compute_due(datetime(2025, 3, 3, 12, 0), 2, Unit.WORKING_DAYS, MSK, CAL)


@pytest.mark.parametrize("zone", ["Europe/Atlantis", "", "UTC+3", "../etc/passwd"])
def test_unknown_zone_refused(zone: str) -> None:
    with pytest.raises(ValueError, match="unknown time zone") as info:
        compute_due(utc("2025-03-03T10:00"), 2, Unit.WORKING_DAYS, zone, CAL)
    assert repr(zone) in str(info.value)


@pytest.mark.parametrize("amount", [-1, 1.5, True])
def test_bad_amount_refused(amount: object) -> None:
    with pytest.raises(ValueError, match="amount"):
        compute_due(utc("2025-03-03T10:00"), amount, Unit.HOURS, MSK, CAL)  # type: ignore[arg-type]


def test_unknown_unit_refused() -> None:
    with pytest.raises(ValueError, match="unknown deadline unit 'weeks'"):
        compute_due(utc("2025-03-03T10:00"), 2, "weeks", MSK, CAL)


@pytest.mark.parametrize(
    ("event", "amount", "unit"),
    [
        ("2027-12-29T10:00", 5, Unit.WORKING_DAYS),
        ("2027-12-20T10:00", 12, Unit.CALENDAR_DAYS),
        ("2023-12-25T10:00", 1, Unit.WORKING_DAYS),
    ],
)
def test_year_missing_from_calendar_raises(event: str, amount: int, unit: Unit) -> None:
    with pytest.raises(CalendarYearMissing):
        compute_due(utc(event), amount, unit, MSK, CAL)


def test_plain_units_need_no_calendar_year() -> None:
    assert compute_due(utc("2030-01-01T00:00"), 2, Unit.HOURS, MSK, CAL) == utc("2030-01-01T02:00")


# --- remaining / resume -------------------------------------------------------------------------


def test_remaining_counts_only_working_time() -> None:
    # Due at the end of Wed 2025-11-05 (MSK). Seen on Fri 31 Oct 12:00 MSK: 12 h of Friday,
    # all of Sat 1 Nov (working) and Wed 5 Nov; Sun 2, Mon 3, Tue 4 do not count.
    due = utc("2025-11-05T21:00")
    now = utc("2025-10-31T09:00")
    assert remaining(now, due, Unit.WORKING_DAYS, MSK, CAL) == timedelta(hours=12 + 24 + 24)
    assert remaining(now, due, Unit.CALENDAR_DAYS, MSK, CAL) == due - now


def test_remaining_is_never_negative() -> None:
    due = utc("2025-11-05T21:00")
    late = utc("2025-11-10T09:00")
    for unit in Unit:
        assert remaining(late, due, unit, MSK, CAL) == timedelta(0)


def test_remaining_does_not_need_the_year_after_due() -> None:
    # A term ending on 31 Dec 2027 ends at 00:00 on 1 Jan 2028, a year the calendar lacks.
    due = compute_due(utc("2027-12-29T10:00"), 1, Unit.WORKING_DAYS, MSK, CAL)
    assert due == utc("2027-12-30T21:00")
    assert remaining(utc("2027-12-30T09:00"), due, Unit.WORKING_DAYS, MSK, CAL) == timedelta(
        hours=12
    )


def test_resume_on_a_non_working_day_starts_next_working_day() -> None:
    # Resumed on Sun 2 Nov 2025 with 1 day left: Mon 3 and Tue 4 are off, Wed 5 is consumed.
    new_due = resume(utc("2025-11-02T09:00"), timedelta(days=1), Unit.WORKING_DAYS, MSK, CAL)
    assert new_due == utc("2025-11-05T21:00")


def test_resume_plain_units() -> None:
    now = utc("2025-11-02T09:00")
    assert resume(now, timedelta(hours=5), Unit.HOURS, MSK, CAL) == utc("2025-11-02T14:00")
    assert resume(now, timedelta(0), Unit.WORKING_DAYS, MSK, CAL) == now


def test_resume_refuses_negative_and_naive() -> None:
    with pytest.raises(ValueError, match="negative"):
        resume(utc("2025-11-02T09:00"), timedelta(hours=-1), Unit.WORKING_DAYS, MSK, CAL)
    with pytest.raises(ValueError, match="timezone-aware"):
        resume(datetime(2025, 11, 2, 9), timedelta(hours=1), Unit.WORKING_DAYS, MSK, CAL)
    with pytest.raises(ValueError, match="timezone-aware"):
        remaining(datetime(2025, 11, 2, 9), utc("2025-11-05T21:00"), Unit.HOURS, MSK, CAL)


def test_pause_over_a_holiday_shifts_due_by_working_days() -> None:
    # 2 working days from Thu 2025-10-30 end with Sat 1 Nov (a working Saturday). Paused on
    # Fri 31 Oct 12:00 MSK with 36 h left (half of Friday and all of Saturday) and resumed on
    # Wed 5 Nov 12:00 MSK: two working days passed (Fri 31 Oct, Sat 1 Nov; 2–4 Nov are off),
    # so the last day moves by two working days, from Sat 1 Nov to Thu 6 Nov.
    due = compute_due(utc("2025-10-30T10:00"), 2, Unit.WORKING_DAYS, MSK, CAL)
    left = remaining(utc("2025-10-31T09:00"), due, Unit.WORKING_DAYS, MSK, CAL)
    assert left == timedelta(hours=36)
    assert resume(utc("2025-11-05T09:00"), left, Unit.WORKING_DAYS, MSK, CAL) == utc(
        "2025-11-06T21:00"
    )


# --- properties ---------------------------------------------------------------------------------

events = st.datetimes(
    min_value=datetime(2024, 1, 1),
    # Early enough in 2027 that every term and shift below still ends inside the calendar.
    max_value=datetime(2027, 9, 30),
    timezones=st.just(UTC),
)
zones = st.sampled_from(RUSSIAN_ZONES)
amounts = st.integers(min_value=0, max_value=40)


def _local_last_day(due: datetime, zone: str) -> date:
    return due.astimezone(ZoneInfo(zone)).date() - timedelta(days=1)


@PROPERTY
@given(event=events, amount=amounts, unit=st.sampled_from(DAY_UNITS), zone=zones)
def test_day_terms_end_at_a_local_midnight_after_the_event(
    event: datetime, amount: int, unit: Unit, zone: str
) -> None:
    due = compute_due(event, amount, unit, zone, CAL)
    local = due.astimezone(ZoneInfo(zone))
    assert (local.hour, local.minute, local.second, local.microsecond) == (0, 0, 0, 0)
    assert due > event
    assert due.tzinfo is UTC


@PROPERTY
@given(event=events, amount=st.integers(min_value=1, max_value=40), zone=zones)
def test_working_day_terms_end_on_a_working_day(event: datetime, amount: int, zone: str) -> None:
    due = compute_due(event, amount, Unit.WORKING_DAYS, zone, CAL)
    last = _local_last_day(due, zone)
    assert CAL.is_working_day(last)
    event_day = event.astimezone(ZoneInfo(zone)).date()
    counted = sum(
        1
        for offset in range(1, (last - event_day).days + 1)
        if CAL.is_working_day(event_day + timedelta(days=offset))
    )
    assert counted == amount


@PROPERTY
@given(event=events, amount=amounts, zone=zones)
def test_calendar_day_terms_end_on_the_first_working_day_from_event_plus_amount(
    event: datetime, amount: int, zone: str
) -> None:
    due = compute_due(event, amount, Unit.CALENDAR_DAYS, zone, CAL)
    last = _local_last_day(due, zone)
    nominal = event.astimezone(ZoneInfo(zone)).date() + timedelta(days=amount)
    assert last >= nominal
    assert CAL.is_working_day(last)
    assert all(
        not CAL.is_working_day(nominal + timedelta(days=i)) for i in range(0, (last - nominal).days)
    )


@PROPERTY
@given(
    event=events,
    amount=st.integers(min_value=1, max_value=40),
    zone=zones,
    fraction=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
)
def test_resume_of_remaining_gives_back_due(
    event: datetime, amount: int, zone: str, fraction: float
) -> None:
    due = compute_due(event, amount, Unit.WORKING_DAYS, zone, CAL)
    # Any instant between the event and the due date that lies within a working day.
    span = due - event
    t = event + timedelta(seconds=int(span.total_seconds() * fraction))
    assume(CAL.is_working_day(t.astimezone(ZoneInfo(zone)).date()))
    left = remaining(t, due, Unit.WORKING_DAYS, zone, CAL)
    assert left > timedelta(0)
    assert resume(t, left, Unit.WORKING_DAYS, zone, CAL) == due


@PROPERTY
@given(
    event=events,
    amount=st.integers(min_value=1, max_value=30),
    zone=zones,
    pause_after=st.integers(min_value=0, max_value=30),
    paused_for=st.integers(min_value=1, max_value=20),
    seconds_into_day=st.integers(min_value=0, max_value=86_399),
)
def test_pause_shifts_due_by_the_working_days_that_passed(
    *,
    event: datetime,
    amount: int,
    zone: str,
    pause_after: int,
    paused_for: int,
    seconds_into_day: int,
) -> None:
    tz = ZoneInfo(zone)
    due = compute_due(event, amount, Unit.WORKING_DAYS, zone, CAL)
    last = _local_last_day(due, zone)
    # pause and resume on working days, drawn as the next ones on or after the drawn days:
    # filtering for them threw away so many draws that Hypothesis's health check failed
    pause_day = CAL.next_working_day(event.astimezone(tz).date() + timedelta(days=pause_after))
    resume_day = CAL.next_working_day(pause_day + timedelta(days=paused_for))
    assume(pause_day <= last)
    paused_for = (resume_day - pause_day).days
    clock = timedelta(seconds=seconds_into_day)
    paused_at = datetime.combine(pause_day, datetime.min.time(), tz) + clock
    resumed_at = datetime.combine(resume_day, datetime.min.time(), tz) + clock
    assume(event < paused_at < due)

    left = remaining(paused_at, due, Unit.WORKING_DAYS, zone, CAL)
    new_due = resume(resumed_at, left, Unit.WORKING_DAYS, zone, CAL)

    passed = sum(
        1 for offset in range(paused_for) if CAL.is_working_day(pause_day + timedelta(days=offset))
    )
    expected_last = last
    for _ in range(passed):
        expected_last = CAL.next_working_day(expected_last + timedelta(days=1))
    assert _local_last_day(new_due, zone) == expected_last
    local = new_due.astimezone(tz)
    assert (local.hour, local.minute, local.second) == (0, 0, 0)
