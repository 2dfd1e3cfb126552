"""Service records and sanctions."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conftest import World


def test_service_records_accumulate(world: World) -> None:
    """The provider's service records are accepted and summed into the project's data."""
    pid = world.contracted()
    world.serve(pid, 3, 120).raise_for_refusal()
    world.serve(pid, 2, 80).raise_for_refusal()
    data = world.engine.get(pid).data
    assert (data["activities"], data["person_times"]) == (5, 200)


def test_service_records_are_checked(world: World) -> None:
    """Before signing, by another organisation, or malformed: ``services.record`` refuses."""
    pid = world.reviewed()
    assert world.codes(world.serve(pid, 1, 1)) == {"services.record"}
    world.clock.advance(8)
    world.sign(pid).raise_for_refusal()
    bad = {"date": "2025-05-01", "domain": "mental_health", "activities": -1, "person_times": 0}
    assert world.codes(world.engine.add_record(pid, "service", bad, actor=world.applicant)) == {
        "services.record"
    }
    good = dict(bad, activities=1)
    assert world.codes(
        world.engine.add_record(pid, "service", good, actor=world.other_applicant)
    ) == {"services.record"}


def test_sanctions_need_a_purchaser_and_the_projects_provider(world: World) -> None:
    """A sanction by the applicant, or on another provider, fails ``services.sanction``."""
    pid = world.submit().project_id
    sanction = {"provider": "org-a", "on": "2025-03-01", "reason": "false ledgers"}
    add = world.engine.add_record
    assert world.codes(add(pid, "sanction", sanction, actor=world.applicant)) == {
        "services.sanction"
    }
    other = dict(sanction, provider="org-b")
    assert world.codes(add(pid, "sanction", other, actor=world.approver)) == {"services.sanction"}
    assert add(pid, "sanction", sanction, actor=world.approver).accepted
