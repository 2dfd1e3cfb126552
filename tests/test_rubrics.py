"""Rubrics: default weights, validation, totals with capped bonus, aggregates and grades."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from grantflow import InvalidInput, Policy
from grantflow.rubrics import (
    APPROVAL_REVIEW,
    DEFAULT_RUBRICS,
    MIDTERM_EVALUATION,
    PERFORMANCE_ASSESSMENT,
    Grade,
    Rubric,
    aggregate,
    find_rubric,
    grade,
    shown,
)


def test_default_weights_follow_the_domain() -> None:
    """Dimension maxima are those of DOMAIN.md section 3; each rubric has 100 base points."""
    weights = {r.id: {d.id: d.maximum for d in r.dimensions} for r in DEFAULT_RUBRICS}
    assert weights["approval"] == {
        "need": 20,
        "design": 25,
        "capacity": 20,
        "budget": 15,
        "targets": 10,
        "innovation": 10,
    }
    assert weights["midterm"] == {
        "progress": 35,
        "finance": 25,
        "records": 15,
        "quality": 15,
        "outcomes": 10,
    }
    assert weights["performance"] == {"decision": 10, "process": 20, "outputs": 35, "benefits": 35}
    assert {r.maximum for r in DEFAULT_RUBRICS} == {Decimal(100)}
    assert APPROVAL_REVIEW.bonus_cap == 10
    assert MIDTERM_EVALUATION.bonus == PERFORMANCE_ASSESSMENT.bonus == ()


def test_bonus_is_capped() -> None:
    """All bonus items at maximum (13 points) add only 10; a stricter policy caps lower."""
    scores: dict[str, object] = dict(APPROVAL_REVIEW.proportional(100))
    scores |= {i.id: str(i.max) for i in APPROVAL_REVIEW.bonus}
    assert APPROVAL_REVIEW.total(scores, Policy()) == Decimal(110)
    assert APPROVAL_REVIEW.total(scores, Policy(bonus_cap=Decimal(5))) == Decimal(105)


def test_scores_are_validated() -> None:
    """Missing, unknown, out-of-range and non-numeric item scores are all reported."""
    scores: dict[str, object] = dict(APPROVAL_REVIEW.proportional(50))
    scores.pop("need.evidence")
    scores["design.logic"] = "11"
    scores["bogus"] = "1"
    scores["budget.compliance"] = "lots"
    problems = APPROVAL_REVIEW.problems(scores)
    assert sorted(p.split(":")[0] for p in problems) == [
        "bogus",
        "budget.compliance",
        "design.logic",
        "need.evidence",
    ]
    with pytest.raises(InvalidInput):
        APPROVAL_REVIEW.total(scores, Policy())


def test_aggregate_mean_and_trimmed_mean() -> None:
    """Below five totals the mean; from five the highest and lowest are dropped."""
    policy = Policy()
    four = [Decimal(x) for x in (50, 70, 80, 100)]
    assert aggregate(four, policy) == Decimal("75.00")
    trimmed = aggregate([*four, Decimal(0)], policy)
    assert Decimal("66.6666") < trimmed < Decimal("66.6667")
    assert shown(trimmed) == "66.66"
    with pytest.raises(InvalidInput):
        aggregate([], policy)


@pytest.mark.parametrize(
    ("score", "expected", "zh"),
    [
        ("90", Grade.EXCELLENT, "优秀"),
        ("89.99", Grade.GOOD, "良好"),
        ("80", Grade.GOOD, "良好"),
        ("60", Grade.PASS, "合格"),
        ("59.99", Grade.FAIL, "不合格"),
    ],
)
def test_grade_bands(score: str, expected: Grade, zh: str) -> None:
    """Grade bands are 90 / 80 / 60 with Chinese labels."""
    assert grade(Decimal(score), Policy()) is expected
    assert expected.label_zh == zh


def test_rubric_versions_are_looked_up_exactly() -> None:
    """`find_rubric` matches id and version; a second version can coexist with the first."""
    v2 = APPROVAL_REVIEW.model_copy(update={"version": 2})
    assert find_rubric([*DEFAULT_RUBRICS, v2], "approval", 2) is v2
    assert find_rubric(DEFAULT_RUBRICS, "approval", 2) is None
    assert v2.key == "approval@2"


def test_panel_means_are_not_rounded_before_comparison() -> None:
    """A mean of 59.9967 stays below 60 (it was rounded to 60.00 and passed) and shows 59.99."""
    mean = aggregate([Decimal("59.99"), Decimal(60), Decimal(60)], Policy())
    assert mean < Decimal(60)
    assert shown(mean) == "59.99"


_ODD = ["8", "7.50", "-0", "1e1", "NaN", "Infinity", "x", "", True, None, 1.5, [1]]


@given(data=st.data(), rubric=st.sampled_from(DEFAULT_RUBRICS), percent=st.integers(0, 100))
def test_checked_points_is_points_when_there_are_no_issues_else_none(
    data: st.DataObject, rubric: Rubric, percent: int
) -> None:
    """The panel's one-pass check gives `points` exactly when `issues` finds nothing.

    From a valid map (some percent of every maximum), items are changed, dropped or
    added (bonus items, unknown ids, out-of-range values, values of odd types).
    """
    scores: dict[str, object] = dict(rubric.proportional(percent))
    ids = [i.id for i in rubric.all_items] + ["no.such.item"]
    value = st.one_of(
        st.decimals(min_value=-2, max_value=30, places=2),
        st.integers(-2, 30),
        st.sampled_from(_ODD),
    )
    scores.update(data.draw(st.dictionaries(st.sampled_from(ids), value, max_size=4)))
    for gone in data.draw(st.lists(st.sampled_from(ids), max_size=2)):
        scores.pop(gone, None)
    policy = Policy()
    expected = None if rubric.issues(scores) else rubric.points(scores, policy)
    assert rubric.checked_points(scores, policy) == expected
