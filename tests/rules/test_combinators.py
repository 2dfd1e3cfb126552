"""Tests for grantflow.rules._combinators: all_of, any_of, not_."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from grantflow.models import Actor, Project, Verdict
from grantflow.policy import Policy
from grantflow.rules import PASS, RuleContext, all_of, any_of, not_, refuse, rule

NOW = datetime(2026, 1, 1, tzinfo=UTC)
CTX = RuleContext(
    project=Project(
        id="p", state="applied", version=1, head="0" * 64, created_at=NOW, updated_at=NOW
    ),
    event="approve",
    source="applied",
    target="reviewed",
    actor=Actor(id="a"),
    evidence={},
    now=NOW,
    policy=Policy(),
)


@rule
def yes(ctx: RuleContext) -> Verdict:
    return PASS


@rule
def no_a(ctx: RuleContext) -> Verdict:
    return refuse("t.a", "a", "甲")


@rule
def no_b(ctx: RuleContext) -> Verdict:
    return refuse("t.b", "b", "乙")


def test_all_of_reports_every_refusal() -> None:
    """all_of runs every rule and collects all refusals in order."""
    assert all_of(yes, yes)(CTX).passed
    assert [r.code for r in all_of(no_a, yes, no_b)(CTX).refusals] == ["t.a", "t.b"]


def test_any_of_passes_on_one_and_reports_all_when_none_pass() -> None:
    """any_of passes if one rule passes, else reports every refusal."""
    assert any_of(no_a, yes)(CTX).passed
    assert [r.code for r in any_of(no_a, no_b)(CTX).refusals] == ["t.a", "t.b"]
    with pytest.raises(ValueError, match="at least one"):
        any_of()


def test_not_inverts_with_its_own_code() -> None:
    """not_ refuses with its code when the inner rule passes, and passes when it refuses."""
    inverted = not_(yes, code="t.not", message="must not", message_zh="不得")
    (refusal,) = inverted(CTX).refusals
    assert (refusal.code, refusal.details) == ("t.not", {"negated": "yes"})
    assert not_(no_a, code="t.not", message="m", message_zh="m")(CTX).passed


def test_combinators_have_readable_reprs() -> None:
    """Nested combinators print like the expression that built them."""
    combined = all_of(yes, any_of(no_a, not_(no_b, code="c", message="m", message_zh="m")))
    assert repr(combined) == "all_of(yes, any_of(no_a, not_(no_b)))"


@rule
def on_approve(ctx: RuleContext) -> Verdict:
    """Passes only when the context it is given is an approval (it reads the context)."""
    return PASS if ctx.event == "approve" else refuse("t.event", "not approve", "非评审")


def test_combinators_hand_the_context_to_their_rules() -> None:
    """all_of, any_of and not_ call each rule with the context they were called with."""
    sign = RuleContext(
        **{**{f: getattr(CTX, f) for f in CTX.__dataclass_fields__}, "event": "sign"}
    )
    assert all_of(on_approve)(CTX).passed
    assert not all_of(on_approve)(sign).passed
    assert any_of(on_approve, no_a)(CTX).passed
    assert not any_of(on_approve, no_a)(sign).passed
    negated = not_(on_approve, code="t.not", message="n", message_zh="否")
    assert [r.code for r in negated(CTX).refusals] == ["t.not"]
    assert negated(sign).passed


def test_any_of_without_rules_says_why() -> None:
    """any_of() is a ValueError naming the problem."""
    with pytest.raises(ValueError, match=r"^any_of needs at least one rule$"):
        any_of()
