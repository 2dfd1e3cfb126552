"""Hypothesis properties of the default regime over random panels, spending and grades."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grantflow.policy import Policy
from grantflow.records import Settlement
from grantflow.rubrics import APPROVAL_REVIEW, aggregate

SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

reviews = st.lists(
    st.tuples(st.integers(min_value=30, max_value=100), st.booleans()), min_size=0, max_size=6
)

if TYPE_CHECKING:
    from conftest import World


@SETTINGS
@given(panel=reviews)
def test_no_contract_without_a_quorum_passing_unconflicted_panel(
    make_world: Callable[..., World], panel: list[tuple[int, bool]]
) -> None:
    """Whatever the reviews, a contracted project has >= 3 clean reviews scoring >= 60."""
    world = make_world()
    pid = world.submit().raise_for_refusal().project_id
    for n, (percent, declared) in enumerate(panel, start=1):
        world.review(pid, n, percent, declared=declared)
    world.approve(pid)
    world.clock.advance(8)
    world.sign(pid)
    project = world.engine.get(pid)
    clean = [r.data for r in project.records_of("review") if not r.data["conflict"]["declared"]]
    totals = [APPROVAL_REVIEW.total(r["scores"], Policy()) for r in clean]
    qualifies = len(clean) >= 3 and aggregate(totals, Policy()) >= 60
    assert (project.state == "contracted") == qualifies


amounts = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("9000"), places=2)


@SETTINGS
@given(
    spends=st.lists(amounts, max_size=8),
    percent=st.integers(min_value=40, max_value=100),
    award=st.decimals(min_value=Decimal("1000.00"), max_value=Decimal("100000.00"), places=2),
)
def test_disbursed_never_exceeds_awarded_and_settlement_balances(
    make_world: Callable[..., World], spends: list[Decimal], percent: int, award: Decimal
) -> None:
    """Disbursements stay within the award and the settlement sums balance to the fen."""
    world = make_world()
    pid = world.reviewed()
    world.clock.advance(8)
    budget = {"activities": str(award)}
    world.sign(pid, amount=str(award), budget=budget).raise_for_refusal()
    for n, amount in enumerate(spends):
        world.spend(pid, str(amount), f"INV-{n}")
    world.midterm(pid)
    world.evaluate(pid, "final", percent).raise_for_refusal()
    closeout = {"closeout": {"report": "r"}}
    world.engine.fire(pid, "assess", actor=world.evaluator, evidence=closeout).raise_for_refusal()
    world.engine.fire(pid, "close", actor=world.treasurer).raise_for_refusal()
    project = world.engine.get(pid)
    paid = sum((Decimal(r.data["amount"]) for r in project.records_of("disbursement")), Decimal(0))
    settlement = Settlement.model_validate(dict(project.records_of("settlement")[0].data))
    assert paid <= award == settlement.awarded
    assert settlement.disbursed == paid
    assert settlement.eligible + settlement.surplus == settlement.disbursed
    scheduled = sum(
        (Decimal(r.data["amount"]) for r in project.records_of("installment")), Decimal(0)
    )
    assert scheduled == award
    assert paid + settlement.withheld == award
    assert settlement.surplus.as_tuple().exponent == -2
