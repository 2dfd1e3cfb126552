"""Publicity: five working days after approval, and no objection upheld or pending."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conftest import World


import pytest

from grantflow.calendar import official_years
from grantflow.policy import Policy


def test_sign_waits_five_full_working_days(world: World) -> None:
    """Approved on a Monday: refused through the next Monday, accepted on Tuesday."""
    pid = world.reviewed()
    world.clock.advance(7)
    outcome = world.sign(pid)
    assert world.codes(outcome) == {"publicity.period"}
    assert outcome.refusals[0].details["elapsed"] == 4
    world.clock.advance(1)
    assert world.sign(pid).accepted


def test_holidays_do_not_count(make_world: Callable[..., World]) -> None:
    """A public holiday in the period pushes the earliest signing day back by one."""
    world = make_world(Policy(holidays=(date(2025, 3, 5),)))
    pid = world.reviewed()
    world.clock.advance(8)
    assert world.codes(world.sign(pid)) == {"publicity.period"}
    world.clock.advance(1)
    assert world.sign(pid).accepted


def test_pending_or_upheld_objection_blocks_signing(world: World) -> None:
    """An objection without ruling, or upheld, fails ``publicity.objection``; dismissed passes."""
    pid = world.reviewed()
    objection = {"raised_by": "citizen", "grounds": "provider lacks a licence"}
    world.engine.add_record(
        pid, "objection", objection, actor=world.other_applicant, record_id="o1"
    ).raise_for_refusal()
    world.clock.advance(8)
    assert world.codes(world.sign(pid)) == {"publicity.objection"}
    ruling = {"objection": "o1", "upheld": False, "note": "licence shown"}
    world.engine.add_record(
        pid, "objection_ruling", ruling, actor=world.approver
    ).raise_for_refusal()
    assert world.sign(pid).accepted


def test_upheld_objection_refuses(world: World) -> None:
    """An upheld objection fails ``publicity.objection`` with it listed."""
    pid = world.reviewed()
    engine = world.engine
    objection = {"raised_by": "citizen", "grounds": "double funding"}
    engine.add_record(pid, "objection", objection, actor=world.other_applicant, record_id="o1")
    world.clock.advance(8)
    engine.add_record(
        pid, "objection_ruling", {"objection": "o1", "upheld": True}, actor=world.approver
    )
    outcome = world.sign(pid)
    assert outcome.refusals[0].details["upheld"] == ["o1"]


def test_objections_only_during_publicity(world: World) -> None:
    """An objection while ``applied`` fails ``publicity.objection_open``."""
    pid = world.submit().project_id
    objection = {"raised_by": "citizen", "grounds": "too early"}
    outcome = world.engine.add_record(pid, "objection", objection, actor=world.other_applicant)
    assert world.codes(outcome) == {"publicity.objection_open"}


def test_ruling_needs_a_purchaser_and_an_open_objection(world: World) -> None:
    """A ruling by a non-purchaser fails ``authority.*``; on no objection, ``publicity.ruling``."""
    pid = world.reviewed()
    ruling = {"objection": "o1", "upheld": False}
    engine = world.engine
    assert world.codes(
        engine.add_record(pid, "objection_ruling", ruling, actor=world.applicant)
    ) == {"authority.role", "authority.relation", "publicity.ruling"}
    assert world.codes(
        engine.add_record(pid, "objection_ruling", ruling, actor=world.approver)
    ) == {"publicity.ruling"}


def _approved_on_friday_26_september_2025(world: World) -> str:
    pid = world.submit().raise_for_refusal().project_id
    for n in (1, 2, 3):
        world.review(pid, n).raise_for_refusal()
    world.clock.now = datetime(2025, 9, 26, 2, 0, tzinfo=UTC)  # 10:00 in Beijing
    world.approve(pid).raise_for_refusal()
    return pid


@pytest.mark.parametrize(
    "holidays",
    [(), tuple(date(2025, 10, d) for d in range(1, 9))],
    ids=["official-calendar", "policy-lists-national-day"],
)
def test_after_national_day_2025_signing_opens_on_saturday_11_october(
    make_world: Callable[..., World], holidays: tuple[date, ...]
) -> None:
    """Sunday 28 Sep and Saturday 11 Oct 2025 are make-up workdays: signing opens on the 11th.

    It opened on Tuesday 14 October when only weekends and listed holidays were known.
    """
    world = make_world(Policy(holidays=holidays))
    pid = _approved_on_friday_26_september_2025(world)
    world.clock.now = datetime(2025, 10, 10, 2, 0, tzinfo=UTC)
    outcome = world.sign(pid)
    assert world.codes(outcome) == {"publicity.period"}
    assert outcome.refusals[0].details["elapsed"] == 4
    world.clock.now = datetime(2025, 10, 11, 2, 0, tzinfo=UTC)
    assert world.sign(pid).accepted


def test_a_publicity_period_in_a_year_without_calendar_data_is_refused(
    make_world: Callable[..., World],
) -> None:
    """Counting into a year the calendar lacks refuses ``calendar.unavailable``, naming it."""
    world = make_world()
    pid = world.reviewed()
    beyond = official_years()[-1] + 1
    world.clock.now = datetime(beyond, 1, 20, 2, 0, tzinfo=UTC)
    outcome = world.sign(pid)
    assert world.codes(outcome) == {"calendar.unavailable"}
    assert outcome.refusals[0].details["year"] == beyond
    assert outcome.refusals[0].details["message_key"] == "calendar.unavailable"
    assert str(beyond) in outcome.refusals[0].message
    assert str(beyond) in outcome.refusals[0].message_zh
    given = make_world(Policy(holidays=(date(beyond, 1, 1),)))
    pid = given.reviewed()
    given.clock.now = datetime(beyond, 1, 20, 2, 0, tzinfo=UTC)
    assert given.sign(pid).accepted


def test_objections_close_with_the_publicity_period(world: World) -> None:
    """Approved Friday 7 March 2025: objections until Friday 14 March, refused on the 15th.

    One lodged 60 days after the period ended used to be accepted.
    """
    pid = world.submit().raise_for_refusal().project_id
    for n in (1, 2, 3):
        world.review(pid, n).raise_for_refusal()
    world.clock.advance(4)  # Friday 7 March
    world.approve(pid).raise_for_refusal()
    objection = {"raised_by": "citizen", "grounds": "late complaint"}
    world.clock.advance(7)  # Friday 14 March: the fifth working day
    assert world.engine.add_record(
        pid, "objection", objection, actor=world.other_applicant
    ).accepted
    world.clock.advance(1)
    late = world.engine.add_record(pid, "objection", objection, actor=world.other_applicant)
    assert world.codes(late) == {"publicity.objection_open"}
    assert late.refusals[0].details["ended"] == "2025-03-14"
