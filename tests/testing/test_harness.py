"""`LifecycleStateMachine` drives engines it is given and catches the bugs it promises to."""

from __future__ import annotations

import itertools
from typing import ClassVar

import pytest
from hypothesis import Phase, settings

import grantflow
from grantflow import Engine, Lifecycle, RuleBook
from grantflow.rules import PASS, RuleContext, Verdict, refuse
from grantflow.testing import LifecycleStateMachine
from grantflow.testing.harness import edge_target

QUICK = settings(max_examples=10, stateful_step_count=15, deadline=None)


def _reason_required(ctx: RuleContext) -> Verdict:
    if str(ctx.evidence.get("reason", "")).strip():
        return PASS
    return refuse("reason.missing", "a reason is required", "须说明理由")


class WithRules(LifecycleStateMachine):
    """The harness on an engine whose rule book refuses reject/withdraw without a reason."""

    max_projects: ClassVar[int] = 2

    def make_engine(self, lifecycle: Lifecycle) -> Engine:
        book = RuleBook().on("reject", _reason_required).on("withdraw", _reason_required)
        return grantflow.open(
            lifecycle=lifecycle, rules=book, clock=self.clock, discover_rules=False
        )


TestWithRules = WithRules.TestCase
TestWithRules.settings = QUICK


def test_edge_target_follows_the_lifecycle() -> None:
    """`edge_target` gives the target of an edge and ``None`` where there is none."""
    lifecycle = grantflow.PURCHASED_SERVICE
    assert edge_target(lifecycle, "terminate", "midterm") == "terminated"
    assert edge_target(lifecycle, "terminate", "applied") is None
    assert edge_target(lifecycle, "no-such-event", "applied") is None


def test_the_engine_is_opened_by_the_initialize_step() -> None:
    """Reading `engine` before the machine ran its first step is a clear error."""
    with pytest.raises(RuntimeError, match="initialize"):
        _ = LifecycleStateMachine().engine


def _flip_flop() -> grantflow.rules.Rule:
    calls = itertools.count()

    def flip_flop(ctx: RuleContext) -> Verdict:
        # An impure rule: it answers differently on every call, so can_fire and fire disagree.
        if next(calls) % 2:
            return refuse("flip.flop", "every other call", "隔次拒绝")
        return PASS

    return flip_flop


class ImpureRules(LifecycleStateMachine):
    """An engine whose rule keeps state between calls: the harness must notice."""

    def make_engine(self, lifecycle: Lifecycle) -> Engine:
        book = RuleBook().on(grantflow.rules.ALL_EVENTS, _flip_flop())
        return grantflow.open(
            lifecycle=lifecycle, rules=book, clock=self.clock, discover_rules=False
        )


def test_an_impure_rule_is_caught() -> None:
    """A rule whose answer changes between `can_fire` and `fire` fails the harness."""
    case = ImpureRules.TestCase
    # Generation alone finds it at once; shrinking an impure machine only burns time.
    case.settings = settings(
        max_examples=50,
        stateful_step_count=10,
        deadline=None,
        database=None,
        phases=[Phase.generate],
    )
    with pytest.raises(AssertionError, match=r"flip\.flop"):
        case("runTest").runTest()


class Explorer(LifecycleStateMachine):
    """The default harness, noting every state its projects reach."""

    reached: ClassVar[set[str]] = set()

    def teardown(self) -> None:
        """Record the states of each project's history, then close."""
        if self._engine is not None:
            for pid in self.project_ids:
                Explorer.reached.update(e.to_state or "" for e in self.engine.history(pid))
        super().teardown()


@pytest.mark.slow
def test_the_harness_gets_projects_deep_into_the_lifecycle() -> None:
    """Runs reach late states (mid-term, assessed, closed ...), not only the first few."""
    case = Explorer.TestCase
    case.settings = settings(
        max_examples=60, stateful_step_count=40, deadline=None, database=None, derandomize=True
    )
    case("runTest").runTest()
    assert {"midterm", "assessed", "closed"} <= Explorer.reached
    assert len(Explorer.reached - {""}) >= 8
