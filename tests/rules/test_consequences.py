"""Consequences across years: 不合格 bars the provider, 优秀/良好 add priority next year."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from grantflow.records import Call

if TYPE_CHECKING:
    from conftest import World


def _calls(world: World) -> None:
    for year in (2026, 2027):
        world.directory.add_call(
            Call(
                id=f"call-{year}",
                hub="city",
                year=year,
                opens=datetime(year, 4, 1, tzinfo=UTC),
                closes=datetime(year, 5, 31, tzinfo=UTC),
                budget=Decimal("5000000.00"),
            )
        )


def _next_year(world: World, year: int = 2026) -> str:
    world.clock.now = datetime(year, 4, 10, 2, tzinfo=UTC)
    dates = {"planned_start": f"{year}-06-01", "planned_end": f"{year + 1}-05-31"}
    outcome = world.submit(call=f"call-{year}", **dates)
    return outcome.project_id if outcome.accepted else ""


def test_a_fail_grade_bars_the_provider_from_next_years_call(world: World) -> None:
    """Graded 不合格 in the 2025 call: refused by ``eligibility.fail_bar`` in 2026, not 2027.

    The provider's next-year application used to be accepted.
    """
    _calls(world)
    world.assessed(50)
    world.clock.now = datetime(2026, 4, 10, 2, tzinfo=UTC)
    dates = {"planned_start": "2026-06-01", "planned_end": "2027-05-31"}
    outcome = world.submit(call="call-2026", **dates)
    assert world.codes(outcome) == {"eligibility.fail_bar"}
    assert outcome.refusals[0].details["year"] == 2025
    assert "2025年考核不合格" in outcome.refusals[0].message_zh
    assert _next_year(world, 2027)


def test_an_excellent_grade_adds_the_policy_bonus_in_next_years_review(world: World) -> None:
    """优秀 in 2025 adds 3 points in 2026: a 58-point panel passes; the project shows the bonus."""
    _calls(world)
    world.assessed(95)
    pid = _next_year(world)
    project = world.engine.get(pid)
    assert project.data["priority_bonus"] == "3"
    assert project.data["priority_from"][0]["grade"] == "excellent"
    for n in (1, 2, 3):
        world.review(pid, n, 58).raise_for_refusal()
    assert world.approve(pid).accepted
    assert world.engine.get(pid).data["review_score"] == "61.00"


def test_without_a_prior_grade_the_same_panel_fails_and_says_so(world: World) -> None:
    """No prior grade: a 58-point panel fails ``review.score`` with no bonus mentioned."""
    _calls(world)
    pid = _next_year(world)
    assert "priority_bonus" not in world.engine.get(pid).data
    for n in (1, 2, 3):
        world.review(pid, n, 58).raise_for_refusal()
    outcome = world.approve(pid)
    assert world.codes(outcome) == {"review.score"}
