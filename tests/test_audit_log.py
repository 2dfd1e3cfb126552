"""Tests for grantflow.audit's log: tree heads, inclusion and consistency proofs, check_log.

The log is every audit entry in the order `Store.sequence_log` gave them; these tests run
it on the memory store and on SQLite, tamper with it the ways an insider could, and hold
the two stores' tree heads equal for the same history.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import grantflow
from grantflow import Actor, Engine, EvidenceError
from grantflow.audit import (
    ConsistencyProof,
    TreeHead,
    check_chain,
    check_log,
    consistency_proof,
    entry_bytes,
    entry_hash,
    entry_leaf,
    hash_leaf,
    inclusion_proof,
    seal,
    tree_head,
    tree_root,
    verify_consistency,
    verify_inclusion,
)
from grantflow.errors import InvalidInput
from grantflow.persistence import MemoryStore, Store
from grantflow.persistence.sql import SqlStore
from grantflow.rules import RuleBook
from grantflow.testing import FrozenClock

APPLICANT = Actor(id="org-1", roles=frozenset({"applicant"}))
PURCHASER = Actor(id="buyer", roles=frozenset({"purchaser"}))
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """An empty store of each kind."""
    if request.param == "memory":
        yield MemoryStore()
        return
    sql = SqlStore.open(f"sqlite:///{tmp_path / 'log.db'}")
    yield sql
    sql.close()


def _engine(store: Store) -> Engine:
    return grantflow.open(store, rules=RuleBook(), discover_rules=False, clock=FrozenClock(T0))


def _work(engine: Engine, start: int, count: int) -> None:
    for i in range(start, start + count):
        pid = engine.submit(actor=APPLICANT, project_id=f"p-{i:03d}").project_id
        engine.fire(pid, "approve", actor=PURCHASER)


def test_tree_head_covers_every_entry_in_log_order(store: Store) -> None:
    """The root is the RFC 6962 tree over sha256-leaves of the entry hashes, by position."""
    engine = _engine(store)
    assert tree_head(store, at=T0).root == tree_root([]).hex()
    _work(engine, 0, 5)
    head = tree_head(store, at=T0)
    entries = sorted(store.all_entries(), key=lambda e: (e.project_id, e.seq))
    assert head.size == len(entries) == 10
    assert head.root == tree_root([hash_leaf(bytes.fromhex(e.hash)) for e in entries]).hex()
    assert [entry_leaf(e) for e in entries] == [hash_leaf(bytes.fromhex(e.hash)) for e in entries]
    assert tree_head(store, size=10, at=T0) == head
    assert tree_head(store, size=0, at=T0).root == tree_root([]).hex()
    with pytest.raises(InvalidInput):
        tree_head(store, size=11)


def test_every_entry_has_an_inclusion_proof(store: Store) -> None:
    """Each entry is proven in the head; an edited entry or another head does not verify."""
    engine = _engine(store)
    _work(engine, 0, 4)
    head = tree_head(store, at=T0)
    for entry in store.all_entries():
        proof = inclusion_proof(store, entry.project_id, entry.seq, size=head.size)
        assert verify_inclusion(entry, proof, head)
        assert len(proof.path) <= head.size.bit_length()
        edited = entry.model_copy(update={"data": {"amount": "5000000"}})
        assert entry_hash(edited) != edited.hash
        assert not verify_inclusion(edited, proof, head)
    _work(engine, 4, 1)
    later = tree_head(store, at=T0)
    first = next(iter(store.all_entries()))
    old_proof = inclusion_proof(store, first.project_id, first.seq, size=head.size)
    assert not verify_inclusion(first, old_proof, later)
    new_proof = inclusion_proof(store, first.project_id, first.seq, size=later.size)
    assert verify_inclusion(first, new_proof, later)
    with pytest.raises(InvalidInput, match="not in the first"):
        inclusion_proof(store, "p-004", 1, size=head.size)
    with pytest.raises(InvalidInput, match="not in the first"):
        inclusion_proof(store, "ghost", 1, size=later.size)


def test_later_heads_are_consistent_with_earlier_ones(store: Store) -> None:
    """Consistency proofs link each head to every later one; a fork is caught."""
    engine = _engine(store)
    heads: list[TreeHead] = [tree_head(store, at=T0)]
    for step in range(4):
        _work(engine, step * 3, step + 1)
        heads.append(tree_head(store, at=T0 + timedelta(days=step)))
    for i, old in enumerate(heads):
        for new in heads[i:]:
            proof = consistency_proof(store, old.size, new.size)
            assert verify_consistency(old, new, proof), (old.size, new.size)
    old, new = heads[2], heads[4]
    proof = consistency_proof(store, old.size, new.size)
    forged = old.model_copy(update={"root": heads[3].root})
    assert not verify_consistency(forged, new, proof)
    assert not verify_consistency(new, old, proof)
    wrong = ConsistencyProof(old_size=old.size, new_size=new.size, path=proof.path[:-1])
    assert not verify_consistency(old, new, wrong)
    with pytest.raises(InvalidInput):
        consistency_proof(store, new.size, old.size)


def test_check_log_is_clean_on_an_untouched_store(store: Store) -> None:
    """No false alarm: an untouched log matches every head taken from it."""
    engine = _engine(store)
    heads = []
    for step in range(3):
        _work(engine, step * 2, 2)
        heads.append(tree_head(store, at=T0))
    assert all(check_log(store, head) == () for head in heads)


def _rewrite_chain(store: MemoryStore, project_id: str) -> None:
    """Rewrite a whole chain consistently: new data, every hash and link recomputed."""
    prev = "0" * 64
    rewritten = []
    for entry in store.entries(project_id):
        fields = dict(entry) | {"prev_hash": prev}
        if entry.seq == 1:
            fields["data"] = {"amount_awarded": "5000000"}
        fields.pop("hash")
        new = seal(**fields)
        rewritten.append(new)
        prev = new.hash
    store._tamper(project_id, rewritten)


def test_whole_chain_rewrite_passes_the_chain_check_but_not_the_log() -> None:
    """An insider recomputing a chain defeats check_chain; the signed head still catches it."""
    store = MemoryStore()
    _work(_engine(store), 0, 3)
    head = tree_head(store, at=T0)
    _rewrite_chain(store, "p-001")
    assert check_chain("p-001", store.entries("p-001")) == (2, None)
    problems = check_log(store, head)
    assert len(problems) == 1
    assert "no longer have the checkpoint's root" in problems[0].reason
    store._tamper("p-002", list(store.entries("p-002"))[:1])
    assert "gone" in check_log(store, head)[0].reason


def _sql(store: SqlStore, statement: str) -> None:
    with store.engine.begin() as conn:
        conn.exec_driver_sql(statement)


def test_tampering_with_sql_rows_is_found(tmp_path: Path) -> None:
    """Deleted log rows, deleted entries, edited hashes and swapped positions: all found."""
    cases = {
        "DELETE FROM grantflow_audit_log WHERE position = 3": "position 3 is missing",
        "DELETE FROM grantflow_audit_log WHERE position = 9": "fewer than 10",
        "DELETE FROM grantflow_audit WHERE project_id = 'p-002' AND seq = 2": "gone",
        "UPDATE grantflow_audit SET hash = 'x' WHERE project_id = 'p-000'": "not a sha256",
        "UPDATE grantflow_audit SET hash = '"
        + "a" * 64
        + "' WHERE project_id = 'p-003' AND seq = 1": "root",
        "UPDATE grantflow_audit_log SET position = position + 100 WHERE position < 2; "
        "UPDATE grantflow_audit_log SET position = 101 - position WHERE position >= 100; "
        "UPDATE grantflow_audit_log SET position = position - 100 WHERE position >= 100": "order",
    }
    for number, (statement, reason) in enumerate(cases.items()):
        store = SqlStore.open(f"sqlite:///{tmp_path / f'{number}.db'}")
        _work(_engine(store), 0, 5)
        head = tree_head(store, at=T0)
        assert check_log(store, head) == ()
        raw = store.engine.raw_connection()
        try:
            raw.driver_connection.executescript(statement)  # type: ignore[union-attr]
        finally:
            raw.close()
        problems = check_log(store, head)
        assert len(problems) == 1, statement
        assert reason in problems[0].reason, (statement, problems)
        store.close()


def test_damaged_log_refuses_new_heads_and_proofs(tmp_path: Path) -> None:
    """A head or proof is never computed over a log with a hole: EvidenceError names it."""
    store = SqlStore.open(f"sqlite:///{tmp_path / 'hole.db'}")
    _work(_engine(store), 0, 3)
    tree_head(store, at=T0)
    _sql(store, "DELETE FROM grantflow_audit_log WHERE position = 1")
    with pytest.raises(EvidenceError) as info:
        tree_head(store)
    assert info.value.position == 1
    with pytest.raises(EvidenceError):
        inclusion_proof(store, "p-000", 1, size=6)
    store.close()


def test_entry_bytes_hash_to_the_entry_hash(store: Store) -> None:
    """entry_bytes is the exact preimage of the stored hash (for outside auditors)."""
    import hashlib

    _work(_engine(store), 0, 2)
    for entry in store.all_entries():
        assert hashlib.sha256(entry_bytes(entry)).hexdigest() == entry.hash


_OPS = st.lists(
    st.tuples(st.sampled_from(["submit", "approve", "reject", "head"]), st.integers(0, 5)),
    min_size=1,
    max_size=25,
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=_OPS)
def test_memory_and_sqlite_logs_agree_and_only_grow(
    tmp_path: Path, ops: list[tuple[str, int]]
) -> None:
    """The same history gives the same heads on both stores; each head extends the last."""
    sql = SqlStore.open(f"sqlite:///{tmp_path / f'{abs(hash(tuple(ops)))}.db'}")
    stores: list[Store] = [MemoryStore(), sql]
    heads: list[list[TreeHead]] = [[], []]
    try:
        for which, store in enumerate(stores):
            engine = _engine(store)
            for op, n in ops:
                pid = f"p-{n}"
                if op == "submit":
                    engine.submit(actor=APPLICANT, project_id=pid) if engine.store.load(
                        pid
                    ) is None else None
                elif op == "head":
                    heads[which].append(tree_head(store, at=T0))
                elif engine.store.load(pid) is not None:
                    engine.fire(pid, op, actor=PURCHASER)
            heads[which].append(tree_head(store, at=T0))
        assert heads[0] == heads[1]
        for old, new in zip(heads[1], heads[1][1:], strict=False):
            assert verify_consistency(old, new, consistency_proof(sql, old.size, new.size))
            assert check_log(sql, old) == ()
    finally:
        sql.close()


def test_sqlite_log_survives_reopening(tmp_path: Path) -> None:
    """Positions are stored: a reopened database has the same head and extends it."""
    url = f"sqlite:///{tmp_path / 'reopen.db'}"
    store = SqlStore.open(url)
    _work(_engine(store), 0, 3)
    head = tree_head(store, at=T0)
    store.close()
    again = SqlStore.open(url)
    assert tree_head(again, size=head.size, at=T0) == head
    _work(_engine(again), 3, 2)
    later = tree_head(again, at=T0)
    assert verify_consistency(head, later, consistency_proof(again, head.size, later.size))
    assert sqlalchemy.inspect(again.engine).has_table("grantflow_audit_log")
    again.close()
