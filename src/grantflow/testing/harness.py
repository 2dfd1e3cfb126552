"""`LifecycleStateMachine`: a Hypothesis stateful harness for any engine.

It submits projects, fires events (possible or not), adds records and moves the clock,
by actors of random roles, and after every step checks what must always hold:

* every accepted transition follows an edge of the lifecycle, and its target;
* a terminal state absorbs: nothing is accepted from it and the state never changes;
* `Engine.can_fire` agrees with `Engine.fire` and writes nothing;
* a refused attempt changes nothing but the project's version and head;
* every attempt appends exactly one audit entry (the history has one entry per attempt);
* replaying the audit entries gives back the stored project;
* `Engine.verify()` reports no problem.

Subclass it, point `make_engine` at your store and rule book, add rules of your own that
drive projects with realistic evidence (use `fire_and_check` so they are checked too),
and expose the test case::

    class MyMachine(LifecycleStateMachine):
        def make_engine(self, lifecycle):
            return grantflow.open("sqlite://", lifecycle=lifecycle, rules=MY_RULES,
                                  clock=self.clock, discover_rules=False)

    TestMyMachine = MyMachine.TestCase
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, ClassVar

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from grantflow._engine import Engine
from grantflow._machine import TransitionTable
from grantflow._open import open as open_engine
from grantflow.audit import check_chain
from grantflow.errors import ProjectNotFound
from grantflow.models import Actor, AuditEntry, Outcome, Project
from grantflow.rules import RuleBook
from grantflow.states import PURCHASED_SERVICE, Lifecycle
from grantflow.testing._clock import FrozenClock
from grantflow.testing.strategies import actors, event_names, evidence

# Built once, not per step: Hypothesis validates every new strategy object on first use.
_EVIDENCE: st.SearchStrategy[Mapping[str, Any]] = st.one_of(st.just({}), evidence(max_leaves=3))

__all__ = ["LifecycleStateMachine", "edge_target"]

_RECORD_KINDS = ("note", "review", "expenditure")


def edge_target(lifecycle: Lifecycle, event: str, source: str) -> str | None:
    """Return the state `event` leads to from `source`, or ``None`` if there is no edge.

    The engine's own look-up (the lifecycle's transition table), not a second one.
    """
    return _table(lifecycle).target(event, source)


@functools.lru_cache(maxsize=64)
def _table(lifecycle: Lifecycle) -> TransitionTable:
    return TransitionTable(lifecycle)


def _ends(lifecycle: Lifecycle, event: str, source: str) -> bool:
    target = edge_target(lifecycle, event, source)
    return target is not None and lifecycle.state(target).terminal


def _roles(lifecycle: Lifecycle) -> frozenset[str]:
    return frozenset(role for e in lifecycle.events for role in e.roles)


class LifecycleStateMachine(RuleBasedStateMachine):
    """Drive an engine with random attempts and check its invariants after every step.

    Class attributes to override: `lifecycle` (a `Lifecycle`, or a strategy drawing one
    per run such as ``strategies.lifecycles()``) and `max_projects`. Methods to override:
    `make_engine`, `actor_strategy`, `evidence_strategy`.
    """

    #: The lifecycle to drive, or a strategy that draws one per run.
    lifecycle: ClassVar[Lifecycle | st.SearchStrategy[Lifecycle]] = PURCHASED_SERVICE
    #: Most projects accepted in one run (more make each step slower, not wiser).
    max_projects: ClassVar[int] = 3

    def __init__(self) -> None:
        super().__init__()
        self.clock = FrozenClock()
        self.project_ids: list[str] = []
        self.committed: Counter[str] = Counter()
        self.absorbed: dict[str, str] = {}
        self._engine: Engine | None = None
        self._actors: st.SearchStrategy[Actor] | None = None

    # -- hooks -----------------------------------------------------------------------

    def make_engine(self, lifecycle: Lifecycle) -> Engine:
        """Return the engine to drive; use `self.clock` as its clock.

        The default is a bare in-memory engine: the lifecycle and its role checks, no rules
        (the default regime's rules refuse almost every random attempt, so a run would
        never get past ``submit``). Override to drive your store and rule book.
        """
        return open_engine(
            lifecycle=lifecycle, rules=RuleBook(), clock=self.clock, discover_rules=False
        )

    def actor_strategy(self) -> st.SearchStrategy[Actor]:
        """Strategy for the actors of each attempt: any subset of the lifecycle's roles."""
        if self._actors is None:
            self._actors = actors((*_roles(self.engine.lifecycle), "outsider"))
        return self._actors

    def evidence_strategy(self) -> st.SearchStrategy[Mapping[str, Any]]:
        """Strategy for the evidence (and submitted data) of each attempt."""
        return _EVIDENCE

    # -- state -----------------------------------------------------------------------

    @property
    def engine(self) -> Engine:
        """The engine under test (opened by the first step)."""
        if self._engine is None:
            raise RuntimeError("the engine is opened by the machine's initialize step")
        return self._engine

    @initialize(data=st.data())
    def open_engine(self, data: st.DataObject) -> None:
        """Open the engine on the class's lifecycle (or one drawn from its strategy)."""
        chosen = self.lifecycle
        if not isinstance(chosen, Lifecycle):
            chosen = data.draw(chosen, label="lifecycle")
        self._engine = self.make_engine(chosen)
        self._engine.subscribe(self._count)

    def teardown(self) -> None:
        """Close the engine."""
        if self._engine is not None:
            self._engine.close()

    def _count(self, entry: AuditEntry) -> None:
        self.committed[entry.project_id] += 1

    # -- steps -----------------------------------------------------------------------

    @precondition(lambda self: len(self.project_ids) < self.max_projects)
    @rule(data=st.data())
    def submit(self, data: st.DataObject) -> None:
        """Submit a project; only an accepted one exists afterwards."""
        actor = data.draw(self.actor_strategy(), label="actor")
        payload = data.draw(self.evidence_strategy(), label="data")
        outcome = self.engine.submit(actor=actor, data=payload)
        assert outcome.entry is not None, outcome
        pid = outcome.entry.project_id  # the chain; a project only if accepted
        assert outcome.project_id == (pid if outcome.accepted else None), outcome
        self._check_one_entry(pid, 0, outcome)
        if outcome.accepted:
            assert outcome.state == self.engine.lifecycle.initial_event.target, outcome
            self.project_ids.append(pid)
            return
        try:
            self.engine.get(pid)
        except ProjectNotFound:
            return
        raise AssertionError(f"refused submission {pid!r} left a project behind")

    @precondition(lambda self: bool(self.project_ids))
    @rule(data=st.data())
    def fire_any(self, data: st.DataObject) -> None:
        """Attempt any event of the lifecycle, possible now or not, by a random actor."""
        pid = data.draw(st.sampled_from(self.project_ids), label="project")
        event = data.draw(event_names(self.engine.lifecycle), label="event")
        actor = data.draw(self.actor_strategy(), label="actor")
        proof = data.draw(self.evidence_strategy(), label="evidence")
        self.fire_and_check(pid, event, actor=actor, evidence=proof)

    @precondition(lambda self: bool(self.project_ids))
    @rule(data=st.data())
    def fire_possible(self, data: st.DataObject) -> None:
        """Walk one to six offered events (`Engine.events`) by an actor with every role.

        Walking several at once, mostly avoiding terminal states, is what gets projects
        deep into the lifecycle: one random step at a time, most runs would end in
        ``rejected`` or ``withdrawn`` before reaching the later states.
        """
        pid = data.draw(st.sampled_from(self.project_ids), label="project")
        lifecycle = self.engine.lifecycle
        actor = Actor(id="harness-all-roles", roles=_roles(lifecycle))
        for _ in range(data.draw(st.integers(min_value=1, max_value=6), label="walk")):
            state = self.engine.get(pid).state
            offered = self.engine.events(pid, actor=actor)
            edges = {e.name for e in lifecycle.events if state in e.sources}
            assert set(offered) == edges, (state, offered, edges)
            if not offered:
                return
            staying = [e for e in offered if not _ends(lifecycle, e, state)]
            stay: bool = data.draw(st.booleans(), label="stay out of terminal states")
            if staying and stay:
                offered = staying
            event = data.draw(st.sampled_from(offered), label="event")
            proof = data.draw(self.evidence_strategy(), label="evidence")
            self.fire_and_check(pid, event, actor=actor, evidence=proof)

    @precondition(lambda self: bool(self.project_ids))
    @rule(data=st.data())
    def add_record(self, data: st.DataObject) -> None:
        """Add a record: the state stays; accepted, the record is appended to the project."""
        pid = data.draw(st.sampled_from(self.project_ids), label="project")
        kind = data.draw(st.sampled_from(_RECORD_KINDS), label="kind")
        actor = data.draw(self.actor_strategy(), label="actor")
        payload = data.draw(self.evidence_strategy(), label="record")
        before = self.engine.get(pid)
        outcome = self.engine.add_record(pid, kind, payload, actor=actor)
        self._check_one_entry(pid, before.version, outcome)
        after = self.engine.get(pid)
        assert after.state == before.state == outcome.state, outcome
        if outcome.accepted:
            assert after.records[: len(before.records)] == before.records
            assert after.records[-1].kind == kind, after.records
        else:
            self._check_unchanged(before, after, outcome)

    @rule(delta=st.timedeltas(min_value=timedelta(), max_value=timedelta(days=40)))
    def advance_clock(self, delta: timedelta) -> None:
        """Let time pass between attempts (rules may read `ctx.now`)."""
        self.clock.advance(delta)

    def fire_and_check(
        self,
        project_id: str,
        event: str,
        *,
        actor: Actor,
        evidence: Mapping[str, Any] | None = None,
    ) -> Outcome:
        """Fire `event` and check the attempt: `can_fire` agrees, edges hold, one entry added.

        Call this from your own rules so their attempts are checked like the built-in ones.
        """
        before = self.engine.get(project_id)
        dry = self.engine.can_fire(project_id, event, actor=actor, evidence=evidence)
        assert self.engine.get(project_id) == before, "can_fire wrote something"
        outcome = self.engine.fire(project_id, event, actor=actor, evidence=evidence)
        assert (dry.accepted, dry.state, [r.code for r in dry.refusals]) == (
            outcome.accepted,
            outcome.state,
            [r.code for r in outcome.refusals],
        ), (dry, outcome)
        self._check_one_entry(project_id, before.version, outcome)
        self._check_transition(before, outcome)
        return outcome

    # -- checks ----------------------------------------------------------------------

    def _check_one_entry(self, project_id: str, version: int, outcome: Outcome) -> None:
        entry = outcome.entry
        assert entry is not None, outcome
        assert entry.seq == version + 1, (entry.seq, version)
        history = self.engine.history(project_id)
        assert len(history) == entry.seq, (len(history), entry.seq)
        assert history[-1] == entry

    def _check_transition(self, before: Project, outcome: Outcome) -> None:
        lifecycle = self.engine.lifecycle
        after = self.engine.get(before.id)
        if outcome.accepted:
            target = edge_target(lifecycle, outcome.event, before.state)
            assert target is not None, f"{outcome.event} accepted from {before.state}: no edge"
            assert after.state == target == outcome.state, (after.state, target, outcome)
        else:
            self._check_unchanged(before, after, outcome)
        if lifecycle.state(before.state).terminal:
            assert not outcome.accepted, f"{outcome.event} accepted from terminal {before.state}"

    @staticmethod
    def _check_unchanged(before: Project, after: Project, outcome: Outcome) -> None:
        assert outcome.entry is not None
        expected = before.model_copy(
            update={"version": outcome.entry.seq, "head": outcome.entry.hash}
        )
        assert after == expected, "a refused attempt changed more than version and head"

    @invariant()
    def projects_agree_with_their_chains(self) -> None:
        """Each project is on the lifecycle, absorbed if terminal, and equals its replay."""
        if self._engine is None:
            return
        lifecycle = self.engine.lifecycle
        for pid in self.project_ids:
            project = self.engine.get(pid)
            history = self.engine.history(pid)
            assert len(history) == self.committed[pid] == project.version, pid
            assert self.engine.replay(pid) == project, pid
            self._check_history_edges(lifecycle, history)
            if pid in self.absorbed:
                assert project.state == self.absorbed[pid], "a terminal state was left"
            elif lifecycle.state(project.state).terminal:
                self.absorbed[pid] = project.state

    @invariant()
    def audit_verifies(self) -> None:
        """`Engine.verify()` finds every chain intact."""
        if self._engine is None:
            return
        report = self.engine.verify()
        assert report.ok, report.problems

    @staticmethod
    def _check_history_edges(lifecycle: Lifecycle, history: list[AuditEntry]) -> None:
        count, problem = check_chain(history[0].project_id, history)
        assert problem is None, problem
        assert count == len(history), (count, len(history))
        for entry in history:
            if not entry.accepted or entry.kind == "record":
                assert entry.to_state == entry.from_state, entry
            elif entry.kind == "submit":
                assert entry.to_state == lifecycle.initial_event.target, entry
            else:
                expected = edge_target(lifecycle, entry.event, entry.from_state or "")
                assert entry.to_state == expected, entry
