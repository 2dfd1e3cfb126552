"""Tests for grantflow.persistence._sqljobs.SeenRows: stored rows decoded once, never stale.

A bulk run reads the same projects run after run. The SQL store hands out the record it
decoded before while the row's stored text is unchanged, so the decision core's parse
cache can recognise the record too; a row changed under it is decoded afresh. Project
rows' data is decoded on every read and kept nowhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy

import grantflow
from grantflow import Actor, Engine
from grantflow._decide import decision_load
from grantflow.persistence._sqljobs import SeenRows
from grantflow.persistence.sql import SqlStore
from grantflow.rules import RuleBook

from .conftest import StoreFactory, url_of

APPLICANT = Actor(id="org-1", roles=frozenset({"applicant"}))
PURCHASER = Actor(id="staff-1", roles=frozenset({"purchaser"}))


def _engine(store: SqlStore) -> Engine:
    return grantflow.open(store, rules=RuleBook(), discover_rules=False)


def _project_with_records(engine: Engine) -> str:
    pid = "p1"
    engine.submit(actor=APPLICANT, project_id=pid, data={"title": "t"}).raise_for_refusal()
    engine.add_record(pid, "review", {"score": "81.50"}, actor=PURCHASER, record_id="r1")
    engine.add_record(pid, "note", {"text": "中文"}, actor=PURCHASER, record_id="n1")
    return pid


def test_a_reload_hands_out_the_records_it_decoded_before(make_store: StoreFactory) -> None:
    """Unchanged record rows come back as the same objects (equal, and identical)."""
    store = make_store(synchronous="NORMAL")
    pid = _project_with_records(_engine(store))
    first = store.load_many([pid])[pid]
    again = store.load_many([pid])[pid]
    assert again == first
    assert all(a is b for a, b in zip(again.records, first.records, strict=True))


def test_project_rows_are_not_kept(make_store: StoreFactory) -> None:
    """Reading projects without records keeps nothing: their data is decoded per read.

    A one-shot bulk run reads each project once; a kept dict per project only gave the
    garbage collector more to walk.
    """
    store = make_store(synchronous="NORMAL")
    engine = _engine(store)
    pids = [f"p{i}" for i in range(50)]
    engine.fire_many("submit", [(pid, {"title": pid}) for pid in pids], actor=APPLICANT)
    first = store.load_many(pids)
    again = store.load_many(pids)
    assert again == first
    assert all(again[pid].data["title"] == pid for pid in pids)
    assert len(store._seen) == 0


def test_a_later_record_keeps_the_earlier_ones_shared(make_store: StoreFactory) -> None:
    """A project that gained a record reuses its older records and decodes the new one."""
    store = make_store(synchronous="NORMAL")
    engine = _engine(store)
    pid = _project_with_records(engine)
    before = store.load_many([pid])[pid]
    engine.add_record(pid, "note", {"text": "more"}, actor=PURCHASER, record_id="n2")
    after = store.load_many([pid])[pid]
    assert [r.id for r in after.records] == ["r1", "n1", "n2"]
    assert after.records[:2] == before.records
    assert after.records[2].data == {"text": "more"}


def test_a_row_edited_under_the_store_is_read_as_stored(make_store: StoreFactory) -> None:
    """A record or project row changed by another writer is decoded afresh, never stale."""
    store = make_store(synchronous="NORMAL")
    pid = _project_with_records(_engine(store))
    store.load_many([pid])  # decoded and kept
    t = store.tables
    with store.engine.begin() as conn:
        conn.execute(
            sqlalchemy.update(t.records)
            .where(t.records.c.project_id == pid, t.records.c.id == "r1")
            .values(data={"score": "12.00"})
        )
        conn.execute(
            sqlalchemy.update(t.projects).where(t.projects.c.id == pid).values(data={"title": "x"})
        )
    edited = store.load_many([pid])[pid]
    assert edited.records[0].data == {"score": "12.00"}
    assert edited.data == {"title": "x"}
    assert store.load(pid) == edited


def test_a_bound_store_shares_what_its_store_decoded(tmp_path: object) -> None:
    """`bind` returns a store that reuses the rows its parent decoded (and adds to them)."""
    store = SqlStore.open(f"sqlite:///{tmp_path}/bound.db")
    try:
        pid = _project_with_records(_engine(store))
        first = store.load_many([pid])[pid]
        with store.engine.connect() as conn:
            bound = store.bind(conn)
            assert bound.load(pid) is not None
            assert bound.load_many([pid])[pid].records[0] is first.records[0]
    finally:
        store.close()


def test_memory_is_bounded_by_two_generations() -> None:
    """At most twice the limit is kept; a row kept in the older generation moves up on a hit."""
    seen = SeenRows(limit=3)
    records = [seen.record("p", "k", f"r{i}", f'{{"i":{i}}}', i) for i in range(10)]
    assert len(seen) <= 6
    assert seen.record("p", "k", "r9", '{"i":9}', 9) is records[9]
    assert seen.record("p", "k", "r0", '{"i":0}', 0) is not records[0]  # dropped long ago
    assert seen.record("p", "k", "r0", '{"i":0}', 0) == records[0]


def test_decoded_values_pass_through() -> None:
    """A driver that decodes JSON itself (PostgreSQL's jsonb) gets its values as they are."""
    seen = SeenRows()
    value = {"a": 1}
    assert seen.record("p", "k", "r", value, 1).data is value
    assert len(seen) == 0


def test_kept_rows_stay_under_40_mb() -> None:
    """Full of expenditure rows (both generations), the kept rows take under 40 MB.

    docs/performance.md gives the figure (34 MB, measured the same way).
    """
    import json
    import tracemalloc

    tracemalloc.start()
    try:
        seen = SeenRows()
        before = tracemalloc.get_traced_memory()[0]
        for i in range(30_000):
            data = {"date": "2025-05-01", "line": "activities", "amount": f"{i}.00"}
            data |= {"invoice_number": f"INV-{i:08d}", "voucher": f"V-{i:08d}"}
            seen.record(f"p{i // 10:06d}", "expenditure", f"e-{i}", json.dumps(data), i)
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(seen) == 20_000
    assert kept < 40_000_000


# -- a bulk chunk's read: records kept by the project's head --------------------------------


def _twin(store: SqlStore) -> SqlStore:
    """A second store on the same tables: another process, as far as `store` can tell."""
    t = store.tables
    return SqlStore.open(url_of(store), schema=t.schema, table_prefix=t.prefix)


def _traced(store: SqlStore) -> list[str]:
    """Every statement a SQLite `store` runs from now on (its connections made afresh)."""
    statements: list[str] = []
    store.engine.dispose()
    sqlalchemy.event.listen(
        store.engine, "connect", lambda dbapi, _record: dbapi.set_trace_callback(statements.append)
    )
    return statements


def _record_reads(statements: list[str]) -> list[str]:
    return [q for q in statements if q.startswith("SELECT") and "_records" in q]


def _spy_record_reads(store: SqlStore, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The project ids whose record rows `store` reads from now on."""
    read: list[str] = []
    real = store._read_records

    def spy(cursor: Any, text: str, ids: list[str]) -> Any:
        read.extend(ids)
        return real(cursor, text, ids)

    monkeypatch.setattr(store, "_read_records", spy)
    return read


def _ten_with_records(engine: Engine) -> list[str]:
    pids = [f"p{i}" for i in range(10)]
    result = engine.fire_many("submit", [(pid, {"title": pid}) for pid in pids], actor=APPLICANT)
    assert result.counts == {"applied": 10}
    for pid in pids:
        engine.add_record(pid, "note", {"text": pid}, actor=PURCHASER, record_id=f"n-{pid}")
    return pids


def test_a_bulk_chunk_reads_no_record_rows_of_projects_whose_head_it_kept(
    tmp_path: Path,
) -> None:
    """After a commit the next chunk over the same projects reads only their rows.

    Regression: every chunk read every record row of its projects again (the demo read
    97,805 record rows for 7,827 project loads, 0.52 s of its 4.6 s). Every statement
    SQLite runs is traced.
    """
    store = SqlStore.open(f"sqlite:///{tmp_path / 'kept.db'}", synchronous="NORMAL")
    try:
        engine = _engine(store)
        pids = _ten_with_records(engine)
        statements = _traced(store)
        assert engine.fire_many("approve", pids, actor=PURCHASER).counts == {"applied": 10}
        assert engine.fire_many("reject", pids, actor=PURCHASER).counts == {"applied": 10}
        assert _record_reads(statements) == []
        # What the chunks used is what the rows hold, as a store that kept nothing reads.
        other = _twin(store)
        try:
            assert store._load_chunk(pids) == other.load_many(pids) == store.load_many(pids)
        finally:
            other.close()
    finally:
        store.close()


def test_a_project_another_writer_moved_has_its_records_read_again(
    make_store: StoreFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A head the store did not keep (another process's commit) means the rows are read."""
    store = make_store(synchronous="NORMAL")
    pids = _ten_with_records(_engine(store))
    store._load_chunk(pids)
    other = _twin(store)
    try:
        _engine(other).add_record("p3", "note", {"text": "later"}, actor=PURCHASER, record_id="x")
        read = _spy_record_reads(store, monkeypatch)
        loaded = store._load_chunk(pids)
        assert read == ["p3"]
        assert [r.id for r in loaded["p3"].records] == ["n-p3", "x"]
        assert loaded == other.load_many(pids)
    finally:
        other.close()


def test_a_rolled_back_host_transaction_leaves_no_stale_records(make_store: StoreFactory) -> None:
    """What a bound store kept for a change its host rolled back is never handed out."""
    store = make_store(synchronous="NORMAL")
    pids = _ten_with_records(_engine(store))
    with store.engine.connect() as conn:
        bound = _engine(store.bind(conn))
        bound.add_record("p1", "note", {"text": "undone"}, actor=PURCHASER, record_id="u")
        assert len(store.bind(conn).load_many(["p1"])["p1"].records) == 2
        conn.rollback()
    assert store._load_chunk(pids) == store.load_many(pids)
    assert [r.id for r in store._load_chunk(["p1"])["p1"].records] == ["n-p1"]


def test_a_record_row_edited_by_hand_is_read_by_load_and_reported_by_verify(
    make_store: StoreFactory,
) -> None:
    """The documented trade-off: a chunk keeps the chain's records, `load` reads the rows.

    A record row changed under an unchanged head is not what the chain added: `load`,
    `load_many` and `Engine.get` return the row as stored, `verify` names it, and a
    decision (a bulk chunk, a single fire, a preview) on a project whose records the
    store kept (from a commit or a read before the edit) decides on those.
    """
    store = make_store(synchronous="NORMAL")
    engine = _engine(store)
    pids = _ten_with_records(engine)
    store._load_chunk(pids)
    t = store.tables
    with store.engine.begin() as conn:
        conn.execute(
            sqlalchemy.update(t.records)
            .where(t.records.c.project_id == "p2")
            .values(data={"text": "forged"})
        )
    assert store._load_chunk(["p2"])["p2"].records[0].data == {"text": "p2"}
    decided = decision_load(store, "p2")  # what a single fire or a preview decides on
    assert decided is not None
    assert decided.records[0].data == {"text": "p2"}
    assert store.load_many(["p2"])["p2"].records[0].data == {"text": "forged"}
    assert engine.get("p2").records[0].data == {"text": "forged"}
    problems = grantflow.audit.verify(store).problems
    assert [(p.project_id, p.field) for p in problems] == [("p2", "records.note/n-p2.data.text")]


def test_a_single_fire_reads_no_record_rows_of_a_project_whose_head_it_kept(
    tmp_path: Path,
) -> None:
    """One `add_record` after another on a project reads its records once, not every time.

    Regression: every single fire read all the project's record rows again, so a long
    project's own calls slowed with its records (an expenditure on a project holding
    300: 2,450 µs against 1,450 µs with 30; now 1,700 and 1,250).
    """
    store = SqlStore.open(f"sqlite:///{tmp_path / 'single.db'}", synchronous="NORMAL")
    try:
        engine = _engine(store)
        pid = _project_with_records(engine)
        statements = _traced(store)
        engine.add_record(pid, "note", {"text": "a"}, actor=PURCHASER, record_id="a")
        statements.clear()  # the first read after the reconnect may read the rows
        engine.add_record(pid, "note", {"text": "b"}, actor=PURCHASER, record_id="b")
        engine.fire(pid, "approve", actor=PURCHASER).raise_for_refusal()
        assert _record_reads(statements) == []
        assert [r.id for r in engine.get(pid).records] == ["r1", "n1", "a", "b"]
    finally:
        store.close()
