"""Publicity: five working days after approval, and no objection upheld or pending."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conftest import World


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
    world.clock.advance(8)
    objection = {"raised_by": "citizen", "grounds": "provider lacks a licence"}
    world.engine.add_record(
        pid, "objection", objection, actor=world.other_applicant, record_id="o1"
    )
    assert world.codes(world.sign(pid)) == {"publicity.objection"}
    ruling = {"objection": "o1", "upheld": False, "note": "licence shown"}
    world.engine.add_record(
        pid, "objection_ruling", ruling, actor=world.approver
    ).raise_for_refusal()
    assert world.sign(pid).accepted


def test_upheld_objection_refuses(world: World) -> None:
    """An upheld objection fails ``publicity.objection`` with it listed."""
    pid = world.reviewed()
    world.clock.advance(8)
    engine = world.engine
    objection = {"raised_by": "citizen", "grounds": "double funding"}
    engine.add_record(pid, "objection", objection, actor=world.other_applicant, record_id="o1")
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
    """A ruling by a non-purchaser, or on no objection, fails ``publicity.ruling``."""
    pid = world.reviewed()
    ruling = {"objection": "o1", "upheld": False}
    engine = world.engine
    assert world.codes(
        engine.add_record(pid, "objection_ruling", ruling, actor=world.applicant)
    ) == {"publicity.ruling"}
    assert world.codes(
        engine.add_record(pid, "objection_ruling", ruling, actor=world.approver)
    ) == {"publicity.ruling"}
