"""Amendments as requests and decisions: the provider asks, the purchaser decides.

- ``amendment_request`` records (`AmendmentRequest`) come from the provider while the
  project runs: a line move (from, to, amount) or an extension (a later end date).
- ``amendment_decision`` records (`AmendmentDecision`) come from a purchaser, once per
  request. Approving re-checks every cap on the amended budget and term: no line below
  what was already spent on it, personnel and administration within their shares of the
  award, the end no more than `Policy.extension_max_months` beyond the signed end, the
  whole term under `Policy.longest_term_months`. The effect of an approval writes the
  ``amendment`` record the budget and term are read from.
- ``amendment`` records are written only that way: the kind is effect-owned, so adding
  one directly is refused (``records.reserved``, `grantflow.rules.authority`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from grantflow.messages import problem, refusal
from grantflow.models import Project, Record, Verdict
from grantflow.policy import Policy
from grantflow.records import Amendment, AmendmentDecision, AmendmentRequest
from grantflow.rules._base import PASS, Parsed, RuleContext, rule
from grantflow.rules._book import Effects
from grantflow.rules._regime import (
    ZERO,
    add_months,
    awarded,
    budget,
    contracts,
    expenditures,
    load,
    make_record,
    percent_of,
    record_data,
    record_problems,
    rows,
    term,
    total,
    values,
)
from grantflow.rules.funds import IMPLEMENTATION_STATES

Problem = dict[str, Any]

__all__ = [
    "Problem",
    "amended_problems",
    "caps_hold",
    "decision_effect",
    "decision_valid",
    "request_valid",
]


def _request_problems(
    request: AmendmentRequest | None, project: Project, memo: Parsed | None = None
) -> list[Problem]:
    if request is None:
        return [problem("record.invalid", kind="amendment_request")]
    if request.kind == "line_move":
        if not (request.from_line and request.to_line and request.amount):
            return [problem("amendment.move_fields")]
        if request.from_line == request.to_line:
            return [problem("amendment.same_line")]
    if request.kind == "extension":
        span = term(project, memo)
        if request.new_end is None or span is None or request.new_end <= span[1]:
            return [problem("amendment.later_end")]
    return []


@rule(name="amendment.request")
def request_valid(ctx: RuleContext) -> Verdict:
    """The provider requests a well-formed amendment of its running project."""
    request = load(AmendmentRequest, record_data(ctx), ctx.parsed)
    problems = record_problems(ctx, "amendment_request", valid=True)
    problems += _request_problems(request, ctx.project, ctx.parsed)
    if not problems:
        return PASS
    return refusal("amendment.request", problems=problems)


def _request(
    project: Project, request_id: str, memo: Parsed | None = None
) -> AmendmentRequest | None:
    found = {r.id: v for r, v in rows(project, "amendment_request", AmendmentRequest, memo)}
    return found.get(request_id)


@rule(name="amendment.decision")
def decision_valid(ctx: RuleContext) -> Verdict:
    """A purchaser decides once on an existing request while the project runs."""
    decision = load(AmendmentDecision, record_data(ctx), ctx.parsed)
    decided = {
        d.request for d in values(ctx.project, "amendment_decision", AmendmentDecision, ctx.parsed)
    }
    if decision is None:
        found = problem("record.invalid", kind="amendment_decision")
    elif _request(ctx.project, decision.request, ctx.parsed) is None:
        found = problem("amendment.no_request", request=decision.request)
    elif decision.request in decided:
        found = problem("amendment.decided", request=decision.request)
    elif ctx.source not in IMPLEMENTATION_STATES:
        found = problem("record.state", kind="amendment_decision", state=ctx.source)
    else:
        return PASS
    return refusal("amendment.decision", problems=[found])


def amended_problems(
    project: Project, change: Amendment, policy: Policy, memo: Parsed | None = None
) -> list[Problem]:
    """Return every cap the project would break with `change` applied (empty: none).

    With `memo` (a rule's ``ctx.parsed``) the project's records are parsed once per
    decision.
    """
    problems: list[Problem] = []
    amount = awarded(project, memo)
    lines = budget(project, memo)
    if change.kind == "line_move" and change.from_line and change.to_line and change.amount:
        lines[change.from_line] = lines.get(change.from_line, ZERO) - change.amount
        lines[change.to_line] = lines.get(change.to_line, ZERO) + change.amount
        spent = total(e.amount for e in expenditures(project, memo) if e.line == change.from_line)
        if lines[change.from_line] < spent:
            value = lines[change.from_line]
            problems.append(
                problem("caps.below_spent", line=change.from_line, value=value, spent=spent)
            )
    for name, cap in (
        ("personnel", policy.personnel_cap),
        ("administration", policy.administration_cap),
    ):
        if lines.get(name, ZERO) > percent_of(amount, cap):
            share = (lines[name] * 100 / amount).quantize(Decimal("0.01")) if amount else ZERO
            problems.append(problem("caps.share", line=name, share=share, cap=cap))
    if change.kind == "extension" and change.new_end is not None:
        purchase = contracts(project, memo).get("purchase")
        if purchase is not None:
            latest = add_months(purchase.end, policy.extension_max_months)
            if change.new_end > latest:
                months = policy.extension_max_months
                problems.append(
                    problem("caps.extension", latest=latest, months=months, new_end=change.new_end)
                )
            if change.new_end >= add_months(purchase.start, policy.longest_term_months):
                problems.append(problem("caps.longest", months=policy.longest_term_months))
    return problems


@rule(name="amendment.caps")
def caps_hold(ctx: RuleContext) -> Verdict:
    """An approved amendment keeps every cap on the amended budget and term."""
    decision = load(AmendmentDecision, record_data(ctx), ctx.parsed)
    request = _request(ctx.project, decision.request, ctx.parsed) if decision else None
    if decision is None or request is None or not decision.approved:
        return PASS
    problems = amended_problems(ctx.project, request, ctx.policy, ctx.parsed)
    if not problems:
        return PASS
    return refusal(
        "amendment.caps",
        problems=problems,
        request=decision.request,
    )


def decision_effect(ctx: RuleContext) -> Effects:
    """An approval writes the ``amendment`` record (and the new end of an extension)."""
    decision = load(AmendmentDecision, record_data(ctx), ctx.parsed)
    request = _request(ctx.project, decision.request, ctx.parsed) if decision else None
    if decision is None or request is None or not decision.approved:
        return Effects()
    change = ctx.parsed.get(
        request, Amendment, lambda: Amendment.model_validate(request.model_dump())
    )
    record: Record = make_record("amendment", f"amendment-{decision.request}", change)
    data = {"term_end": change.new_end} if change.new_end is not None else {}
    return Effects(records=(record,), data=data)
