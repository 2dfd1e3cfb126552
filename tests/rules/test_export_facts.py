"""Export facts from the regime: the purchaser funds, the location and summary are exported."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from grantflow.export import grants
from grantflow.records import Hub

if TYPE_CHECKING:
    from conftest import World

pytestmark = pytest.mark.filterwarnings("ignore::grantflow.export.DefaultPrefixWarning")
PLACE = "Nanshan District, Shenzhen 深圳市南山区"


def _awarded(world: World, **fields: object) -> str:
    world.directory.add_hub(Hub(id="s9", name="Street 9 街道工会", kind="street", parent="d1"))
    pid = world.submit(hub="s9", **fields).raise_for_refusal().project_id
    for n in (1, 2, 3):
        world.review(pid, n).raise_for_refusal()
    world.approve(pid).raise_for_refusal()
    world.clock.advance(8)
    world.sign(pid).raise_for_refusal()
    return pid


def test_funder_is_the_purchaser_not_the_endorsing_hub(world: World) -> None:
    """The call's city federation funds the grant, not the street union that endorsed it."""
    pid = _awarded(world)
    assert world.engine.get(pid).data["purchaser"] == "city"
    (record,) = grants(world.engine)
    assert record["fundingOrganization"][0]["name"] == "City federation"


def test_location_and_summary_reach_the_grant(world: World) -> None:
    """A division code is accepted at submission and exported; the summary is the description."""
    summary = "Counselling hotline and group sessions for couriers in two districts."
    _awarded(
        world,
        summary=summary,
        beneficiary_location="440305",
        beneficiary_location_name=PLACE,
    )
    (record,) = grants(world.engine)
    assert record["beneficiaryLocation"] == [
        {"name": PLACE, "geoCode": "440305", "countryCode": "CN"}
    ]
    assert record["description"] == summary


def test_a_malformed_division_code_is_refused_at_submission(world: World) -> None:
    """A location that is not a GB/T 2260 code fails ``eligibility.application``."""
    outcome = world.submit(beneficiary_location="Shenzhen")
    assert world.codes(outcome) == {"eligibility.application"}
