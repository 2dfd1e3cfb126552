"""The working-day calendar: official holidays and 调休 make-up workdays, policy overrides."""

from __future__ import annotations

from datetime import date, timedelta

import chinese_calendar
import pytest
from hypothesis import given
from hypothesis import strategies as st

from grantflow.calendar import WorkingCalendar, official_years
from grantflow.errors import CalendarUnavailable
from grantflow.policy import Policy


def test_national_day_2025_and_its_make_up_workdays() -> None:
    """1-8 October 2025 are off; Sunday 28 September and Saturday 11 October are worked."""
    cal = WorkingCalendar()
    assert not any(cal.is_working_day(date(2025, 10, d)) for d in range(1, 9))
    assert cal.is_working_day(date(2025, 9, 28))
    assert cal.is_working_day(date(2025, 10, 11))
    assert not cal.is_working_day(date(2025, 10, 12))


def test_counting_and_adding_working_days_across_the_holiday() -> None:
    """From Friday 26 September 2025 the fifth working day is 10 October (28 Sep counts)."""
    cal = WorkingCalendar()
    assert cal.add_working_days(date(2025, 9, 26), 5) == date(2025, 10, 10)
    assert cal.working_days_between(date(2025, 9, 26), date(2025, 10, 11)) == 5
    assert cal.working_days_between(date(2025, 9, 26), date(2025, 10, 10)) == 4
    assert cal.add_working_days(date(2025, 9, 26), 0) == date(2025, 9, 26)


def test_policy_days_override_the_official_schedule() -> None:
    """A policy holiday is off even on an official workday; a policy workday is worked."""
    policy = Policy(holidays=(date(2025, 10, 11),), workdays=(date(2025, 10, 6),))
    cal = WorkingCalendar.for_policy(policy)
    assert not cal.is_working_day(date(2025, 10, 11))
    assert cal.is_working_day(date(2025, 10, 6))
    assert cal.is_working_day(date(2025, 10, 10))


def test_a_year_without_data_is_refused_unless_the_policy_gives_days() -> None:
    """Asking about a year beyond the official data raises; a policy day makes it usable."""
    beyond = official_years()[-1] + 3
    with pytest.raises(CalendarUnavailable) as caught:
        WorkingCalendar().is_working_day(date(beyond, 5, 6))
    assert caught.value.year == beyond
    policy_cal = WorkingCalendar.for_policy(Policy(holidays=(date(beyond, 1, 1),)))
    assert policy_cal.covers(beyond)
    assert not policy_cal.is_working_day(date(beyond, 1, 1))
    assert policy_cal.is_working_day(date(beyond, 1, 2)) == (date(beyond, 1, 2).weekday() < 5)
    assert WorkingCalendar(official=False).is_working_day(date(beyond, 5, 6)) == (
        date(beyond, 5, 6).weekday() < 5
    )


def test_a_day_both_off_and_worked_is_a_definition_error() -> None:
    """The same day as a holiday and a workday is refused when the policy is built."""
    with pytest.raises(ValueError, match="2025-10-11"):
        Policy(holidays=(date(2025, 10, 11),), workdays=(date(2025, 10, 11),))
    with pytest.raises(ValueError, match="both off and working"):
        WorkingCalendar(holidays=[date(2025, 1, 1)], workdays=[date(2025, 1, 1)])


@given(
    st.dates(
        min_value=date(official_years()[0], 1, 1), max_value=date(official_years()[-1], 12, 31)
    )
)
def test_the_per_year_cache_answers_as_the_official_schedule(day: date) -> None:
    """Every covered day is a working day exactly when `chinese_calendar.is_workday` says so."""
    assert WorkingCalendar().is_working_day(day) is chinese_calendar.is_workday(day)


def _walk(cal: WorkingCalendar, start: date, days: int) -> date:
    """The definition: step a day at a time, counting working days."""
    day = start
    while days:
        day += timedelta(days=1)
        days -= cal.is_working_day(day)
    return day


_YEARS = official_years()
_NEAR = st.dates(min_value=date(_YEARS[-1] - 2, 1, 1), max_value=date(_YEARS[-1], 12, 31))


@given(
    start=st.dates(min_value=date(_YEARS[0], 1, 1), max_value=date(_YEARS[-1], 12, 31)),
    near=_NEAR,
    days=st.integers(min_value=0, max_value=800),
    off=st.lists(_NEAR, max_size=3),
    on=st.lists(_NEAR, max_size=3),
    use_near=st.booleans(),
)
def test_adding_working_days_jumps_through_years_as_the_walk_counts(
    start: date, near: date, days: int, off: list[date], on: list[date], use_near: bool
) -> None:
    """add_working_days equals stepping a day at a time, policy days and the end of data too."""
    cal = WorkingCalendar(holidays=off, workdays=[d for d in on if d not in off])
    begin = near if use_near else start
    try:
        expected: date | type[CalendarUnavailable] = _walk(cal, begin, days)
    except CalendarUnavailable:
        expected = CalendarUnavailable
    if expected is CalendarUnavailable:
        with pytest.raises(CalendarUnavailable):
            cal.add_working_days(begin, days)
    else:
        assert cal.add_working_days(begin, days) == expected
