"""Eligibility at submit: each rule passes on a good application and refuses with its code."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from grantflow.policy import Policy
from grantflow.records import Provider

if TYPE_CHECKING:
    from conftest import World


def test_a_complete_application_is_accepted(world: World) -> None:
    """A valid application from a registered provider, in the window, passes every rule."""
    outcome = world.submit()
    assert (outcome.accepted, outcome.state, outcome.refusals) == (True, "applied", ())
    project = world.engine.get(outcome.project_id)
    assert project.data["rubric_versions"] == {"approval": 1, "midterm": 1, "performance": 1}
    assert project.data["year"] == 2025


def test_incomplete_application_is_refused(world: World) -> None:
    """A missing service domain or an unknown one fails ``eligibility.application``."""
    outcome = world.submit(domain="astrology")
    assert "eligibility.application" in world.codes(outcome)
    assert "domain" in outcome.refusals[0].message


@pytest.mark.parametrize(
    ("overrides", "english", "chinese"),
    [
        ({"title": None}, "title: missing", "缺少项目名称"),
        ({"title": ""}, "title: must not be empty", "项目名称不能为空"),
        ({"domain": "astrology"}, "domain: not valid", "服务领域格式有误"),
        (
            {"planned_end": "2025-01-01"},
            "planned_end is before planned_start",
            "计划结束日期早于计划开始日期",
        ),
    ],
)
def test_each_application_problem_reads_its_own_sentence(
    world: World, overrides: dict[str, Any], english: str, chinese: str
) -> None:
    """Missing, empty, invalid fields and reversed dates each read their own cause (en, zh)."""
    application = world.application(**overrides)
    application = {k: v for k, v in application.items() if v is not None}
    outcome = world.engine.submit(actor=world.applicant, data=application)
    (refusal,) = [r for r in outcome.refusals if r.code == "eligibility.application"]
    assert english in refusal.message
    assert chinese in refusal.message_zh


def test_only_the_provider_submits(world: World) -> None:
    """Someone acting for another organisation fails ``eligibility.applicant``."""
    assert world.codes(world.submit(by=world.other_applicant)) == {"eligibility.applicant"}


def test_unregistered_provider_is_refused(world: World) -> None:
    """A provider missing from the directory fails ``eligibility.provider``."""
    outcome = world.submit(
        by=world.other_applicant.model_copy(update={"organisation": "org-x"}), provider="org-x"
    )
    assert world.codes(outcome) == {"eligibility.provider"}


def test_failed_annual_report_is_refused(world: World) -> None:
    """A provider that failed its annual report fails ``eligibility.annual_report``."""
    world.directory.add_provider(
        Provider(
            id="org-a",
            name="A",
            credit_code=world.code("52310000MJ0000001"),
            annual_report_passed=False,
        )
    )
    assert world.codes(world.submit()) == {"eligibility.annual_report"}


@pytest.mark.parametrize(("days_ago", "refused"), [(300, True), (800, False)])
def test_penalty_within_two_years_is_refused(world: World, days_ago: int, refused: bool) -> None:
    """A penalty inside the 2-year look-back fails ``eligibility.penalty``; an older one passes."""
    when = (world.clock.now - timedelta(days=days_ago)).date()
    world.directory.add_provider(
        Provider(
            id="org-a", name="A", credit_code=world.code("52310000MJ0000001"), penalties=(when,)
        )
    )
    assert ("eligibility.penalty" in world.codes(world.submit())) is refused


def test_sanction_recorded_on_another_project_blocks_the_provider(world: World) -> None:
    """A sanction record anywhere counts as a penalty (found through a fact provider)."""
    pid = world.submit().raise_for_refusal().project_id
    sanction = {"provider": "org-a", "on": "2025-02-01", "reason": "fraudulent invoices"}
    world.engine.add_record(pid, "sanction", sanction, actor=world.approver).raise_for_refusal()
    assert "eligibility.penalty" in world.codes(world.submit(title="Second"))


def test_third_application_in_a_call_is_refused(world: World) -> None:
    """Two applications per provider per call pass; the third fails ``eligibility.limit``."""
    assert world.submit().accepted
    assert world.submit(title="Two").accepted
    outcome = world.submit(title="Three")
    assert world.codes(outcome) == {"eligibility.limit"}
    assert outcome.refusals[0].details["existing"] == 2


def test_unknown_hub_is_refused(world: World) -> None:
    """An application not endorsed by a known hub fails ``eligibility.hub``."""
    assert world.codes(world.submit(hub="nowhere")) == {"eligibility.hub"}


def test_submission_outside_the_window_is_refused(world: World) -> None:
    """After the call closes, ``eligibility.call_window`` refuses; an unknown call too."""
    assert world.codes(world.submit(call="call-1999")) == {"eligibility.call_window"}
    world.clock.now = datetime(2025, 4, 1, tzinfo=UTC)
    outcome = world.submit()
    assert world.codes(outcome) == {"eligibility.call_window"}
    assert outcome.refusals[0].message_zh.startswith("申报批次")


def test_policy_limit_is_configurable(make_world: Callable[..., World]) -> None:
    """A policy with a higher limit lets a third application through."""
    world = make_world(Policy(applications_per_provider_per_call=3))
    results = [world.submit(title=f"P{n}").accepted for n in range(4)]
    assert results == [True, True, True, False]
