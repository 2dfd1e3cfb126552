"""`FrozenClock` stands still, moves when told, and only ever reads timezone-aware UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

import grantflow
from grantflow import InvalidInput
from grantflow.testing import FrozenClock
from grantflow.testing._clock import DEFAULT_START


def test_a_clock_stands_still_until_advanced() -> None:
    """Two readings agree; `advance` moves by a delta plus keyword amounts."""
    clock = FrozenClock()
    assert clock() == clock() == DEFAULT_START
    moved = clock.advance(timedelta(hours=1), days=2, minutes=30)
    assert moved == DEFAULT_START + timedelta(days=2, hours=1, minutes=30)
    assert clock() == moved


def test_tick_moves_the_clock_after_each_reading() -> None:
    """With `tick`, successive readings are `tick` apart; `now` peeks without ticking."""
    clock = FrozenClock(tick=timedelta(seconds=2))
    first, second = clock(), clock()
    assert second - first == timedelta(seconds=2)
    assert clock.now == second + timedelta(seconds=2)
    assert clock.now == clock.now


def test_readings_are_utc_whatever_the_start_offset() -> None:
    """A start in +08:00 reads back as the same instant in UTC."""
    beijing = timezone(timedelta(hours=8))
    clock = FrozenClock(datetime(2025, 6, 30, 17, 0, tzinfo=beijing))
    assert clock() == datetime(2025, 6, 30, 9, 0, tzinfo=UTC)
    assert clock().tzinfo is UTC


@pytest.mark.parametrize(
    "make",
    [
        lambda: FrozenClock(datetime(2025, 1, 1)),
        lambda: FrozenClock(tick=timedelta(seconds=-1)),
        lambda: FrozenClock().advance(days=-1),
        lambda: FrozenClock().set(datetime(2025, 1, 1)),
    ],
    ids=["naive-start", "negative-tick", "backwards", "naive-set"],
)
def test_bad_times_are_refused(make: object) -> None:
    """Naive datetimes, negative ticks and backward steps raise `InvalidInput`."""
    with pytest.raises(InvalidInput):
        make()  # type: ignore[operator]


def test_set_may_go_back() -> None:
    """`set` puts the clock anywhere, earlier included."""
    clock = FrozenClock()
    earlier = DEFAULT_START - timedelta(days=365)
    assert clock.set(earlier) == earlier
    assert clock() == earlier


def test_an_engine_stamps_audit_entries_with_the_clock() -> None:
    """An engine given the clock writes its readings into the audit entries."""
    clock = FrozenClock()
    engine = grantflow.open(rules=grantflow.RuleBook(), clock=clock, discover_rules=False)
    applicant = grantflow.Actor(id="org-1", roles=frozenset({"applicant"}))
    first = engine.submit(actor=applicant)
    clock.advance(days=3)
    second = engine.fire(first.project_id, "withdraw", actor=applicant)
    assert first.entry is not None
    assert second.entry is not None
    assert second.entry.at - first.entry.at == timedelta(days=3)
    assert repr(clock).startswith("FrozenClock('2025-03-06T09:00:00+00:00'")
