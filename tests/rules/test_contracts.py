"""Signing: both contracts, amount within approval, term within twelve months, budget caps."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conftest import World


def _ready(world: World) -> str:
    pid = world.reviewed()
    world.clock.advance(8)
    return pid


def test_signing_records_contracts_budget_and_first_installment(world: World) -> None:
    """An accepted ``sign`` records both contracts, the budget, the schedule and payment 1."""
    pid = _ready(world)
    world.sign(pid).raise_for_refusal()
    project = world.engine.get(pid)
    assert sorted(r.id for r in project.records_of("contract")) == ["purchase", "supervision"]
    assert len(project.records_of("budget_line")) == 7
    amounts = [r.data["amount"] for r in project.records_of("installment")]
    assert amounts == ["40000.00", "40000.00", "20000.00"]
    assert project.data["amount_disbursed"] == "40000.00"


def test_one_contract_missing_is_refused(world: World) -> None:
    """Only the purchase contract fails ``contracts.both_signed``."""
    pid = _ready(world)
    evidence = world.sign_evidence()
    evidence["contracts"] = evidence["contracts"][:1]
    outcome = world.engine.fire(pid, "sign", actor=world.treasurer, evidence=evidence)
    assert world.codes(outcome) == {"contracts.both_signed"}
    assert outcome.refusals[0].details["missing"] == ["supervision"]


def test_amount_above_approval_is_refused(world: World) -> None:
    """A contract above the approved amount fails ``contracts.amount``."""
    pid = _ready(world)
    budget = dict(world.BUDGET, activities="35000.01")
    outcome = world.sign(pid, amount="100000.01", budget=budget)
    assert world.codes(outcome) == {"contracts.amount"}
    assert outcome.refusals[0].details["approved"] == "100000.00"


def test_term_over_twelve_months_is_refused(world: World) -> None:
    """A term of twelve months plus a day fails ``contracts.term``."""
    pid = _ready(world)
    assert world.codes(world.sign(pid, end="2026-03-15")) == {"contracts.term"}
    assert world.codes(world.sign(pid, end="2025-03-14")) == {"contracts.term"}


def test_budget_caps_are_enforced(world: World) -> None:
    """Personnel over 40 %, administration over 10 % or a wrong total fail ``funds.budget``."""
    pid = _ready(world)
    heavy = dict(world.BUDGET, personnel="45000.00", activities="30000.00")
    assert world.codes(world.sign(pid, budget=heavy)) == {"funds.budget"}
    admin = dict(world.BUDGET, administration="11000.00", activities="29000.00")
    assert world.codes(world.sign(pid, budget=admin)) == {"funds.budget"}
    short = dict(world.BUDGET, activities="1.00")
    assert world.codes(world.sign(pid, budget=short)) == {"funds.budget"}
    assert world.sign(pid).accepted
