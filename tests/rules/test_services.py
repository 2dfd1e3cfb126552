"""Service records and sanctions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import World


def test_service_records_accumulate(world: World) -> None:
    """The provider's service records are accepted and summed into the project's data."""
    pid = world.contracted()
    world.clock.advance(10)  # into the contract term
    world.serve(pid, 3, 120).raise_for_refusal()
    world.serve(pid, 2, 80).raise_for_refusal()
    data = world.engine.get(pid).data
    assert (data["activities"], data["person_times"]) == (5, 200)


def test_service_records_are_checked(world: World) -> None:
    """Before signing or malformed: ``services.record``; another organisation's: ``authority``."""
    pid = world.reviewed()
    assert world.codes(world.serve(pid, 1, 1)) == {"services.record"}
    world.clock.advance(8)
    world.sign(pid).raise_for_refusal()
    world.clock.advance(10)
    bad = {
        "date": world.clock.today(),
        "domain": "mental_health",
        "activities": -1,
        "person_times": 0,
    }
    assert world.codes(world.engine.add_record(pid, "service", bad, actor=world.applicant)) == {
        "services.record"
    }
    good = dict(bad, activities=1)
    assert world.codes(
        world.engine.add_record(pid, "service", good, actor=world.other_applicant)
    ) == {"authority.relation"}


def test_sanctions_need_a_purchaser_and_the_projects_provider(world: World) -> None:
    """A sanction by the applicant: ``authority.*``; on another provider: ``services.sanction``."""
    pid = world.submit().project_id
    sanction = {"provider": "org-a", "on": "2025-03-01", "reason": "false ledgers"}
    add = world.engine.add_record
    assert world.codes(add(pid, "sanction", sanction, actor=world.applicant)) == {
        "authority.role",
        "authority.relation",
    }
    other = dict(sanction, provider="org-b")
    assert world.codes(add(pid, "sanction", other, actor=world.approver)) == {"services.sanction"}
    assert add(pid, "sanction", sanction, actor=world.approver).accepted


def test_service_records_stay_in_the_term(world: World) -> None:
    """A service dated before the term starts, or after it ends, fails ``services.in_term``."""
    pid = world.contracted()
    assert world.codes(world.serve(pid, 1, 10)) == {"services.in_term"}
    world.clock.now = datetime(2026, 4, 1, 2, tzinfo=UTC)
    assert world.codes(world.serve(pid, 1, 10)) == {"services.in_term"}
    assert world.serve(pid, 1, 10, date="2026-03-14").accepted


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ({"date": "2031-01-01"}, "after today"),
        ({"domain": "legal_aid"}, "not the project's mental_health"),
        ({"person_times": 9_999_999}, "9999999 person-times exceed 50000"),
        ({"activities": 5000}, "5000 activities exceed 1000"),
    ],
)
def test_implausible_service_records_are_refused(
    world: World, extra: dict[str, object], fragment: str
) -> None:
    """Dated 2031, another domain, 9,999,999 person-times: ``services.plausible`` refuses."""
    pid = world.contracted()
    world.clock.advance(10)
    record = {"date": world.clock.today(), "domain": "mental_health", "activities": 2}
    data = {**record, "person_times": 100, **extra}
    outcome = world.engine.add_record(pid, "service", data, actor=world.applicant)
    assert "services.plausible" in world.codes(outcome)
    assert fragment in next(r.message for r in outcome.refusals if r.code == "services.plausible")
