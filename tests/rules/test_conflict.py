"""Conflict of interest: own projects, conflicted reviewers, approver pays, third parties."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conftest import World


from grantflow.records import Affiliation, Person


def _applied_with_reviews(world: World, *reviewers: int, declared: int | None = None) -> str:
    pid = world.submit().raise_for_refusal().project_id
    for n in reviewers:
        world.review(pid, n, 80, declared=n == declared).raise_for_refusal()
    return pid


def test_applicant_cannot_approve_its_own_project(world: World) -> None:
    """A purchaser-role actor of the provider's organisation fails ``conflict.own_project``.

    It does not act for the purchaser either (``authority.relation``); a purchaser's staff
    member whose id is the provider's is caught by ``conflict.own_project`` alone.
    """
    pid = _applied_with_reviews(world, 1, 2, 3)
    insider = world.approver.model_copy(update={"organisation": "org-a"})
    assert world.codes(world.approve(pid, by=insider)) == {
        "conflict.own_project",
        "authority.relation",
    }
    double = world.approver.model_copy(update={"id": "org-a"})
    assert world.codes(world.approve(pid, by=double)) == {"conflict.own_project"}
    assert world.approve(pid).accepted


def test_applicant_cannot_review_its_own_project(world: World) -> None:
    """A reviewer from the provider's organisation fails ``conflict.own_project``."""
    pid = world.submit().project_id
    insider = world.reviewer(1).model_copy(update={"organisation": "org-a"})
    scores = {"reviewer": "r1", "rubric_version": 1, "scores": {}}
    outcome = world.engine.add_record(pid, "review", scores, actor=insider)
    assert "conflict.own_project" in world.codes(outcome)


def test_declared_conflict_does_not_count_toward_quorum(world: World) -> None:
    """A review whose declaration shows a conflict is excluded from the quorum."""
    pid = _applied_with_reviews(world, 1, 2, 3, declared=3)
    outcome = world.approve(pid)
    assert world.codes(outcome) == {"review.quorum"}
    assert outcome.refusals[0].details["excluded"] == [{"reviewer": "r3", "reason": "declared"}]
    world.review(pid, 4).raise_for_refusal()
    assert world.approve(pid).accepted


def test_detectable_conflict_within_three_years_does_not_count(world: World) -> None:
    """A reviewer who worked for the provider 2 years ago is excluded; 4 years ago counts."""
    world.directory.add_person(
        Person(
            id="r3",
            name="Former staff",
            affiliations=(Affiliation(organisation="org-a", until=date(2023, 6, 30)),),
        )
    )
    pid = _applied_with_reviews(world, 1, 2, 3)
    outcome = world.approve(pid)
    assert outcome.refusals[0].details["excluded"] == [{"reviewer": "r3", "reason": "worked_there"}]
    world.directory.add_person(
        Person(
            id="r3",
            name="Long ago",
            affiliations=(Affiliation(organisation="org-a", until=date(2021, 6, 30)),),
        )
    )
    assert world.approve(pid).accepted


def test_reviewer_of_the_same_organisation_does_not_count(world: World) -> None:
    """A reviewer whose person record places them at the provider is excluded."""
    world.directory.add_person(Person(id="r2", name="Insider", organisation="org-a"))
    pid = _applied_with_reviews(world, 1, 2, 3)
    excluded = world.approve(pid).refusals[0].details["excluded"]
    assert excluded == [{"reviewer": "r2", "reason": "same_organisation"}]


def test_approver_cannot_release_the_payment(world: World) -> None:
    """The approver signing (releasing installment 1) fails ``conflict.approver_pays``.

    Even with the finance role; without it, ``authority.release`` refuses as well.
    """
    pid = world.reviewed()
    world.clock.advance(8)
    paying = world.approver.model_copy(update={"roles": frozenset({"purchaser", "finance"})})
    assert world.codes(world.sign(pid, by=paying)) == {"conflict.approver_pays"}
    assert world.codes(world.sign(pid, by=world.approver)) == {
        "conflict.approver_pays",
        "authority.release",
    }
    assert world.sign(pid, by=world.treasurer).accepted


def test_evaluator_must_be_a_third_party(world: World) -> None:
    """An evaluator from the purchasing hub or the provider fails ``conflict.third_party``."""
    pid = world.contracted()
    outcome = world.evaluate(pid, "midterm", 85, organisation="s1")
    assert "conflict.third_party" in world.codes(outcome)
    assert world.evaluate(pid, "midterm", 85).accepted
