"""`default_rules()`: the purchased-service regime of DOMAIN.md as one `RuleBook`.

`grantflow.open()` uses it unless given ``rules=``; pass ``rules=RuleBook()`` for a bare
engine. Every threshold comes from the project's pinned `Policy`, every score from the
pinned rubric version.
"""

from __future__ import annotations

from collections.abc import Sequence

from grantflow.rubrics import DEFAULT_RUBRICS, Rubric
from grantflow.rules import (
    amendments,
    authority,
    budget,
    conflict,
    contracts,
    eligibility,
    evaluation,
    funds,
    publicity,
    reasons,
    review,
    services,
    timers,
)
from grantflow.rules._book import ALL_EVENTS, RuleBook
from grantflow.states import PURCHASED_SERVICE, Lifecycle

__all__ = ["default_rules"]


def default_rules(
    *, rubrics: Sequence[Rubric] = DEFAULT_RUBRICS, lifecycle: Lifecycle = PURCHASED_SERVICE
) -> RuleBook:
    """Return the default regime: eligibility, review, publicity, contracts, funds, evaluation.

    Args:
        rubrics: every rubric version a project may be pinned to (the three defaults).
        lifecycle: the lifecycle whose timers add records (``reminder``, ...): only the
            system actor adds them, and only when due (`grantflow.rules.timers`).
    """
    book = RuleBook()
    _authority(book)
    _time(book, lifecycle)
    _submit(book)
    _review(book, rubrics)
    _sign(book)
    _evaluate(book, rubrics)
    _spend(book)
    book.on("reject", reasons.reason_given)
    book.on("withdraw", reasons.reason_given, reasons.applicant_owns)
    book.effect("reject", budget.release_effect)
    book.effect("withdraw", budget.release_effect)
    book.on("terminate", reasons.reason_given, funds.refund_due_date)
    book.effect("terminate", funds.clawback_effect)
    book.on("record.refund_payment", funds.refund_payment_valid)
    book.effect("record.refund_payment", funds.refund_payment_effect)
    return book


def _authority(book: RuleBook) -> None:
    """Who may do what (docs/authority.md): every record kind declared, one rule for all."""
    for kind in authority.RECORD_KINDS:
        book.declare_records(kind.kind, effect_owned=kind.effect_owned)
    book.provide(authority.PARTIES_FACT, authority.parties, events=[ALL_EVENTS])
    book.on(ALL_EVENTS, authority.may_act)


def _time(book: RuleBook, lifecycle: Lifecycle) -> None:
    book.on("record.progress_report", timers.progress_report_valid)
    check = timers.timer_record(lifecycle)
    for kind in sorted({t.record for t in lifecycle.timers if t.record}):
        book.on(f"record.{kind}", check)


def _submit(book: RuleBook) -> None:
    for name, provider in eligibility.SUBMIT_FACTS.items():
        book.provide(name, provider, events=["submit"])
    book.on(
        "submit",
        eligibility.application_valid,
        eligibility.applicant_is_provider,
        eligibility.provider_registered,
        eligibility.annual_report,
        eligibility.no_recent_penalty,
        eligibility.no_recent_fail,
        eligibility.application_limit,
        eligibility.hub_endorsed,
        eligibility.purchaser_owns_call,
        eligibility.call_window,
    )
    book.effect("submit", eligibility.submit_effect)


def _review(book: RuleBook, rubrics: Sequence[Rubric]) -> None:
    book.provide(conflict.PEOPLE_FACT, conflict.people, events=["approve", "record.review"])
    book.provide(budget.CALL_FACT, budget.call_fact, events=["approve"])
    book.provide(budget.RESERVED_FACT, budget.reserved_by_others, events=["approve"])
    book.on("record.review", review.review_record(rubrics), conflict.own_project)
    memo = review.PanelMemo(rubrics)  # quorum, score and the effect share one panel
    book.on(
        "approve",
        review.quorum(rubrics, memo),
        review.score(rubrics, memo),
        review.amount_within_request,
        budget.within_call_budget,
        conflict.own_project,
    )
    book.effect("approve", review.approval_effect(rubrics, memo))
    book.on("record.objection", publicity.objection_open)
    book.on("record.objection_ruling", publicity.ruling_valid)


def _sign(book: RuleBook) -> None:
    book.on(
        "sign",
        publicity.period_elapsed,
        publicity.objections_cleared,
        contracts.both_signed,
        contracts.amount_within_approval,
        contracts.term_within_limit,
        contracts.parties_independent,
        funds.budget_within_caps,
        conflict.own_project,
        conflict.approver_pays,
    )
    book.effect("sign", funds.sign_effect)


def _evaluate(book: RuleBook, rubrics: Sequence[Rubric]) -> None:
    book.provide(conflict.PEOPLE_FACT, conflict.people, events=["record.evaluation"])
    book.on(
        "record.evaluation",
        evaluation.evaluation_record(rubrics),
        evaluation.recheck_in_time,
        conflict.own_project,
        conflict.third_party,
    )
    book.on(
        "pass_midterm",
        evaluation.recheck_in_time,
        evaluation.midterm_grade(rubrics),
        evaluation.spending_consistent,
        conflict.own_project,
        conflict.approver_pays,
    )
    book.effect("pass_midterm", funds.midterm_effect)
    book.on(
        "order_rectification",
        evaluation.rectification_grounds(rubrics),
        evaluation.order_valid,
        conflict.own_project,
    )
    book.effect("order_rectification", evaluation.rectification_effect)
    book.on(
        "assess",
        evaluation.final_graded(rubrics),
        evaluation.closeout_present,
        conflict.own_project,
    )
    book.effect("assess", evaluation.assess_effect(rubrics))
    book.on(
        "close", funds.graded, funds.refund_due_date, conflict.own_project, conflict.approver_pays
    )
    book.effect("close", funds.close_effect)


def _spend(book: RuleBook) -> None:
    book.provide(funds.INVOICE_FACT, funds.invoice_uses, events=["record.expenditure"])
    book.on(
        "record.expenditure",
        funds.expenditure_valid,
        funds.within_term,
        funds.line_cap,
        funds.total_cap,
        funds.not_prohibited,
        funds.invoice_present,
        funds.duplicate_invoice,
    )
    book.effect("record.expenditure", funds.expenditure_effect)
    book.on("record.amendment_request", amendments.request_valid)
    book.on("record.amendment_decision", amendments.decision_valid, amendments.caps_hold)
    book.effect("record.amendment_decision", amendments.decision_effect)
    book.on(
        "record.service",
        services.service_valid,
        services.service_in_term,
        services.service_plausible,
    )
    book.effect("record.service", services.service_effect)
    book.on("record.sanction", services.sanction_valid)
