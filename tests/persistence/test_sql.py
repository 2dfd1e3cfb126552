"""Tests for grantflow.persistence.sql: the contract on SQLite and PostgreSQL, tampering, races."""

from __future__ import annotations

import multiprocessing
import tempfile
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Table, insert, text, update

import grantflow
from grantflow import Actor, Engine
from grantflow._canonical import MAX_STRING, plain
from grantflow.audit import entry_hash, replay, seal
from grantflow.errors import InvalidInput, ProjectNotFound, StoreError
from grantflow.models import AuditEntry
from grantflow.persistence.sql import SqlStore
from grantflow.rules import RuleBook
from grantflow.testing.job_contract import JobStoreContract
from grantflow.testing.store_contract import StoreContract, race_worker

from .conftest import OnPostgres, OnSqlite, StoreFactory, url_of

APPLICANT = Actor(id="org-1", roles=frozenset({"applicant"}))
PURCHASER = Actor(id="buyer", roles=frozenset({"purchaser"}))
EVALUATOR = Actor(id="eval", roles=frozenset({"evaluator"}))


class TestSqliteStore(OnSqlite, StoreContract):
    """The store contract on a SQLite file."""


@pytest.mark.postgres
class TestPostgresStore(OnPostgres, StoreContract):
    """The store contract on PostgreSQL, each test in its own tables."""


# -- helpers ----------------------------------------------------------------------------


def _engine(store: SqlStore, *, clock: Any = None) -> Engine:
    options: dict[str, Any] = {"rules": RuleBook(), "discover_rules": False}
    if clock is not None:
        options["clock"] = clock
    return grantflow.open(store, **options)


def _history(engine: Engine) -> str:
    """Build one project with five entries: submit, record, refused fire, approve, sign."""
    pid = engine.submit(actor=APPLICANT, data={"title": "Skills"}, project_id="p-1").project_id
    engine.add_record(pid, "review", {"score": "88"}, actor=EVALUATOR)
    engine.fire(pid, "approve", actor=APPLICANT)
    engine.fire(pid, "approve", actor=PURCHASER)
    engine.fire(pid, "sign", actor=PURCHASER)
    return pid


def _name(store: SqlStore, table: Table) -> str:
    return store.engine.dialect.identifier_preparer.format_table(table)


def _sql(store: SqlStore, statement: str, **params: Any) -> int:
    """Run plain SQL (``{audit}``/``{projects}`` name the tables); return the row count."""
    t = store.tables
    sql = statement.format(
        audit=_name(store, t.audit),
        projects=_name(store, t.projects),
        records=_name(store, t.records),
    )
    with store.engine.begin() as conn:
        return conn.execute(text(sql), params).rowcount


def _insert_entry(store: SqlStore, entry: AuditEntry) -> None:
    row = {
        k: plain(v) if k in {"actor", "refusals", "records", "decided_under"} else v
        for k, v in entry
    }
    with store.engine.begin() as conn:
        conn.execute(insert(store.tables.audit).values(row))


def _reseal(entry: AuditEntry, prev_hash: str, **changes: Any) -> AuditEntry:
    body = entry.model_dump(exclude={"hash"})
    body.update(prev_hash=prev_hash, **changes)
    body["actor"], body["refusals"], body["records"] = entry.actor, entry.refusals, entry.records
    return seal(**body)


def _problems(engine: Engine, **kwargs: Any) -> list[tuple[str, int | None]]:
    return [(p.project_id, p.seq) for p in engine.verify(**kwargs).problems]


# -- round trips ------------------------------------------------------------------------


def test_reloaded_entries_verify_their_hashes(make_store: StoreFactory) -> None:
    """After a round trip every AuditEntry hashes to its stored hash, times stay exact UTC."""
    store = make_store()
    engine = _engine(store, clock=lambda: datetime(2026, 5, 1, 8, 0, 0, 999999, tzinfo=UTC))
    pid = _history(engine)
    entries = engine.history(pid)
    assert len(entries) == 5
    assert all(entry_hash(e) == e.hash for e in entries)
    assert entries[0].at == datetime(2026, 5, 1, 8, 0, 0, 999999, tzinfo=UTC)
    assert entries[0].at.tzinfo is UTC or entries[0].at.utcoffset() == timedelta(0)
    assert engine.replay(pid) == engine.get(pid)
    assert engine.verify().ok


def test_open_accepts_url_engine_and_store(tmp_path: Path) -> None:
    """grantflow.open takes a URL, a host's sqlalchemy.Engine or an open SqlStore."""
    url = f"sqlite:///{tmp_path / 'g.db'}"
    with grantflow.open(url, rules=RuleBook(), discover_rules=False, table_prefix="gf_") as engine:
        assert isinstance(engine.store, SqlStore)
        engine.submit(actor=APPLICANT, project_id="p-1")
    host = sqlalchemy.create_engine(url)
    with grantflow.open(host, discover_rules=False, table_prefix="gf_") as engine:
        assert engine.get("p-1").state == "applied"
    with host.connect() as conn:  # the host's engine is still usable after close()
        assert conn.execute(text("SELECT count(*) FROM gf_projects")).scalar() == 1
    store = SqlStore.open(host, table_prefix="other_")
    assert grantflow.open(store, discover_rules=False).store is store
    assert list(store.projects()) == []
    store.close()
    host.dispose()


def test_table_prefixes_keep_stores_apart(make_store: StoreFactory, backend: str) -> None:
    """Two prefixes in one database are two independent stores."""
    first = make_store()
    if backend == "sqlite":
        second = SqlStore.open(first.engine, table_prefix="second_")
    else:
        second = SqlStore.open(first.engine, table_prefix="second_", schema=first.tables.schema)
    _engine(first).submit(actor=APPLICANT, project_id="p-1")
    assert second.load("p-1") is None
    assert list(second.chain_ids()) == []
    second.close()


def test_sqlite_rejects_a_schema(tmp_path: Path) -> None:
    """schema= is a PostgreSQL option; on SQLite it is refused, naming the field."""
    with pytest.raises(InvalidInput) as caught:
        SqlStore.open(f"sqlite:///{tmp_path / 'x.db'}", schema="s")
    assert caught.value.field == "schema"


def test_unsupported_databases_are_refused() -> None:
    """Only SQLite and PostgreSQL are supported; other inputs name what is wrong."""
    engine = sqlalchemy.create_engine("sqlite://")
    with pytest.raises(InvalidInput) as caught:
        SqlStore.open(42)  # type: ignore[arg-type]
    assert caught.value.field == "url"
    engine.dispose()
    with pytest.raises(StoreError):
        grantflow.open(object(), discover_rules=False)  # type: ignore[arg-type]


# -- tampering --------------------------------------------------------------------------


def test_edited_entry_is_detected(make_store: StoreFactory) -> None:
    """Editing one audit row's event with plain SQL is reported at that (project, seq)."""
    store = make_store()
    engine = _engine(store)
    pid = _history(engine)
    assert engine.verify().ok
    assert _sql(store, "UPDATE {audit} SET event = 'reject' WHERE seq = 3") == 1
    assert _problems(engine) == [(pid, 3)]


def test_edited_json_evidence_is_detected(make_store: StoreFactory, backend: str) -> None:
    """Rewriting an entry's JSON evidence with plain SQL is reported at that seq."""
    store = make_store()
    engine = _engine(store)
    pid = _history(engine)
    value = "CAST(:v AS JSONB)" if backend == "postgres" else ":v"
    _sql(store, f"UPDATE {{audit}} SET evidence = {value} WHERE seq = 2", v='{"forged": 1}')
    assert _problems(engine) == [(pid, 2)]


def test_deleted_entries_are_detected(make_store: StoreFactory) -> None:
    """Deleting a middle row (gap) or the last row (row ahead of chain) is reported."""
    store = make_store()
    engine = _engine(store)
    pid = _history(engine)
    _sql(store, "DELETE FROM {audit} WHERE seq = 5")
    assert _problems(engine) == [(pid, 5)]
    _sql(store, "DELETE FROM {audit} WHERE seq = 2")
    assert _problems(engine) == [(pid, 2)]


def test_inserted_entries_are_detected(make_store: StoreFactory) -> None:
    """A forged, correctly hashed entry inserted mid-chain or appended is reported."""
    store = make_store()
    engine = _engine(store)
    pid = _history(engine)
    entries = engine.history(pid)
    appended = _reseal(entries[-1], entries[-1].hash, seq=6, event="close", to_state="closed")
    _insert_entry(store, appended)
    assert _problems(engine) == [(pid, 6)]
    _sql(store, "DELETE FROM {audit} WHERE seq = 6")
    _sql(store, "UPDATE {audit} SET seq = seq + 1000 WHERE seq >= 2")
    _sql(store, "UPDATE {audit} SET seq = seq - 999 WHERE seq >= 1000")
    forged = _reseal(entries[1], entries[0].hash, evidence={"forged": True})
    _insert_entry(store, forged)
    # The forgery itself is self-consistent: the chain breaks at the next entry.
    assert _problems(engine) == [(pid, 3)]


def test_reordered_entries_are_detected(make_store: StoreFactory) -> None:
    """Swapping two rows' sequence numbers is reported at the first swapped seq."""
    store = make_store()
    engine = _engine(store)
    pid = _history(engine)
    _sql(store, "UPDATE {audit} SET seq = 1002 WHERE seq = 2")
    _sql(store, "UPDATE {audit} SET seq = 2 WHERE seq = 3")
    _sql(store, "UPDATE {audit} SET seq = 3 WHERE seq = 1002")
    assert _problems(engine) == [(pid, 2)]


def test_deleted_chain_of_a_project_is_detected(make_store: StoreFactory) -> None:
    """A project row whose whole chain was deleted is reported."""
    store = make_store()
    engine = _engine(store)
    pid = _history(engine)
    _sql(store, "DELETE FROM {audit} WHERE project_id = :p", p=pid)
    assert _problems(engine) == [(pid, 1)]


def _truncate_to(
    store: SqlStore, engine: Engine, pid: str, keep: int, *, drop_records: bool = True
) -> None:
    """Cut the chain to `keep` entries and make the project row agree (a careful attacker)."""
    entries = engine.history(pid)
    last = entries[keep - 1]
    kept = replay(entries[:keep])
    assert kept is not None
    _sql(store, "DELETE FROM {audit} WHERE project_id = :p AND seq > :k", p=pid, k=keep)
    if drop_records:
        _sql(store, "DELETE FROM {records} WHERE project_id = :p AND seq > :k", p=pid, k=keep)
    with store.engine.begin() as conn:
        conn.execute(
            update(store.tables.projects)
            .where(store.tables.projects.c.id == pid)
            .values(
                version=keep,
                head=last.hash,
                state=last.to_state,
                data=dict(kept.data),
                updated_at=kept.updated_at,
            )
        )


def test_truncation_after_a_checkpoint_is_detected(make_store: StoreFactory) -> None:
    """A consistent truncation passes verify() but not verify(checkpoint=...)."""
    store = make_store()
    engine = _engine(store)
    pid = _history(engine)
    checkpoint = engine.checkpoint()
    engine.fire(pid, "terminate", actor=PURCHASER, evidence={"reason": "fraud"})
    _truncate_to(store, engine, pid, keep=3)
    assert engine.verify().ok
    assert _problems(engine, checkpoint=checkpoint) == [(pid, 5)]


def test_recomputed_tail_after_a_checkpoint_is_detected(make_store: StoreFactory) -> None:
    """A tail rewritten with fresh, valid hashes passes verify() but not the checkpoint."""
    store = make_store()
    engine = _engine(store)
    pid = _history(engine)
    checkpoint = engine.checkpoint()
    entries = engine.history(pid)
    _truncate_to(store, engine, pid, keep=2, drop_records=False)
    prev = entries[1].hash
    for old in entries[2:]:
        forged = _reseal(old, prev, evidence={"rewritten": True})
        _insert_entry(store, forged)
        prev = forged.hash
    rebuilt = replay(engine.history(pid))
    assert rebuilt is not None
    with store.engine.begin() as conn:
        conn.execute(
            update(store.tables.projects)
            .where(store.tables.projects.c.id == pid)
            .values(
                version=5,
                head=prev,
                state=rebuilt.state,
                data=dict(rebuilt.data),
                updated_at=rebuilt.updated_at,
            )
        )
    assert engine.verify().ok
    report = engine.verify(checkpoint=checkpoint)
    assert [(p.project_id, p.seq, p.reason) for p in report.problems] == [
        (pid, 5, "entry rewritten")
    ]


# -- concurrency ------------------------------------------------------------------------


@pytest.mark.slow
def test_two_processes_racing_have_one_winner(make_store: StoreFactory, backend: str) -> None:
    """Two processes fire the same transition 30 times: exactly one wins each round."""
    store = make_store()
    engine = _engine(store)
    options = {"table_prefix": store.tables.prefix}
    if store.tables.schema:
        options["schema"] = store.tables.schema
    ctx = multiprocessing.get_context("spawn")
    jobs = [ctx.Queue(), ctx.Queue()]
    results = ctx.Queue()
    barrier = ctx.Barrier(2)
    workers = [
        ctx.Process(target=race_worker, args=(url_of(store), options, q, results, barrier))
        for q in jobs
    ]
    for w in workers:
        w.start()
    try:
        for _ in range(30):
            pid = engine.submit(actor=APPLICANT).project_id
            for q in jobs:
                q.put(pid)
            outcome = sorted(results.get(timeout=60) for _ in jobs)
            assert outcome == [False, True], pid
            assert engine.get(pid).state == "reviewed"
            assert engine.get(pid).version == 3
    finally:
        for q in jobs:
            q.put(None)
        for w in workers:
            w.join(timeout=30)
    assert all(w.exitcode == 0 for w in workers)
    assert engine.verify().ok


# -- replay after random histories ------------------------------------------------------

_ACTORS = st.sampled_from([APPLICANT, PURCHASER, EVALUATOR])
_EVENTS = st.sampled_from(["approve", "reject", "withdraw", "sign", "pass_midterm", "terminate"])
_STEP = st.one_of(
    st.tuples(st.just("submit"), st.integers(0, 3), _ACTORS, st.none()),
    st.tuples(st.just("fire"), st.integers(0, 3), _ACTORS, _EVENTS),
    st.tuples(st.just("record"), st.integers(0, 3), _ACTORS, st.text("abc", max_size=3)),
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(_STEP, max_size=25))
def test_replay_equals_stored_project_after_random_history(steps: list[Any]) -> None:
    """Whatever the history, replay(pid) == get(pid) for every project, and verify() passes."""
    with tempfile.TemporaryDirectory() as folder:
        engine = grantflow.open(
            f"sqlite:///{Path(folder) / 'h.db'}", rules=RuleBook(), discover_rules=False
        )
        for op, n, actor, arg in steps:
            pid = f"p-{n}"
            try:
                if op == "submit":
                    engine.submit(actor=actor, project_id=pid, data={"n": n})
                elif op == "fire":
                    engine.fire(pid, arg, actor=actor, evidence={"why": "test"})
                else:
                    engine.add_record(pid, "note", {"text": arg, "amount": "1.50"}, actor=actor)
            except (ProjectNotFound, grantflow.ProjectExists, InvalidInput):
                continue
        for project in engine.store.projects():
            assert engine.replay(project.id) == engine.get(project.id)
        assert engine.verify().ok
        engine.close()


# -- bad input --------------------------------------------------------------------------


def _row_counts(store: SqlStore) -> tuple[int, int]:
    with store.engine.connect() as conn:
        audit = conn.execute(text(f"SELECT count(*) FROM {_name(store, store.tables.audit)}"))
        projects = conn.execute(text(f"SELECT count(*) FROM {_name(store, store.tables.projects)}"))
        return int(audit.scalar_one()), int(projects.scalar_one())


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda e: e.submit(actor=APPLICANT, project_id="x" * 129), "project_id"),
        (lambda e: e.submit(actor=APPLICANT, project_id="a\nb"), "project_id"),
        (lambda e: e.submit(actor=APPLICANT, project_id=7), "project_id"),
        (lambda e: e.submit(actor="org-1"), "actor"),
        (lambda e: e.submit(actor=APPLICANT, data={"t": "x" * (MAX_STRING + 1)}), "data.t"),
        (lambda e: e.submit(actor=APPLICANT, data={"t": "a\x00b"}), "data.t"),
        (lambda e: e.submit(actor=APPLICANT, data={"amount": 1.5}), "data.amount"),
        (lambda e: e.fire("p-1", 5, actor=PURCHASER), "event"),
        (lambda e: e.fire("p-1", "approve", actor=PURCHASER, evidence=[1]), "evidence"),
        (lambda e: e.add_record("p-1", "re\tview", {}, actor=APPLICANT), "kind"),
    ],
)
def test_bad_input_names_the_field_and_writes_nothing(
    make_store: StoreFactory, call: Any, field: str
) -> None:
    """Wrong types, oversized or control-character strings: InvalidInput naming the field."""
    store = make_store()
    engine = _engine(store)
    engine.submit(actor=APPLICANT, project_id="p-1")
    before = _row_counts(store)
    with pytest.raises(InvalidInput) as caught:
        call(engine)
    assert caught.value.field == field
    assert _row_counts(store) == before


def test_unknown_project_writes_nothing(make_store: StoreFactory) -> None:
    """Firing on an unknown project raises ProjectNotFound and writes no row."""
    store = make_store()
    engine = _engine(store)
    with pytest.raises(ProjectNotFound) as caught:
        engine.fire("ghost", "approve", actor=PURCHASER)
    assert caught.value.project_id == "ghost"
    assert _row_counts(store) == (0, 0)


# -- time travel ------------------------------------------------------------------------


def test_state_at_and_counts_at_follow_the_clock(make_store: StoreFactory) -> None:
    """state_at and counts_at answer as of a date, from the audit table."""
    store = make_store()
    now = [datetime(2026, 1, 1, tzinfo=UTC)]
    engine = _engine(store, clock=lambda: now[0])
    a = engine.submit(actor=APPLICANT, project_id="a").project_id
    now[0] = datetime(2026, 2, 1, tzinfo=UTC)
    engine.submit(actor=APPLICANT, project_id="b")
    engine.fire(a, "approve", actor=PURCHASER)
    now[0] = datetime(2026, 3, 1, tzinfo=UTC)
    engine.fire(a, "sign", actor=PURCHASER)
    engine.fire("b", "reject", actor=PURCHASER)
    jan, feb, mar = (datetime(2026, m, 15, tzinfo=UTC) for m in (1, 2, 3))
    assert [engine.state_at(a, d) for d in (jan, feb, mar)] == ["applied", "reviewed", "contracted"]
    assert engine.state_at("b", jan) is None
    assert engine.counts_at(jan) == {"applied": 1}
    assert engine.counts_at(feb) == {"applied": 1, "reviewed": 1}
    assert engine.counts_at(mar) == {"contracted": 1, "rejected": 1}
    with pytest.raises(InvalidInput) as caught:
        engine.counts_at(datetime(2026, 3, 1))
    assert caught.value.field == "when"


# -- the audit log order under concurrency -----------------------------------------------


def test_log_stays_gap_free_and_append_only_with_concurrent_writers(
    make_store: StoreFactory,
) -> None:
    """4 writer threads and a sequencer: positions 0..n-1, each entry once, chains in order.

    Every log the sequencer saw while writers were committing is a prefix of the final
    one: positions are appended, never reassigned, on SQLite and on PostgreSQL.
    """
    store = make_store()
    engine = _engine(store)
    stop = threading.Event()
    snapshots: list[list[Any]] = []

    def write(worker: int) -> None:
        for i in range(20):
            pid = engine.submit(actor=APPLICANT, project_id=f"w{worker}-{i:02d}").project_id
            engine.fire(pid, "approve", actor=PURCHASER)

    def sequence() -> None:
        while not stop.is_set():
            snapshots.append(store.log_leaves(0, store.sequence_log()))

    sequencer = threading.Thread(target=sequence)
    sequencer.start()
    writers = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
    stop.set()
    sequencer.join()
    size = store.sequence_log()
    leaves = store.log_leaves(0, size)
    entries = list(store.all_entries())
    assert size == len(entries) == 160
    assert [leaf[0] for leaf in leaves] == list(range(size))
    assert {leaf[1:] for leaf in leaves} == {(e.project_id, e.seq, e.hash) for e in entries}
    by_chain: dict[str, list[int]] = {}
    for _position, pid, seq, _hash in leaves:
        by_chain.setdefault(pid, []).append(seq)
    assert all(seqs == sorted(seqs) for seqs in by_chain.values())
    assert len(snapshots) > 1
    for seen in snapshots:
        assert leaves[: len(seen)] == seen


def test_find_records_probes_the_record_key_index(tmp_path: Path) -> None:
    """Duplicate-invoice look-ups search the record-key index, never scan the records.

    Regression: find_records read the JSON of every record of the kind, so the duplicate
    invoice check grew with the number of expenditures stored.
    """
    store = SqlStore.open(f"sqlite:///{tmp_path / 'keys.db'}")
    engine = _engine(store)
    owner = Actor(id="u", roles=frozenset({"applicant"}))
    engine.submit(actor=owner, project_id="p-1", data={"title": "t"})
    for n in range(3):
        data = {"invoice_number": f"INV-{n}", "amount": "1.00"}
        engine.add_record("p-1", "expenditure", data, actor=owner)
    found = store.find_records("expenditure", "invoice_number", ["INV-1", "INV-9"])
    assert [(pid, r.data["invoice_number"]) for pid, r in found] == [("p-1", "INV-1")]
    seen: list[str] = []
    store.engine.dispose()  # new connections report every statement they run
    sqlalchemy.event.listen(
        store.engine, "connect", lambda dbapi, _record: dbapi.set_trace_callback(seen.append)
    )
    store.find_records("expenditure", "invoice_number", ["INV-1"])
    (query,) = [q for q in seen if "record" in q and q.startswith("SELECT")]
    with store.engine.connect() as conn:
        steps = [row[-1] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + query)]
    assert any("INDEX sqlite_autoindex_grantflow_record_keys" in step for step in steps), steps
    assert not any(step.startswith("SCAN") for step in steps), steps
    store.close()


class TestSqliteJobStore(OnSqlite, JobStoreContract):
    """The job-store contract on a SQLite file."""


@pytest.mark.postgres
class TestPostgresJobStore(OnPostgres, JobStoreContract):
    """The job-store contract on PostgreSQL, each test in its own tables."""
