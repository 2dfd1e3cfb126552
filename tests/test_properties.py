"""Properties of the default lifecycle under any sequence of attempts (issue 2, item 9).

Whatever events are attempted, by whomever, in whatever order:

* an accepted transition follows an edge of the lifecycle, to that edge's target;
* a terminal state absorbs: once reached, nothing is accepted and the state stays;
* the history holds exactly one entry per attempt, accepted or refused;
* the stored state equals a replay of the accepted entries.

Two drivers: plain random sequences (mostly refusals, as in real life) and walks that
only pick events the engine offers (so projects reach deep and terminal states), plus
the stateful harness on the default lifecycle and on random lifecycles.
"""

from __future__ import annotations

from typing import ClassVar

from hypothesis import given, settings
from hypothesis import strategies as st

import grantflow
from grantflow import PURCHASED_SERVICE, Actor, AuditEntry, Engine, Lifecycle, Outcome
from grantflow.testing import FrozenClock, LifecycleStateMachine
from grantflow.testing import strategies as gs
from grantflow.testing.harness import edge_target

APPLICANT = Actor(id="org-1", roles=frozenset({"applicant"}))
EVERY_ROLE = Actor(
    id="all-roles", roles=frozenset({"applicant", "purchaser", "reviewer", "evaluator"})
)
TERMINAL = PURCHASED_SERVICE.terminal_states


def _engine() -> Engine:
    return grantflow.open(rules=grantflow.RuleBook(), clock=FrozenClock(), discover_rules=False)


def _replayed_state(history: list[AuditEntry]) -> str | None:
    """The state the accepted entries lead to, computed without grantflow's replay."""
    state = None
    for entry in history:
        if entry.accepted and entry.to_state is not None:
            state = entry.to_state
    return state


def _check_attempt(engine: Engine, pid: str, before: str, outcome: Outcome, attempts: int) -> None:
    after = engine.get(pid)
    if outcome.accepted:
        assert edge_target(PURCHASED_SERVICE, outcome.event, before) == after.state
    else:
        assert after.state == before
    if before in TERMINAL:
        assert not outcome.accepted
        assert after.state == before
    history = engine.history(pid)
    assert len(history) == attempts
    assert _replayed_state(history) == after.state
    assert engine.replay(pid) == after


@settings(max_examples=60, deadline=None)
@given(gs.event_sequences(max_size=25))
def test_any_sequence_of_events_keeps_the_invariants(steps: list[gs.Step]) -> None:
    """Random attempts by random actors never leave the edges nor a terminal state."""
    engine = _engine()
    pid = engine.submit(actor=APPLICANT).project_id
    for attempts, step in enumerate(steps, start=2):
        before = engine.get(pid).state
        outcome = engine.fire(pid, step.event, actor=step.actor, evidence=step.evidence)
        _check_attempt(engine, pid, before, outcome, attempts)
    assert engine.verify().ok


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_walks_through_the_lifecycle_keep_the_invariants(data: st.DataObject) -> None:
    """Walks that take offered events (with wrong turns mixed in) reach terminal states."""
    engine = _engine()
    pid = engine.submit(actor=APPLICANT).project_id
    attempts = 1
    for _ in range(data.draw(st.integers(min_value=1, max_value=15), label="length")):
        before = engine.get(pid).state
        offered = engine.events(pid, actor=EVERY_ROLE)
        if offered and data.draw(st.booleans(), label="take an offered event"):
            event = data.draw(st.sampled_from(offered), label="event")
        else:
            event = data.draw(gs.event_names(), label="any event")
        outcome = engine.fire(pid, event, actor=EVERY_ROLE)
        attempts += 1
        _check_attempt(engine, pid, before, outcome, attempts)
    assert engine.verify().ok


def test_walks_reach_every_state() -> None:
    """The walk driver is not stuck near the start: together, walks visit all ten states."""
    seen: set[str] = set()

    @settings(max_examples=80, deadline=None, database=None)
    @given(st.randoms(use_true_random=False))
    def walk(rnd: object) -> None:
        engine = _engine()
        pid = engine.submit(actor=APPLICANT).project_id
        while offered := engine.events(pid, actor=EVERY_ROLE):
            engine.fire(pid, rnd.choice(offered), actor=EVERY_ROLE)  # type: ignore[attr-defined]
            seen.add(engine.get(pid).state)
        seen.add(engine.get(pid).state)

    walk()
    assert seen | {"applied"} == {s.name for s in PURCHASED_SERVICE.states}


class DefaultLifecycle(LifecycleStateMachine):
    """The stateful harness on the default purchased-service lifecycle."""


class RandomLifecycles(LifecycleStateMachine):
    """The stateful harness on a random valid lifecycle per run."""

    lifecycle: ClassVar[Lifecycle | st.SearchStrategy[Lifecycle]] = gs.lifecycles(max_states=6)


TestDefaultLifecycle = DefaultLifecycle.TestCase
TestDefaultLifecycle.settings = settings(max_examples=40, stateful_step_count=30, deadline=None)
TestRandomLifecycles = RandomLifecycles.TestCase
TestRandomLifecycles.settings = settings(max_examples=40, stateful_step_count=25, deadline=None)
