"""Tests for grantflow.rules._base: refuse, PASS, the rule decorator."""

from __future__ import annotations

from grantflow.models import Verdict
from grantflow.rules import PASS, RuleContext, refuse, rule, rule_name


def test_refuse_builds_a_one_refusal_verdict() -> None:
    """refuse() carries code, both messages and details; the verdict is falsy."""
    verdict = refuse(
        "review.quorum",
        "3 reviews required, 2 submitted",
        "需要3份评审意见，已提交2份",
        required=3,
        submitted=2,
    )
    assert not verdict.passed
    assert not verdict
    (refusal,) = verdict.refusals
    assert refusal.code == "review.quorum"
    assert refusal.message_zh == "需要3份评审意见，已提交2份"
    assert refusal.details == {"required": 3, "submitted": 2}
    assert (
        str(refusal)
        == "review.quorum: 3 reviews required, 2 submitted / 需要3份评审意见，已提交2份"
    )


def test_pass_is_a_passing_verdict_and_adds_neutrally() -> None:
    """PASS has no refusals; adding verdicts concatenates refusals."""
    no = refuse("a", "a", "甲")
    assert PASS.passed
    assert PASS + no == no
    assert no + PASS == no
    assert [r.code for r in (no + refuse("b", "b", "乙")).refusals] == ["a", "b"]


def test_rule_decorator_names_rules_bare_and_with_a_name() -> None:
    """@rule keeps the function name; @rule(name=...) overrides it; repr shows the name."""

    @rule
    def quorum(ctx: RuleContext) -> Verdict:
        """Need three reviews."""
        return PASS

    @rule(name="review.score")
    def score(ctx: RuleContext) -> Verdict:
        return PASS

    assert repr(quorum) == "quorum"
    assert rule_name(score) == "review.score"
    assert quorum.__doc__ == "Need three reviews."


def test_rule_name_of_plain_functions_and_lambdas() -> None:
    """Undecorated callables are named by their qualified name."""

    def plain(ctx: RuleContext) -> Verdict:
        return PASS

    assert rule_name(plain).endswith("plain")
    assert (
        rule_name(lambda ctx: PASS)
        == "test_rule_name_of_plain_functions_and_lambdas.<locals>.<lambda>"
    )
