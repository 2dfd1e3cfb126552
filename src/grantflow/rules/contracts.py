"""Signing: both model contracts signed, within the approved amount and the maximum term.

``sign`` evidence: ``{"contracts": [purchase, supervision], "budget": [lines...]}`` with
each item a `Contract` / `BudgetLine` in JSON form (an ``evaluation`` contract may name a
separate evaluator). The supervision (and evaluation) contract's counterparty is an
independent third party: not the provider, the endorsing hub or the purchaser
(`contracts.parties`). The effect records them, schedules the installments and releases
the first (see `grantflow.rules.funds`).
"""

from __future__ import annotations

from typing import Any

from grantflow.messages import problem, refusal
from grantflow.models import Verdict
from grantflow.records import Contract
from grantflow.rules._base import PASS, RuleContext, rule
from grantflow.rules._regime import add_months, approval, load, provider_of, text
from grantflow.rules.authority import PARTIES_FACT

__all__ = [
    "amount_within_approval",
    "both_signed",
    "evidence_contracts",
    "parties_independent",
    "term_within_limit",
]


def evidence_contracts(ctx: RuleContext) -> dict[str, Contract]:
    """Return the well-formed contracts of the evidence, by kind."""
    found: dict[str, Contract] = {}
    for raw in ctx.evidence.get("contracts") or ():
        contract = load(Contract, raw, ctx.parsed)
        if contract is not None:
            found[contract.kind] = contract
    return found


@rule(name="contracts.both_signed")
def both_signed(ctx: RuleContext) -> Verdict:
    """The purchase-of-service and third-party supervision contracts are both signed."""
    missing = sorted({"purchase", "supervision"} - set(evidence_contracts(ctx)))
    if not missing:
        return PASS
    return refusal("contracts.both_signed", missing=missing)


@rule(name="contracts.amount")
def amount_within_approval(ctx: RuleContext) -> Verdict:
    """The purchase contract's amount does not exceed the approved (recommended) amount."""
    purchase = evidence_contracts(ctx).get("purchase")
    approved = approval(ctx.project, ctx.parsed)
    if purchase is None:
        return PASS  # contracts.both_signed reports it
    limit = approved.recommended_amount if approved else None
    if limit is not None and purchase.amount <= limit:
        return PASS
    return refusal(
        "contracts.amount",
        amount=purchase.amount,
        approved=limit,
    )


@rule(name="contracts.term")
def term_within_limit(ctx: RuleContext) -> Verdict:
    """Each contract ends after it starts and runs at most N months (12 by default)."""
    months = ctx.policy.contract_term_max_months
    bad: list[dict[str, Any]] = []
    for contract in evidence_contracts(ctx).values():
        if not contract.start <= contract.end < add_months(contract.start, months):
            bad.append({"kind": contract.kind, "start": contract.start, "end": contract.end})
    if not bad:
        return PASS
    return refusal(
        "contracts.term",
        max_months=months,
        contracts=bad,
    )


@rule(name="contracts.parties")
def parties_independent(ctx: RuleContext) -> Verdict:
    """The purchase contract is with the provider; the third party is independent of all.

    The supervision (and any evaluation) contract names its counterparty, and that is
    none of the parties of `Policy.independent_of`: not the provider (it never
    supervises itself), not the endorsing hub, not the purchaser or a hub above it.
    """
    provider = provider_of(ctx.project)
    parties = ctx.facts.get(PARTIES_FACT) or {}
    party_of = dict.fromkeys(parties.get("purchaser_path") or (), "purchaser")
    party_of[text(ctx.project.data, "hub")] = "endorser"
    party_of[provider] = "applicant"
    independent = ctx.policy.independent_of
    problems: list[dict[str, Any]] = []
    for kind, contract in sorted(evidence_contracts(ctx).items()):
        counterparty = contract.counterparty
        if kind == "purchase":
            if counterparty is not None and counterparty != provider:
                problems.append(problem("contract.not_provider", counterparty=counterparty))
            continue
        relation = party_of.get(counterparty or "")
        if not counterparty:
            problems.append(problem("contract.counterparty", contract=kind))
        elif relation == "applicant" or (relation is not None and relation in independent):
            problems.append(problem("contract.not_independent", contract=kind, relation=relation))
    if not problems:
        return PASS
    return refusal("contracts.parties", problems=problems)
