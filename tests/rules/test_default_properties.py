"""Hypothesis properties of the default regime over random panels, spending and grades."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from itertools import pairwise
from typing import TYPE_CHECKING

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grantflow.policy import Policy
from grantflow.records import Settlement
from grantflow.rubrics import APPROVAL_REVIEW, aggregate
from grantflow.rules import funds

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


@st.composite
def schedules(draw: st.DrawFn) -> tuple[Decimal, ...]:
    """Any split of 100 % into one to five positive whole-percent parts."""
    parts = draw(st.integers(min_value=1, max_value=5))
    cuts = sorted(draw(st.sets(st.integers(1, 99), min_size=parts - 1, max_size=parts - 1)))
    bounds = [0, *cuts, 100]
    return tuple(Decimal(b - a) for a, b in pairwise(bounds))


def _fen(value: object) -> Decimal:
    amount = Decimal(str(value))
    assert amount.as_tuple().exponent == -2
    return amount


@SETTINGS
@given(
    schedule=schedules(),
    spends=st.lists(amounts, max_size=8),
    percent=st.integers(min_value=40, max_value=100),
    award=st.decimals(min_value=Decimal("1000.00"), max_value=Decimal("100000.00"), places=2),
    ending=st.sampled_from(["close", "terminate_contracted", "terminate_midterm"]),
)
def test_settlement_balances_to_the_fen_on_any_schedule_spend_and_grade(
    make_world: Callable[..., World],
    schedule: tuple[Decimal, ...],
    spends: list[Decimal],
    percent: int,
    award: Decimal,
    ending: str,
) -> None:
    """Awarded >= disbursed - refunded == eligible - withheld, to the fen, closed or terminated."""
    world = make_world(Policy(installments=schedule))
    pid = world.reviewed()
    world.clock.advance(8)
    budget = {"activities": str(award)}
    world.sign(pid, amount=str(award), budget=budget).raise_for_refusal()
    for n, amount in enumerate(spends):
        world.spend(pid, str(amount), f"INV-{n}")
    if ending != "terminate_contracted":
        world.midterm(pid)
    if ending == "close":
        world.evaluate(pid, "final", percent).raise_for_refusal()
        closeout = {"closeout": {"report": "r"}}
        world.engine.fire(pid, "assess", actor=world.evaluator, evidence=closeout)
        world.engine.fire(pid, "close", actor=world.treasurer).raise_for_refusal()
    else:
        reason = {"reason": "breach"}
        world.engine.fire(pid, "terminate", actor=world.approver, evidence=reason)
    project = world.engine.get(pid)
    paid = sum((_fen(r.data["amount"]) for r in project.records_of("disbursement")), Decimal(0))
    eligible = sum(
        (_fen(r.data["amount"]) for r in project.records_of("expenditure")), Decimal("0.00")
    )
    refunded = sum(
        (_fen(r.data["amount"]) for r in project.records_of("refund_demand")), Decimal(0)
    )
    scheduled = [_fen(r.data["amount"]) for r in project.records_of("installment")]
    assert sum(scheduled, Decimal(0)) == award
    assert len(scheduled) == len(schedule)
    assert _fen(project.data["amount_disbursed"]) == paid
    assert award >= paid - refunded == _fen(project.data["amount_due"])
    if ending == "close":
        settlement = Settlement.model_validate(dict(project.records_of("settlement")[0].data))
        assert settlement.disbursed == paid
        assert settlement.refund == refunded
        assert paid - refunded == eligible - settlement.withheld
        if settlement.refund:  # an overpayment is never topped up first
            assert settlement.final_installment == 0
    else:
        assert paid - refunded == min(eligible, paid)
        assert _fen(project.records_of("clawback")[0].data["amount"]) == refunded


@given(
    eligible=amounts,
    paid=amounts,
    award=amounts,
    withholding=st.decimals(min_value=Decimal(0), max_value=Decimal("9000"), places=2),
)
def test_settle_arithmetic(
    eligible: Decimal, paid: Decimal, award: Decimal, withholding: Decimal
) -> None:
    """``settle``: paid + final - refund == due == eligible - withheld; never both paid and owed."""
    result = funds.settle(eligible, paid, max(award, eligible, paid), withholding)
    assert paid + result.final_payment - result.refund == result.due
    assert result.due == eligible - result.withheld
    assert result.final_payment <= max(eligible - paid, Decimal(0))
    assert min(result.final_payment, result.refund) == 0
