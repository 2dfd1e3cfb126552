"""Funds: budget caps at signing, expenditure checks, installments, settlement and clawback.

Money moves only through effects, so every payment is an audited record:

- ``sign`` records the budget lines, schedules the installments (40/40/20 by default) and
  releases the first;
- ``pass_midterm`` releases the second;
- ``close`` pays the final one, reduced or withheld by grade, and records the `Settlement`
  (eligible spend against disbursed; ``surplus = disbursed - eligible``);
- ``terminate`` records a `Clawback` of whatever was paid beyond the eligible spend.

Expenditures arrive as ``expenditure`` records and are checked against the term, the line
caps (with the policy's tolerance for moves), prohibited categories, the voucher and
invoice, and invoice numbers already used by any project.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from grantflow.models import Record, Verdict
from grantflow.records import (
    Amendment,
    BudgetLine,
    Clawback,
    Disbursement,
    Expenditure,
    Installment,
    Settlement,
)
from grantflow.rubrics import Grade
from grantflow.rules._base import PASS, RuleContext, refuse, rule
from grantflow.rules._book import Effects, FactRequest
from grantflow.rules._regime import (
    ZERO,
    awarded,
    budget,
    disbursed,
    disbursements,
    eligible_spend,
    expenditures,
    installments,
    is_own,
    load,
    make_record,
    needs_role,
    percent_of,
    record_data,
    term,
    text,
    total,
)
from grantflow.rules.contracts import evidence_contracts

__all__ = [
    "IMPLEMENTATION_STATES",
    "INVOICE_FACT",
    "amendment_valid",
    "budget_within_caps",
    "clawback_effect",
    "close_effect",
    "duplicate_invoice",
    "expenditure_effect",
    "expenditure_valid",
    "graded",
    "installment_amounts",
    "invoice_present",
    "invoice_uses",
    "line_cap",
    "midterm_effect",
    "not_prohibited",
    "sign_effect",
    "total_cap",
    "within_term",
]

#: States in which a provider spends and records expenditures.
IMPLEMENTATION_STATES = ("contracted", "midterm", "rectification", "assessed")
#: Fact name: where the invoice number of the expenditure being added was used before.
INVOICE_FACT = "invoice_uses"


def _expenditure(ctx: RuleContext) -> Expenditure | None:
    return load(Expenditure, record_data(ctx))


def evidence_budget(ctx: RuleContext) -> list[BudgetLine]:
    """Return the well-formed budget lines of the evidence."""
    lines = (load(BudgetLine, raw) for raw in ctx.evidence.get("budget") or ())
    return [line for line in lines if line is not None]


def installment_amounts(amount: Decimal, shares: tuple[Decimal, ...]) -> list[Decimal]:
    """Split `amount` by percent `shares`; the last takes the rounding so the sum is exact."""
    parts = [percent_of(amount, share) for share in shares[:-1]]
    return [*parts, amount - total(parts)]


# -- signing -------------------------------------------------------------------------------


@rule(name="funds.budget")
def budget_within_caps(ctx: RuleContext) -> Verdict:
    """Budget lines add up to the contract amount; personnel and administration within caps."""
    purchase = evidence_contracts(ctx).get("purchase")
    lines = evidence_budget(ctx)
    amount = purchase.amount if purchase else ZERO
    by_line: dict[str, Decimal] = {}
    for line in lines:
        by_line[line.line] = by_line.get(line.line, ZERO) + line.amount
    problems: list[str] = []
    if not lines or total(by_line.values()) != amount:
        problems.append(f"budget lines add up to {total(by_line.values())}, contract is {amount}")
    for name, cap in (
        ("personnel", ctx.policy.personnel_cap),
        ("administration", ctx.policy.administration_cap),
    ):
        if by_line.get(name, ZERO) > percent_of(amount, cap):
            problems.append(f"{name} {by_line[name]} exceeds {cap}% of {amount}")
    if not problems:
        return PASS
    return refuse(
        "funds.budget",
        f"budget not acceptable: {'; '.join(problems)}",
        f"预算不符合要求：{'；'.join(problems)}",
        problems=problems,
        lines={k: str(v) for k, v in sorted(by_line.items())},
    )


def sign_effect(ctx: RuleContext) -> Effects:
    """Record contracts and budget, schedule installments, release the first."""
    found = evidence_contracts(ctx)
    amount = found["purchase"].amount
    records: list[Record] = [make_record("contract", c.kind, c) for c in found.values()]
    records += [
        make_record("budget_line", f"budget-{line.line}", line) for line in evidence_budget(ctx)
    ]
    shares = ctx.policy.installments
    releasers = ("sign", "pass_midterm", "close")
    schedule = [
        Installment(number=n, share=share, amount=part, released_by=releasers[min(n, 3) - 1])
        for n, (share, part) in enumerate(
            zip(shares, installment_amounts(amount, shares), strict=True), start=1
        )
    ]
    records += [make_record("installment", f"installment-{i.number}", i) for i in schedule]
    first = Disbursement(
        installment=1, amount=schedule[0].amount, released_by=ctx.actor.id, at=ctx.now
    )
    records.append(make_record("disbursement", "disbursement-1", first))
    return Effects(
        records=tuple(records),
        data={
            "amount_awarded": str(amount),
            "amount_disbursed": str(first.amount),
            "awarded_at": ctx.now,
            "term_start": found["purchase"].start,
            "term_end": found["purchase"].end,
        },
    )


def _release(ctx: RuleContext, number: int, factor: Decimal) -> tuple[Record | None, Decimal]:
    """Return the disbursement record for installment `number` (scaled by `factor` %)."""
    scheduled = next((i for i in installments(ctx.project) if i.number == number), None)
    if scheduled is None or any(d.installment == number for d in disbursements(ctx.project)):
        return None, ZERO
    amount = percent_of(scheduled.amount, factor)
    paid = Disbursement(installment=number, amount=amount, released_by=ctx.actor.id, at=ctx.now)
    return make_record("disbursement", f"disbursement-{number}", paid), amount


def midterm_effect(ctx: RuleContext) -> Effects:
    """Release the second installment on passing the mid-term (or re-check)."""
    record, amount = _release(ctx, 2, Decimal(100))
    if record is None:
        return Effects()
    return Effects(
        records=(record,),
        data={"amount_disbursed": str(disbursed(ctx.project) + amount)},
    )


# -- closing and terminating ---------------------------------------------------------------


@rule(name="funds.graded")
def graded(ctx: RuleContext) -> Verdict:
    """The project carries a final grade, which sets the final installment."""
    if text(ctx.project.data, "grade") in {g.value for g in Grade}:
        return PASS
    return refuse(
        "funds.graded",
        "the project has no final grade to settle the last installment with",
        "项目尚无绩效考核等级，无法结算尾款",
    )


def close_effect(ctx: RuleContext) -> Effects:
    """Pay the final installment by grade and record the settlement."""
    grade = text(ctx.project.data, "grade") or Grade.FAIL.value
    factor = ctx.policy.final_installment_by_grade.get(grade, ZERO)
    last = len(ctx.policy.installments)
    scheduled = next((i.amount for i in installments(ctx.project) if i.number == last), ZERO)
    record, final = _release(ctx, last, factor)
    paid = disbursed(ctx.project) + final
    eligible = eligible_spend(ctx.project)
    settlement = Settlement(
        awarded=awarded(ctx.project),
        eligible=eligible,
        disbursed=paid,
        final_installment=final,
        withheld=scheduled - final if record is not None else ZERO,
        surplus=paid - eligible,
        grade=grade,
    )
    records = ([record] if record is not None else []) + [
        make_record("settlement", "settlement", settlement)
    ]
    return Effects(
        records=tuple(records),
        data={
            "amount_disbursed": str(paid),
            "eligible_spend": str(eligible),
            "surplus": str(settlement.surplus),
        },
    )


def clawback_effect(ctx: RuleContext) -> Effects:
    """Record what the provider must return: disbursed beyond eligible spend."""
    paid = disbursed(ctx.project)
    eligible = eligible_spend(ctx.project)
    clawback = Clawback(
        eligible=eligible,
        disbursed=paid,
        amount=max(paid - eligible, ZERO),
        reason=str(ctx.evidence.get("reason") or ""),
    )
    return Effects(
        records=(make_record("clawback", "clawback", clawback),),
        data={"clawback": str(clawback.amount), "eligible_spend": str(eligible)},
    )


# -- expenditures --------------------------------------------------------------------------


def invoice_uses(request: FactRequest) -> list[dict[str, str]]:
    """Fact provider: every expenditure, in any project, already using this invoice number."""
    record = request.evidence.get("record") or {}
    number = text(record.get("data") or {}, "invoice_number").strip()
    if not number:
        return []
    found = request.reader.find_records("expenditure", "invoice_number", [number])
    return [{"project": pid, "record": r.id} for pid, r in found]


@rule(name="funds.expenditure")
def expenditure_valid(ctx: RuleContext) -> Verdict:
    """The provider records a well-formed expenditure while the project is running."""
    problems = []
    if not is_own(ctx.actor, ctx.project):
        problems.append("only the provider records its expenditures")
    if ctx.source not in IMPLEMENTATION_STATES:
        problems.append(f"no spending while {ctx.source}")
    if _expenditure(ctx) is None:
        problems.append("not a valid expenditure record")
    if not problems:
        return PASS
    return refuse(
        "funds.expenditure",
        f"expenditure not accepted: {'; '.join(problems)}",
        f"支出不予登记：{'；'.join(problems)}",
        problems=problems,
    )


@rule(name="funds.in_term")
def within_term(ctx: RuleContext) -> Verdict:
    """The expenditure's date lies inside the contract term (extensions included)."""
    spent, span = _expenditure(ctx), term(ctx.project)
    if spent is None or span is None or span[0] <= spent.date <= span[1]:
        return PASS
    return refuse(
        "funds.in_term",
        f"expenditure dated {spent.date} is outside the term {span[0]} to {span[1]}",
        f"支出日期{spent.date}不在合同期{span[0]}至{span[1]}内",
        date=spent.date,
        start=span[0],
        end=span[1],
    )


@rule(name="funds.line_cap")
def line_cap(ctx: RuleContext) -> Verdict:
    """Spending on a line stays within its budget plus the move tolerance (10 % by default)."""
    spent = _expenditure(ctx)
    if spent is None or term(ctx.project) is None:
        return PASS  # funds.expenditure reports it
    line_budget = budget(ctx.project).get(spent.line, ZERO)
    cap = line_budget + percent_of(line_budget, ctx.policy.line_move_tolerance)
    used = total(e.amount for e in expenditures(ctx.project) if e.line == spent.line)
    if used + spent.amount <= cap:
        return PASS
    return refuse(
        "funds.line_cap",
        f"{spent.line}: {used} spent + {spent.amount} exceeds the cap {cap}; amend the budget",
        f"{spent.line}科目已支出{used}，加本笔{spent.amount}超过上限{cap}，须申请预算调整",
        line=spent.line,
        budget=line_budget,
        cap=cap,
        spent=used,
        amount=spent.amount,
    )


@rule(name="funds.total_cap")
def total_cap(ctx: RuleContext) -> Verdict:
    """Total spending stays within the contracted amount."""
    spent = _expenditure(ctx)
    if spent is None or term(ctx.project) is None:
        return PASS  # funds.expenditure reports it
    limit, used = awarded(ctx.project), eligible_spend(ctx.project)
    if used + spent.amount <= limit:
        return PASS
    return refuse(
        "funds.total_cap",
        f"{used} spent + {spent.amount} exceeds the contract amount {limit}",
        f"已支出{used}加本笔{spent.amount}超过合同金额{limit}",
        spent=used,
        amount=spent.amount,
        awarded=limit,
    )


@rule(name="funds.prohibited")
def not_prohibited(ctx: RuleContext) -> Verdict:
    """No prohibited item: whole-job subcontracting, unapproved fixed assets, ..."""
    spent = _expenditure(ctx)
    if spent is None or spent.category not in ctx.policy.prohibited_categories:
        return PASS
    return refuse(
        "funds.prohibited",
        f"{spent.category} is not an eligible expenditure",
        f"{spent.category}属于不得列支的项目",
        category=spent.category,
    )


@rule(name="funds.invoice")
def invoice_present(ctx: RuleContext) -> Verdict:
    """The expenditure has a voucher and an invoice number."""
    spent = _expenditure(ctx)
    if spent is None or (spent.invoice_number.strip() and spent.voucher.strip()):
        return PASS
    return refuse(
        "funds.invoice",
        "an expenditure needs a voucher and an invoice number",
        "支出须附记账凭证和发票号码",
        invoice_number=spent.invoice_number,
        voucher=spent.voucher,
    )


@rule(name="funds.duplicate_invoice")
def duplicate_invoice(ctx: RuleContext) -> Verdict:
    """The invoice number was not used before, in this or any other project."""
    uses = list(ctx.facts.get(INVOICE_FACT) or ())
    if not uses:
        return PASS
    number = text(record_data(ctx), "invoice_number")
    where = ", ".join(f"{u['project']}/{u['record']}" for u in uses)
    return refuse(
        "funds.duplicate_invoice",
        f"invoice {number} is already claimed by {where}",
        f"发票{number}已在{where}报销",
        invoice_number=number,
        used_by=[dict(u) for u in uses],
    )


def expenditure_effect(ctx: RuleContext) -> Effects:
    """Keep the project's running eligible spend in its data (for portfolio reports)."""
    spent = _expenditure(ctx)
    amount = spent.amount if spent else ZERO
    return Effects(data={"eligible_spend": str(eligible_spend(ctx.project) + amount)})


@rule(name="funds.amendment")
def amendment_valid(ctx: RuleContext) -> Verdict:
    """A purchaser amends a running project: a line move it can cover, or a later end date."""
    role = needs_role(ctx, "purchaser", "funds.amendment")
    if not role.passed:
        return role
    amendment = load(Amendment, record_data(ctx))
    span = term(ctx.project)
    problem = _amendment_problem(amendment, budget(ctx.project), span[1] if span else None)
    if ctx.source not in IMPLEMENTATION_STATES:
        problem = f"no amendment while {ctx.source}"
    if problem is None:
        return PASS
    return refuse(
        "funds.amendment",
        f"amendment not accepted: {problem}",
        f"变更不予登记：{problem}",
        problem=problem,
    )


def _amendment_problem(
    amendment: Amendment | None, lines: dict[str, Decimal], end: Any
) -> str | None:
    if amendment is None:
        return "not a valid amendment record"
    if amendment.kind == "line_move":
        if not (amendment.from_line and amendment.to_line and amendment.amount):
            return "a line move names both lines and an amount"
        if amendment.amount > lines.get(amendment.from_line, ZERO):
            return f"{amendment.from_line} has less than {amendment.amount}"
    if amendment.kind == "extension" and (
        amendment.new_end is None or end is None or amendment.new_end <= end
    ):
        return "an extension sets a later end date"
    return None
