"""Tests for grantflow.persistence._memory beyond the shared store contract."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

import grantflow
from grantflow import Actor
from grantflow.models import Entity
from grantflow.persistence import MemoryStore, Store
from grantflow.rules import RuleBook
from grantflow.testing.job_contract import JobStoreContract
from grantflow.testing.store_contract import StoreContract

APPLICANT = Actor(id="org-1", roles=frozenset({"applicant"}))
PURCHASER = Actor(id="s", roles=frozenset({"purchaser"}))


def test_memory_store_satisfies_the_protocol() -> None:
    """MemoryStore is a runtime-checkable Store."""
    assert isinstance(MemoryStore(), Store)


def test_concurrent_fires_have_exactly_one_winner() -> None:
    """Threads racing one transition: one accepted, the rest refused, chain intact."""
    store = MemoryStore()
    engine = grantflow.open(store, rules=RuleBook(), discover_rules=False)
    pid = engine.submit(actor=APPLICANT).project_id
    results: list[bool] = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        results.append(engine.fire(pid, "approve", actor=PURCHASER).accepted)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 7 + [True]
    assert engine.verify().ok
    assert engine.get(pid).version == 9


def test_queries_filter_by_state_data_and_records() -> None:
    """projects(), count_projects() and find_records() answer from memory."""
    store = MemoryStore()
    engine = grantflow.open(store, rules=RuleBook(), discover_rules=False)
    a = engine.submit(actor=APPLICANT, data={"call": "2026"}).project_id
    engine.submit(actor=APPLICANT, data={"call": "2025"})
    engine.add_record(a, "expenditure", {"invoice": "F-1"}, actor=APPLICANT)
    engine.fire(a, "reject", actor=PURCHASER)
    assert [p.id for p in store.projects(state="rejected")] == [a]
    assert store.count_projects({"call": "2026"}) == 1
    assert store.count_projects({"call": "2026"}, exclude_states={"rejected"}) == 0
    assert [pid for pid, _ in store.find_records("expenditure", "invoice", ["F-1", "F-2"])] == [a]


def test_entities_are_upserted_and_listed_by_parent() -> None:
    """put_entity replaces by (kind, id); entities() filters by parent."""
    store = MemoryStore()
    store.put_entity(Entity(kind="hub", id="city"))
    store.put_entity(Entity(kind="hub", id="d1", parent="city", data={"name": "old"}))
    store.put_entity(Entity(kind="hub", id="d1", parent="city", data={"name": "new"}))
    assert [e.id for e in store.entities("hub", parent="city")] == ["d1"]
    found = store.get_entity("hub", "d1")
    assert found is not None
    assert found.data == {"name": "new"}
    assert store.get_entity("hub", "none") is None


def test_checkpoint_leaves_are_kept() -> None:
    """A saved checkpoint's leaves come back; unknown ids give None."""
    store = MemoryStore()
    engine = grantflow.open(
        store,
        rules=RuleBook(),
        discover_rules=False,
        clock=lambda: datetime(2026, 1, 1, tzinfo=UTC),
    )
    pid = engine.submit(actor=APPLICANT).project_id
    cp = engine.checkpoint()
    assert store.checkpoint_leaves(cp.id) == [(pid, 1, engine.get(pid).head)]
    assert store.checkpoint_leaves("nope") is None


class TestMemoryStoreContract(StoreContract):
    """The store contract on the in-memory reference store."""

    @pytest.fixture
    def store(self) -> MemoryStore:
        return MemoryStore()


class TestMemoryJobStoreContract(JobStoreContract):
    """The job-store contract on the in-memory reference store."""

    @pytest.fixture
    def store(self) -> MemoryStore:
        return MemoryStore()
