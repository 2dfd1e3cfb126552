"""The call budget ledger: approvals reserve from the call's budget and may not exceed it.

Each project keeps what it holds of its call's budget in ``data["budget_reserved"]``:
the recommended amount once approved, the contract amount once signed, what is due once
settled (refunds released) or terminated (the clawback released), nothing once rejected
or withdrawn. ``approve`` is refused when the call's reservations plus the recommended
amount would exceed the call's budget (`budget.call`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from grantflow.messages import refusal
from grantflow.models import Verdict
from grantflow.records import Call, money
from grantflow.rules._base import PASS, RuleContext, rule
from grantflow.rules._book import Effects, FactRequest
from grantflow.rules._regime import ZERO, dec, load, text, total

__all__ = [
    "CALL_FACT",
    "RESERVED_FACT",
    "call_fact",
    "release_effect",
    "reserved_by_others",
    "within_call_budget",
]

#: Fact name: the call entity of the project.
CALL_FACT = "budget_call"
#: Fact name: what the call's other projects hold of its budget.
RESERVED_FACT = "budget_reserved"


def call_fact(request: FactRequest) -> dict[str, Any] | None:
    """Fact provider: the project's call (JSON), or ``None``."""
    call_id = text(request.project.data, "call")
    entity = request.reader.get_entity("call", call_id) if call_id else None
    return dict(entity.data) if entity is not None else None


def reserved_by_others(request: FactRequest) -> str:
    """Fact provider: the sum of ``budget_reserved`` over the call's other projects.

    One aggregate read (`StoreReader.sum_projects`), less this project's own share: a
    bulk run reads it once per chunk, however many projects the call has.
    """
    project = request.project
    call_id = text(project.data, "call")
    if not call_id:
        return str(total(()))  # no call, no budget to reserve from (budget.call passes)
    held = request.reader.sum_projects("budget_reserved", {"call": call_id})
    if project.state and project.data.get("call") == call_id:
        held -= dec(project.data.get("budget_reserved"))
    return str(total((held,)))


@rule(name="budget.call")
def within_call_budget(ctx: RuleContext) -> Verdict:
    """The approval fits in what is left of the call's budget."""
    call = load(Call, ctx.facts.get(CALL_FACT), ctx.parsed)
    try:
        amount = money(str(ctx.evidence.get("recommended_amount")))
    except (ArithmeticError, ValueError):
        return PASS  # review.amount reports it
    if call is None:
        return PASS  # a project without a call has no budget to reserve from
    reserved = dec(ctx.facts.get(RESERVED_FACT))
    left = call.budget - reserved
    if amount <= left:
        return PASS
    return refusal(
        "budget.call",
        call=call.id,
        budget=call.budget,
        reserved=reserved,
        available=left,
        amount=amount,
    )


def release_effect(ctx: RuleContext) -> Effects:
    """A rejected or withdrawn project holds nothing of its call's budget."""
    if dec(ctx.project.data.get("budget_reserved")) == ZERO:
        return Effects()
    return Effects(data={"budget_reserved": str(Decimal("0.00"))})
