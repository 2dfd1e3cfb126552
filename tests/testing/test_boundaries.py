"""Boundary-seeking strategies find thresholds in rules and land on them by themselves."""

from __future__ import annotations

import functools
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grantflow import Policy
from grantflow.models import Actor, Project, Verdict
from grantflow.rules import PASS, RuleBook, RuleContext, all_of, eligibility, refuse, review, rule
from grantflow.rules.default import default_rules
from grantflow.testing import strategies as gs

CAP = Decimal("300000.00")
#: A project in "reviewed", the source state of "sign" (what the cap rule reads is evidence).
REVIEWED = Project(
    id="p-1",
    state="reviewed",
    version=2,
    head="0" * 64,
    created_at=datetime(2025, 3, 3, tzinfo=UTC),
    updated_at=datetime(2025, 3, 4, tzinfo=UTC),
)
#: The default number of examples: the tests below do not raise it.
DEFAULT = settings(database=None)


def _amount(ctx: RuleContext) -> Decimal:
    return Decimal(str(ctx.evidence.get("amount", "0")))


@rule(name="cap.correct")
def within_cap(ctx: RuleContext) -> Verdict:
    """At most 300,000.00."""
    if _amount(ctx) <= CAP:
        return PASS
    return refuse("cap", "above the cap", "超过上限", cap=str(CAP))


@rule(name="cap.planted")
def within_cap_off_by_one(ctx: RuleContext) -> Verdict:
    """Meant to be "at most 300,000.00"; the planted bug refuses 300,000.00 itself."""
    if _amount(ctx) < CAP:
        return PASS
    return refuse("cap", "above the cap", "超过上限", cap=str(CAP))


def _cap_property(checked_rule: object) -> object:
    """The property a rule author writes: the verdict agrees with "amount <= 300,000"."""

    @DEFAULT
    @given(
        gs.rule_contexts(
            event="sign",
            evidence=st.fixed_dictionaries({"amount": gs.boundaries(checked_rule).money()}),
            project=st.just(REVIEWED),
            actor=st.just(Actor(id="staff-1", roles=frozenset({"purchaser"}))),
        )
    )
    def test_cap(ctx: RuleContext) -> None:
        passed = checked_rule(ctx).passed  # type: ignore[operator]
        assert passed == (_amount(ctx) <= CAP), f"amount {_amount(ctx)}: passed={passed}"

    return test_cap


def test_the_planted_off_by_one_at_the_cap_is_found_with_default_settings() -> None:
    """boundaries(rule).money() lands on 300,000.00 within the default 100 examples."""
    with pytest.raises(AssertionError, match=r"amount 300000\.00: passed=False"):
        _cap_property(within_cap_off_by_one)()  # type: ignore[operator]


def test_the_correct_cap_rule_passes_the_same_property() -> None:
    """The property itself is sound: the correct rule passes it."""
    _cap_property(within_cap)()  # type: ignore[operator]


def test_an_off_by_one_fen_above_the_cap_is_found() -> None:
    """A rule letting 300,000.01 through is caught by the neighbours of the threshold."""
    limit = CAP + Decimal("0.01")

    def loose(amount: Decimal) -> bool:
        return amount <= limit

    @DEFAULT
    @given(gs.boundaries(loose).money())
    def test(amount: Decimal) -> None:
        assert loose(amount) == (amount <= CAP), amount

    with pytest.raises(AssertionError, match=r"300000\.01"):
        test()


def test_a_quorum_off_by_one_is_found_from_the_policy_field() -> None:
    """A rule reading ctx.policy.review_quorum gets counts at and around 3."""

    def quorum(submitted: int, policy: Policy) -> bool:
        return submitted > policy.review_quorum  # planted: should be >=

    found = gs.boundaries(quorum).thresholds.counts
    assert found == (3,)

    @DEFAULT
    @given(gs.boundaries(quorum).counts())
    def test(submitted: int) -> None:
        assert quorum(submitted, Policy()) == (submitted >= 3), f"at {submitted}"

    with pytest.raises(AssertionError, match=r"at 3\b"):
        test()


def test_a_grade_band_off_by_one_is_found() -> None:
    """A 'good from 80' band written as '> 80' fails at 80.00 exactly."""

    def is_good(score: Decimal, policy: Policy) -> bool:
        return score > policy.grade_good  # planted: should be >=

    @DEFAULT
    @given(gs.boundaries(is_good).scores())
    def test(score: Decimal) -> None:
        assert is_good(score, Policy()) == (score >= 80), f"at {score}"

    with pytest.raises(AssertionError, match=r"at 80\b"):
        test()


def test_a_publicity_deadline_off_by_one_is_found() -> None:
    """A publicity rule counting one working day too few fails at the first allowed day."""
    start = date(2025, 3, 3)  # a Monday

    def weekdays_between(a: date, b: date) -> int:
        return sum(
            1 for n in range(1, (b - a).days) if date.fromordinal(a.toordinal() + n).weekday() < 5
        )

    def may_sign(today: date, policy: Policy) -> bool:
        return weekdays_between(start, today) > policy.publicity_working_days  # planted

    @DEFAULT
    @given(gs.boundaries(may_sign).dates(start))
    def test(today: date) -> None:
        assert may_sign(today, Policy()) == (weekdays_between(start, today) >= 5), f"on {today}"

    with pytest.raises(AssertionError, match="on 2025-03-11"):
        test()


# -- where thresholds come from --------------------------------------------------------


def test_without_sources_every_policy_threshold_is_used() -> None:
    """boundaries() reads the policy: counts, days, months, years, scores and percents."""
    found = gs.boundaries(policy=Policy(review_quorum=4, publicity_working_days=7)).thresholds
    assert {2, 4, 5} <= set(found.counts)
    assert 3 not in found.counts
    assert 7 in found.days
    assert 12 in found.months
    assert {2, 3} <= set(found.years)
    assert {Decimal(60), Decimal(65), Decimal(80), Decimal(90)} <= set(found.scores)
    assert {Decimal(10), Decimal(40), Decimal(100)} <= set(found.percents)
    assert found.money == ()


def test_thresholds_are_found_in_constants_closures_objects_and_books() -> None:
    """Module constants, closure cells, object attributes, partials and books all count."""

    def factory(limit: int) -> object:
        def at_most(ctx: RuleContext) -> Verdict:
            return PASS if int(ctx.facts.get("n") or 0) < limit else refuse("x", "x", "x")

        return at_most

    class Gate:
        __slots__ = ("cap",)

        def __init__(self) -> None:
            self.cap = Decimal("12345.67")

        def __call__(self, ctx: RuleContext) -> Verdict:
            return PASS

    def capped(ctx: RuleContext, cap: Decimal) -> Verdict:
        return PASS

    assert gs.boundaries(within_cap).thresholds.money == (Decimal("0.00"), CAP)
    assert 7 in gs.boundaries(factory(7)).thresholds.counts
    assert Decimal("12345.67") in gs.boundaries(Gate()).thresholds.money
    partial = functools.partial(capped, cap=Decimal("777.00"))
    assert Decimal("777.00") in gs.boundaries(partial).thresholds.money
    assert CAP in gs.boundaries(all_of(within_cap)).thresholds.money
    book = RuleBook().on("sign", within_cap)
    assert CAP in gs.boundaries(book).thresholds.money
    assert gs.boundaries(Decimal("5.50"), 9).thresholds.money == (Decimal("5.50"), Decimal("9.00"))


def test_default_rules_yield_their_policy_thresholds() -> None:
    """The default regime's limit and quorum rules read the policy; their values are found."""
    assert 2 in gs.boundaries(eligibility.application_limit).thresholds.counts
    assert gs.boundaries(review.quorum(())).thresholds.counts == (3,)
    found = gs.boundaries(default_rules()).thresholds
    assert {2, 3} <= set(found.counts)
    assert 12 in found.months


def test_a_custom_policy_moves_the_thresholds() -> None:
    """The policy the rules are pinned to decides where the boundary is."""
    found = gs.boundaries(
        eligibility.application_limit, policy=Policy(applications_per_provider_per_call=4)
    ).thresholds
    assert 4 in found.counts
    assert 2 not in found.counts


def test_anything_else_is_refused() -> None:
    """A source that is no rule, book or number is a TypeError."""
    with pytest.raises(TypeError, match="cannot find thresholds"):
        gs.boundaries(object())


@settings(max_examples=200, database=None, deadline=None)
@given(
    st.data(),
    st.lists(st.decimals(0, 10**6, places=2), min_size=1, max_size=3),
)
def test_values_stay_in_range_and_are_well_formed(data: st.DataObject, caps: list[Decimal]) -> None:
    """Money has two places in range; counts are whole and non-negative; dates are dates."""
    bounds = gs.boundaries(*caps)
    amount = data.draw(bounds.money(min_value=1, max_value=10**6))
    assert 1 <= amount <= 10**6
    assert amount == amount.quantize(Decimal("0.01"))
    assert 0 <= data.draw(bounds.counts(max_value=20)) <= 20
    assert 0 <= data.draw(bounds.percents()) <= 100
    assert 0 <= data.draw(bounds.scores()) <= 110
    assert isinstance(data.draw(bounds.dates(date(2025, 1, 31))), date)


def test_the_thresholds_themselves_are_drawn_often() -> None:
    """A third of the draws are thresholds: in 300 draws each of two caps comes up."""
    seen: list[Decimal] = []

    @settings(max_examples=300, database=None)
    @given(gs.boundaries(Decimal("100.00"), Decimal("2500.00")).money())
    def collect(amount: Decimal) -> None:
        seen.append(amount)

    collect()
    assert {Decimal("100.00"), Decimal("2500.00"), Decimal("99.99"), Decimal("2500.01")} <= set(
        seen
    )
