"""Working days on the official Chinese calendar (holidays and 调休 make-up workdays).

`WorkingCalendar` answers "is this a working day?" and counts or adds working days. It
uses the State Council's published schedule through the `chinese-calendar` package:
public holidays are days off even on weekdays, and the make-up workdays (调休) are
working days even on a Saturday or Sunday. A policy can add days off
(`Policy.holidays`) and working days (`Policy.workdays`); its days win over the
official schedule.

A year the official data does not cover, and for which the policy names no day at all,
has no calendar: asking about it raises `CalendarUnavailable` (rules turn it into a
``calendar.unavailable`` refusal) rather than guessing that only weekends are off.

>>> from datetime import date
>>> cal = WorkingCalendar()
>>> cal.is_working_day(date(2025, 10, 8)), cal.is_working_day(date(2025, 10, 11))
(False, True)
>>> cal.add_working_days(date(2025, 9, 26), 5)
datetime.date(2025, 10, 10)
>>> cal.covers(2099)
False
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from datetime import date, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING

import chinese_calendar

from grantflow.errors import CalendarUnavailable

if TYPE_CHECKING:
    from grantflow.policy import Policy

__all__ = ["WorkingCalendar", "official_years"]


@lru_cache(maxsize=1)
def official_years() -> range:
    """Return the years the official schedule in the installed `chinese-calendar` covers."""
    days = chinese_calendar.holidays.keys()
    return range(min(days).year, max(days).year + 1)


class WorkingCalendar:
    """The official calendar with a policy's own days off and working days on top.

    Args:
        holidays: days off, whatever the official calendar says.
        workdays: working days, whatever the official calendar says.
        official: use the official schedule (``False``: only weekends and the given days).
    """

    def __init__(
        self,
        *,
        holidays: Iterable[date] = (),
        workdays: Iterable[date] = (),
        official: bool = True,
    ) -> None:
        self._off = frozenset(holidays)
        self._on = frozenset(workdays)
        both = sorted(self._off & self._on)
        if both:
            raise ValueError(f"days both off and working: {', '.join(map(str, both))}")
        self._official = official
        self._years = official_years()
        self._policy_years = frozenset(d.year for d in self._off | self._on)

    @classmethod
    def for_policy(cls, policy: Policy) -> WorkingCalendar:
        """Return the calendar of `policy` (official schedule plus its holidays and workdays)."""
        return _for_policy(policy.holidays, policy.workdays)

    def __repr__(self) -> str:
        return (
            f"WorkingCalendar(holidays={len(self._off)}, workdays={len(self._on)}, "
            f"official={self._official})"
        )

    def covers(self, year: int) -> bool:
        """Return whether the calendar knows the working days of `year`."""
        if year in self._policy_years:
            return True
        return not self._official or year in official_years()

    def is_working_day(self, day: date) -> bool:
        """Return whether `day` is a working day; `CalendarUnavailable` if its year is unknown."""
        if day in self._on:
            return True
        if day in self._off:
            return False
        if self._official and day.year in self._years:
            return day in _official_working_days(day.year)
        if not self.covers(day.year):
            first, last = official_years()[0], official_years()[-1]
            raise CalendarUnavailable(
                f"no working-day calendar for {day.year}: the official schedule covers "
                f"{first} to {last}; add the year's holidays and workdays to the policy",
                year=day.year,
            )
        return day.weekday() < 5

    def working_days_between(self, start: date, end: date) -> int:
        """Count working days strictly after `start` and strictly before `end`."""
        count = 0
        day = start + timedelta(days=1)
        while day < end:
            count += self.is_working_day(day)
            day += timedelta(days=1)
        return count

    def add_working_days(self, start: date, days: int) -> date:
        """Return the `days`-th working day after `start` (`start` itself when `days` is 0)."""
        if days < 0:
            raise ValueError("days must not be negative")
        day = start
        while days:
            year = day.year
            if self._official and year in self._years and year not in self._policy_years:
                # A year of the official schedule alone: jump through its working days.
                working = _official_working_list(year)
                after = bisect_right(working, day)
                if days <= len(working) - after:
                    return working[after + days - 1]
                days -= len(working) - after
                day = date(year, 12, 31)  # then on into the next year, a day at a time
            day += timedelta(days=1)
            days -= self.is_working_day(day)
        return day


@lru_cache(maxsize=64)
def _official_working_days(year: int) -> frozenset[date]:
    """The working days of `year` on the official schedule, asked of it once per year.

    `chinese_calendar.is_workday` recomputes the range of years it covers on every call;
    the schedule is fixed for the life of the process, so each year is read once.
    """
    first = date(year, 1, 1)
    days = (first + timedelta(days=n) for n in range((date(year + 1, 1, 1) - first).days))
    return frozenset(day for day in days if chinese_calendar.is_workday(day))


@lru_cache(maxsize=64)
def _official_working_list(year: int) -> tuple[date, ...]:
    """`_official_working_days` of `year` in calendar order."""
    return tuple(sorted(_official_working_days(year)))


@lru_cache(maxsize=64)
def _for_policy(holidays: tuple[date, ...], workdays: tuple[date, ...]) -> WorkingCalendar:
    # Policies are frozen and few: one calendar per distinct set of days.
    return WorkingCalendar(holidays=holidays, workdays=workdays)
