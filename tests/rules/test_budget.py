"""The call budget ledger: approvals reserve, rejections, settlements and terminations release."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grantflow.budget import call_ledger, decide_call, rank_call

if TYPE_CHECKING:
    from conftest import World


def test_approvals_beyond_the_call_budget_are_refused(world: World) -> None:
    """A 1,000,000 call refuses the third 500,000 approval (1,500,000 were approved before)."""
    world.small_call()
    first, second, third = world.applications(80, 80, 80)
    assert world.approve(first, "500000.00").accepted
    assert world.approve(second, "500000.00").accepted
    outcome = world.approve(third, "500000.00")
    assert world.codes(outcome) == {"budget.call"}
    assert outcome.refusals[0].details["available"] == "0.00"
    ledger = call_ledger(world.engine, "call-small")
    assert (ledger.reserved, ledger.available) == (Decimal("1000000.00"), Decimal("0.00"))


def test_rejection_and_settlement_release_their_reservation(world: World) -> None:
    """A rejected approval frees its amount; a signed one holds the contract amount."""
    world.small_call()
    first, second, third = world.applications(80, 80, 80)
    world.approve(first, "500000.00").raise_for_refusal()
    world.approve(second, "500000.00").raise_for_refusal()
    world.engine.fire(
        second, "reject", actor=world.approver, evidence={"reason": "objection upheld"}
    ).raise_for_refusal()
    assert world.approve(third, "400000.00").accepted
    world.clock.advance(8)
    budget = {"activities": "100000.00"}
    world.sign(first, amount="100000.00", budget=budget).raise_for_refusal()
    ledger = call_ledger(world.engine, "call-small")
    assert ledger.reserved == Decimal("500000.00")
    assert {p: a for p, _s, a in ledger.projects}[second] == Decimal("0.00")


def test_termination_releases_all_but_what_was_kept(world: World) -> None:
    """A terminated project holds only what it may keep: min(eligible spend, disbursed)."""
    pid = world.contracted()
    world.spend(pid, "1000.00", "INV-1").raise_for_refusal()
    reason = {"reason": "provider dissolved"}
    world.engine.fire(pid, "terminate", actor=world.approver, evidence=reason).raise_for_refusal()
    assert world.engine.get(pid).data["budget_reserved"] == "1000.00"


def test_a_call_is_decided_as_a_ranked_batch_up_to_its_budget(world: World) -> None:
    """Highest panel scores first; ties to the earlier submission; stop when it no longer fits."""
    world.small_call()
    pids = world.applications(70, 90, 80, 80, amount="300000.00")
    ranking = rank_call(world.engine, "call-small", actor=world.approver, now=world.clock.now)
    assert [r.project_id for r in ranking] == [pids[1], pids[2], pids[3], pids[0]]
    decision = decide_call(world.engine, "call-small", actor=world.approver, now=world.clock.now)
    assert decision.approved == (pids[1], pids[2], pids[3])
    assert decision.unfunded == (pids[0],)
    assert {world.engine.get(p).state for p in decision.approved} == {"reviewed"}
    assert call_ledger(world.engine, "call-small").available == Decimal("100000.00")


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    budget=st.integers(min_value=100, max_value=1500).map(lambda k: Decimal(k * 1000)),
    amounts=st.lists(st.integers(min_value=50, max_value=500), min_size=1, max_size=4),
    rejected=st.sets(st.integers(min_value=0, max_value=3), max_size=2),
)
def test_reservations_never_exceed_the_call_budget(
    make_world: Callable[..., World], budget: Decimal, amounts: list[int], rejected: set[int]
) -> None:
    """Whatever is approved and rejected, held <= budget and held == what approvals keep."""
    world = make_world()
    world.small_call(str(budget))
    pids = world.applications(*([80] * len(amounts)), amount="500000.00")
    kept = Decimal(0)
    for n, (pid, amount) in enumerate(zip(pids, amounts, strict=True)):
        offer = Decimal(amount * 1000)
        accepted = world.approve(pid, f"{offer}.00").accepted
        assert accepted == (kept + offer <= budget)
        if accepted and n in rejected:
            reason = {"reason": "withdrawn funding"}
            world.engine.fire(pid, "reject", actor=world.approver, evidence=reason)
        elif accepted:
            kept += offer
    ledger = call_ledger(world.engine, "call-small")
    assert ledger.reserved == kept <= budget


def test_bulk_approvals_read_the_reservations_once_per_chunk(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bulk chunk reads the call's reservations with one aggregate query, never a scan.

    Regression: every approval used to walk every project of the store (``projects()``),
    so a chunk of approvals cost time quadratic in the portfolio. The later items still
    see the earlier ones' reservations: the third 500,000 approval is refused. The
    commit reads the total once more, in its transaction, to check it did not move
    (`Guard`): two reads a chunk, whatever its size.
    """
    world.small_call()
    pids = world.applications(80, 80, 80)
    store = world.engine.store
    calls: list[str] = []

    def counted(name: str) -> Callable[..., object]:
        method = getattr(store, name)

        def wrapper(*args: object, **kwargs: object) -> object:
            calls.append(name)
            return method(*args, **kwargs)

        return wrapper

    for name in ("projects", "sum_projects"):
        monkeypatch.setattr(store, name, counted(name))
    items = [(pid, {"recommended_amount": "500000.00"}) for pid in pids]
    result = world.engine.fire_many("approve", items, actor=world.approver)
    assert result.counts == {"applied": 2, "refused": 1}
    assert result.items[0].refusals[0].code == "budget.call"
    assert calls == ["sum_projects", "sum_projects"]
