"""Evaluations: records, mid-term grade, spending, rectification grounds and order, assessment."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conftest import World


ORDER = {"order": {"issues": ["ledgers incomplete"], "deadline": "2025-06-30"}}
CLOSEOUT = {"closeout": {"report": "final report"}}


def test_evaluation_record_is_checked(world: World) -> None:
    """Wrong stage, wrong rubric or a non-evaluator fail ``evaluation.record``."""
    pid = world.contracted()
    assert world.codes(world.evaluate(pid, "final", 80)) == {"evaluation.record"}
    assert world.codes(world.evaluate(pid, "midterm", 80, rubric_version=2)) == {
        "evaluation.record"
    }
    data = {"stage": "midterm", "evaluator": "staff-2", "organisation": "city"}
    outcome = world.engine.add_record(pid, "evaluation", data, actor=world.treasurer)
    assert "evaluation.record" in world.codes(outcome)
    assert world.evaluate(pid, "midterm", 80).accepted


def test_pass_midterm_needs_a_passing_grade(world: World) -> None:
    """No evaluation or a failing one fails ``evaluation.midterm_grade``; 合格 passes."""
    pid = world.contracted()
    assert world.codes(world.engine.fire(pid, "pass_midterm", actor=world.treasurer)) == {
        "evaluation.midterm_grade"
    }
    world.evaluate(pid, "midterm", 59).raise_for_refusal()
    outcome = world.engine.fire(pid, "pass_midterm", actor=world.treasurer)
    assert outcome.refusals[0].details["grade"] == "fail"
    world.evaluate(pid, "midterm", 60).raise_for_refusal()
    assert world.engine.fire(pid, "pass_midterm", actor=world.treasurer).accepted
    assert world.engine.get(pid).data["amount_disbursed"] == "80000.00"


def test_spending_must_not_run_ahead_of_progress(world: World) -> None:
    """Spending 50 % against 20 % progress fails ``evaluation.spending``; 30 % progress passes."""
    pid = world.contracted()
    for n, line in enumerate(("personnel", "activities")):
        world.spend(pid, "25000.00", f"INV-{n}", line=line).raise_for_refusal()
    world.evaluate(pid, "midterm", 80, progress_percent="20").raise_for_refusal()
    assert world.codes(world.engine.fire(pid, "pass_midterm", actor=world.treasurer)) == {
        "evaluation.spending"
    }
    world.evaluate(pid, "midterm", 80, progress_percent="30").raise_for_refusal()
    assert world.engine.fire(pid, "pass_midterm", actor=world.treasurer).accepted


def test_rectification_needs_a_failed_or_borderline_midterm(world: World) -> None:
    """A good mid-term fails ``evaluation.rectification_grounds``; a borderline one is accepted."""
    pid = world.contracted()
    world.evaluate(pid, "midterm", 80).raise_for_refusal()
    fire = world.engine.fire
    outcome = fire(pid, "order_rectification", actor=world.evaluator, evidence=ORDER)
    assert world.codes(outcome) == {"evaluation.rectification_grounds"}
    world.evaluate(pid, "midterm", 62).raise_for_refusal()
    version = world.engine.get(pid).version
    assert fire(pid, "order_rectification", actor=world.evaluator, evidence=ORDER).accepted
    (order,) = world.engine.get(pid).records_of("rectification_order")
    assert order.data["deadline"] == "2025-06-30"
    # Named after the entry that writes it, so a second order never takes the first's id.
    assert (order.id, order.seq) == (f"order-{version + 1}", version + 1)


def test_rectification_order_needs_issues_and_a_future_deadline(world: World) -> None:
    """No issues, or a past deadline, fail ``evaluation.order``."""
    pid = world.contracted()
    world.evaluate(pid, "midterm", 50).raise_for_refusal()
    for order in (
        {"issues": [], "deadline": "2025-06-30"},
        {"issues": ["x"], "deadline": "2025-01-01"},
    ):
        outcome = world.engine.fire(
            pid, "order_rectification", actor=world.evaluator, evidence={"order": order}
        )
        assert world.codes(outcome) == {"evaluation.order"}


def test_recheck_after_rectification_releases_the_second_installment(world: World) -> None:
    """A passing re-check lets ``pass_midterm`` through from rectification."""
    pid = world.contracted()
    world.evaluate(pid, "midterm", 50).raise_for_refusal()
    world.engine.fire(pid, "order_rectification", actor=world.evaluator, evidence=ORDER)
    assert world.codes(world.engine.fire(pid, "pass_midterm", actor=world.treasurer)) == {
        "evaluation.midterm_grade"
    }
    world.evaluate(pid, "recheck", 75).raise_for_refusal()
    assert world.engine.fire(pid, "pass_midterm", actor=world.treasurer).state == "midterm"


def test_assess_needs_a_final_evaluation_and_closeout(world: World) -> None:
    """No final evaluation fails ``evaluation.final``; no report fails ``evaluation.closeout``."""
    pid = world.contracted()
    world.midterm(pid)
    fire = world.engine.fire
    assert world.codes(fire(pid, "assess", actor=world.evaluator, evidence=CLOSEOUT)) == {
        "evaluation.final"
    }
    world.evaluate(pid, "final", 91).raise_for_refusal()
    assert world.codes(fire(pid, "assess", actor=world.evaluator)) == {"evaluation.closeout"}
    fire(pid, "assess", actor=world.evaluator, evidence=CLOSEOUT).raise_for_refusal()
    assert world.engine.get(pid).data["grade"] == "excellent"


def test_a_recheck_after_the_rectification_deadline_is_refused(world: World) -> None:
    """170 days past the deadline the re-check and ``pass_midterm`` are refused; terminate works.

    Both used to pass however late they came.
    """
    engine = world.engine
    pid = world.contracted()
    world.evaluate(pid, "midterm", 50).raise_for_refusal()
    order = {"order": {"issues": ["ledgers missing"], "deadline": "2025-06-30"}}
    engine.fire(pid, "order_rectification", actor=world.evaluator, evidence=order)
    assert engine.get(pid).state == "rectification"
    world.clock.now = datetime(2025, 12, 17, 2, tzinfo=UTC)  # 170 days after 30 June
    late = world.evaluate(pid, "recheck", 85)
    assert world.codes(late) == {"evaluation.recheck_due"}
    assert world.codes(engine.fire(pid, "pass_midterm", actor=world.treasurer)) >= {
        "evaluation.recheck_due"
    }
    reason = {"reason": "rectification deadline missed"}
    assert engine.fire(pid, "terminate", actor=world.approver, evidence=reason).accepted


def test_a_recheck_on_the_deadline_day_passes(world: World) -> None:
    """On the deadline day itself the re-check and ``pass_midterm`` are accepted."""
    engine = world.engine
    pid = world.contracted()
    world.evaluate(pid, "midterm", 50).raise_for_refusal()
    order = {"order": {"issues": ["ledgers missing"], "deadline": "2025-06-30"}}
    engine.fire(pid, "order_rectification", actor=world.evaluator, evidence=order)
    world.clock.now = datetime(2025, 6, 30, 8, tzinfo=UTC)
    world.evaluate(pid, "recheck", 85).raise_for_refusal()
    assert engine.fire(pid, "pass_midterm", actor=world.treasurer).accepted
