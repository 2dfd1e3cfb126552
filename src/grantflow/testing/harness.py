"""`LifecycleStateMachine`: a Hypothesis stateful harness for any engine.

It submits projects (one at a time, and in bursts from one organisation up to and past
every count threshold of the rule book), fires events (possible or not), adds records and
moves the clock, by actors of random roles, and after every step checks what must always
hold:

* every accepted transition follows an edge of the lifecycle, and its target;
* a terminal state absorbs: nothing is accepted from it and the state never changes;
* `Engine.can_fire` agrees with `Engine.fire` and writes nothing;
* a refused attempt changes nothing but the project's version, head and time;
* every attempt appends exactly one audit entry (the history has one entry per attempt);
* replaying the audit entries gives back the stored project;
* `Engine.verify()` reports no problem;
* money is conserved: disbursed - refunded <= awarded, and a settlement record agrees
  with the disbursements and the award it settles (disbursed - refund == due <= awarded);
* quorum before contract (when the engine runs the regime's review rules): every
  approval, and so every contract, came after at least the policy's quorum of reviews;
* limits are tight: a refusal that reports ``limit`` and ``existing`` (an "at most"
  rule) was refused exactly at its limit, neither below it nor after the world got past
  it; one that reports ``required`` and ``submitted`` or ``elapsed`` (an "at least"
  rule) really was short.

The built-in checks do not know what a rule is for beyond these: see `check_project` to
add your own.

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
from collections.abc import Iterable, Mapping
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from grantflow._engine import Engine
from grantflow._machine import TransitionTable
from grantflow._open import open as open_engine
from grantflow.audit import check_chain
from grantflow.errors import ProjectNotFound
from grantflow.models import Actor, AuditEntry, Outcome, Project, Record, Refusal
from grantflow.rules import BUILTIN_RECORD_KINDS, RECORD_PREFIX, RuleBook
from grantflow.states import PURCHASED_SERVICE, Lifecycle
from grantflow.testing._boundaries import boundaries, words_in
from grantflow.testing._clock import FrozenClock
from grantflow.testing.strategies import actors, event_names, evidence

# Built once, not per step: Hypothesis validates every new strategy object on first use.
_EVIDENCE: st.SearchStrategy[Mapping[str, Any]] = st.one_of(st.just({}), evidence(max_leaves=3))

__all__ = [
    "LifecycleStateMachine",
    "ORGANISATIONS",
    "edge_target",
    "limit_problem",
    "money_problems",
]

_RECORD_KINDS = ("note", "review", "expenditure")
#: A few organisations, so that counts per organisation (applications, live projects)
#: reach the thresholds of the rules within one run.
ORGANISATIONS = ("org-1", "org-2")
#: The largest count threshold the harness submits bursts for (more only slows a run).
_MOST_BURST = 6
_CENT = Decimal("0.01")


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


def _record_kinds(book: RuleBook) -> tuple[str, ...]:
    """The kinds the book gates or its code names (``records_of("review")``), and a note.

    Without any, a few common kinds: records the rules read get added, not random ones.
    """
    known = BUILTIN_RECORD_KINDS | book.record_kinds
    gated = {
        key.removeprefix(RECORD_PREFIX)
        for key in book.attached_events()
        if key.startswith(RECORD_PREFIX)
    }
    named = {word for word in words_in(book) if word in known}
    kinds = gated | named
    return tuple(sorted({"note", *kinds})) if kinds else _RECORD_KINDS


def _amount(data: Mapping[str, Any], key: str = "amount") -> Decimal:
    try:
        value = Decimal(str(data.get(key)))
    except (InvalidOperation, ValueError):
        return Decimal(0)
    return value if value.is_finite() else Decimal(0)


def _sum(records: Iterable[Record]) -> Decimal:
    return sum((_amount(r.data) for r in records), Decimal(0)).quantize(_CENT)


def money_problems(project: Project) -> list[str]:
    """Return what breaks money conservation on `project` (empty when it balances).

    Reads the regime's records: the purchase ``contract`` (awarded), ``disbursement``
    (paid), ``refund_payment`` (paid back) and ``settlement`` records. Checks, to the
    fen: disbursed - refunded <= awarded (nothing is paid before a contract); each
    settlement's ``awarded`` and ``disbursed`` equal the award and the disbursements
    recorded up to it, and when it states ``due`` and ``refund``:
    disbursed - refund == due <= awarded.
    """
    records = project.records
    purchase = [r for r in records if r.kind == "contract" and r.data.get("kind") == "purchase"]
    awarded = _amount(purchase[-1].data).quantize(_CENT) if purchase else Decimal("0.00")
    paid = _sum(r for r in records if r.kind == "disbursement")
    refunded = _sum(r for r in records if r.kind == "refund_payment")
    problems = []
    if paid - refunded > awarded:
        problems.append(f"disbursed {paid} - refunded {refunded} exceeds awarded {awarded}")
    for settlement in (r for r in records if r.kind == "settlement"):
        problems.extend(_settlement_problems(settlement, records, awarded))
    return problems


def _settlement_problems(
    settlement: Record, records: Iterable[Record], awarded: Decimal
) -> list[str]:
    data, sid = settlement.data, settlement.id
    upto = _sum(r for r in records if r.kind == "disbursement" and r.seq <= settlement.seq)
    problems = []
    if "disbursed" in data and _amount(data, "disbursed") != upto:
        problems.append(
            f"settlement {sid} says disbursed {data.get('disbursed')}, "
            f"the disbursements sum to {upto}"
        )
    if "awarded" in data and _amount(data, "awarded") != awarded:
        problems.append(
            f"settlement {sid} says awarded {data.get('awarded')}, the contract says {awarded}"
        )
    if "due" in data and "refund" in data:
        due = _amount(data, "due")
        if _amount(data, "disbursed") - _amount(data, "refund") != due:
            problems.append(f"settlement {sid}: disbursed - refund != due {due}")
        if due > awarded:
            problems.append(f"settlement {sid}: due {due} exceeds awarded {awarded}")
    return problems


def _int(details: Mapping[str, Any], key: str) -> int | None:
    value = details.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def limit_problem(refusal: Refusal) -> str | None:
    """Return why `refusal` contradicts its own details, or ``None`` when it does not.

    An "at most" rule refuses reporting ``limit`` and ``existing``: in a run where counts
    grow by one accepted attempt at a time it must refuse exactly when ``existing ==
    limit``; below, it refused too early, above, it let an attempt too many through
    before. An "at least" rule refuses reporting ``required`` and ``submitted`` (or
    ``elapsed``): it must be short (``submitted < required``).
    """
    limit, existing = _int(refusal.details, "limit"), _int(refusal.details, "existing")
    if limit is not None and existing is not None:
        if existing < limit:
            return f"{refusal.code} refused with {existing} existing, below its limit {limit}"
        if existing > limit:
            return (
                f"{refusal.code} found {existing} existing, past its limit {limit}: "
                "an earlier attempt was let through"
            )
    required = _int(refusal.details, "required")
    for key in ("submitted", "elapsed"):
        have = _int(refusal.details, key)
        if required is not None and have is not None and have >= required:
            return f"{refusal.code} refused with {have} {key}, {required} required"
    return None


class LifecycleStateMachine(RuleBasedStateMachine):
    """Drive an engine with random attempts and check its invariants after every step.

    Class attributes to override: `lifecycle` (a `Lifecycle`, or a strategy drawing one
    per run such as ``strategies.lifecycles()``), `max_projects`, `regime`,
    `check_limits`. Methods to override: `make_engine`, `actor_strategy`,
    `evidence_strategy`, `check_project` (your own invariants, per project).
    """

    #: The lifecycle to drive, or a strategy that draws one per run.
    lifecycle: ClassVar[Lifecycle | st.SearchStrategy[Lifecycle]] = PURCHASED_SERVICE
    #: Most projects accepted in one run, at least; raised to reach past the rule book's
    #: count thresholds (up to 6) by 2.
    max_projects: ClassVar[int] = 3
    #: Check quorum before contract: ``None`` decides from the rule book (on when it has
    #: the regime's ``review.quorum`` rule); ``True`` when you replaced that rule.
    regime: ClassVar[bool | None] = None
    #: Check the ``limit``/``existing`` and ``required``/``submitted`` refusal details.
    check_limits: ClassVar[bool] = True

    def __init__(self) -> None:
        super().__init__()
        self.clock = FrozenClock()
        self.project_ids: list[str] = []
        self.committed: Counter[str] = Counter()
        self.absorbed: dict[str, str] = {}
        self.refusals: list[Refusal] = []
        self.project_limit = self.max_projects
        self.bursts: list[int] = [1]
        self.record_bursts: list[int] = [1]
        self.record_kinds: tuple[str, ...] = _RECORD_KINDS
        self.quorum_checked = False
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
        """Strategy for the actors of each attempt: any subset of the lifecycle's roles.

        Ids and organisations come from small pools (`ORGANISATIONS`), so that what rules
        count per actor or organisation reaches their limits.
        """
        if self._actors is None:
            ids = st.sampled_from(("user-1", "user-2", "user-3"))
            roles = (*_roles(self.engine.lifecycle), "outsider")
            self._actors = actors(roles, ids=ids).flatmap(
                lambda a: st.sampled_from((None, *ORGANISATIONS)).map(
                    lambda org: a.model_copy(update={"organisation": org})
                )
            )
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
        book = self._engine.rules
        counts = [n for n in boundaries(book).thresholds.counts if 0 < n <= _MOST_BURST]
        self.bursts = sorted({1, *(n + 1 for n in counts), *(n + 2 for n in counts)})
        self.project_limit = max(self.max_projects, *(n + 2 for n in counts), 0)
        self.record_bursts = sorted({1, *(n + d for n in counts for d in (-1, 0, 1) if n + d)})
        self.record_kinds = _record_kinds(book)
        if self.regime is None:
            self.quorum_checked = "review.quorum" in book.codes()
        else:
            self.quorum_checked = self.regime

    def teardown(self) -> None:
        """Close the engine."""
        if self._engine is not None:
            self._engine.close()

    def _count(self, entry: AuditEntry) -> None:
        self.committed[entry.project_id] += 1
        self.refusals.extend(entry.refusals)

    # -- steps -----------------------------------------------------------------------

    @precondition(lambda self: len(self.project_ids) < self.project_limit)
    @rule(data=st.data())
    def submit(self, data: st.DataObject) -> None:
        """Submit a project; only an accepted one exists afterwards."""
        actor = data.draw(self.actor_strategy(), label="actor")
        self._submit(actor, data.draw(self.evidence_strategy(), label="data"))

    @precondition(lambda self: len(self.project_ids) < self.project_limit)
    @rule(data=st.data())
    def submit_burst(self, data: st.DataObject) -> None:
        """Submit several times as one organisation: one more, and two more, than a limit.

        The burst sizes come from the count thresholds of the rule book
        (`strategies.boundaries`), so an "at most 2" rule meets a third and a fourth
        submission from the same organisation.
        """
        count = data.draw(st.sampled_from(self.bursts), label="burst")
        organisation = data.draw(st.sampled_from(ORGANISATIONS), label="organisation")
        roles = frozenset(self.engine.lifecycle.initial_event.roles)
        actor = Actor(id=f"{organisation}-staff", roles=roles, organisation=organisation)
        for _ in range(count):
            if len(self.project_ids) >= self.project_limit:
                return
            self._submit(actor, data.draw(self.evidence_strategy(), label="data"))

    def _submit(self, actor: Actor, payload: Mapping[str, Any]) -> None:
        # The application names its provider: the submitting organisation.
        if actor.organisation is not None and "provider" not in payload:
            payload = {**payload, "provider": actor.organisation}
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
        kind = data.draw(st.sampled_from(self.record_kinds), label="kind")
        actor = data.draw(self.actor_strategy(), label="actor")
        self._add_record(pid, kind, actor, data.draw(self.evidence_strategy(), label="record"))

    @precondition(lambda self: bool(self.project_ids))
    @rule(data=st.data())
    def add_record_burst(self, data: st.DataObject) -> None:
        """Add records of one kind to one project, as many as a count threshold, or one off.

        The sizes come from the rule book's count thresholds: a quorum of 3 reviews meets
        2, 3 and 4 reviews.
        """
        pid = data.draw(st.sampled_from(self.project_ids), label="project")
        kind = data.draw(st.sampled_from(self.record_kinds), label="kind")
        count = data.draw(st.sampled_from(self.record_bursts), label="burst")
        actor = data.draw(self.actor_strategy(), label="actor")
        for _ in range(count):
            self._add_record(pid, kind, actor, data.draw(self.evidence_strategy(), label="record"))

    def _add_record(self, pid: str, kind: str, actor: Actor, payload: Mapping[str, Any]) -> None:
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
        entry = outcome.entry
        expected = before.model_copy(
            update={"version": entry.seq, "head": entry.hash, "updated_at": entry.at}
        )
        assert after == expected, "a refused attempt changed more than version, head and time"

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

    def check_project(self, project: Project, history: list[AuditEntry]) -> None:
        """Check one project after every step (called for each project); raise to fail.

        The built-in version checks money conservation and, when `regime` is on, quorum
        before contract. Override it, calling ``super().check_project(...)``, to add
        invariants of your own; or add ``@invariant()`` methods to your subclass.
        """
        problems = money_problems(project)
        assert not problems, f"{project.id}: {problems}"
        if self.quorum_checked:
            self._check_quorum(project, history)

    def _check_quorum(self, project: Project, history: list[AuditEntry]) -> None:
        # Checked at every accepted approval, so a contract (which needs one) follows a
        # quorum too; a signed project without an approval is caught as well.
        approvals = [e for e in history if e.accepted and e.event == "approve"]
        if any(e.accepted and e.event == "sign" for e in history):
            assert approvals, f"{project.id} was signed without an approval"
        quorum = self.engine.policy_for(project).review_quorum
        for approval in approvals:
            reviews = [r for r in project.records if r.kind == "review" and r.seq < approval.seq]
            assert len(reviews) >= quorum, (
                f"{project.id} was approved with {len(reviews)} reviews, quorum {quorum}"
            )

    @invariant()
    def projects_keep_the_regime(self) -> None:
        """Money conservation, quorum before contract, and `check_project` per project."""
        if self._engine is None:
            return
        for pid in self.project_ids:
            self.check_project(self.engine.get(pid), self.engine.history(pid))

    @invariant()
    def limits_are_tight(self) -> None:
        """No refusal contradicts its own ``limit``/``existing`` or ``required`` details."""
        if not self.check_limits:
            return
        problems = [p for p in map(limit_problem, self.refusals) if p is not None]
        assert not problems, problems

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
