"""Funds: expenditure checks, amendments, installments by grade, settlement and clawback."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

import pytest
from pydantic import ValidationError

from grantflow.calendar import WorkingCalendar
from grantflow.policy import Policy
from grantflow.records import RefundDemand, Settlement
from grantflow.rules import RuleContext, funds

if TYPE_CHECKING:
    from conftest import World


def test_a_proper_expenditure_is_accepted(world: World) -> None:
    """An in-term expenditure with voucher and invoice, under the caps, is recorded."""
    pid = world.contracted()
    assert world.spend(pid, "1000.00", "INV-1").accepted
    assert world.engine.get(pid).data["eligible_spend"] == "1000.00"


def test_expenditure_before_signing_or_by_others_is_refused(world: World) -> None:
    """Spending while reviewed: ``funds.expenditure``; by another org: ``authority.relation``."""
    pid = world.reviewed()
    assert world.codes(world.spend(pid, "1.00", "INV-1")) == {"funds.expenditure"}
    world.clock.advance(8)
    world.sign(pid).raise_for_refusal()
    data = {"date": "2025-05-01", "line": "activities", "amount": "1.00", "invoice_number": "I"}
    outcome = world.engine.add_record(pid, "expenditure", data, actor=world.other_applicant)
    assert "authority.relation" in world.codes(outcome)


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
    engine = world.engine
    engine.add_record(
        pid, "amendment_request", move, actor=world.applicant, record_id="req-1"
    ).raise_for_refusal()
    decision = {"request": "req-1", "approved": True}
    engine.add_record(pid, "amendment_decision", decision, actor=world.approver).raise_for_refusal()
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
    world.clock.now -= timedelta(days=8)  # the second project runs in the same weeks
    second = world.contracted()
    world.spend(first, "10.00", "INV-SHARED").raise_for_refusal()
    outcome = world.spend(second, "10.00", "INV-SHARED")
    assert world.codes(outcome) == {"funds.duplicate_invoice"}
    first_use = world.engine.get(first).records_of("expenditure")[-1]
    assert outcome.refusals[0].details["used_by"] == [{"project": first, "record": first_use.id}]
    assert world.spend(second, "10.00", "INV-OWN").accepted


@pytest.mark.parametrize(
    ("percent", "grade", "final", "withheld"),
    [(95, "excellent", "20000.00", "0.00"), (70, "pass", "16000.00", "4000.00"),
     (50, "fail", "0.00", "20000.00")],
)  # fmt: skip
def test_final_installment_by_grade(
    world: World, percent: int, grade: str, final: str, withheld: str
) -> None:
    """Fully spent: close pays 100 % of the last part for excellent, 80 % for pass, 0 for fail."""
    pid = world.assessed(percent)
    rest = {**world.BUDGET, "activities": "5000.00"}  # assessed() spent 30,000 on activities
    for n, (line, amount) in enumerate(rest.items(), start=2):
        world.spend(pid, amount, f"INV-{n}", line=line).raise_for_refusal()
    world.engine.fire(pid, "close", actor=world.treasurer).raise_for_refusal()
    settlement = _settlement(world, pid)
    assert (settlement.grade, settlement.final_installment) == (grade, Decimal(final))
    assert settlement.withheld == Decimal(withheld)
    assert settlement.disbursed - settlement.refund == settlement.due
    assert settlement.due == settlement.eligible - settlement.withheld


def _settlement(world: World, pid: str) -> Settlement:
    project = world.engine.get(pid)
    return Settlement.model_validate(dict(project.records_of("settlement")[0].data))


def test_an_underspent_project_gets_a_refund_demand_not_a_final_payment(world: World) -> None:
    """Award 100,000, 10,000 spent, graded 优秀: nothing more is paid, 70,000 is demanded back.

    ``close`` used to pay the last 20,000 anyway and record a 90,000 surplus.
    """
    pid = world.contracted()
    world.spend(pid, "10000.00", "INV-1").raise_for_refusal()
    world.midterm(pid)
    world.evaluate(pid, "final", 95).raise_for_refusal()
    closeout = {"closeout": {"report": "final report"}}
    world.engine.fire(pid, "assess", actor=world.evaluator, evidence=closeout).raise_for_refusal()
    world.engine.fire(pid, "close", actor=world.treasurer).raise_for_refusal()
    project = world.engine.get(pid)
    settlement = _settlement(world, pid)
    assert settlement.final_installment == Decimal("0.00")
    assert [r.data["installment"] for r in project.records_of("disbursement")] == [1, 2]
    assert (settlement.disbursed, settlement.due, settlement.refund) == (
        Decimal("80000.00"),
        Decimal("10000.00"),
        Decimal("70000.00"),
    )
    demand = RefundDemand.model_validate(dict(project.records_of("refund_demand")[0].data))
    assert (demand.amount, demand.status, demand.reason) == (
        Decimal("70000.00"),
        "open",
        "settlement",
    )
    closed_on = world.clock.now.date()
    assert demand.due_on == WorkingCalendar().add_working_days(closed_on, 20)
    assert project.data["refund_status"] == "open"


def test_settling_a_refund_is_an_audited_purchaser_record(world: World) -> None:
    """Repayments are ``refund_payment`` records by a purchaser, up to what is owed."""
    pid = world.contracted()
    world.spend(pid, "10000.00", "INV-1").raise_for_refusal()
    reason = {"reason": "provider stopped delivering"}
    world.engine.fire(pid, "terminate", actor=world.approver, evidence=reason).raise_for_refusal()
    engine, today = world.engine, world.clock.now.date().isoformat()
    part = {"amount": "20000.00", "paid_on": today, "reference": "bank-1"}
    assert world.codes(engine.add_record(pid, "refund_payment", part, actor=world.applicant)) == {
        "authority.role",
        "authority.relation",
    }
    engine.add_record(pid, "refund_payment", part, actor=world.treasurer).raise_for_refusal()
    assert engine.get(pid).data["refund_status"] == "open"
    too_much = {**part, "amount": "10000.01", "reference": "bank-2"}
    assert world.codes(
        engine.add_record(pid, "refund_payment", too_much, actor=world.treasurer)
    ) == {"funds.refund_payment"}
    rest = {**part, "amount": "10000.00", "reference": "bank-2"}
    outcome = engine.add_record(pid, "refund_payment", rest, actor=world.treasurer)
    assert outcome.accepted
    project = engine.get(pid)
    assert (project.data["refund_status"], project.data["refund_settled"]) == (
        "settled",
        "30000.00",
    )
    assert [e.event for e in engine.history(pid)][-1] == "record.refund_payment"


@pytest.mark.parametrize(
    ("shares", "spent", "grade_percent", "paid", "refund"),
    [
        ((25, 25, 25, 25), "100000.00", 95, ["25000.00"] * 4, "0.00"),
        ((50, 50), "90000.00", 50, ["50000.00"], "0.00"),
        ((50, 50), "40000.00", 50, ["50000.00"], "10000.00"),
        ((50, 50), "90000.00", 95, ["50000.00", "40000.00"], "0.00"),
        ((30, 30, 40), "100000.00", 70, ["30000.00", "30000.00", "32000.00"], "0.00"),
    ],
)
def test_any_schedule_pays_each_part_on_its_milestone(
    make_world: Callable[..., World],
    shares: tuple[int, ...],
    spent: str,
    grade_percent: int,
    paid: list[str],
    refund: str,
) -> None:
    """(25,25,25,25) pays all four parts (the third was never paid); (50,50) 不合格 withholds."""
    world = make_world(Policy(installments=tuple(Decimal(s) for s in shares)))
    pid = world.contracted()
    lines = ("activities", "personnel", "experts", "training", "publicity", "evaluation")
    remaining = Decimal(spent)
    for n, line in enumerate(lines):
        cap = {"activities": 38500, "personnel": 44000}.get(line, 5500)
        amount = min(remaining, Decimal(cap))
        if amount > 0:
            world.spend(pid, str(amount), f"INV-{n}", line=line).raise_for_refusal()
        remaining -= amount
    world.midterm(pid)
    world.evaluate(pid, "final", grade_percent).raise_for_refusal()
    closeout = {"closeout": {"report": "final report"}}
    world.engine.fire(pid, "assess", actor=world.evaluator, evidence=closeout).raise_for_refusal()
    world.engine.fire(pid, "close", actor=world.treasurer).raise_for_refusal()
    project = world.engine.get(pid)
    assert [r.data["amount"] for r in project.records_of("disbursement")] == paid
    settlement = _settlement(world, pid)
    assert settlement.refund == Decimal(refund)
    assert settlement.disbursed - settlement.refund == settlement.due


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"installments": (40, 40, 30)}, "add up to 100"),
        ({"installments": (50, 50), "installment_milestones": ("sign",)}, "2 installments"),
        ({"installments": (50, 50), "installment_milestones": ("sign", "assess")}, "unknown"),
        ({"installments": (50, 50), "installment_milestones": ("close", "sign")}, "order"),
        ({"installments": (50, 50), "installment_milestones": ("sign", "pass_midterm")}, "held"),
        ({"installments": (100, 0)}, "positive"),
    ],
)
def test_schedules_are_validated_when_the_policy_is_built(
    fields: dict[str, object], message: str
) -> None:
    """Parts add up to 100, each has a known milestone in order, and the last is ``close``."""
    with pytest.raises(ValidationError, match=message):
        Policy.model_validate(fields)


def test_close_needs_a_grade_and_not_the_approver(world: World) -> None:
    """The approver closing fails ``conflict.approver_pays``; ungraded fails ``funds.graded``."""
    pid = world.assessed()
    paying_approver = world.approver.model_copy(
        update={"roles": frozenset({"purchaser", "finance"})}
    )
    assert world.codes(world.engine.fire(pid, "close", actor=paying_approver)) == {
        "conflict.approver_pays"
    }
    assert world.codes(world.engine.fire(pid, "close", actor=world.approver)) == {
        "conflict.approver_pays",
        "authority.release",
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


@pytest.mark.parametrize(("amount", "demanded"), [("0.00", False), ("0.01", True), ("1.00", True)])
def test_a_refund_is_demanded_from_one_fen_and_never_for_nothing(
    amount: str, demanded: bool
) -> None:
    """The settlement's refund demand: none for a zero overpayment, one from a single fen."""
    from datetime import UTC, datetime

    from grantflow.models import Actor, Project

    now = datetime(2025, 6, 2, 1, tzinfo=UTC)
    project = Project(
        id="p", state="assessed", version=1, head="0" * 64, created_at=now, updated_at=now
    )
    ctx = RuleContext(
        project=project,
        event="close",
        source="assessed",
        target="closed",
        actor=Actor(id="staff-2", roles=frozenset({"purchaser", "finance"})),
        evidence={},
        now=now,
        policy=Policy(),
        facts={},
    )
    found = funds._demand(ctx, Decimal(amount), "settlement")
    assert [r.kind for r in found] == (["refund_demand"] if demanded else [])
    if demanded:
        assert Decimal(found[0].data["amount"]) == Decimal(amount)


def test_signing_and_settling_write_the_project_fields_reports_read(world: World) -> None:
    """Sign stores the award time and term; close the eligible spend and the refund's state.

    Portfolio reports and exports read these fields of the project (not the records).
    """
    pid = world.contracted()
    data = world.engine.get(pid).data
    assert (data["term_start"], data["term_end"]) == ("2025-03-15", "2026-03-14")
    awarded_at = datetime.fromisoformat(str(data["awarded_at"]).replace("Z", "+00:00"))
    assert awarded_at == world.engine.get(pid).updated_at
    world.spend(pid, "10000.00", "INV-1").raise_for_refusal()
    world.midterm(pid)
    world.evaluate(pid, "final", 95).raise_for_refusal()
    closeout = {"closeout": {"report": "final report"}}
    world.engine.fire(pid, "assess", actor=world.evaluator, evidence=closeout).raise_for_refusal()
    world.engine.fire(pid, "close", actor=world.treasurer).raise_for_refusal()
    project = world.engine.get(pid)
    assert (project.data["eligible_spend"], project.data["refund_demanded"]) == (
        "10000.00",
        "70000.00",
    )
    assert project.data["refund_status"] == "open"
    assert [(r.kind, r.id) for r in project.records_of("settlement")] == [
        ("settlement", "settlement")
    ]


def test_a_fully_spent_project_has_no_refund_status(world: World) -> None:
    """With nothing to refund, ``refund_status`` stays empty (no demand to settle)."""
    pid = world.assessed(95)
    rest = {**world.BUDGET, "activities": "5000.00"}  # assessed() spent 30,000 on activities
    for n, (line, amount) in enumerate(rest.items(), start=2):
        world.spend(pid, amount, f"INV-{n}", line=line).raise_for_refusal()
    world.engine.fire(pid, "close", actor=world.treasurer).raise_for_refusal()
    project = world.engine.get(pid)
    assert project.data["refund_demanded"] == "0.00"
    assert project.data.get("refund_status") is None
