"""The store contract: the tests every `Store` backend must pass.

Subclass `StoreContract` in a test module and provide a ``store`` fixture that yields
an empty store; pytest then runs every contract test against your backend::

    import pytest
    from grantflow.persistence import MemoryStore
    from grantflow.testing.store_contract import StoreContract

    class TestMemoryStore(StoreContract):
        @pytest.fixture
        def store(self):
            yield MemoryStore()

The helpers `submission` and `transition` build the `Change` objects the engine would
commit, so backend authors can write further tests in the same terms.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from grantflow._open import open as open_engine
from grantflow.audit import GENESIS, Checkpoint, entry_hash, seal
from grantflow.errors import ConcurrencyError, ProjectExists
from grantflow.models import Actor, Entity, Project, Record, Refusal
from grantflow.persistence import Change, Guard, RecordGuard, Store
from grantflow.rules import RuleBook

__all__ = [
    "APPLICANT",
    "StoreContract",
    "T0",
    "race_worker",
    "submission",
    "transition",
]

#: The time of the first change the helpers build (microseconds on purpose).
T0 = datetime(2026, 3, 1, 9, 30, 0, 123456, tzinfo=UTC)
#: The actor of the changes the helpers build.
APPLICANT = Actor(id="org-1", roles=frozenset({"applicant", "purchaser"}), organisation="hub-1")


def submission(
    project_id: str,
    *,
    accepted: bool = True,
    version: int = 0,
    prev_hash: str = GENESIS,
    data: Mapping[str, Any] | None = None,
    records: Sequence[Record] = (),
    at: datetime = T0,
    evidence: Mapping[str, Any] | None = None,
) -> Change:
    """Return the change a submission commits (`version` > 0 after refused attempts)."""
    seq = version + 1
    entry = seal(
        project_id=project_id,
        seq=seq,
        kind="submit",
        event="submit",
        from_state=None,
        to_state="applied" if accepted else None,
        accepted=accepted,
        actor=APPLICANT,
        at=at,
        evidence=evidence or {},
        refusals=()
        if accepted
        else (Refusal(code="eligibility", message="no", message_zh="否", details={"n": 1}),),
        records=[r.model_copy(update={"seq": seq}) for r in records] if accepted else (),
        data=dict(data or {}) if accepted else {},
        prev_hash=prev_hash,
    )
    after = None
    if accepted:
        after = Project(
            id=project_id,
            state="applied",
            version=seq,
            head=entry.hash,
            data=entry.data,
            records=entry.records,
            created_at=at,
            updated_at=at,
        )
    return Change(entry=entry, expected_state=None, expected_version=version, after=after)


def transition(
    project: Project,
    to_state: str,
    *,
    accepted: bool = True,
    event: str = "approve",
    records: Sequence[Record] = (),
    data: Mapping[str, Any] | None = None,
    at: datetime | None = None,
) -> Change:
    """Return the change firing `event` on `project` commits."""
    seq = project.version + 1
    when = at or project.updated_at + timedelta(seconds=1)
    new_records = tuple(r.model_copy(update={"seq": seq}) for r in records) if accepted else ()
    entry = seal(
        project_id=project.id,
        seq=seq,
        kind="record" if event.startswith("record.") else "fire",
        event=event,
        from_state=project.state,
        to_state=to_state if accepted else project.state,
        accepted=accepted,
        actor=APPLICANT,
        at=when,
        evidence={"reason": "test"},
        refusals=() if accepted else (Refusal(code="rule", message="no", message_zh="否"),),
        records=new_records,
        data=dict(data or {}) if accepted else {},
        prev_hash=project.head,
    )
    if accepted:
        after = project.model_copy(
            update={
                "state": to_state,
                "version": seq,
                "head": entry.hash,
                "data": {**project.data, **entry.data},
                "records": (*project.records, *new_records),
                "updated_at": when,
            }
        )
    else:
        after = project.model_copy(update={"version": seq, "head": entry.hash})
    return Change(
        entry=entry, expected_state=project.state, expected_version=project.version, after=after
    )


def race_worker(
    url: str, options: Mapping[str, Any], jobs: Any, results: Any, barrier: Any
) -> None:
    """Process target for race tests: fire ``approve`` on each project id `jobs` hands out.

    Opens its own engine on `url` (with store `options`), waits at `barrier` so the
    racers start together, and puts each outcome's ``accepted`` on `results`; a ``None``
    job ends it. Importable by ``spawn`` children, unlike a function in a test module.
    """
    purchaser = Actor(id="racer", roles=frozenset({"purchaser"}))
    engine = open_engine(url, rules=RuleBook(), discover_rules=False, **options)
    try:
        while (project_id := jobs.get()) is not None:
            barrier.wait()
            results.put(engine.fire(project_id, "approve", actor=purchaser).accepted)
    finally:
        engine.close()


def _loaded(store: Store, project_id: str) -> Project:
    project = store.load(project_id)
    assert project is not None, f"project {project_id!r} was not stored"
    return project


class StoreContract:
    """Contract tests for a `Store`; subclasses provide the ``store`` fixture."""

    # -- empty store ---------------------------------------------------------------------

    def test_is_a_store(self, store: Store) -> None:
        """The backend satisfies the runtime-checkable Store protocol."""
        assert isinstance(store, Store)

    def test_empty_store_answers_nothing(self, store: Store) -> None:
        """An empty store has no projects, chains, entities, checkpoints or counts."""
        assert store.load("p-1") is None
        assert store.chain_tip("p-1") == (0, GENESIS)
        assert list(store.entries("p-1")) == []
        assert list(store.chain_ids()) == []
        assert list(store.all_entries()) == []
        assert list(store.projects()) == []
        assert store.find_records("review", "reviewer", ["a"]) == []
        assert store.count_projects({}) == 0
        assert store.counts_at(T0) == {}
        assert store.get_entity("hub", "city") is None
        assert list(store.entities("hub")) == []
        assert store.entry_hash_at("p-1", 1) is None
        assert store.checkpoint_leaves("none") is None
        assert store.log_size() == 0
        assert store.log_leaves(0, 10) == []
        assert store.log_position("p-1", 1) is None
        assert store.sequence_log() == 0

    # -- submissions ---------------------------------------------------------------------

    def test_submission_stores_project_and_first_entry(self, store: Store) -> None:
        """An accepted submission creates the project row and entry 1 of its chain."""
        change = submission("p-1", data={"title": "Skills", "amount": "1200.50"})
        store.commit(change)
        assert store.load("p-1") == change.after
        assert list(store.entries("p-1")) == [change.entry]
        assert store.chain_tip("p-1") == (1, change.entry.hash)
        assert list(store.chain_ids()) == ["p-1"]
        assert store.entry_hash_at("p-1", 1) == change.entry.hash

    def test_all_entries_stream_in_project_then_sequence_order(self, store: Store) -> None:
        """all_entries yields every chain's entries, ordered by (project id, seq)."""
        for pid in ("p-b", "p-a", "p-c"):
            first = submission(pid)
            store.commit(first)
            assert first.after is not None
            store.commit(transition(first.after, "reviewed"))
        streamed = [(e.project_id, e.seq) for e in store.all_entries()]
        expected = [(pid, seq) for pid in ("p-a", "p-b", "p-c") for seq in (1, 2)]
        assert streamed == expected
        assert [e for e in store.all_entries() if e.project_id == "p-b"] == list(
            store.entries("p-b")
        )

    def test_entries_round_trip_exactly(self, store: Store) -> None:
        """Nested JSON, non-ASCII text, refusals and microsecond UTC times come back equal."""
        evidence = {
            "reviews": [{"score": "87.50", "tags": ["需求", "design"]}, {"score": "60"}],
            "note": "工会 «quoted» \\ backslash",
            "empty": {},
            "flag": True,
            "none": None,
            "big": 2**62,
        }
        refused = submission("p-1", accepted=False, evidence=evidence)
        store.commit(refused)
        accepted = submission(
            "p-1",
            version=1,
            prev_hash=refused.entry.hash,
            at=T0 + timedelta(microseconds=1),
            data={"nested": {"list": [1, [2, 3]], "text": "é"}},
            records=[Record(kind="review", id="r-1", data={"items": [{"k": "v"}]})],
        )
        store.commit(accepted)
        entries = list(store.entries("p-1"))
        assert entries == [refused.entry, accepted.entry]
        assert [entry_hash(e) for e in entries] == [e.hash for e in entries]
        assert entries[1].at == T0 + timedelta(microseconds=1)
        assert entries[1].at.utcoffset() == timedelta(0)
        assert store.load("p-1") == accepted.after

    def test_duplicate_submission_raises_project_exists(self, store: Store) -> None:
        """Submitting an id that has a project raises ProjectExists and writes nothing."""
        first = submission("p-1")
        store.commit(first)
        with pytest.raises(ProjectExists) as caught:
            store.commit(submission("p-1", version=1, prev_hash=first.entry.hash))
        assert caught.value.project_id == "p-1"
        assert list(store.entries("p-1")) == [first.entry]
        refused = submission("p-1", accepted=False, version=1, prev_hash=first.entry.hash)
        with pytest.raises(ProjectExists):
            store.commit(refused)
        assert store.chain_tip("p-1") == (1, first.entry.hash)

    def test_refused_submission_leaves_an_orphan_chain(self, store: Store) -> None:
        """A refused submission is audited but creates no project; a later one may succeed."""
        refused = submission("p-1", accepted=False)
        store.commit(refused)
        assert store.load("p-1") is None
        assert list(store.projects()) == []
        assert list(store.chain_ids()) == ["p-1"]
        assert list(store.entries("p-1")) == [refused.entry]
        assert store.counts_at(T0) == {}
        later = submission("p-1", version=1, prev_hash=refused.entry.hash)
        store.commit(later)
        assert _loaded(store, "p-1").version == 2
        assert store.chain_tip("p-1") == (2, later.entry.hash)

    def test_submission_on_a_moved_chain_conflicts(self, store: Store) -> None:
        """A submission decided on an older chain tip raises ConcurrencyError, writes nothing."""
        store.commit(submission("p-1", accepted=False))
        with pytest.raises(ConcurrencyError):
            store.commit(submission("p-1"))
        assert store.load("p-1") is None
        assert store.chain_tip("p-1")[0] == 1

    # -- transitions ---------------------------------------------------------------------

    def test_transition_compare_and_set(self, store: Store) -> None:
        """A fire on the current version commits; one on a stale version conflicts."""
        store.commit(submission("p-1"))
        project = _loaded(store, "p-1")
        fire = transition(project, "reviewed", data={"approved": "900.00"})
        store.commit(fire)
        assert store.load("p-1") == fire.after
        stale = transition(project, "rejected", event="reject")
        with pytest.raises(ConcurrencyError) as caught:
            store.commit(stale)
        assert caught.value.expected_version == 1
        assert store.load("p-1") == fire.after
        assert store.chain_tip("p-1") == (2, fire.entry.hash)

    def test_transition_from_another_state_conflicts(self, store: Store) -> None:
        """A change expecting the wrong state raises ConcurrencyError and writes nothing."""
        store.commit(submission("p-1"))
        project = _loaded(store, "p-1")
        wrong = transition(project.model_copy(update={"state": "reviewed"}), "contracted")
        with pytest.raises(ConcurrencyError):
            store.commit(wrong)
        assert store.load("p-1") == project

    def test_transition_on_unknown_project_conflicts(self, store: Store) -> None:
        """A change to a project that does not exist raises ConcurrencyError."""
        store.commit(submission("p-1"))
        ghost = _loaded(store, "p-1").model_copy(update={"id": "ghost"})
        with pytest.raises(ConcurrencyError):
            store.commit(transition(ghost, "reviewed"))
        assert list(store.entries("ghost")) == []

    def test_refused_transition_advances_version_only(self, store: Store) -> None:
        """A refused fire is chained and bumps the version; state and data stay."""
        store.commit(submission("p-1", data={"a": 1}))
        project = _loaded(store, "p-1")
        refused = transition(project, "reviewed", accepted=False)
        store.commit(refused)
        loaded = _loaded(store, "p-1")
        assert loaded == refused.after
        assert (loaded.state, loaded.version, loaded.data) == ("applied", 2, {"a": 1})

    # -- records and queries -------------------------------------------------------------

    def test_records_are_kept_in_order_and_found(self, store: Store) -> None:
        """Records come back oldest first and are found by a data field."""
        store.commit(submission("p-1", records=[Record(kind="app", id="a-1", data={"v": 1})]))
        project = _loaded(store, "p-1")
        reviews = [
            Record(kind="review", id="r-2", data={"reviewer": "bob", "score": "70"}),
            Record(kind="review", id="r-1", data={"reviewer": "amy", "score": 80}),
        ]
        fire = transition(project, "applied", event="record.review", records=reviews)
        store.commit(fire)
        loaded = _loaded(store, "p-1")
        assert [(r.kind, r.id, r.seq) for r in loaded.records] == [
            ("app", "a-1", 1),
            ("review", "r-2", 2),
            ("review", "r-1", 2),
        ]
        assert loaded == fire.after
        found = store.find_records("review", "reviewer", ["amy", "zed"])
        assert found == [("p-1", loaded.records[2])]
        assert store.find_records("review", "score", ["80"]) == found
        assert store.find_records("review", "reviewer", []) == []

    def test_all_records_stream_by_project_in_load_order(self, store: Store) -> None:
        """all_records yields every project's records, by project id, as load orders them."""
        store.commit(submission("p-2", records=[Record(kind="app", id="b", data={"v": 2})]))
        store.commit(submission("p-1", records=[Record(kind="app", id="a", data={"v": [1]})]))
        project = _loaded(store, "p-1")
        notes = [Record(kind="note", id="z", data={}), Record(kind="note", id="y", data={"k": 1})]
        store.commit(transition(project, "applied", event="record.note", records=notes))
        streamed = list(store.all_records())
        expected = [("p-1", r) for r in _loaded(store, "p-1").records]
        assert streamed == [*expected, ("p-2", _loaded(store, "p-2").records[0])]
        assert [r.id for _, r in streamed] == ["a", "z", "y", "b"]

    def test_projects_are_listed_by_state_in_id_order(self, store: Store) -> None:
        """projects() yields rows sorted by id, filtered by state, without records."""
        for pid in ["p-3", "p-1", "p-2"]:
            store.commit(submission(pid, records=[Record(kind="app", id="a", data={})]))
        store.commit(transition(_loaded(store, "p-2"), "reviewed"))
        listed = list(store.projects())
        assert [p.id for p in listed] == ["p-1", "p-2", "p-3"]
        assert all(p.records == () for p in listed)
        assert [p.id for p in store.projects(state="reviewed")] == ["p-2"]
        assert list(store.projects(state="closed")) == []

    def test_count_projects_matches_data_and_excludes_states(self, store: Store) -> None:
        """count_projects compares data values as JSON and skips excluded states."""
        store.commit(submission("p-1", data={"provider": "org-1", "call": 2026, "tags": ["a"]}))
        store.commit(submission("p-2", data={"provider": "org-1", "call": 2025}))
        store.commit(submission("p-3", data={"provider": "org-2", "call": 2026, "ok": True}))
        store.commit(transition(_loaded(store, "p-2"), "rejected", event="reject"))
        assert store.count_projects({"provider": "org-1"}) == 2
        assert store.count_projects({"provider": "org-1", "call": 2026}) == 1
        assert store.count_projects({"call": "2026"}) == 0
        assert store.count_projects({"provider": "org-1"}, exclude_states={"rejected"}) == 1
        assert store.count_projects({"ok": True}) == 1
        assert store.count_projects({"tags": ["a"]}) == 1
        assert store.count_projects({}) == 3

    def test_sum_projects_adds_decimals_exactly(self, store: Store) -> None:
        """sum_projects reads each value as a decimal (others count 0) and adds exactly."""
        rows: dict[str, dict[str, Any]] = {
            "p-1": {"call": "c", "held": "100000.10"},
            "p-2": {"call": "c", "held": "0.20", "ok": True},
            "p-3": {"call": "c", "held": 7},
            "p-4": {"call": "c", "held": "n/a"},
            "p-5": {"call": "c", "held": True},
            "p-6": {"call": "c", "held": {"a": "1"}},
            "p-7": {"call": "c"},
            "p-8": {"call": "d", "held": "5.00"},
        }
        for pid, data in rows.items():
            store.commit(submission(pid, data=data))
        store.commit(transition(_loaded(store, "p-3"), "rejected", event="reject"))
        assert store.sum_projects("held", {"call": "c"}) == Decimal("100007.30")
        assert store.sum_projects("held", {"call": "c"}, exclude_states={"rejected"}) == Decimal(
            "100000.30"
        )
        assert store.sum_projects("held", {"call": "c", "ok": True}) == Decimal("0.20")
        assert store.sum_projects("held", {}) == Decimal("100012.30")
        assert store.sum_projects("held", {"call": "none"}) == 0
        assert store.sum_projects("missing", {}) == 0

    def test_a_guarded_change_commits_only_on_the_totals_it_read(self, store: Store) -> None:
        """A change's `Guard`s hold: a count or sum that moved raises ConcurrencyError.

        The store re-reads each total inside the commit and writes nothing when one
        differs from the value the decision read; with every total as read, it commits.
        """
        rows: dict[str, dict[str, Any]] = {
            "p-1": {"call": "c", "held": "100.10"},
            "p-2": {"call": "c", "held": True, "tag": ["x"]},
            "p-3": {"call": "d", "held": "5"},
        }
        for pid, data in rows.items():
            store.commit(submission(pid, data=data))
        project = _loaded(store, "p-1")
        held = Guard("held", {"call": "c"}, frozenset({"rejected"}), Decimal("100.10"))
        count = Guard(None, {"call": "c"}, frozenset(), 2)
        tagged = Guard(None, {"tag": ["x"]}, frozenset(), 1)  # a value no index holds
        for stale in (
            replace(held, value=Decimal("100.11")),
            replace(count, value=3),
            replace(tagged, value=0),
        ):
            change = replace(transition(project, "reviewed"), guards=(stale,))
            with pytest.raises(ConcurrencyError) as caught:
                store.commit(change)
            assert caught.value.project_id == "p-1"
            assert store.load("p-1") == project
            assert store.chain_tip("p-1")[0] == 1
        change = replace(transition(project, "reviewed"), guards=(held, count, tagged))
        store.commit(change)
        assert store.load("p-1") == change.after

    def test_a_record_guard_commits_only_on_the_records_it_found(self, store: Store) -> None:
        """A `RecordGuard` holds: a look-up that finds other records now raises ConcurrencyError."""
        store.commit(submission("p-1"))
        store.commit(submission("p-2"))
        invoice = Record(kind="review", id="r1", data={"reviewer": "amy", "note": "x" * 300})
        store.commit(transition(_loaded(store, "p-2"), "reviewed", records=[invoice]))
        project = _loaded(store, "p-1")
        found = RecordGuard("review", "reviewer", ("amy", "bob"), (("p-2", "r1"),))
        nobody = RecordGuard("review", "reviewer", ("cy",), ())  # read with `found` at once
        long_text = RecordGuard("review", "note", ("x" * 300,), (("p-2", "r1"),))  # unindexed
        for guards in (
            (replace(found, value=()), nobody),
            (found, replace(nobody, value=(("p-2", "r1"),))),
            (replace(long_text, value=()),),
        ):
            with pytest.raises(ConcurrencyError):
                store.commit(replace(transition(project, "reviewed"), guards=guards))
            assert store.load("p-1") == project
        change = replace(transition(project, "reviewed"), guards=(found, nobody, long_text))
        store.commit(change)
        assert store.load("p-1") == change.after

    def test_counts_at_follow_the_audit_chain(self, store: Store) -> None:
        """counts_at gives each project's state as of a moment; refusals do not count."""
        store.commit(submission("p-1"))
        store.commit(submission("p-2", at=T0 + timedelta(hours=1)))
        p1 = _loaded(store, "p-1")
        store.commit(transition(p1, "reviewed", at=T0 + timedelta(hours=2)))
        p1 = _loaded(store, "p-1")
        store.commit(transition(p1, "contracted", accepted=False, at=T0 + timedelta(hours=3)))
        assert store.counts_at(T0 - timedelta(seconds=1)) == {}
        assert store.counts_at(T0) == {"applied": 1}
        assert store.counts_at(T0 + timedelta(hours=1)) == {"applied": 2}
        assert store.counts_at(T0 + timedelta(hours=5)) == {"applied": 1, "reviewed": 1}

    # -- reference data and checkpoints -----------------------------------------------

    def test_entities_are_upserted_and_listed(self, store: Store) -> None:
        """put_entity replaces by (kind, id); entities() lists by kind and parent, id order."""
        store.put_entity(Entity(kind="hub", id="city", data={"name": "市总工会"}))
        store.put_entity(Entity(kind="hub", id="d2", parent="city"))
        store.put_entity(Entity(kind="hub", id="d1", parent="city", data={"name": "old"}))
        store.put_entity(Entity(kind="hub", id="d1", parent="city", data={"name": "new"}))
        store.put_entity(Entity(kind="provider", id="d1"))
        assert [e.id for e in store.entities("hub")] == ["city", "d1", "d2"]
        assert [e.id for e in store.entities("hub", parent="city")] == ["d1", "d2"]
        assert store.get_entity("hub", "d1") == Entity(
            kind="hub", id="d1", parent="city", data={"name": "new"}
        )
        assert store.get_entity("provider", "d1") == Entity(kind="provider", id="d1")

    def test_checkpoints_keep_their_leaves(self, store: Store) -> None:
        """A saved checkpoint's leaves come back in order; an empty one gives []."""
        leaves = [("p-2", 3, "b" * 64), ("p-1", 1, "a" * 64)]
        store.save_checkpoint(Checkpoint(id="c1", at=T0, size=2, root="f" * 64), leaves)
        store.save_checkpoint(Checkpoint(id="c2", at=T0, size=0, root="e" * 64), [])
        assert store.checkpoint_leaves("c1") == leaves
        assert store.checkpoint_leaves("c2") == []
        assert store.checkpoint_leaves("c3") is None

    # -- the audit log order -------------------------------------------------------------

    def test_log_appends_new_entries_in_chain_order(self, store: Store) -> None:
        """sequence_log gives new entries the next positions by (project, seq); old ones stay."""
        store.commit(submission("p-2"))
        store.commit(submission("p-1"))
        store.commit(transition(_loaded(store, "p-1"), "reviewed"))
        assert store.log_size() == 0
        assert store.log_position("p-1", 1) is None
        assert store.sequence_log() == 3
        first = store.log_leaves(0, 3)
        assert [leaf[:3] for leaf in first] == [(0, "p-1", 1), (1, "p-1", 2), (2, "p-2", 1)]
        assert [leaf[3] for leaf in first] == [
            store.entry_hash_at("p-1", 1),
            store.entry_hash_at("p-1", 2),
            store.entry_hash_at("p-2", 1),
        ]
        assert store.sequence_log() == 3
        store.commit(submission("p-0", accepted=False))
        store.commit(transition(_loaded(store, "p-2"), "reviewed"))
        assert store.sequence_log() == 5
        assert store.log_size() == 5
        assert store.log_leaves(0, 3) == first
        assert [leaf[:3] for leaf in store.log_leaves(3, 99)] == [(3, "p-0", 1), (4, "p-2", 2)]
        assert [leaf[0] for leaf in store.log_leaves(1, 4)] == [1, 2, 3]
        assert store.log_position("p-2", 2) == 4
        assert store.log_position("p-2", 3) is None

    def test_engine_history_replays_and_verifies(self, store: Store) -> None:
        """Through an engine: replay equals the stored project and verify() passes."""
        engine = open_engine(store, rules=RuleBook(), discover_rules=False)
        pid = engine.submit(actor=APPLICANT, data={"amount": Decimal("100.00")}).project_id
        assert pid is not None
        engine.add_record(pid, "review", {"score": Decimal("88.5")}, actor=APPLICANT)
        engine.fire(pid, "approve", actor=APPLICANT)
        engine.fire(pid, "close", actor=APPLICANT)
        assert engine.replay(pid) == engine.get(pid)
        checkpoint = engine.checkpoint()
        report = engine.verify(checkpoint=checkpoint)
        assert report.ok, report.problems
        assert (report.projects, report.entries) == (1, 4)
