"""Every default rule and effect reads the decision's records through its `Parsed` memo.

The memo only saves work: a rule that parses afresh gives the same answer, so no test of
answers can tell whether a rule uses it. This test can: it runs two lifecycles (to
``closed``, and through rectification to a terminated project that repays) with every
rule and effect of the default regime called twice on the same context, and counts the
pydantic validations of the second call. A rule or effect that reads through the memo
parses nothing the second time; one that bypasses it (passes ``None`` or no memo on to
a reader) parses again, and is named.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from pydantic import BaseModel

from grantflow.rules import RuleBook, RuleContext
from grantflow.rules.default import default_rules

if TYPE_CHECKING:
    from conftest import World


class _Validations:
    """Counts `BaseModel.model_validate` calls while `counting` is set."""

    def __init__(self) -> None:
        self.count = 0
        self.models: list[str] = []
        self.counting = False
        self.offenders: set[str] = set()

    def twice(self, fn: Callable[[RuleContext], Any]) -> Callable[[RuleContext], Any]:
        """Wrap a rule or effect: run it, then again on the same context, counting."""

        def run(ctx: RuleContext) -> Any:
            first = fn(ctx)
            self.counting, before, self.models = True, self.count, []
            try:
                fn(ctx)
            finally:
                self.counting = False
            if self.count != before:
                parsed = ", ".join(sorted(set(self.models)))
                self.offenders.add(f"{getattr(fn, '__qualname__', fn)!s} on {ctx.event}: {parsed}")
            return first

        return run


@pytest.fixture
def validations(monkeypatch: pytest.MonkeyPatch) -> _Validations:
    """Count every pydantic validation (the parse a memo saves) during second calls."""
    counter = _Validations()
    original = BaseModel.__dict__["model_validate"].__func__

    def counted(cls: type[BaseModel], *args: Any, **kwargs: Any) -> Any:
        if counter.counting:
            counter.count += 1
            counter.models.append(cls.__name__)
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(BaseModel, "model_validate", classmethod(counted))
    return counter


def _doubled(book: RuleBook, counter: _Validations) -> RuleBook:
    """The default book with each rule and effect replaced by its run-twice wrapper."""
    doubled = book.copy()
    for table in (doubled._rules, doubled._effects):  # white box: the book's own tables
        for event, fns in table.items():
            table[event] = [counter.twice(fn) for fn in fns]
    return doubled


def _world(make_world: Callable[..., World], counter: _Validations) -> World:
    return make_world(rules=_doubled(default_rules(), counter))


def test_a_project_to_closed_parses_each_record_once_per_decision(
    make_world: Callable[..., World], validations: _Validations
) -> None:
    """Submission to settlement: no rule or effect parses what the memo already holds."""
    world = _world(make_world, validations)
    engine = world.engine
    pid = world.main_line()
    assert engine.get(pid).state == "closed"
    assert engine.get(pid).records_of("disbursement")[-1].data["amount"] == "15000.00"
    assert not validations.offenders, "\n".join(sorted(validations.offenders))


def test_a_terminated_project_that_repays_parses_each_record_once_per_decision(
    make_world: Callable[..., World], validations: _Validations
) -> None:
    """Amendment, report, rectification, termination, clawback, repayments: all memo-fed."""
    world = _world(make_world, validations)
    engine = world.engine
    pid = world.contracted()
    world.spend(pid, "12500.50", "INV-9").raise_for_refusal()
    move = {"kind": "line_move", "reason": "plan changed", "from_line": "personnel"}
    move |= {"to_line": "activities", "amount": "1000.00"}
    engine.add_record(
        pid, "amendment_request", move, actor=world.applicant, record_id="req-1"
    ).raise_for_refusal()
    longer = {"kind": "extension", "reason": "no-cost extension", "new_end": "2026-06-14"}
    engine.add_record(
        pid, "amendment_request", longer, actor=world.applicant, record_id="req-2"
    ).raise_for_refusal()
    for request in ("req-1", "req-2"):
        decision = {"request": request, "approved": True, "note": "checked"}
        engine.add_record(
            pid, "amendment_decision", decision, actor=world.approver
        ).raise_for_refusal()
    world.spend(pid, "500.00", "INV-10", line="personnel").raise_for_refusal()
    report = {"period": 1, "summary": "40 sessions held"}
    engine.add_record(pid, "progress_report", report, actor=world.applicant)  # early or not
    world.evaluate(pid, "midterm", 50).raise_for_refusal()
    world.rectify_then_terminate(pid)
    today = world.clock.now.date().isoformat()
    for n, amount in enumerate(("20000.00", "6999.50"), start=1):
        part = {"amount": amount, "paid_on": today, "reference": f"bank-{n}"}
        engine.add_record(pid, "refund_payment", part, actor=world.treasurer).raise_for_refusal()
    assert engine.get(pid).data["refund_status"] == "settled"
    assert not validations.offenders, "\n".join(sorted(validations.offenders))


def test_the_count_sees_a_rule_that_parses_afresh(
    make_world: Callable[..., World], validations: _Validations
) -> None:
    """The check can fail: a rule reading the contracts without the memo is named."""
    from grantflow.records import Contract
    from grantflow.rules import PASS
    from grantflow.rules._regime import values

    def afresh(ctx: RuleContext) -> Any:
        values(ctx.project, "contract", Contract)
        return PASS

    book = default_rules().on("record.expenditure", afresh)
    world = make_world(rules=_doubled(book, validations))
    pid = world.contracted()
    world.spend(pid, "100.00", "INV-1").raise_for_refusal()
    assert any("afresh" in name for name in validations.offenders)


def test_the_approval_decision_works_out_the_panel_once(
    make_world: Callable[..., World], validations: _Validations
) -> None:
    """Quorum, score and the approval effect share one panel: each review parsed once.

    At most once: the reviews an earlier decision on the project parsed are kept
    (`Parsed.lasting`), so the approval parses only the ones no decision read before.
    """
    world = make_world()
    pid = world.submit().raise_for_refusal().project_id
    for n in (1, 2, 3, 4, 5):
        world.review(pid, n, 70 + 4 * n).raise_for_refusal()
    validations.counting = True
    try:
        world.approve(pid, "100000.00").raise_for_refusal()
    finally:
        validations.counting = False
    assert 1 <= validations.models.count("Review") <= 5


def test_a_decision_repeated_on_unchanged_records_parses_none_of_them_again(
    make_world: Callable[..., World], validations: _Validations
) -> None:
    """The core keeps stored records' parses across decisions (`Parsed.lasting`).

    A contracted project with spending: asking twice whether the mid-term may pass reads
    the same stored records; the second time no record model is validated again (before,
    every decision parsed every record it read).
    """
    world = make_world()
    engine = world.engine
    pid = world.contracted()
    world.spend(pid, "500.00", "INV-1").raise_for_refusal()
    world.evaluate(pid, "midterm", 85).raise_for_refusal()
    validations.counting = True
    first = engine.can_fire(pid, "pass_midterm", actor=world.treasurer)
    parsed_first, validations.models = list(validations.models), []
    second = engine.can_fire(pid, "pass_midterm", actor=world.treasurer)
    validations.counting = False
    assert second == first
    record_models = {"Approval", "Contract", "Evaluation", "Expenditure", "Review"}
    assert record_models & set(parsed_first), parsed_first
    assert not record_models & set(validations.models), validations.models


def test_a_second_expenditure_parses_no_stored_contract_again(
    make_world: Callable[..., World], validations: _Validations
) -> None:
    """The contract term the spending rules read comes from the kept parses too.

    Regression: `term` (the contract term ``within_term`` and ``service_in_term``
    judge by) parsed every contract of the project at every decision, outside the
    kept parses: 4,100 of the demo's 7,500 contract parses for 878 contracts.
    """
    world = make_world()
    pid = world.contracted()
    world.spend(pid, "500.00", "INV-1").raise_for_refusal()
    validations.counting = True
    try:
        world.spend(pid, "300.00", "INV-2").raise_for_refusal()
    finally:
        validations.counting = False
    assert "Contract" not in validations.models, validations.models
