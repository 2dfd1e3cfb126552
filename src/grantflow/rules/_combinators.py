"""Combinators: `all_of`, `any_of`, `not_`; each has a `repr` that reads like the rule."""

from __future__ import annotations

from grantflow.models import Verdict
from grantflow.rules._base import PASS, Rule, RuleContext, refuse, rule_name

__all__ = ["all_of", "any_of", "not_"]


class _AllOf:
    __slots__ = ("rules",)

    def __init__(self, rules: tuple[Rule, ...]) -> None:
        self.rules = rules

    def __call__(self, ctx: RuleContext, /) -> Verdict:
        verdict = PASS
        for r in self.rules:
            verdict = verdict + r(ctx)
        return verdict

    def __repr__(self) -> str:
        return f"all_of({', '.join(rule_name(r) for r in self.rules)})"


class _AnyOf:
    __slots__ = ("rules",)

    def __init__(self, rules: tuple[Rule, ...]) -> None:
        self.rules = rules

    def __call__(self, ctx: RuleContext, /) -> Verdict:
        verdict = PASS
        for r in self.rules:
            result = r(ctx)
            if result.passed:
                return PASS
            verdict = verdict + result
        return verdict

    def __repr__(self) -> str:
        return f"any_of({', '.join(rule_name(r) for r in self.rules)})"


class _Not:
    __slots__ = ("code", "message", "message_zh", "rule")

    def __init__(self, rule: Rule, code: str, message: str, message_zh: str) -> None:
        self.rule = rule
        self.code = code
        self.message = message
        self.message_zh = message_zh

    def __call__(self, ctx: RuleContext, /) -> Verdict:
        if self.rule(ctx).passed:
            return refuse(self.code, self.message, self.message_zh, negated=rule_name(self.rule))
        return PASS

    def __repr__(self) -> str:
        return f"not_({rule_name(self.rule)})"


def all_of(*rules: Rule) -> Rule:
    """Pass when every rule passes; run them all and report every refusal."""
    return _AllOf(rules)


def any_of(*rules: Rule) -> Rule:
    """Pass when at least one rule passes; otherwise report the refusals of all of them."""
    if not rules:
        raise ValueError("any_of needs at least one rule")
    return _AnyOf(rules)


def not_(rule: Rule, *, code: str, message: str, message_zh: str) -> Rule:
    """Pass when `rule` refuses; refuse with the given code and messages when it passes."""
    return _Not(rule, code, message, message_zh)
