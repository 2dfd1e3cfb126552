"""`FrozenClock`: the one controllable engine clock (tests, the demo, simulations).

Public as `grantflow.testing.FrozenClock`; the demo's `DemoClock` is this class.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from grantflow.errors import InvalidInput

__all__ = ["DEFAULT_START", "FrozenClock"]

#: Where a `FrozenClock` starts unless told otherwise: a Monday morning, UTC.
DEFAULT_START = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)


def _aware_utc(when: datetime, field: str) -> datetime:
    if when.tzinfo is None or when.utcoffset() is None:
        raise InvalidInput(f"{field} must be timezone-aware", field=field)
    return when.astimezone(UTC)


class FrozenClock:
    """A clock that stands still until you move it; pass it as an engine's ``clock``.

    Every reading is timezone-aware UTC. With `tick`, each reading moves the clock on by
    that much afterwards, so successive audit entries get distinct times.

    >>> from datetime import timedelta
    >>> clock = FrozenClock()
    >>> clock()
    datetime.datetime(2025, 3, 3, 9, 0, tzinfo=datetime.timezone.utc)
    >>> clock.advance(days=5).isoformat()
    '2025-03-08T09:00:00+00:00'
    """

    def __init__(self, start: datetime = DEFAULT_START, *, tick: timedelta = timedelta()) -> None:
        if tick < timedelta():
            raise InvalidInput("tick must not be negative", field="tick")
        self._now = _aware_utc(start, "start")
        self._tick = tick
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"FrozenClock({self._now.isoformat()!r}, tick={self._tick!r})"

    def __call__(self) -> datetime:
        """Return the current time, then move on by `tick`."""
        with self._lock:
            now = self._now
            self._now = now + self._tick
            return now

    @property
    def now(self) -> datetime:
        """The time the next reading returns (reading this does not tick); settable."""
        return self._now

    @now.setter
    def now(self, when: datetime) -> None:
        self.set(when)

    def today(self) -> str:
        """The current date (UTC) as ISO text."""
        return self._now.date().isoformat()

    def advance(
        self,
        delta: timedelta | float | None = None,
        /,
        *,
        days: float = 0,
        hours: float = 0,
        minutes: float = 0,
        seconds: float = 0,
    ) -> datetime:
        """Move the clock forward by `delta` and/or the keyword amounts; return the new time.

        A bare number for `delta` counts days (``clock.advance(9)``). Raises `InvalidInput`
        for a step backwards: audit times never decrease.
        """
        if delta is None:
            base = timedelta()
        elif isinstance(delta, timedelta):
            base = delta
        else:
            base = timedelta(days=delta)
        step = base + timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
        if step < timedelta():
            raise InvalidInput("a clock only moves forward; use set() to go back", field="delta")
        with self._lock:
            self._now += step
            return self._now

    def set(self, when: datetime) -> datetime:
        """Put the clock at `when` (timezone-aware; any direction); return it in UTC."""
        moved = _aware_utc(when, "when")
        with self._lock:
            self._now = moved
        return moved
