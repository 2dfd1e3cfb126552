"""Tests for grantflow._engine: submit, fire, can_fire, events, records, integrity, replay."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

import grantflow
from grantflow import (
    Actor,
    AuditEntry,
    ConcurrencyError,
    Engine,
    InvalidInput,
    ProjectExists,
    ProjectNotFound,
    TransitionRefused,
    UnknownEvent,
)
from grantflow.models import Record, Verdict
from grantflow.persistence import Change, MemoryStore
from grantflow.rules import PASS, Effects, FactRequest, RuleBook, RuleContext, refuse, rule

APPLICANT = Actor(id="org-1", roles=frozenset({"applicant"}), organisation="org-1")
PURCHASER = Actor(id="staff-1", roles=frozenset({"purchaser"}), organisation="city")
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


class Clock:
    """A clock that advances one minute per reading."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(minutes=1)
        return self.now


@pytest.fixture
def engine() -> Iterator[Engine]:
    with grantflow.open(rules=RuleBook(), discover_rules=False, clock=Clock()) as eng:
        yield eng


def _submit(engine: Engine, **data: object) -> str:
    outcome = engine.submit(actor=APPLICANT, data={"title": "Skills", **data})
    assert outcome.accepted
    return outcome.project_id


MAIN_LINE = ["approve", "sign", "pass_midterm", "assess", "close"]


def test_submit_creates_project_in_applied(engine: Engine) -> None:
    """An accepted submission creates the project in the first state, version 1."""
    outcome = engine.submit(actor=APPLICANT, data={"title": "Skills"}, project_id="p-1")
    assert (outcome.accepted, outcome.state, outcome.from_state) == (True, "applied", None)
    project = engine.get("p-1")
    assert project.state == "applied"
    assert project.version == 1
    assert project.data["title"] == "Skills"
    assert project.data["policy_version"] == engine.policy.version


def test_main_line_runs_to_closed(engine: Engine) -> None:
    """Firing the main-line events moves a project from applied to closed."""
    pid = _submit(engine)
    states = [engine.fire(pid, ev, actor=PURCHASER).raise_for_refusal().state for ev in MAIN_LINE]
    assert states == ["reviewed", "contracted", "midterm", "assessed", "closed"]
    assert engine.get(pid).version == 6


def test_refused_fire_reports_code_and_both_messages(engine: Engine) -> None:
    """A refusal names each failing rule's code with an English and a Chinese message."""
    pid = _submit(engine)
    outcome = engine.fire(pid, "sign", actor=APPLICANT)
    assert not outcome.accepted
    assert outcome.state == "applied"
    codes = [r.code for r in outcome.refusals]
    assert codes == ["lifecycle.role", "lifecycle.no_edge"]
    role = outcome.refusals[0]
    assert "purchaser" in role.message
    assert "只有" in role.message_zh
    with pytest.raises(TransitionRefused) as info:
        outcome.raise_for_refusal()
    assert info.value.refusals == outcome.refusals
    assert (info.value.project_id, info.value.event, info.value.state) == (pid, "sign", "applied")


def test_refused_attempt_is_audited_and_changes_nothing_else(engine: Engine) -> None:
    """A refusal appends an audit entry; state, data and records stay as they were."""
    pid = _submit(engine)
    before = engine.get(pid)
    outcome = engine.fire(pid, "close", actor=PURCHASER)
    after = engine.get(pid)
    assert not outcome.accepted
    assert outcome.entry is not None
    assert (after.state, after.data, after.records) == (before.state, before.data, before.records)
    assert after.version == before.version + 1
    history = engine.history(pid)
    assert [(e.event, e.accepted) for e in history] == [("submit", True), ("close", False)]


def test_terminal_states_absorb(engine: Engine) -> None:
    """No event leaves a terminal state."""
    pid = _submit(engine)
    engine.fire(pid, "reject", actor=PURCHASER).raise_for_refusal()
    for event in grantflow.PURCHASED_SERVICE.events:
        if event.creates:
            continue
        outcome = engine.fire(pid, event.name, actor=PURCHASER)
        assert not outcome.accepted
        assert engine.get(pid).state == "rejected"


def test_all_rules_run_and_every_refusal_is_reported() -> None:
    """Every rule runs even after one refused; refusals carry the rule's name."""

    @rule
    def first(ctx: RuleContext) -> Verdict:
        return refuse("t.first", "first says no", "第一条不通过")

    @rule
    def second(ctx: RuleContext) -> Verdict:
        return refuse("t.second", "second says no", "第二条不通过", n=2)

    book = RuleBook().on("approve", first, second)
    with grantflow.open(rules=book, discover_rules=False) as eng:
        pid = eng.submit(actor=APPLICANT).project_id
        outcome = eng.fire(pid, "approve", actor=PURCHASER)
    assert [(r.code, r.rule) for r in outcome.refusals] == [
        ("t.first", "first"),
        ("t.second", "second"),
    ]
    assert outcome.refusals[1].details == {"n": 2}


def test_rules_see_an_immutable_context() -> None:
    """The evidence a rule receives cannot be modified."""
    seen: list[RuleContext] = []

    def spy(ctx: RuleContext) -> Verdict:
        seen.append(ctx)
        return PASS

    with grantflow.open(rules=RuleBook().on("approve", spy), discover_rules=False) as eng:
        pid = eng.submit(actor=APPLICANT).project_id
        eng.fire(pid, "approve", actor=PURCHASER, evidence={"scores": [1, 2], "note": {"a": 1}})
    ctx = seen[0]
    assert (ctx.source, ctx.target, ctx.event) == ("applied", "reviewed", "approve")
    with pytest.raises(TypeError):
        ctx.evidence["note"]["a"] = 2  # type: ignore[index]
    assert ctx.evidence["scores"] == (1, 2)
    with pytest.raises(AttributeError):
        ctx.event = "sign"  # type: ignore[misc]


def test_a_rule_that_raises_refuses_instead_of_crashing() -> None:
    """A broken rule fails closed: the attempt is refused with code rule.error."""

    def broken(ctx: RuleContext) -> Verdict:
        raise ZeroDivisionError("boom")

    with grantflow.open(rules=RuleBook().on("approve", broken), discover_rules=False) as eng:
        pid = eng.submit(actor=APPLICANT).project_id
        outcome = eng.fire(pid, "approve", actor=PURCHASER)
    assert [r.code for r in outcome.refusals] == ["rule.error"]
    assert "boom" in outcome.refusals[0].message


def test_can_fire_decides_like_fire_and_writes_nothing(engine: Engine) -> None:
    """can_fire returns the verdict fire would give, without an audit entry."""
    pid = _submit(engine)
    before = engine.get(pid)
    preview = engine.can_fire(pid, "approve", actor=PURCHASER)
    assert (preview.accepted, preview.state, preview.entry) == (True, "reviewed", None)
    refused = engine.can_fire(pid, "approve", actor=APPLICANT)
    assert not refused.accepted
    assert engine.get(pid) == before
    assert len(engine.history(pid)) == 1
    actual = engine.fire(pid, "approve", actor=PURCHASER)
    assert (actual.accepted, actual.state) == (preview.accepted, preview.state)


def test_events_lists_what_the_actor_may_fire_now(engine: Engine) -> None:
    """events() filters the outgoing edges by the actor's roles."""
    pid = _submit(engine)
    assert engine.events(pid, actor=PURCHASER) == ["approve", "reject"]
    assert engine.events(pid, actor=APPLICANT) == ["withdraw"]


def test_unknown_project_and_event_raise_typed_errors(engine: Engine) -> None:
    """Unknown ids raise ProjectNotFound, unknown events UnknownEvent, with context."""
    with pytest.raises(ProjectNotFound) as missing:
        engine.fire("nope", "approve", actor=PURCHASER)
    assert missing.value.project_id == "nope"
    pid = _submit(engine)
    with pytest.raises(UnknownEvent) as unknown:
        engine.fire(pid, "teleport", actor=PURCHASER)
    assert (unknown.value.event, unknown.value.project_id) == ("teleport", pid)
    with pytest.raises(UnknownEvent, match="use submit"):
        engine.fire(pid, "submit", actor=PURCHASER)
    with pytest.raises(ProjectNotFound):
        engine.history("nope")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"evidence": {"amount": 1.5}}, "evidence.amount"),
        ({"evidence": {"note": "x" * 100_001}}, "evidence.note"),
        ({"evidence": {"bad": "a\x00b"}}, "evidence.bad"),
        ({"evidence": {1: "x"}}, "evidence"),
        ({"evidence": {"when": datetime(2026, 1, 1)}}, "evidence.when"),
        ({"evidence": ["not", "a", "mapping"]}, "evidence"),
    ],
)
def test_bad_evidence_is_refused_naming_the_field(
    engine: Engine, kwargs: dict[str, object], field: str
) -> None:
    """Floats, oversized or NUL strings, non-string keys, naive times: InvalidInput, no write."""
    pid = _submit(engine)
    with pytest.raises(InvalidInput) as info:
        engine.fire(pid, "approve", actor=PURCHASER, **kwargs)  # type: ignore[arg-type]
    assert info.value.field == field
    assert len(engine.history(pid)) == 1


@pytest.mark.parametrize("bad_id", ["", "x" * 129, "tab\tid", 42])
def test_bad_project_ids_are_refused(engine: Engine, bad_id: object) -> None:
    """Empty, oversized, control-character or non-string ids raise InvalidInput(field)."""
    with pytest.raises(InvalidInput) as info:
        engine.submit(actor=APPLICANT, project_id=bad_id)  # type: ignore[arg-type]
    assert info.value.field == "project_id"


def test_actor_must_be_an_actor(engine: Engine) -> None:
    """Passing something else as actor raises InvalidInput naming the field."""
    with pytest.raises(InvalidInput) as info:
        engine.submit(actor="org-1")  # type: ignore[arg-type]
    assert info.value.field == "actor"


def test_submit_with_a_taken_id_raises(engine: Engine) -> None:
    """Submitting twice with the same id raises ProjectExists."""
    engine.submit(actor=APPLICANT, project_id="p-1")
    with pytest.raises(ProjectExists):
        engine.submit(actor=APPLICANT, project_id="p-1")


def test_refused_submission_is_audited_without_creating_a_project() -> None:
    """A refused submit writes an audit entry in the id's chain but no project."""
    book = RuleBook().on("submit", lambda ctx: refuse("eligibility.x", "no", "不符合"))
    with grantflow.open(rules=book, discover_rules=False) as eng:
        outcome = eng.submit(actor=APPLICANT, project_id="p-9")
        assert (outcome.accepted, outcome.state) == (False, None)
        with pytest.raises(ProjectNotFound):
            eng.get("p-9")
        assert [e.accepted for e in eng.history("p-9")] == [False]
        assert eng.verify().ok


def test_money_and_times_are_stored_canonically(engine: Engine) -> None:
    """Decimals and aware datetimes in evidence are kept as canonical strings."""
    pid = _submit(engine)
    outcome = engine.fire(
        pid,
        "approve",
        actor=PURCHASER,
        evidence={"amount": Decimal("120000.50"), "at": datetime(2026, 3, 2, 8, tzinfo=UTC)},
    )
    assert outcome.entry is not None
    assert outcome.entry.evidence == {
        "amount": "120000.50",
        "at": "2026-03-02T08:00:00.000000Z",
    }


def test_add_record_is_audited_and_kept(engine: Engine) -> None:
    """add_record stores the record on the project and chains an audit entry for it."""
    pid = _submit(engine)
    outcome = engine.add_record(pid, "review", {"score": 80}, actor=PURCHASER, record_id="r1")
    assert outcome.accepted
    assert outcome.state == "applied"
    project = engine.get(pid)
    assert project.records_of("review") == (
        Record(kind="review", id="r1", data={"score": 80}, seq=2),
    )
    assert engine.history(pid)[-1].kind == "record"
    with pytest.raises(InvalidInput, match="already exists"):
        engine.add_record(pid, "review", {"score": 81}, actor=PURCHASER, record_id="r1")


def test_record_rules_gate_records() -> None:
    """Rules on record.<kind> can refuse a record; a refused record is not kept."""
    book = RuleBook().on(
        "record.expenditure",
        lambda ctx: (
            refuse("funds.invoice", "invoice missing", "缺少发票")
            if not ctx.evidence["record"]["data"].get("invoice")
            else PASS
        ),
    )
    with grantflow.open(rules=book, discover_rules=False) as eng:
        pid = eng.submit(actor=APPLICANT).project_id
        refused = eng.add_record(pid, "expenditure", {"amount": "10.00"}, actor=APPLICANT)
        accepted = eng.add_record(pid, "expenditure", {"invoice": "F1"}, actor=APPLICANT)
        assert [r.code for r in refused.refusals] == ["funds.invoice"]
        assert accepted.accepted
        assert [r.data for r in eng.get(pid).records] == [{"invoice": "F1"}]


def test_facts_and_effects_flow_through_the_rule_book() -> None:
    """Fact providers feed the context; effects add records and data on acceptance."""

    def count_applied(request: FactRequest) -> int:
        return sum(1 for _ in request.reader.projects(state="applied"))

    def needs_two(ctx: RuleContext) -> Verdict:
        if ctx.facts["applied"] >= 2:
            return PASS
        return refuse("t.facts", "need two applied", "需要两个已申报项目")

    def approval(ctx: RuleContext) -> Effects:
        rec = Record(kind="approval", id="approval", data={"by": ctx.actor.id})
        return Effects(records=(rec,), data={"approved_by": ctx.actor.id})

    book = (
        RuleBook()
        .provide("applied", count_applied, events=["approve"])
        .on("approve", needs_two)
        .effect("approve", approval)
    )
    with grantflow.open(rules=book, discover_rules=False) as eng:
        first = eng.submit(actor=APPLICANT).project_id
        assert not eng.fire(first, "approve", actor=PURCHASER).accepted
        eng.submit(actor=APPLICANT)
        outcome = eng.fire(first, "approve", actor=PURCHASER)
        assert outcome.accepted
        project = eng.get(first)
        assert project.data["approved_by"] == PURCHASER.id
        assert project.records_of("approval")[0].seq == project.version
        assert eng.replay(first) == project


def test_listeners_observe_and_cannot_veto(engine: Engine) -> None:
    """Subscribers see each committed entry; one that raises does not undo the commit."""
    seen: list[AuditEntry] = []

    def angry(entry: AuditEntry) -> None:
        raise RuntimeError("I object")

    unsubscribe = engine.subscribe(seen.append)
    engine.subscribe(angry)
    pid = _submit(engine)
    assert engine.fire(pid, "approve", actor=PURCHASER).accepted
    unsubscribe()
    engine.fire(pid, "sign", actor=PURCHASER)
    assert [e.event for e in seen] == ["submit", "approve"]
    assert engine.get(pid).state == "contracted"


def test_verify_replay_and_state_at(engine: Engine) -> None:
    """The chain verifies, replay rebuilds the stored project, state_at travels in time."""
    pid = _submit(engine)
    created = engine.get(pid).created_at
    for event in MAIN_LINE[:3]:
        engine.fire(pid, event, actor=PURCHASER)
    report = engine.verify()
    assert report.ok
    assert (report.projects, report.entries) == (1, 4)
    assert engine.replay(pid) == engine.get(pid)
    assert engine.state_at(pid, created - timedelta(seconds=1)) is None
    assert engine.state_at(pid, created) == "applied"
    assert engine.state_at(pid, datetime(2030, 1, 1, tzinfo=UTC)) == "midterm"
    with pytest.raises(InvalidInput):
        engine.state_at(pid, datetime(2030, 1, 1))


def test_verify_detects_an_edited_entry() -> None:
    """Changing a stored entry's content is caught at that entry's sequence number."""
    store = MemoryStore()
    with grantflow.open(store, rules=RuleBook(), discover_rules=False) as eng:
        pid = eng.submit(actor=APPLICANT).project_id
        eng.fire(pid, "approve", actor=PURCHASER)
        eng.fire(pid, "sign", actor=PURCHASER)
        chain = list(store.entries(pid))
        forged = chain[1].model_copy(update={"actor": APPLICANT})
        store._tamper(pid, [chain[0], forged, chain[2]])
        report = eng.verify()
    assert not report.ok
    assert [(p.project_id, p.seq, p.reason) for p in report.problems] == [(pid, 2, "hash mismatch")]


def test_verify_with_checkpoint_detects_truncation() -> None:
    """Cutting a chain's tail after a checkpoint is reported against that checkpoint."""
    store = MemoryStore()
    with grantflow.open(store, rules=RuleBook(), discover_rules=False) as eng:
        pid = eng.submit(actor=APPLICANT).project_id
        eng.fire(pid, "approve", actor=PURCHASER)
        checkpoint = eng.checkpoint()
        assert eng.verify(checkpoint=checkpoint).ok
        chain = list(store.entries(pid))
        store._tamper(pid, chain[:1])
        store._projects[pid] = store._projects[pid].model_copy(
            update={
                "version": 1,
                "head": chain[0].hash,
                "state": "applied",
                "updated_at": chain[0].at,
            }
        )
        assert eng.verify().ok  # without the checkpoint, a clean cut is invisible
        report = eng.verify(checkpoint=checkpoint)
    assert [(p.project_id, p.seq) for p in report.problems] == [(pid, 2)]


@pytest.mark.parametrize("retries", [0, 1, 2])
def test_lost_race_is_retried_then_raises(retries: int) -> None:
    """A commit that keeps losing its compare-and-set is tried exactly ``retries + 1`` times.

    Then ConcurrencyError, for a submission and for a fire alike.
    """
    attempts: list[str] = []

    class Racy(MemoryStore):
        racing = False

        def commit(self, change: Change) -> None:
            if not self.racing:
                return super().commit(change)
            attempts.append(change.entry.event)
            raise ConcurrencyError("lost", project_id=change.entry.project_id)

    store = Racy()
    eng = grantflow.open(store, rules=RuleBook(), discover_rules=False, retries=retries)
    pid = eng.submit(actor=APPLICANT).project_id
    store.racing = True
    with pytest.raises(ConcurrencyError, match=f"after {retries + 1} attempts"):
        eng.submit(actor=APPLICANT)
    assert attempts == ["submit"] * (retries + 1)
    attempts.clear()
    with pytest.raises(ConcurrencyError, match=f"after {retries + 1} attempts"):
        eng.fire(pid, "approve", actor=PURCHASER)
    assert attempts == ["approve"] * (retries + 1)
    assert eng.get(pid).state == "applied"


def test_stale_decision_is_redone_on_fresh_state() -> None:
    """When another writer wins first, the engine decides again on the new state."""
    store = MemoryStore()
    with grantflow.open(store, rules=RuleBook(), discover_rules=False) as eng:
        pid = eng.submit(actor=APPLICANT).project_id
        original_load = store.load
        calls = {"n": 0}

        def load_then_race(project_id: str) -> grantflow.Project | None:
            snapshot = original_load(project_id)
            calls["n"] += 1
            if calls["n"] == 1:  # someone else approves right after our read
                with grantflow.open(store, rules=RuleBook(), discover_rules=False) as other:
                    other.fire(pid, "approve", actor=PURCHASER)
            return snapshot

        store.load = load_then_race  # type: ignore[method-assign]
        outcome = eng.fire(pid, "approve", actor=PURCHASER)
    assert not outcome.accepted
    assert [r.code for r in outcome.refusals] == ["lifecycle.no_edge"]
    assert [e.accepted for e in store.entries(pid)] == [True, True, False]


def test_naive_clock_is_refused() -> None:
    """An injected clock must return timezone-aware times."""
    naive = datetime(2026, 1, 1)
    eng = grantflow.open(rules=RuleBook(), discover_rules=False, clock=lambda: naive)
    with pytest.raises(InvalidInput, match="naive"):
        eng.submit(actor=APPLICANT)


def test_entries_and_projects_serialise_to_json(engine: Engine) -> None:
    """Outcomes, entries and projects dump to JSON, nested evidence and records included."""
    pid = engine.submit(actor=APPLICANT, data={"x": {"y": [1]}}, evidence={"k": {"z": 1}})
    outcome = engine.add_record(pid.project_id, "note", {"a": {"b": [1, 2]}}, actor=APPLICANT)
    dumped = outcome.model_dump(mode="json")
    assert dumped["entry"]["records"][0]["data"] == {"a": {"b": [1, 2]}}
    assert engine.get(pid.project_id).model_dump(mode="json")["data"]["x"] == {"y": [1]}
    assert engine.history(pid.project_id)[0].model_dump(mode="json")["evidence"] == {"k": {"z": 1}}


def test_the_engines_own_refusals_read_in_chinese_without_code() -> None:
    """lifecycle.role, lifecycle.no_edge and rule.error name no identifier in Chinese."""
    import re

    def broken(ctx: RuleContext) -> Verdict:
        raise ValueError("boom")

    engine = grantflow.open(rules=RuleBook().on("withdraw", broken), discover_rules=False)
    applicant = Actor(id="org-1", roles=frozenset({"applicant"}))
    pid = engine.submit(actor=applicant).project_id
    assert pid is not None
    role = engine.fire(pid, "approve", actor=applicant).refusals
    edge = engine.fire(pid, "close", actor=Actor(id="s", roles=frozenset({"purchaser"}))).refusals
    error = engine.fire(pid, "withdraw", actor=applicant).refusals
    assert [r.code for r in (*role, *edge, *error)] == [
        "lifecycle.role",
        "lifecycle.no_edge",
        "rule.error",
    ]
    assert role[0].message_zh == "只有购买主体可以执行评审通过"  # the lifecycle's own label
    assert edge[0].message_zh == "当前状态（已申报）不能执行结项"
    for refusal in (*role, *edge, *error):
        assert not re.search(r"[A-Za-z_]", refusal.message_zh), refusal.message_zh
    assert "boom" in error[0].message
