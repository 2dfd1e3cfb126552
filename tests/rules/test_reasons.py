"""Reasons: reject, withdraw and terminate need one; only the applicant withdraws."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import World


@pytest.mark.parametrize("reason", [None, "", "   "])
def test_reject_without_reason_is_refused(world: World, reason: str | None) -> None:
    """A missing or blank reason fails ``reasons.required``."""
    pid = world.submit().project_id
    evidence = {} if reason is None else {"reason": reason}
    assert world.codes(
        world.engine.fire(pid, "reject", actor=world.approver, evidence=evidence)
    ) == {"reasons.required"}


def test_reject_with_reason_is_accepted(world: World) -> None:
    """A reason lets ``reject`` through."""
    pid = world.submit().project_id
    evidence = {"reason": "outside the call's priorities"}
    assert world.engine.fire(pid, "reject", actor=world.approver, evidence=evidence).accepted


def test_only_the_applicant_organisation_withdraws(world: World) -> None:
    """Another applicant fails ``reasons.applicant_owns``; the project's own applicant succeeds."""
    pid = world.submit().project_id
    evidence = {"reason": "staff left"}
    fire = world.engine.fire
    assert world.codes(fire(pid, "withdraw", actor=world.other_applicant, evidence=evidence)) == {
        "reasons.applicant_owns"
    }
    assert world.codes(fire(pid, "withdraw", actor=world.applicant)) == {"reasons.required"}
    assert fire(pid, "withdraw", actor=world.applicant, evidence=evidence).state == "withdrawn"


def test_terminate_needs_a_reason_and_records_a_clawback(world: World) -> None:
    """``terminate`` without a reason is refused; with one it records the clawback."""
    pid = world.contracted()
    fire = world.engine.fire
    assert world.codes(fire(pid, "terminate", actor=world.approver)) == {"reasons.required"}
    fire(pid, "terminate", actor=world.approver, evidence={"reason": "inactivity"})
    clawback = world.engine.get(pid).records_of("clawback")[0].data
    assert (clawback["amount"], clawback["reason"]) == ("40000.00", "inactivity")
