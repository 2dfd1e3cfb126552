"""The harness's regime invariants find planted bugs without invariants written by the author."""

from __future__ import annotations

from typing import ClassVar

import pytest
from hypothesis import Phase, settings

import grantflow
from grantflow import Engine, Lifecycle, RuleBook
from grantflow.models import Record, Refusal, Verdict
from grantflow.rules import PASS, Effects, FactRequest, RuleContext, refuse, rule
from grantflow.states import PURCHASED_SERVICE
from grantflow.testing import LifecycleStateMachine
from grantflow.testing.harness import limit_problem, money_problems

#: The default number of examples; fewer steps per run than Hypothesis' 50 keep it quick.
RUNS = settings(stateful_step_count=25, deadline=None, database=None)
#: For bugs the harness must find: generation only, since shrinking a stateful failure
#: to its shortest form costs minutes and the failure is what these tests are about.
FIND = settings(RUNS, phases=[Phase.generate])
LIVE = "live_projects"


def live_projects(request: FactRequest) -> int:
    """Fact: the provider's projects that are not in a terminal state."""
    provider = request.project.data.get("provider")
    if not provider:
        return 0
    return request.reader.count_projects(
        {"provider": provider}, exclude_states=PURCHASED_SERVICE.terminal_states
    )


def _live_limit(existing: int) -> Verdict:
    return refuse(
        "portfolio.live",
        "at most 2 live projects per provider",
        "每个承接主体最多同时承接2个项目",
        limit=2,
        existing=existing,
    )


@rule(name="portfolio.live")
def at_most_two_live(ctx: RuleContext) -> Verdict:
    """A provider runs at most 2 live projects."""
    existing = int(ctx.facts.get(LIVE) or 0)
    return PASS if existing < 2 else _live_limit(existing)


@rule(name="portfolio.live")
def at_most_two_live_off_by_one(ctx: RuleContext) -> Verdict:
    """Meant: at most 2 live projects. The planted bug lets a third one through."""
    existing = int(ctx.facts.get(LIVE) or 0)
    return PASS if existing <= 2 else _live_limit(existing)


def _machine(live_rule: object) -> type[LifecycleStateMachine]:
    class LiveLimit(LifecycleStateMachine):
        """The harness over a book with only the author's rule: no invariant of theirs."""

        def make_engine(self, lifecycle: Lifecycle) -> Engine:
            book = RuleBook().provide(LIVE, live_projects, events=["submit"])
            book.on("submit", live_rule)  # type: ignore[arg-type]
            return grantflow.open(
                lifecycle=lifecycle, rules=book, clock=self.clock, discover_rules=False
            )

    return LiveLimit


def test_a_planted_off_by_one_in_a_live_project_limit_is_found() -> None:
    """'At most 2 live projects' letting a third through fails the built-in limit check."""
    case = _machine(at_most_two_live_off_by_one).TestCase
    case.settings = FIND
    with pytest.raises(AssertionError, match=r"portfolio\.live found 3 existing, past its limit 2"):
        case("runTest").runTest()


@pytest.mark.slow
def test_the_correct_live_project_limit_passes() -> None:
    """The same harness passes the correct rule (the check raises no false alarm)."""
    case = _machine(at_most_two_live).TestCase
    case.settings = RUNS
    case("runTest").runTest()


def test_bursts_reach_past_the_count_thresholds_of_the_book() -> None:
    """The harness sizes its bursts and project limit from the book's count thresholds."""
    machine = _machine(at_most_two_live)()
    machine.open_engine.__wrapped__(machine, None)  # type: ignore[attr-defined]
    assert machine.bursts == [1, 3, 4]
    assert machine.project_limit == 4
    machine.teardown()


# -- quorum before contract ----------------------------------------------------------------


@rule(name="review.quorum")
def quorum_off_by_one(ctx: RuleContext) -> Verdict:
    """Meant: the policy's quorum of reviews. The planted bug accepts one review fewer."""
    need, have = ctx.policy.review_quorum, len(ctx.project.records_of("review"))
    if have >= need - 1:
        return PASS
    return refuse("review.quorum", "too few reviews", "评审意见不足", required=need, submitted=have)


class QuorumMachine(LifecycleStateMachine):
    """Approval gated by a quorum rule named like the regime's: the quorum check is on."""

    def make_engine(self, lifecycle: Lifecycle) -> Engine:
        book = RuleBook().on("approve", quorum_off_by_one)
        return grantflow.open(
            lifecycle=lifecycle, rules=book, clock=self.clock, discover_rules=False
        )


def test_a_contract_after_too_few_reviews_is_found() -> None:
    """An approval with 2 reviews (quorum 3) followed by signing fails 'quorum before contract'."""
    case = QuorumMachine.TestCase
    # Exactly 2 reviews, then an approval, is a narrower path than a third submission.
    case.settings = settings(FIND, max_examples=400)
    with pytest.raises(AssertionError, match=r"approved with 2 reviews, quorum 3"):
        case("runTest").runTest()


def test_the_quorum_check_is_off_for_books_without_the_regime() -> None:
    """A bare engine signs without reviews by design: the check is off unless asked for."""
    bare = LifecycleStateMachine()
    bare.open_engine.__wrapped__(bare, None)  # type: ignore[attr-defined]
    assert not bare.quorum_checked
    bare.teardown()

    class Forced(LifecycleStateMachine):
        regime: ClassVar[bool | None] = True

    forced = Forced()
    forced.open_engine.__wrapped__(forced, None)  # type: ignore[attr-defined]
    assert forced.quorum_checked
    forced.teardown()


# -- money -------------------------------------------------------------------------------


def _contract(ctx: RuleContext) -> Effects:
    data = {"kind": "purchase", "amount": "100.00"}
    return Effects(records=(Record(kind="contract", id="purchase", data=data),))


def _pay(amount: str) -> object:
    def pay(ctx: RuleContext) -> Effects:
        n = len(ctx.project.records_of("disbursement")) + 1
        data = {"installment": n, "amount": amount}
        return Effects(records=(Record(kind="disbursement", id=f"d-{n}", data=data),))

    return pay


class Overpaying(LifecycleStateMachine):
    """Effects that pay 60 at the mid-term and 50 at the assessment of a 100 award."""

    def make_engine(self, lifecycle: Lifecycle) -> Engine:
        book = (
            RuleBook()
            # Only the effects pay: a direct disbursement record is refused, so the
            # overpayment found is the effects' 60 + 50.
            .declare_records("contract", "disbursement", effect_owned=True)
            .effect("sign", _contract)
            .effect("pass_midterm", _pay("60.00"))  # type: ignore[arg-type]
            .effect("assess", _pay("50.00"))  # type: ignore[arg-type]
        )
        return grantflow.open(
            lifecycle=lifecycle, rules=book, clock=self.clock, discover_rules=False
        )


def test_paying_more_than_the_award_is_found() -> None:
    """Disbursements of 110 on an award of 100 fail money conservation."""
    case = Overpaying.TestCase
    case.settings = FIND
    with pytest.raises(AssertionError, match=r"disbursed 110\.00 - refunded 0\.00 exceeds awarded"):
        case("runTest").runTest()


def _project(*records: Record) -> grantflow.Project:
    from datetime import UTC, datetime

    now = datetime(2025, 3, 3, tzinfo=UTC)
    return grantflow.Project(
        id="p",
        state="closed",
        version=9,
        head="0" * 64,
        records=records,
        created_at=now,
        updated_at=now,
    )


def test_money_problems_reads_contracts_disbursements_refunds_and_settlements() -> None:
    """Refund payments offset disbursements; a settlement must agree with what was recorded."""
    contract = Record(kind="contract", id="c", data={"kind": "purchase", "amount": "100.00"}, seq=1)
    paid = [
        Record(kind="disbursement", id=f"d{n}", data={"amount": "60.00"}, seq=n + 1) for n in (1, 2)
    ]
    refund = Record(kind="refund_payment", id="r", data={"amount": "20.00"}, seq=4)
    good = Record(
        kind="settlement",
        id="s",
        data={"awarded": "100.00", "disbursed": "120.00", "due": "100.00", "refund": "20.00"},
        seq=5,
    )
    wrong = Record(
        kind="settlement",
        id="s",
        data={"awarded": "90.00", "disbursed": "60.00", "due": "110.00", "refund": "20.00"},
        seq=5,
    )
    assert money_problems(_project(contract, *paid, refund, good)) == []
    assert money_problems(_project(contract, *paid)) == [
        "disbursed 120.00 - refunded 0.00 exceeds awarded 100.00"
    ]
    assert money_problems(_project(*paid[:1])) == [
        "disbursed 60.00 - refunded 0.00 exceeds awarded 0.00"
    ]
    assert money_problems(_project(contract, *paid, refund, wrong)) == [
        "settlement s says disbursed 60.00, the disbursements sum to 120.00",
        "settlement s says awarded 90.00, the contract says 100.00",
        "settlement s: disbursed - refund != due 110.00",
        "settlement s: due 110.00 exceeds awarded 100.00",
    ]


@pytest.mark.parametrize(
    ("details", "problem"),
    [
        ({"limit": 2, "existing": 2}, None),
        ({"limit": 2, "existing": 1}, "refused with 1 existing, below its limit 2"),
        ({"limit": 2, "existing": 3}, "found 3 existing, past its limit 2"),
        ({"required": 3, "submitted": 2}, None),
        ({"required": 3, "submitted": 3}, "refused with 3 submitted, 3 required"),
        ({"required": 5, "elapsed": 5}, "refused with 5 elapsed, 5 required"),
        ({"limit": "2", "existing": True}, None),
    ],
)
def test_limit_problem_reads_the_refusal_details(
    details: dict[str, object], problem: str | None
) -> None:
    """The at-most and at-least conventions; anything else is not judged."""
    refusal = Refusal(code="x.y", message="m", message_zh="z", details=details)
    found = limit_problem(refusal)
    assert (found is None) == (problem is None)
    if problem is not None:
        assert found is not None
        assert found.startswith(f"x.y {problem}")


def test_the_default_limit_rule_follows_the_convention() -> None:
    """eligibility.limit reports limit and existing, so the harness checks it too."""
    from datetime import UTC, datetime

    from grantflow import Actor, Policy
    from grantflow.rules.eligibility import application_limit

    context = RuleContext(
        project=_project(),
        event="submit",
        source=None,
        target="applied",
        actor=Actor(id="a", roles=frozenset({"applicant"})),
        evidence={},
        now=datetime(2025, 3, 3, tzinfo=UTC),
        policy=Policy(),
        facts={"applications": 2},
    )
    refusal = application_limit(context).refusals[0]
    assert limit_problem(refusal) is None
    assert (refusal.details["limit"], refusal.details["existing"]) == (2, 2)
