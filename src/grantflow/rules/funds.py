"""Funds: budget caps at signing, expenditure checks, installments, settlement and clawback.

Money moves only through effects, so every payment is an audited record:

- ``sign`` records the budget lines, schedules the installments of the policy's schedule
  (40/40/20 by default; any parts adding up to 100, each tied to a milestone event) and
  releases those due on signing;
- ``pass_midterm`` releases those due on the mid-term (or re-check);
- ``close`` settles (`settle`): it pays the eligible spend not yet paid for, less what
  the grade withholds of the installments held until assessment, or records a
  `RefundDemand` (due on the working-day calendar) for what was paid beyond the
  eligible spend; the `Settlement` record balances to the fen;
- ``terminate`` runs the same sum with nothing further paid and records a `Clawback`
  (and a refund demand) of whatever was paid beyond the eligible spend;
- ``refund_payment`` records, booked by a purchaser, settle a refund demand.

Expenditures arrive as ``expenditure`` records and are checked against the term, the line
caps (with the policy's tolerance for moves), prohibited categories, the voucher and
invoice, and invoice numbers already used by any project.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from grantflow.errors import CalendarUnavailable
from grantflow.messages import problem, refusal
from grantflow.models import Project, Record, Verdict
from grantflow.policy import Policy
from grantflow.records import (
    BudgetLine,
    Clawback,
    Disbursement,
    Expenditure,
    Installment,
    RefundDemand,
    RefundPayment,
    Settlement,
)
from grantflow.rubrics import Grade
from grantflow.rules._base import PASS, Parsed, RuleContext, rule
from grantflow.rules._book import Effects, FactRequest
from grantflow.rules._regime import (
    IMPLEMENTATION_STATES,
    ZERO,
    awarded,
    budget,
    calendar_refusal,
    disbursed,
    disbursements,
    eligible_spend,
    expenditures,
    installments,
    load,
    local_date,
    make_record,
    percent_of,
    record_data,
    record_problems,
    term,
    text,
    total,
    values,
    working_calendar,
)
from grantflow.rules.contracts import evidence_contracts

__all__ = [
    "IMPLEMENTATION_STATES",
    "INVOICE_FACT",
    "SettlementSum",
    "budget_within_caps",
    "clawback_effect",
    "close_effect",
    "duplicate_invoice",
    "evidence_budget",
    "expenditure_effect",
    "expenditure_valid",
    "graded",
    "installment_amounts",
    "invoice_present",
    "invoice_uses",
    "line_cap",
    "midterm_effect",
    "not_prohibited",
    "refund_due_date",
    "refund_outstanding",
    "refund_payment_effect",
    "refund_payment_valid",
    "settle",
    "sign_effect",
    "total_cap",
    "withholding",
    "within_term",
]

#: Fact name: where the invoice number of the expenditure being added was used before.
INVOICE_FACT = "invoice_uses"


def _expenditure(ctx: RuleContext) -> Expenditure | None:
    return load(Expenditure, record_data(ctx), ctx.parsed)


def evidence_budget(ctx: RuleContext) -> list[BudgetLine]:
    """Return the well-formed budget lines of the evidence."""
    lines = (load(BudgetLine, raw, ctx.parsed) for raw in ctx.evidence.get("budget") or ())
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
    problems: list[dict[str, Any]] = []
    if not lines or total(by_line.values()) != amount:
        problems.append(problem("budget.sum", sum=total(by_line.values()), amount=amount))
    for name, cap in (
        ("personnel", ctx.policy.personnel_cap),
        ("administration", ctx.policy.administration_cap),
    ):
        if by_line.get(name, ZERO) > percent_of(amount, cap):
            problems.append(
                problem("budget.cap", line=name, value=by_line[name], cap=cap, amount=amount)
            )
    if not problems:
        return PASS
    return refusal(
        "funds.budget",
        problems=problems,
        lines={k: str(v) for k, v in sorted(by_line.items())},
    )


def sign_effect(ctx: RuleContext) -> Effects:
    """Record contracts and budget, schedule the installments, release those due on signing."""
    found = evidence_contracts(ctx)
    amount = found["purchase"].amount
    records: list[Record] = [make_record("contract", c.kind, c) for c in found.values()]
    records += [
        make_record("budget_line", f"budget-{line.line}", line) for line in evidence_budget(ctx)
    ]
    shares = tuple(share for share, _m in ctx.policy.schedule)
    schedule = [
        Installment(number=n, share=share, amount=part, released_by=milestone)
        for n, ((share, milestone), part) in enumerate(
            zip(ctx.policy.schedule, installment_amounts(amount, shares), strict=True), start=1
        )
    ]
    records += [make_record("installment", f"installment-{i.number}", i) for i in schedule]
    paid = _releases(ctx, schedule, "sign", ())
    records += paid
    return Effects(
        records=tuple(records),
        data={
            "amount_awarded": str(amount),
            "amount_disbursed": str(total(_amount(r) for r in paid)),
            "budget_reserved": str(amount),
            "awarded_at": ctx.now,
            "term_start": found["purchase"].start,
            "term_end": found["purchase"].end,
        },
    )


def _amount(record: Record) -> Decimal:
    return Decimal(str(record.data["amount"]))


def _releases(
    ctx: RuleContext,
    schedule: Sequence[Installment],
    milestone: str,
    done: Sequence[Disbursement],
) -> list[Record]:
    """Disbursement records for the installments `milestone` releases, not yet paid."""
    paid = {d.installment for d in done}
    return [
        make_record(
            "disbursement",
            f"disbursement-{i.number}",
            Disbursement(
                installment=i.number, amount=i.amount, released_by=ctx.actor.id, at=ctx.now
            ),
        )
        for i in schedule
        if i.released_by == milestone and i.number not in paid and i.amount > 0
    ]


def midterm_effect(ctx: RuleContext) -> Effects:
    """Release the installments due on passing the mid-term (or re-check)."""
    done = disbursements(ctx.project, ctx.parsed)
    paid = _releases(ctx, installments(ctx.project, ctx.parsed), "pass_midterm", done)
    if not paid:
        return Effects()
    return Effects(
        records=tuple(paid),
        data={
            "amount_disbursed": str(disbursed(ctx.project, ctx.parsed) + total(map(_amount, paid)))
        },
    )


# -- closing and terminating ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SettlementSum:
    """The settlement arithmetic, to the fen (see `settle`)."""

    eligible: Decimal
    paid: Decimal
    withheld: Decimal
    due: Decimal
    final_payment: Decimal
    refund: Decimal


def settle(
    eligible: Decimal, paid: Decimal, awarded: Decimal, withholding: Decimal
) -> SettlementSum:
    """Return what is due and how it is reached from what was already paid.

    The final payment is the eligible spend not yet paid for, up to what is left of the
    award after the grade's `withholding` (of the installments held until assessment);
    what the grade keeps of it is ``withheld``. A refund is whatever was paid beyond the
    eligible spend. So ``due = eligible - withheld`` and, whatever the inputs,
    ``paid + final_payment - refund == due <= awarded``; at most one of final payment and
    refund is not zero.

    >>> s = settle(Decimal("10000.00"), Decimal("80000.00"), Decimal("100000.00"), Decimal(0))
    >>> s.due, s.final_payment, s.refund
    (Decimal('10000.00'), Decimal('0.00'), Decimal('70000.00'))
    """
    shortfall = max(eligible - paid, ZERO)
    final = min(shortfall, max(awarded - paid - withholding, ZERO))
    withheld = shortfall - final
    return SettlementSum(
        eligible=eligible,
        paid=paid,
        withheld=withheld,
        due=eligible - withheld,
        final_payment=final,
        refund=max(paid - eligible, ZERO),
    )


@rule(name="funds.graded")
def graded(ctx: RuleContext) -> Verdict:
    """The project carries a final grade, which sets the final installment."""
    if text(ctx.project.data, "grade") in {g.value for g in Grade}:
        return PASS
    return refusal("funds.graded")


@rule(name="funds.refund_due")
def refund_due_date(ctx: RuleContext) -> Verdict:
    """A refund's due date can be set: the calendar knows the working days it counts."""
    try:
        _refund_due_on(ctx)
    except CalendarUnavailable as exc:
        return calendar_refusal(exc)
    return PASS


def _refund_due_on(ctx: RuleContext) -> date:
    today = local_date(ctx.now, ctx.policy)
    return working_calendar(ctx.policy).add_working_days(today, ctx.policy.refund_due_working_days)


def withholding(
    project: Project, grade: str, policy: Policy, memo: Parsed | None = None
) -> Decimal:
    """Return what the grade withholds of the installments held until assessment."""
    factor = policy.final_installment_by_grade.get(grade, ZERO)
    held = [i.amount for i in installments(project, memo) if i.released_by == "close"]
    return total(part - percent_of(part, factor) for part in held)


def _demand(ctx: RuleContext, amount: Decimal, reason: str) -> list[Record]:
    if amount <= 0:
        return []
    demand = RefundDemand(amount=amount, due_on=_refund_due_on(ctx), reason=reason)
    return [make_record("refund_demand", "refund", demand)]


def close_effect(ctx: RuleContext) -> Effects:
    """Settle: pay what is due beyond what was paid, or demand the overpayment back."""
    grade = text(ctx.project.data, "grade") or Grade.FAIL.value
    paid = disbursed(ctx.project, ctx.parsed)
    eligible = eligible_spend(ctx.project, ctx.parsed)
    held = withholding(ctx.project, grade, ctx.policy, ctx.parsed)
    result = settle(eligible, paid, awarded(ctx.project, ctx.parsed), held)
    records: list[Record] = []
    if result.final_payment > 0:
        last = max((i.number for i in installments(ctx.project, ctx.parsed)), default=1)
        payment = Disbursement(
            installment=last, amount=result.final_payment, released_by=ctx.actor.id, at=ctx.now
        )
        records.append(make_record("disbursement", f"disbursement-{last}", payment))
    settlement = Settlement(
        awarded=awarded(ctx.project, ctx.parsed),
        eligible=eligible,
        disbursed=paid + result.final_payment,
        final_installment=result.final_payment,
        withheld=result.withheld,
        due=result.due,
        refund=result.refund,
        grade=grade,
    )
    records.append(make_record("settlement", "settlement", settlement))
    records += _demand(ctx, result.refund, "settlement")
    return Effects(records=tuple(records), data=_settled_data(settlement.disbursed, result))


def _settled_data(disbursed_total: Decimal, result: SettlementSum) -> dict[str, Any]:
    return {
        "amount_disbursed": str(disbursed_total),
        "eligible_spend": str(result.eligible),
        "amount_due": str(result.due),
        "refund_demanded": str(result.refund),
        "refund_status": "open" if result.refund > 0 else None,
        "budget_reserved": str(result.due),
    }


def clawback_effect(ctx: RuleContext) -> Effects:
    """Termination runs the same sum with nothing further paid: demand back what exceeds it."""
    paid = disbursed(ctx.project, ctx.parsed)
    eligible = eligible_spend(ctx.project, ctx.parsed)
    # Nothing is released at termination: the award left to pay is what was paid.
    result = settle(eligible, paid, paid, ZERO)
    clawback = Clawback(
        eligible=eligible,
        disbursed=paid,
        amount=result.refund,
        reason=str(ctx.evidence.get("reason") or ""),
    )
    records = [
        make_record("clawback", "clawback", clawback),
        *_demand(ctx, result.refund, "clawback"),
    ]
    return Effects(
        records=tuple(records),
        data={**_settled_data(paid, result), "clawback": str(clawback.amount)},
    )


# -- refunds -------------------------------------------------------------------------------


def refund_outstanding(project: Project, memo: Parsed | None = None) -> Decimal:
    """Return what the provider still owes on its refund demand (0 with none)."""
    demanded = total(d.amount for d in values(project, "refund_demand", RefundDemand, memo))
    repaid = total(r.amount for r in values(project, "refund_payment", RefundPayment, memo))
    return demanded - repaid


@rule(name="funds.refund_payment")
def refund_payment_valid(ctx: RuleContext) -> Verdict:
    """A purchaser books a repayment against an open refund demand, up to what is owed."""
    payment = load(RefundPayment, record_data(ctx), ctx.parsed)
    owed = refund_outstanding(ctx.project, ctx.parsed)
    demands = {r.id for r in ctx.project.records_of("refund_demand")}
    today = local_date(ctx.now, ctx.policy)
    if payment is None:
        found = problem("record.invalid", kind="refund_payment")
    elif payment.demand not in demands:
        found = problem("refund.no_demand", demand=payment.demand)
    elif not ZERO < payment.amount <= owed:
        found = problem("refund.amount", amount=payment.amount, owed=owed)
    elif payment.paid_on > today:
        found = problem("refund.future", paid_on=payment.paid_on)
    else:
        return PASS
    return refusal("funds.refund_payment", problems=[found], owed=owed)


def refund_payment_effect(ctx: RuleContext) -> Effects:
    """Keep what was repaid and whether the demand is settled in the project's data."""
    payment = load(RefundPayment, record_data(ctx), ctx.parsed)
    amount = payment.amount if payment is not None else ZERO
    owed = refund_outstanding(ctx.project, ctx.parsed) - amount
    repaid = total(
        r.amount for r in values(ctx.project, "refund_payment", RefundPayment, ctx.parsed)
    )
    return Effects(
        data={
            "refund_settled": str(repaid + amount),
            "refund_status": "settled" if owed == 0 else "open",
        }
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
    problems = record_problems(ctx, "expenditure", _expenditure(ctx) is not None)
    if not problems:
        return PASS
    return refusal("funds.expenditure", problems=problems)


@rule(name="funds.in_term")
def within_term(ctx: RuleContext) -> Verdict:
    """The expenditure's date lies inside the contract term (extensions included)."""
    spent, span = _expenditure(ctx), term(ctx.project, ctx.parsed)
    if spent is None or span is None or span[0] <= spent.date <= span[1]:
        return PASS
    return refusal(
        "funds.in_term",
        date=spent.date,
        start=span[0],
        end=span[1],
    )


@rule(name="funds.line_cap")
def line_cap(ctx: RuleContext) -> Verdict:
    """Spending on a line stays within its budget plus the move tolerance (10 % by default)."""
    spent = _expenditure(ctx)
    if spent is None or term(ctx.project, ctx.parsed) is None:
        return PASS  # funds.expenditure reports it
    line_budget = budget(ctx.project, ctx.parsed).get(spent.line, ZERO)
    cap = line_budget + percent_of(line_budget, ctx.policy.line_move_tolerance)
    used = total(e.amount for e in expenditures(ctx.project, ctx.parsed) if e.line == spent.line)
    if used + spent.amount <= cap:
        return PASS
    return refusal(
        "funds.line_cap",
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
    if spent is None or term(ctx.project, ctx.parsed) is None:
        return PASS  # funds.expenditure reports it
    limit, used = awarded(ctx.project, ctx.parsed), eligible_spend(ctx.project, ctx.parsed)
    if used + spent.amount <= limit:
        return PASS
    return refusal(
        "funds.total_cap",
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
    return refusal(
        "funds.prohibited",
        category=spent.category,
    )


@rule(name="funds.invoice")
def invoice_present(ctx: RuleContext) -> Verdict:
    """The expenditure has a voucher and an invoice number."""
    spent = _expenditure(ctx)
    if spent is None or (spent.invoice_number.strip() and spent.voucher.strip()):
        return PASS
    return refusal(
        "funds.invoice",
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
    return refusal(
        "funds.duplicate_invoice",
        invoice_number=number,
        projects=sorted({str(u["project"]) for u in uses}),
        used_by=[dict(u) for u in uses],
    )


def expenditure_effect(ctx: RuleContext) -> Effects:
    """Keep the project's running eligible spend in its data (for portfolio reports)."""
    spent = _expenditure(ctx)
    amount = spent.amount if spent else ZERO
    return Effects(data={"eligible_spend": str(eligible_spend(ctx.project, ctx.parsed) + amount)})
