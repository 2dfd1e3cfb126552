"""Timers end to end: a project driven through its dates by a FrozenClock and `sweep`.

The World helper (conftest) builds projects under the default regime; here the clock is
a `grantflow.testing.FrozenClock`, moved by hand, and `Engine.sweep` fires what is due.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import grantflow
from grantflow import Actor, Engine
from grantflow.testing import FrozenClock
from grantflow.timers import TIMER_ACTOR

if TYPE_CHECKING:
    from conftest import World


def _at(day: str, hour: int = 1) -> datetime:
    """A moment on `day` (01:00 UTC is 09:00 in Beijing)."""
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)


@pytest.fixture
def timed(world: World) -> Iterator[tuple[World, FrozenClock]]:
    """The conftest's World on an engine whose clock is a FrozenClock (Monday 2025-03-03)."""
    clock = FrozenClock()
    with grantflow.open(clock=clock) as engine:
        yield type(world)(engine, clock).seed(), clock  # type: ignore[arg-type]


def _timer_entries(engine: Engine, pid: str) -> list[tuple[str, bool, str]]:
    return [
        (e.event, e.accepted, str(e.evidence.get("record", {}).get("data", {}).get("occurrence")))
        for e in engine.history(pid)
        if e.actor.id == TIMER_ACTOR.id
    ]


def test_a_project_through_publicity_signing_a_missed_report_a_reminder_and_rectification(
    timed: tuple[World, FrozenClock],
) -> None:
    """Each timer fires exactly once, on its day, however often the sweep runs.

    Publicity ends (公示期满) on the 5th working day after approval and closes by timer
    the day after; signing follows; the first progress report (进度报告) gets a reminder
    5 working days ahead and is then missed (overdue, listed by ``due``); a failed
    mid-term brings a rectification order (整改) whose reminder fires, and once its
    deadline passes, a termination proposal is recorded.
    """
    world, clock = timed
    engine = world.engine
    pid = world.reviewed()  # approved on Monday 2025-03-03

    (publicity,) = engine.obligations(pid)
    assert (publicity.kind, publicity.due_on, publicity.status) == (
        "publicity_end",
        date(2025, 3, 10),
        "open",
    )
    clock.set(_at("2025-03-10"))
    assert engine.sweep().fired == 0  # the last day of publicity: not yet
    clock.set(_at("2025-03-11"))
    assert engine.sweep().fired == 1
    assert engine.sweep().fired == 0
    assert engine.obligations(pid)[0].status == "met"

    world.sign(pid).raise_for_refusal()  # term 2025-03-15 .. 2026-03-14
    report = next(o for o in engine.obligations(pid) if o.key == "progress_report:1")
    assert report.due_on == date(2025, 6, 27)  # 10 working days after 2025-06-15

    clock.set(_at("2025-06-19"))
    assert engine.sweep().fired == 0
    clock.set(_at("2025-06-20"))  # the 5th working day before 06-27
    swept = engine.sweep()
    assert [d.timer for d in swept.due] == ["remind_progress_report"]
    assert swept.fired == 1
    assert engine.sweep().fired == 0

    clock.set(_at("2025-06-30"))  # the report was never filed
    overdue = engine.due(overdue=True)
    assert [(o.project_id, o.key) for o in overdue] == [(pid, "progress_report:1")]
    assert engine.sweep().fired == 0

    world.evaluate(pid, "midterm", 50).raise_for_refusal()
    order = {"order": {"issues": ["ledgers incomplete"], "deadline": "2025-07-31"}}
    engine.fire(
        pid, "order_rectification", actor=world.evaluator, evidence=order
    ).raise_for_refusal()
    assert engine.due(kind="rectification_due")[0].due_on == date(2025, 7, 31)

    clock.set(_at("2025-07-24"))  # 5 working days before 07-31
    assert [d.timer for d in engine.sweep().due] == ["remind_rectification_due"]
    clock.set(_at("2025-07-31"))
    assert engine.sweep().fired == 0
    clock.set(_at("2025-08-01"))
    swept = engine.sweep()
    assert [d.timer for d in swept.due] == ["propose_termination"]
    for _ in range(3):
        assert engine.sweep().fired == 0

    fired = _timer_entries(engine, pid)
    assert [event for event, _ok, _occ in fired] == [
        "record.publicity_closed",
        "record.reminder",
        "record.reminder",
        "record.termination_proposal",
    ]
    assert all(ok for _e, ok, _o in fired)
    assert max(Counter(o for _e, _ok, o in fired).values()) == 1
    assert engine.verify().ok
    assert engine.replay(pid) == engine.get(pid)


def test_publicity_does_not_close_while_an_objection_is_pending(
    timed: tuple[World, FrozenClock],
) -> None:
    """close_publicity requires every objection ruled on and none upheld (CONDITIONS)."""
    world, clock = timed
    engine = world.engine
    pid = world.reviewed()
    objector = Actor(id="citizen-1", roles=frozenset({"public"}))
    engine.add_record(
        pid, "objection", {"raised_by": "citizen-1", "grounds": "conflict"}, actor=objector
    ).raise_for_refusal()
    clock.set(_at("2025-03-12"))
    assert engine.sweep().fired == 0
    assert engine.due(overdue=True)[0].kind == "publicity_end"
    (objection,) = engine.get(pid).records_of("objection")
    ruling = {"objection": objection.id, "upheld": False}
    engine.add_record(pid, "objection_ruling", ruling, actor=world.approver).raise_for_refusal()
    assert engine.sweep().fired == 1


def test_a_timer_record_is_refused_to_anyone_but_the_system_and_before_it_is_due(
    timed: tuple[World, FrozenClock],
) -> None:
    """The timer.record rule: a forged or early reminder is refused and audited as such."""
    world, clock = timed
    engine = world.engine
    pid = world.reviewed()
    (due,) = engine.sweep(_at("2025-03-11"), dry_run=True).due
    # Early first: time never runs backwards in a chain, so once an entry is dated the
    # 11th, a later attempt with a clock reading the 10th is decided on the 11th.
    clock.set(_at("2025-03-10"))
    early = engine.add_record(pid, "publicity_closed", due.data(), actor=TIMER_ACTOR)
    assert not early.accepted
    assert "not due" in early.refusals[0].message
    clock.set(_at("2025-03-11"))
    forged = engine.add_record(pid, "publicity_closed", due.data(), actor=world.approver)
    assert {r.code for r in forged.refusals} == {"authority.role", "timer.record"}
    assert engine.get(pid).records_of("publicity_closed") == ()


def test_a_progress_report_meets_its_period_once(timed: tuple[World, FrozenClock]) -> None:
    """The provider files each period's report once; a filed one is met, no reminder fires."""
    world, clock = timed
    engine = world.engine
    pid = world.reviewed()
    clock.set(_at("2025-03-11"))
    world.sign(pid).raise_for_refusal()
    clock.set(_at("2025-06-18"))
    report = {"period": 1, "summary": "40 sessions held"}
    engine.add_record(pid, "progress_report", report, actor=world.applicant).raise_for_refusal()
    again = engine.add_record(pid, "progress_report", report, actor=world.applicant)
    assert again.refusals[0].details["problems"][0]["code"] == "progress.repeat"
    beyond = engine.add_record(
        pid, "progress_report", {"period": 9, "summary": "x"}, actor=world.applicant
    )
    assert beyond.refusals[0].details["problems"][0]["code"] == "progress.period"
    met = next(o for o in engine.obligations(pid) if o.key == "progress_report:1")
    assert met.status == "met"
    assert str(met.met_by).startswith("record:progress_report/")
    clock.set(_at("2025-06-20"))
    assert [d.timer for d in engine.sweep().due] == []


def test_the_async_engine_lists_dates_and_sweeps_as_the_sync_engine(
    timed: tuple[World, FrozenClock], tmp_path: Path
) -> None:
    """grantflow.aio on aiosqlite: dates, due, due_before and sweep agree with the sync engine."""
    from grantflow import aio

    world, clock = timed
    sync_pid = world.reviewed()

    async def main() -> tuple[list[Any], list[Any], list[str], int, int]:
        aclock = FrozenClock()
        async with await aio.open(f"sqlite:///{tmp_path / 'a.db'}", clock=aclock) as engine:
            pid = await engine.run(lambda e: type(world)(e, aclock).seed().reviewed())  # type: ignore[arg-type]
            dates = [(o.kind, o.due_on, o.status) for o in await engine.obligations(pid)]
            due = [(o.kind, o.due_on) for o in await engine.due()]
            listed = [p.id for p in await engine.projects(due_before=date(2100, 1, 1))]
            assert listed == [pid]
            aclock.set(_at("2025-03-11"))
            fired = (await engine.sweep()).fired
            again = (await engine.sweep()).fired
            assert (await engine.verify()).ok
            return dates, due, listed, fired, again

    dates, due, _, fired, again = asyncio.run(main())
    engine = world.engine
    assert dates == [(o.kind, o.due_on, o.status) for o in engine.obligations(sync_pid)]
    assert due == [(o.kind, o.due_on) for o in engine.due()]
    clock.set(_at("2025-03-11"))
    assert (fired, again) == (engine.sweep().fired, engine.sweep().fired) == (1, 0)
