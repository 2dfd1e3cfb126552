"""Amendments as requests and decisions: the provider asks, the purchaser decides.

- ``amendment_request`` records (`AmendmentRequest`) come from the provider while the
  project runs: a line move (from, to, amount) or an extension (a later end date).
- ``amendment_decision`` records (`AmendmentDecision`) come from a purchaser, once per
  request. Approving re-checks every cap on the amended budget and term: no line below
  what was already spent on it, personnel and administration within their shares of the
  award, the end no more than `Policy.extension_max_months` beyond the signed end, the
  whole term under `Policy.longest_term_months`. The effect of an approval writes the
  ``amendment`` record the budget and term are read from.
- ``amendment`` records are written only that way (`amendment.direct` refuses them).
"""

from __future__ import annotations

from decimal import Decimal

from grantflow.models import Project, Record, Verdict
from grantflow.policy import Policy
from grantflow.records import Amendment, AmendmentDecision, AmendmentRequest
from grantflow.rules._base import PASS, RuleContext, refuse, rule
from grantflow.rules._book import Effects
from grantflow.rules._regime import (
    ZERO,
    add_months,
    awarded,
    budget,
    contracts,
    expenditures,
    is_own,
    load,
    make_record,
    needs_role,
    percent_of,
    record_data,
    rows,
    term,
    total,
    values,
)
from grantflow.rules.funds import IMPLEMENTATION_STATES

__all__ = [
    "amended_problems",
    "caps_hold",
    "decision_effect",
    "decision_valid",
    "no_direct_amendment",
    "request_valid",
]


def _request_problems(request: AmendmentRequest | None, project: Project) -> list[str]:
    if request is None:
        return ["not a valid amendment request"]
    if request.kind == "line_move":
        if not (request.from_line and request.to_line and request.amount):
            return ["a line move names both lines and an amount"]
        if request.from_line == request.to_line:
            return ["a line move needs two different lines"]
    if request.kind == "extension":
        span = term(project)
        if request.new_end is None or span is None or request.new_end <= span[1]:
            return ["an extension sets a later end date"]
    return []


@rule(name="amendment.request")
def request_valid(ctx: RuleContext) -> Verdict:
    """The provider requests a well-formed amendment of its running project."""
    problems = [] if is_own(ctx.actor, ctx.project) else ["only the provider requests"]
    if ctx.source not in IMPLEMENTATION_STATES:
        problems.append(f"no amendment while {ctx.source}")
    problems += _request_problems(load(AmendmentRequest, record_data(ctx)), ctx.project)
    if not problems:
        return PASS
    return refuse(
        "amendment.request",
        f"amendment request not accepted: {'; '.join(problems)}",
        f"变更申请不予受理：{'；'.join(problems)}",
        problems=problems,
    )


def _request(project: Project, request_id: str) -> AmendmentRequest | None:
    found = {r.id: v for r, v in rows(project, "amendment_request", AmendmentRequest)}
    return found.get(request_id)


@rule(name="amendment.decision")
def decision_valid(ctx: RuleContext) -> Verdict:
    """A purchaser decides once on an existing request while the project runs."""
    role = needs_role(ctx, "purchaser", "amendment.decision")
    if not role.passed:
        return role
    decision = load(AmendmentDecision, record_data(ctx))
    decided = {d.request for d in values(ctx.project, "amendment_decision", AmendmentDecision)}
    if decision is None:
        problem = "not a valid amendment decision"
    elif _request(ctx.project, decision.request) is None:
        problem = f"no amendment request {decision.request}"
    elif decision.request in decided:
        problem = f"request {decision.request} is already decided"
    elif ctx.source not in IMPLEMENTATION_STATES:
        problem = f"no amendment while {ctx.source}"
    else:
        return PASS
    return refuse(
        "amendment.decision",
        f"amendment decision not accepted: {problem}",
        f"变更决定不予登记：{problem}",
        problem=problem,
    )


def amended_problems(project: Project, change: Amendment, policy: Policy) -> list[str]:
    """Return every cap the project would break with `change` applied (empty: none)."""
    problems: list[str] = []
    amount = awarded(project)
    lines = budget(project)
    if change.kind == "line_move" and change.from_line and change.to_line and change.amount:
        lines[change.from_line] = lines.get(change.from_line, ZERO) - change.amount
        lines[change.to_line] = lines.get(change.to_line, ZERO) + change.amount
        spent = total(e.amount for e in expenditures(project) if e.line == change.from_line)
        if lines[change.from_line] < spent:
            problems.append(
                f"{change.from_line} would be {lines[change.from_line]}, "
                f"below the {spent} already spent"
            )
    for name, cap in (
        ("personnel", policy.personnel_cap),
        ("administration", policy.administration_cap),
    ):
        if lines.get(name, ZERO) > percent_of(amount, cap):
            share = (lines[name] * 100 / amount).quantize(Decimal("0.01")) if amount else ZERO
            problems.append(f"{name} would be {share}% of the award, over the {cap}% cap")
    if change.kind == "extension" and change.new_end is not None:
        purchase = contracts(project).get("purchase")
        if purchase is not None:
            latest = add_months(purchase.end, policy.extension_max_months)
            if change.new_end > latest:
                problems.append(
                    f"extensions may move the end to {latest} at most "
                    f"({policy.extension_max_months} months), not {change.new_end}"
                )
            if change.new_end >= add_months(purchase.start, policy.longest_term_months):
                problems.append(
                    f"a project runs less than {policy.longest_term_months} months in all"
                )
    return problems


@rule(name="amendment.caps")
def caps_hold(ctx: RuleContext) -> Verdict:
    """An approved amendment keeps every cap on the amended budget and term."""
    decision = load(AmendmentDecision, record_data(ctx))
    request = _request(ctx.project, decision.request) if decision else None
    if decision is None or request is None or not decision.approved:
        return PASS
    problems = amended_problems(ctx.project, request, ctx.policy)
    if not problems:
        return PASS
    return refuse(
        "amendment.caps",
        f"the amendment would break the caps: {'; '.join(problems)}",
        f"变更后超出限额：{'；'.join(problems)}",
        problems=problems,
        request=decision.request,
    )


def decision_effect(ctx: RuleContext) -> Effects:
    """An approval writes the ``amendment`` record (and the new end of an extension)."""
    decision = load(AmendmentDecision, record_data(ctx))
    request = _request(ctx.project, decision.request) if decision else None
    if decision is None or request is None or not decision.approved:
        return Effects()
    change = Amendment.model_validate(request.model_dump())
    record: Record = make_record("amendment", f"amendment-{decision.request}", change)
    data = {"term_end": change.new_end} if change.new_end is not None else {}
    return Effects(records=(record,), data=data)


@rule(name="amendment.direct")
def no_direct_amendment(ctx: RuleContext) -> Verdict:
    """Amendments are never added directly: they are requested and decided."""
    return refuse(
        "amendment.direct",
        "amendments are requested by the provider (amendment_request) and decided by the "
        "purchaser (amendment_decision)",
        "合同变更须由承接主体申请、购买主体决定，不得直接登记",
    )
