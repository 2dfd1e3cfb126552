"""Funds: expenditure checks, amendments, installments by grade, settlement and clawback."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import TYPE_CHECKING

import pytest

from grantflow.policy import Policy
from grantflow.records import Settlement
from grantflow.rules import RuleContext, funds

if TYPE_CHECKING:
    from conftest import World


def test_a_proper_expenditure_is_accepted(world: World) -> None:
    """An in-term expenditure with voucher and invoice, under the caps, is recorded."""
    pid = world.contracted()
    assert world.spend(pid, "1000.00", "INV-1").accepted
    assert world.engine.get(pid).data["eligible_spend"] == "1000.00"


def test_expenditure_before_signing_or_by_others_is_refused(world: World) -> None:
    """Spending while ``reviewed``, or by another organisation, fails ``funds.expenditure``."""
    pid = world.reviewed()
    assert world.codes(world.spend(pid, "1.00", "INV-1")) == {"funds.expenditure"}
    world.clock.advance(8)
    world.sign(pid).raise_for_refusal()
    data = {"date": "2025-05-01", "line": "activities", "amount": "1.00", "invoice_number": "I"}
    outcome = world.engine.add_record(pid, "expenditure", data, actor=world.other_applicant)
    assert "funds.expenditure" in world.codes(outcome)


def test_expenditure_outside_the_term_is_refused(world: World) -> None:
    """An expenditure dated before the term starts fails ``funds.in_term``."""
    pid = world.contracted()
    assert world.codes(world.spend(pid, "1.00", "INV-1", date="2025-03-14")) == {"funds.in_term"}


def test_line_cap_allows_ten_percent_then_needs_an_amendment(world: World) -> None:
    """Up to 110 % of a line passes; beyond fails ``funds.line_cap`` until a line move."""
    pid = world.contracted()
    assert world.spend(pid, "5500.00", "INV-1", line="training").accepted
    assert world.codes(world.spend(pid, "0.01", "INV-2", line="training")) == {"funds.line_cap"}
    move = {
        "kind": "line_move",
        "reason": "more courses",
        "from_line": "activities",
        "to_line": "training",
        "amount": "1000.00",
    }
    world.engine.add_record(pid, "amendment", move, actor=world.approver).raise_for_refusal()
    assert world.spend(pid, "1000.00", "INV-2", line="training").accepted


def test_total_cap_is_the_contract_amount(world: World) -> None:
    """Spending beyond the contracted total fails ``funds.total_cap``."""
    pid = world.contracted()
    lines = {"personnel": "44000.00", "activities": "38500.00", "experts": "5500.00"}
    lines |= {"training": "5500.00", "publicity": "5500.00"}
    for n, (line, amount) in enumerate(lines.items()):
        world.spend(pid, amount, f"INV-{n}", line=line).raise_for_refusal()
    assert world.spend(pid, "999.99", "INV-X", line="administration").accepted
    outcome = world.spend(pid, "0.02", "INV-Y", line="administration")
    assert world.codes(outcome) == {"funds.total_cap"}


@pytest.mark.parametrize("category", ["whole_subcontracting", "unapproved_fixed_asset"])
def test_prohibited_items_are_refused(world: World, category: str) -> None:
    """Whole-job subcontracting and unapproved fixed assets fail ``funds.prohibited``."""
    pid = world.contracted()
    assert world.codes(world.spend(pid, "10.00", "INV-1", category=category)) == {
        "funds.prohibited"
    }
    assert world.spend(pid, "10.00", "INV-1", category="ordinary").accepted


def test_invoice_and_voucher_are_required(world: World) -> None:
    """No invoice number or no voucher fails ``funds.invoice``."""
    pid = world.contracted()
    assert world.codes(world.spend(pid, "10.00", "")) == {"funds.invoice"}
    assert world.codes(world.spend(pid, "10.00", "INV-1", voucher=" ")) == {"funds.invoice"}


def test_duplicate_invoice_across_projects_is_refused(world: World) -> None:
    """An invoice number claimed by another project fails ``funds.duplicate_invoice``."""
    first = world.contracted()
    world.clock.advance(-8)
    second = world.contracted()
    world.spend(first, "10.00", "INV-SHARED").raise_for_refusal()
    outcome = world.spend(second, "10.00", "INV-SHARED")
    assert world.codes(outcome) == {"funds.duplicate_invoice"}
    assert outcome.refusals[0].details["used_by"][0]["project"] == first
    assert world.spend(second, "10.00", "INV-OWN").accepted


def test_amendments_are_checked(world: World) -> None:
    """A move larger than its line, or an earlier end date, fails ``funds.amendment``."""
    pid = world.contracted()
    too_big = {
        "kind": "line_move",
        "reason": "r",
        "from_line": "experts",
        "to_line": "training",
        "amount": "5000.01",
    }
    engine = world.engine
    assert world.codes(engine.add_record(pid, "amendment", too_big, actor=world.approver)) == {
        "funds.amendment"
    }
    earlier = {"kind": "extension", "reason": "r", "new_end": "2026-01-01"}
    assert world.codes(engine.add_record(pid, "amendment", earlier, actor=world.approver)) == {
        "funds.amendment"
    }
    later = {"kind": "extension", "reason": "no-cost extension", "new_end": "2026-06-30"}
    assert engine.add_record(pid, "amendment", later, actor=world.approver).accepted
    assert world.spend(pid, "10.00", "INV-9", date="2026-05-01").accepted
    assert world.codes(engine.add_record(pid, "amendment", later, actor=world.applicant)) == {
        "funds.amendment"
    }


@pytest.mark.parametrize(
    ("percent", "grade", "final"),
    [(95, "excellent", "20000.00"), (70, "pass", "16000.00"), (50, "fail", "0.00")],
)
def test_final_installment_by_grade(world: World, percent: int, grade: str, final: str) -> None:
    """Close pays 100 % of the last installment for excellent, 80 % for pass, 0 for fail."""
    pid = world.assessed(percent)
    world.engine.fire(pid, "close", actor=world.treasurer).raise_for_refusal()
    project = world.engine.get(pid)
    settlement = Settlement.model_validate(dict(project.records_of("settlement")[0].data))
    assert (settlement.grade, settlement.final_installment) == (grade, Decimal(final))
    assert settlement.final_installment + settlement.withheld == Decimal("20000.00")
    assert settlement.eligible + settlement.surplus == settlement.disbursed


def test_close_needs_a_grade_and_not_the_approver(world: World) -> None:
    """The approver closing fails ``conflict.approver_pays``; ungraded fails ``funds.graded``."""
    pid = world.assessed()
    assert world.codes(world.engine.fire(pid, "close", actor=world.approver)) == {
        "conflict.approver_pays"
    }
    assert world.engine.fire(pid, "close", actor=world.treasurer).accepted
    project = world.engine.get(pid)
    ungraded = project.model_copy(update={"data": {**project.data, "grade": None}})
    ctx = RuleContext(
        project=ungraded,
        event="close",
        source="assessed",
        target="closed",
        actor=world.treasurer,
        evidence={},
        now=world.clock.now,
        policy=Policy(),
    )
    assert [r.code for r in funds.graded(ctx).refusals] == ["funds.graded"]
    assert funds.graded(dataclasses.replace(ctx, project=project)).passed
