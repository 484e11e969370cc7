"""The shipped production calendar against the official decrees, and the calendar's behaviour.

The expected days below are written from the decrees and the official production calendars
(literal month → day lists, as a printed calendar shows them), never read from the YAML data,
so a wrong date in the data fails a test.
"""

from __future__ import annotations

import calendar as stdlib_calendar
from datetime import date

import holidays
import pytest

from engine.errors import CalendarYearMissing
from engine.timers.calendar import ProductionCalendar, YearData

# Every non-working day (weekends, holidays and transferred days off; working Saturdays
# excluded), per month, for a five-day week.

# Постановление Правительства РФ от 10.08.2023 № 1314.
NON_WORKING_2024 = {
    1: [1, 2, 3, 4, 5, 6, 7, 8, 13, 14, 20, 21, 27, 28],
    2: [3, 4, 10, 11, 17, 18, 23, 24, 25],
    3: [2, 3, 8, 9, 10, 16, 17, 23, 24, 30, 31],
    4: [6, 7, 13, 14, 20, 21, 28, 29, 30],
    5: [1, 4, 5, 9, 10, 11, 12, 18, 19, 25, 26],
    6: [1, 2, 8, 9, 12, 15, 16, 22, 23, 29, 30],
    7: [6, 7, 13, 14, 20, 21, 27, 28],
    8: [3, 4, 10, 11, 17, 18, 24, 25, 31],
    9: [1, 7, 8, 14, 15, 21, 22, 28, 29],
    10: [5, 6, 12, 13, 19, 20, 26, 27],
    11: [3, 4, 9, 10, 16, 17, 23, 24, 30],
    12: [1, 7, 8, 14, 15, 21, 22, 29, 30, 31],
}
WORKING_WEEKENDS_2024 = [date(2024, 4, 27), date(2024, 11, 2), date(2024, 12, 28)]

# Постановление Правительства РФ от 04.10.2024 № 1335.
NON_WORKING_2025 = {
    1: [1, 2, 3, 4, 5, 6, 7, 8, 11, 12, 18, 19, 25, 26],
    2: [1, 2, 8, 9, 15, 16, 22, 23],
    3: [1, 2, 8, 9, 15, 16, 22, 23, 29, 30],
    4: [5, 6, 12, 13, 19, 20, 26, 27],
    5: [1, 2, 3, 4, 8, 9, 10, 11, 17, 18, 24, 25, 31],
    6: [1, 7, 8, 12, 13, 14, 15, 21, 22, 28, 29],
    7: [5, 6, 12, 13, 19, 20, 26, 27],
    8: [2, 3, 9, 10, 16, 17, 23, 24, 30, 31],
    9: [6, 7, 13, 14, 20, 21, 27, 28],
    10: [4, 5, 11, 12, 18, 19, 25, 26],
    11: [2, 3, 4, 8, 9, 15, 16, 22, 23, 29, 30],
    12: [6, 7, 13, 14, 20, 21, 27, 28, 31],
}
WORKING_WEEKENDS_2025 = [date(2025, 11, 1)]

# Постановление Правительства РФ от 24.09.2025 № 1466.
NON_WORKING_2026 = {
    1: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 17, 18, 24, 25, 31],
    2: [1, 7, 8, 14, 15, 21, 22, 23, 28],
    3: [1, 7, 8, 9, 14, 15, 21, 22, 28, 29],
    4: [4, 5, 11, 12, 18, 19, 25, 26],
    5: [1, 2, 3, 9, 10, 11, 16, 17, 23, 24, 30, 31],
    6: [6, 7, 12, 13, 14, 20, 21, 27, 28],
    7: [4, 5, 11, 12, 18, 19, 25, 26],
    8: [1, 2, 8, 9, 15, 16, 22, 23, 29, 30],
    9: [5, 6, 12, 13, 19, 20, 26, 27],
    10: [3, 4, 10, 11, 17, 18, 24, 25, 31],
    11: [1, 4, 7, 8, 14, 15, 21, 22, 28, 29],
    12: [5, 6, 12, 13, 19, 20, 26, 27, 31],
}
WORKING_WEEKENDS_2026: list[date] = []

# Постановление Правительства РФ от 17.09.2026 № 1187.
NON_WORKING_2027 = {
    1: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 16, 17, 23, 24, 30, 31],
    2: [6, 7, 13, 14, 21, 22, 23, 27, 28],
    3: [6, 7, 8, 13, 14, 20, 21, 27, 28],
    4: [3, 4, 10, 11, 17, 18, 24, 25],
    5: [1, 2, 3, 8, 9, 10, 15, 16, 22, 23, 29, 30],
    6: [5, 6, 12, 13, 14, 19, 20, 26, 27],
    7: [3, 4, 10, 11, 17, 18, 24, 25, 31],
    8: [1, 7, 8, 14, 15, 21, 22, 28, 29],
    9: [4, 5, 11, 12, 18, 19, 25, 26],
    10: [2, 3, 9, 10, 16, 17, 23, 24, 30, 31],
    11: [4, 5, 6, 7, 13, 14, 20, 21, 27, 28],
    12: [4, 5, 11, 12, 18, 19, 25, 26, 31],
}
WORKING_WEEKENDS_2027 = [date(2027, 2, 20)]

# Official working days per year (five-day week) and per month, as the production calendars
# publish them.
WORKING_DAYS = {2024: 248, 2025: 247, 2026: 247, 2027: 247}
WORKING_DAYS_BY_MONTH = {
    2024: [17, 20, 20, 21, 20, 19, 23, 22, 21, 23, 21, 21],
    2025: [17, 20, 21, 22, 18, 19, 23, 21, 22, 23, 19, 22],
    2026: [15, 19, 21, 22, 19, 21, 23, 21, 22, 22, 20, 22],
    2027: [15, 19, 22, 22, 19, 21, 22, 22, 22, 21, 20, 22],
}
DECREES = {
    2024: ("10.08.2023", "№ 1314"),
    2025: ("04.10.2024", "№ 1335"),
    2026: ("24.09.2025", "№ 1466"),
    2027: ("17.09.2026", "№ 1187"),
}


def _dates(year: int, by_month: dict[int, list[int]]) -> list[date]:
    return [date(year, month, day) for month, days in sorted(by_month.items()) for day in days]


@pytest.fixture(scope="module")
def cal() -> ProductionCalendar:
    return ProductionCalendar.russia()


def test_2024_matches_decree_1314(cal: ProductionCalendar) -> None:
    assert cal.non_working_days(2024) == _dates(2024, NON_WORKING_2024)
    assert cal.working_weekend_days(2024) == WORKING_WEEKENDS_2024


def test_2025_matches_decree_1335(cal: ProductionCalendar) -> None:
    assert cal.non_working_days(2025) == _dates(2025, NON_WORKING_2025)
    assert cal.working_weekend_days(2025) == WORKING_WEEKENDS_2025
    # The transfer of 1 → 3 November 2025 that deadlines rely on.
    assert cal.is_working_day(date(2025, 11, 1))
    assert not cal.is_working_day(date(2025, 11, 3))


def test_2026_matches_decree_1466(cal: ProductionCalendar) -> None:
    assert cal.non_working_days(2026) == _dates(2026, NON_WORKING_2026)
    assert cal.working_weekend_days(2026) == WORKING_WEEKENDS_2026


def test_2027_matches_decree_1187(cal: ProductionCalendar) -> None:
    assert cal.non_working_days(2027) == _dates(2027, NON_WORKING_2027)
    assert cal.working_weekend_days(2027) == WORKING_WEEKENDS_2027


@pytest.mark.parametrize("year", sorted(WORKING_DAYS))
def test_working_day_counts_match_official_figures(cal: ProductionCalendar, year: int) -> None:
    days_in_year = 366 if stdlib_calendar.isleap(year) else 365
    assert days_in_year - len(cal.non_working_days(year)) == WORKING_DAYS[year]
    by_month = [
        stdlib_calendar.monthrange(year, month)[1]
        - sum(1 for d in cal.non_working_days(year) if d.month == month)
        for month in range(1, 13)
    ]
    assert by_month == WORKING_DAYS_BY_MONTH[year]
    assert sum(WORKING_DAYS_BY_MONTH[year]) == WORKING_DAYS[year]


@pytest.mark.parametrize("year", sorted(DECREES))
def test_each_year_names_its_decree(cal: ProductionCalendar, year: int) -> None:
    day, number = DECREES[year]
    source = cal.year_data(year).source
    assert day in source
    assert number in source
    assert f"в {year} году" in source


@pytest.mark.parametrize("year", sorted(WORKING_DAYS))
def test_agrees_with_the_holidays_package(cal: ProductionCalendar, year: int) -> None:
    # A second, independent transcription of the decrees; a disagreement means one of the two
    # has to be checked against the decree text.
    reference = holidays.country_holidays("RU", years=year)
    for ordinal in range(date(year, 1, 1).toordinal(), date(year + 1, 1, 1).toordinal()):
        d = date.fromordinal(ordinal)
        assert cal.is_working_day(d) == reference.is_working_day(d), d


def test_shipped_years(cal: ProductionCalendar) -> None:
    assert cal.years == frozenset({2024, 2025, 2026, 2027})


def test_russia_is_loaded_once() -> None:
    assert ProductionCalendar.russia() is ProductionCalendar.russia()


@pytest.mark.parametrize("day", [date(2023, 12, 29), date(2028, 1, 3)])
def test_year_not_in_data_raises(cal: ProductionCalendar, day: date) -> None:
    with pytest.raises(CalendarYearMissing) as info:
        cal.is_working_day(day)
    assert info.value.year == day.year
    assert info.value.known == (2024, 2025, 2026, 2027)


def test_year_not_in_data_raises_for_lists(cal: ProductionCalendar) -> None:
    with pytest.raises(CalendarYearMissing):
        cal.non_working_days(2028)
    with pytest.raises(CalendarYearMissing):
        cal.working_weekend_days(2023)


def test_next_working_day(cal: ProductionCalendar) -> None:
    assert cal.next_working_day(date(2025, 11, 1)) == date(2025, 11, 1)
    assert cal.next_working_day(date(2025, 11, 2)) == date(2025, 11, 5)
    assert cal.next_working_day(date(2025, 12, 31)) == date(2026, 1, 12)
    with pytest.raises(CalendarYearMissing):
        cal.next_working_day(date(2027, 12, 31))


def test_from_yaml_round_trip(cal: ProductionCalendar) -> None:
    again = ProductionCalendar.from_yaml(cal.to_yaml())
    assert again == cal
    assert again.fingerprint == cal.fingerprint
    for year in cal.years:
        assert again.non_working_days(year) == cal.non_working_days(year)


def test_from_yaml_accepts_quoted_dates_and_years() -> None:
    text = """
years:
  "2030":
    source: "Постановление (test)"
    holidays: ["2030-01-01"]
    working_weekends: ["2030-01-05"]
"""
    cal = ProductionCalendar.from_yaml(text)
    assert cal.years == frozenset({2030})
    assert not cal.is_working_day(date(2030, 1, 1))
    assert cal.is_working_day(date(2030, 1, 5))


def test_fingerprint_changes_when_data_changes(cal: ProductionCalendar) -> None:
    years = {year: cal.year_data(year) for year in cal.years}
    data = years[2026]
    moved = dict(years)
    moved[2026] = YearData(
        holidays=data.holidays - {date(2026, 12, 31)},
        working_weekends=data.working_weekends,
        source=data.source,
    )
    renamed = dict(years)
    renamed[2026] = YearData(data.holidays, data.working_weekends, data.source + " (ред.)")
    fewer = {year: d for year, d in years.items() if year != 2027}

    fingerprints = {
        ProductionCalendar(years).fingerprint,
        ProductionCalendar(moved).fingerprint,
        ProductionCalendar(renamed).fingerprint,
        ProductionCalendar(fewer).fingerprint,
    }
    assert len(fingerprints) == 4
    assert ProductionCalendar(years).fingerprint == cal.fingerprint
    assert len(cal.fingerprint) == 64
    int(cal.fingerprint, 16)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[]", "'years' mapping"),
        ("years: {2030: {source: x, holidays: [2030-01-05]}}", "weekend day"),
        ("years: {2030: {source: x, working_weekends: [2030-01-07]}}", "not a Saturday"),
        ("years: {2030: {source: x, holidays: [2031-01-01]}}", "not in 2030"),
        ("years: {2030: {source: x, holidays: [tomorrow]}}", "not a date"),
        ("years: {2030: {holidays: []}}", "'source'"),
        ("years: {2030: {source: x, extra: 1}}", "unknown keys"),
        ("years: {nope: {source: x}}", "not a year"),
        ("years: [", "not valid YAML"),
    ],
)
def test_from_yaml_refuses_bad_data(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ProductionCalendar.from_yaml(text)
