"""The approval review: review records, quorum, panel score and recommended amount."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conftest import World


from grantflow.rubrics import APPROVAL_REVIEW


def _reviewed_by(world: World, *percents: int) -> str:
    pid = world.submit().raise_for_refusal().project_id
    for n, percent in enumerate(percents, start=1):
        world.review(pid, n, percent).raise_for_refusal()
    return pid


def test_review_record_is_accepted_from_a_reviewer(world: World) -> None:
    """A reviewer's complete review on the pinned rubric passes ``review.record``."""
    pid = world.submit().project_id
    outcome = world.review(pid, 1)
    assert outcome.accepted
    assert world.engine.get(pid).records_of("review")[0].data["reviewer"] == "r1"


def test_review_record_refuses_bad_reviews(world: World) -> None:
    """Missing items, a wrong rubric version or a repeat fail ``review.record``.

    A purchaser's staff member reviewing is no reviewer and not independent (``authority.*``).
    """
    pid = world.submit().project_id
    scores = dict(APPROVAL_REVIEW.proportional(80))
    scores.pop("need.evidence")
    assert world.codes(world.review(pid, 1, scores=scores)) == {"review.record"}
    assert world.codes(world.review(pid, 1, rubric_version=2)) == {"review.record"}
    world.review(pid, 1).raise_for_refusal()
    assert world.codes(world.review(pid, 1)) == {"review.record"}
    data = {"reviewer": "staff-1", "rubric_version": 1, "scores": scores}
    assert world.codes(world.engine.add_record(pid, "review", data, actor=world.approver)) == {
        "authority.role",
        "authority.independence",
        "review.record",
    }


def test_quorum_of_three_passes(world: World) -> None:
    """Three clean reviews meet ``review.quorum``."""
    pid = _reviewed_by(world, 80, 80, 80)
    assert world.approve(pid).accepted


def test_quorum_refuses_with_two_reviews(world: World) -> None:
    """Two reviews fail ``review.quorum`` with the message of the spec, in both languages."""
    pid = _reviewed_by(world, 80, 80)
    outcome = world.approve(pid)
    refusal = next(r for r in outcome.refusals if r.code == "review.quorum")
    assert (refusal.message, refusal.message_zh) == (
        "3 reviews required, 2 submitted",
        "需要3份评审意见，已提交2份",
    )
    assert refusal.details == {"required": 3, "submitted": 2, "excluded": []}


def test_score_at_pass_mark_passes(world: World) -> None:
    """An aggregate of exactly 60 passes ``review.score``."""
    pid = _reviewed_by(world, 60, 60, 60)
    assert world.approve(pid).accepted
    assert world.engine.get(pid).data["review_score"] == "60.00"


def test_score_below_pass_mark_is_refused(world: World) -> None:
    """An aggregate below 60 fails ``review.score``."""
    pid = _reviewed_by(world, 50, 60, 60)
    outcome = world.approve(pid)
    assert world.codes(outcome) == {"review.score"}
    assert outcome.refusals[0].message == "panel score 56.66 is below the pass mark 60"


def test_trimmed_mean_from_five_reviews(world: World) -> None:
    """With five reviews the highest and lowest are dropped: one outlier cannot sink a project."""
    pid = _reviewed_by(world, 10, 70, 70, 70, 100)
    assert world.approve(pid).accepted
    assert world.engine.get(pid).data["review_score"] == "70.00"


def test_recommended_amount_within_request_passes(world: World) -> None:
    """A recommended amount equal to the request passes ``review.amount``."""
    pid = _reviewed_by(world, 80, 80, 80)
    assert world.approve(pid, "120000.00").accepted


def test_recommended_amount_above_request_is_refused(world: World) -> None:
    """More than requested, zero, or a non-amount fail ``review.amount``."""
    pid = _reviewed_by(world, 80, 80, 80)
    for amount in ("120000.01", "0", "lots", "1.001"):
        assert world.codes(world.approve(pid, amount)) == {"review.amount"}


def test_approval_records_approver_and_amount(world: World) -> None:
    """``approve`` adds an approval record with the approver and the recommended amount."""
    pid = _reviewed_by(world, 80, 80, 80)
    world.approve(pid, "99000.50").raise_for_refusal()
    record = world.engine.get(pid).records_of("approval")[0]
    assert record.data["approver"] == "staff-1"
    assert record.data["recommended_amount"] == "99000.50"
    assert record.data["reviews_counted"] == ["r1", "r2", "r3"]


def test_a_mean_of_59_9967_is_refused_not_rounded_up(world: World) -> None:
    """Totals 59.99, 60, 60 average 59.9967: below 60 and refused (it was rounded to 60.00)."""
    pid = world.submit().raise_for_refusal().project_id
    low = dict(APPROVAL_REVIEW.proportional(60))
    low["need.evidence"] = "5.99"
    world.review(pid, 1, scores=low).raise_for_refusal()
    world.review(pid, 2, 60).raise_for_refusal()
    world.review(pid, 3, 60).raise_for_refusal()
    outcome = world.approve(pid)
    assert world.codes(outcome) == {"review.score"}
    assert "59.99" in outcome.refusals[0].message
