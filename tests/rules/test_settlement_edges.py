"""The money effects called directly, at the fen boundaries and with stale project data.

Through the engine, the expenditure effect keeps ``eligible_spend`` current and the
settlements seldom land within a yuan of zero; here the effects get a project whose
expenditures are set by hand, so every field they write and every boundary they test
(a final payment or a refund of one fen, an installment of nothing) is observed.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from grantflow import Project, Record
from grantflow.records import Clawback, Disbursement
from grantflow.rules import RuleContext
from grantflow.rules.funds import clawback_effect, close_effect, midterm_effect

if TYPE_CHECKING:
    from conftest import World


def _spent(project: Project, amount: str) -> Project:
    """`project` with its expenditures replaced by one of `amount`, its data left stale."""
    kept = tuple(r for r in project.records if r.kind != "expenditure")
    spend = {
        "date": "2025-05-01",
        "line": "activities",
        "amount": amount,
        "invoice_number": "INV-X",
        "voucher": "V-X",
    }
    record = Record(kind="expenditure", id="expenditure-x", data=spend, seq=len(kept) + 1)
    data = {**project.data, "eligible_spend": "0.00"}
    return project.model_copy(update={"records": (*kept, record), "data": data})


def _ctx(world: World, project: Project, event: str, **evidence: Any) -> RuleContext:
    return RuleContext(
        project=project,
        event=event,
        source=project.state,
        target=None,
        actor=world.treasurer,
        evidence=evidence,
        now=world.clock.now,
        policy=world.engine.policy_for(project),
    )


def test_a_final_payment_of_one_fen_is_paid_and_every_settled_field_written(
    world: World,
) -> None:
    """Eligible spend one fen above what was paid: a disbursement of 0.01 closes it."""
    project = world.engine.get(world.assessed())
    paid = sum(Decimal(str(r.data["amount"])) for r in project.records_of("disbursement"))
    effects = close_effect(_ctx(world, _spent(project, str(paid + Decimal("0.01"))), "close"))
    final = [r for r in effects.records if r.kind == "disbursement"]
    assert [Disbursement.model_validate(dict(r.data)).amount for r in final] == [Decimal("0.01")]
    assert not [r for r in effects.records if r.kind == "refund_demand"]
    assert effects.data == {
        "amount_disbursed": str(paid + Decimal("0.01")),
        "eligible_spend": str(paid + Decimal("0.01")),
        "amount_due": str(paid + Decimal("0.01")),
        "refund_demanded": "0.00",
        "refund_status": None,
        "budget_reserved": str(paid + Decimal("0.01")),
    }


def test_a_refund_of_half_a_yuan_is_demanded_and_open(world: World) -> None:
    """Eligible spend 0.50 below what was paid: a demand of 0.50, its status open."""
    project = world.engine.get(world.assessed())
    paid = sum(Decimal(str(r.data["amount"])) for r in project.records_of("disbursement"))
    effects = close_effect(_ctx(world, _spent(project, str(paid - Decimal("0.50"))), "close"))
    assert not [r for r in effects.records if r.kind == "disbursement"]
    demands = [r.data for r in effects.records if r.kind == "refund_demand"]
    assert [(d["amount"], d["reason"]) for d in demands] == [("0.50", "settlement")]
    assert effects.data["refund_status"] == "open"
    assert effects.data["refund_demanded"] == "0.50"
    assert effects.data["eligible_spend"] == str(paid - Decimal("0.50"))


def test_a_clawback_writes_the_eligible_spend_and_no_reason_when_none_is_given(
    world: World,
) -> None:
    """The clawback's data holds the eligible spend; without a reason the reason is empty."""
    pid = world.contracted()
    project = _spent(world.engine.get(pid), "12500.50")
    effects = clawback_effect(_ctx(world, project, "terminate"))
    clawback = Clawback.model_validate(
        dict(next(r for r in effects.records if r.kind == "clawback").data)
    )
    assert clawback.reason == ""
    assert effects.data["eligible_spend"] == "12500.50"
    assert effects.data["clawback"] == str(clawback.amount)
    given = clawback_effect(_ctx(world, project, "terminate", reason="stopped"))
    assert next(r for r in given.records if r.kind == "clawback").data["reason"] == "stopped"


def _installments(project: Project, amount: str) -> Project:
    """`project` with the installment the mid-term releases set to `amount`."""
    records = tuple(
        r.model_copy(update={"data": {**r.data, "amount": amount}})
        if r.kind == "installment" and r.data["released_by"] == "pass_midterm"
        else r
        for r in project.records
    )
    return project.model_copy(update={"records": records})


def test_the_midterm_releases_an_installment_of_one_fen_and_never_one_of_nothing(
    world: World,
) -> None:
    """An installment of 0.01 is paid at the mid-term; one of 0.00 is not paid at all."""
    project = world.engine.get(world.contracted())
    tiny = midterm_effect(_ctx(world, _installments(project, "0.01"), "pass_midterm"))
    assert [r.data["amount"] for r in tiny.records] == ["0.01"]
    paid_before = sum(Decimal(str(r.data["amount"])) for r in project.records_of("disbursement"))
    assert tiny.data == {"amount_disbursed": str(paid_before + Decimal("0.01"))}
    nothing = midterm_effect(_ctx(world, _installments(project, "0.00"), "pass_midterm"))
    assert (nothing.records, dict(nothing.data)) == ((), {})
