"""Evaluations: the mid-term (and re-check), rectification orders, the final assessment.

Third-party evaluators add ``evaluation`` records (`Evaluation`, stage ``midterm`` while
contracted, ``recheck`` while under rectification, ``final`` after the mid-term), scored on
the pinned mid-term or performance rubric. The grade of the latest one decides:

- ``pass_midterm`` needs grade 合格 or better, and spending not running ahead of progress;
- ``order_rectification`` needs grade 不合格 or a borderline pass, and an order with issues
  and a future deadline (evidence ``{"order": RectificationOrder}``);
- ``assess`` needs a graded final evaluation and a close-out package (evidence
  ``{"closeout": {"report": ...}}``); it stores the grade on the project.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from grantflow.messages import problem, refusal
from grantflow.models import Project, Verdict
from grantflow.policy import Policy
from grantflow.records import Assessment, Evaluation, RectificationOrder
from grantflow.rubrics import DEFAULT_RUBRICS, Grade, Rubric, find_rubric, grade
from grantflow.rules._base import PASS, Rule, RuleContext, rule
from grantflow.rules._book import Effects
from grantflow.rules._regime import (
    awarded,
    eligible_spend,
    evaluations,
    load,
    local_date,
    make_record,
    pinned_version,
    provider_of,
    record_data,
    values,
)

__all__ = [
    "RUBRIC_OF_STAGE",
    "STAGE_OF_STATE",
    "assess_effect",
    "closeout_present",
    "evaluation_record",
    "final_graded",
    "midterm_grade",
    "order_valid",
    "recheck_in_time",
    "rectification_effect",
    "rectification_grounds",
    "scored",
    "spending_consistent",
]

#: Which rubric scores each evaluation stage.
RUBRIC_OF_STAGE = {"midterm": "midterm", "recheck": "midterm", "final": "performance"}
#: Which evaluation stage each state takes.
STAGE_OF_STATE = {"contracted": "midterm", "rectification": "recheck", "midterm": "final"}


def scored(
    evaluation: Evaluation, project: Project, rubrics: Sequence[Rubric], policy: Policy
) -> Decimal | None:
    """Return the evaluation's total on its pinned rubric; ``None`` if it is not scorable."""
    rubric_id = RUBRIC_OF_STAGE[evaluation.stage]
    version = pinned_version(project, rubric_id, policy)
    rubric = find_rubric(rubrics, rubric_id, version)
    if rubric is None or (evaluation.rubric, evaluation.rubric_version) != (rubric_id, version):
        return None
    if rubric.problems(evaluation.scores):
        return None
    return rubric.total(evaluation.scores, policy)


def _latest(ctx: RuleContext, rubrics: Sequence[Rubric]) -> tuple[str, Decimal | None]:
    stage = STAGE_OF_STATE.get(ctx.source or "", "midterm")
    found = evaluations(ctx.project, stage, memo=ctx.parsed)
    if not found:
        return stage, None
    return stage, scored(found[-1], ctx.project, rubrics, ctx.policy)


def evaluation_record(rubrics: Sequence[Rubric] = DEFAULT_RUBRICS) -> Rule:
    """Build ``evaluation.record``: an evaluator's own evaluation, right stage, pinned rubric."""

    @rule(name="evaluation.record")
    def evaluation_record_rule(ctx: RuleContext) -> Verdict:
        evaluation = load(Evaluation, record_data(ctx), ctx.parsed)
        stage = STAGE_OF_STATE.get(ctx.source or "")
        problems: list[dict[str, Any]] = []
        if evaluation is None:
            problems.append(problem("record.invalid", kind="evaluation"))
        else:
            if evaluation.evaluator != ctx.actor.id:
                problems.append(problem("evaluation.not_actor", evaluator=evaluation.evaluator))
            if evaluation.stage != stage:
                problems.append(
                    problem("evaluation.stage", stage=evaluation.stage, state=ctx.source)
                )
            elif scored(evaluation, ctx.project, rubrics, ctx.policy) is None:
                rid = RUBRIC_OF_STAGE[evaluation.stage]
                version = pinned_version(ctx.project, rid, ctx.policy)
                problems.append(problem("evaluation.scores", rubric=rid, version=version))
        if not problems:
            return PASS
        return refusal("evaluation.record", problems=problems)

    return evaluation_record_rule


def midterm_grade(rubrics: Sequence[Rubric] = DEFAULT_RUBRICS) -> Rule:
    """Build ``evaluation.midterm_grade``: the latest mid-term (or re-check) grade is a pass."""

    @rule(name="evaluation.midterm_grade")
    def midterm_grade_rule(ctx: RuleContext) -> Verdict:
        stage, score = _latest(ctx, rubrics)
        if score is not None and grade(score, ctx.policy).at_least(Grade.PASS):
            return PASS
        label = "none" if score is None else grade(score, ctx.policy).value
        return refusal(
            "evaluation.midterm_grade",
            stage=stage,
            score=score,
            grade=label,
        )

    return midterm_grade_rule


@rule(name="evaluation.recheck_due")
def recheck_in_time(ctx: RuleContext) -> Verdict:
    """Under rectification, the re-check and passing it happen by the order's deadline.

    After the deadline only termination is left.
    """
    if ctx.source != "rectification":
        return PASS
    orders = values(ctx.project, "rectification_order", RectificationOrder, ctx.parsed)
    if not orders:
        return PASS
    deadline = orders[-1].deadline
    today = local_date(ctx.now, ctx.policy)
    if today <= deadline:
        return PASS
    return refusal(
        "evaluation.recheck_due",
        deadline=deadline,
        today=today,
    )


@rule(name="evaluation.spending")
def spending_consistent(ctx: RuleContext) -> Verdict:
    """Spending, as % of the award, leads reported progress by at most the tolerance."""
    stage = STAGE_OF_STATE.get(ctx.source or "", "midterm")
    found = evaluations(ctx.project, stage, memo=ctx.parsed)
    progress = found[-1].progress_percent if found else None
    amount = awarded(ctx.project, ctx.parsed)
    if progress is None or amount == 0:
        return PASS
    # Compared unrounded: eligible * 100 <= (progress + tolerance) * award, exactly.
    spending = eligible_spend(ctx.project, ctx.parsed) * 100
    if spending <= (progress + ctx.policy.spending_lead_tolerance) * amount:
        return PASS
    spent = (spending / amount).quantize(Decimal("0.01"), ROUND_FLOOR)
    return refusal(
        "evaluation.spending",
        spent_percent=spent,
        progress_percent=progress,
        tolerance=ctx.policy.spending_lead_tolerance,
    )


def rectification_grounds(rubrics: Sequence[Rubric] = DEFAULT_RUBRICS) -> Rule:
    """Build ``evaluation.rectification_grounds``: the mid-term graded fail or borderline."""

    @rule(name="evaluation.rectification_grounds")
    def rectification_grounds_rule(ctx: RuleContext) -> Verdict:
        _stage, score = _latest(ctx, rubrics)
        limit = ctx.policy.grade_pass + ctx.policy.borderline_margin
        if score is not None and score < limit:
            return PASS
        return refusal(
            "evaluation.rectification_grounds",
            score=score,
            borderline_below=limit,
        )

    return rectification_grounds_rule


@rule(name="evaluation.order")
def order_valid(ctx: RuleContext) -> Verdict:
    """A rectification order lists issues and a deadline after today."""
    order = load(RectificationOrder, ctx.evidence.get("order"), ctx.parsed)
    if order is not None and order.deadline > local_date(ctx.now, ctx.policy):
        return PASS
    return refusal("evaluation.order")


def rectification_effect(ctx: RuleContext) -> Effects:
    """Record the rectification order."""
    # The evaluation.order rule parsed the order through the memo; never None here.
    order = load(
        RectificationOrder, ctx.evidence.get("order"), ctx.parsed
    ) or RectificationOrder.model_validate(dict(ctx.evidence["order"]))
    return Effects(
        records=(make_record("rectification_order", f"order-{ctx.project.version + 1}", order),)
    )


def final_graded(rubrics: Sequence[Rubric] = DEFAULT_RUBRICS) -> Rule:
    """Build ``evaluation.final``: a final performance assessment is recorded and scorable."""

    @rule(name="evaluation.final")
    def final_graded_rule(ctx: RuleContext) -> Verdict:
        _stage, score = _latest(ctx, rubrics)
        if score is not None:
            return PASS
        return refusal("evaluation.final")

    return final_graded_rule


@rule(name="evaluation.closeout")
def closeout_present(ctx: RuleContext) -> Verdict:
    """The close-out package (final report) is submitted with ``assess``."""
    package = ctx.evidence.get("closeout") or {}
    if isinstance(package, Mapping) and str(package.get("report") or "").strip():
        return PASS
    return refusal("evaluation.closeout")


def assess_effect(
    rubrics: Sequence[Rubric] = DEFAULT_RUBRICS,
) -> Callable[[RuleContext], Effects]:
    """Build the ``assess`` effect: store the final score and grade on the project."""

    def store_grade(ctx: RuleContext) -> Effects:
        _stage, score = _latest(ctx, rubrics)
        value = score or Decimal(0)
        graded = grade(value, ctx.policy).value
        year = ctx.project.data.get("year")
        assessment = Assessment(
            provider=provider_of(ctx.project),
            year=year if isinstance(year, int) else None,
            grade=graded,
            score=value,
        )
        return Effects(
            records=(make_record("assessment", "assessment", assessment),),
            data={"final_score": str(value), "grade": graded},
        )

    return store_grade
