"""Tests for grantflow.persistence._sqlwrite: the batched write path equals the one-by-one one.

`Writer.apply_batch` is the fast path of bulk runs (one ``executemany`` per kind of row);
whatever a batch holds, it must leave the tables exactly as `Writer.apply` does, change
after change, or return False (the caller then redoes the changes one by one).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.dialects import postgresql, sqlite

from grantflow._canonical import plain
from grantflow.audit import sealed, verify
from grantflow.errors import ConcurrencyError
from grantflow.models import Actor, Project, Record, Refusal
from grantflow.persistence import Change, ObligationRow, OutboxMessage
from grantflow.persistence._sqlwrite import _Statement, _values_json
from grantflow.persistence.sql import SqlStore
from grantflow.testing.job_contract import progress
from grantflow.testing.store_contract import submission, transition
from grantflow.testing.strategies import evidence as evidence_values

from .conftest import StoreFactory

_NOW = 1_000_000.0  # leases, in seconds


class _RollbackError(Exception):
    """Raised inside a write to roll back a batch that returned False."""


def _apply_batch(store: SqlStore, changes: Sequence[Change]) -> bool:
    """Run `Writer.apply_batch` in one transaction; roll it back if it returns False."""

    def work(conn: sqlalchemy.Connection) -> bool:
        cursor = conn.connection.cursor()
        try:
            held = store._writer.apply_batch(cursor, changes)
        finally:
            cursor.close()
        if not held:
            raise _RollbackError
        return held

    try:
        return store._db.write(work)
    except _RollbackError:
        return False


def _commit_chunk(store: SqlStore, changes: Sequence[Change], key: str = "k") -> None:
    """Commit `changes` as one chunk of a bulk job (the path bulk runs take)."""
    store.job_begin(key, event="approve", digest="x", run_id="r1", now=_NOW, lease=60)
    claim = store.chunk_claim(key, 0, start=0, end=len(changes), owner="a", now=_NOW, lease=60)
    assert claim is not None
    store.commit_chunk(changes, progress(key, 0, "a", len(changes)), now=_NOW, lease=60)


def _rows(store: SqlStore, table: sqlalchemy.Table) -> list[tuple[Any, ...]]:
    """Every row of `table` as the driver returns it (JSON as stored text on SQLite)."""
    name = store.engine.dialect.identifier_preparer.format_table(table)
    keys = ", ".join(
        store.engine.dialect.identifier_preparer.quote(c.name) for c in table.primary_key.columns
    )
    with store.engine.connect() as conn:
        return [tuple(r) for r in conn.exec_driver_sql(f"SELECT * FROM {name} ORDER BY {keys}")]


def _seeded(store: SqlStore, project_id: str = "p1") -> Project:
    store.commit(submission(project_id, data={"title": "Skills"}))
    project = store.load(project_id)
    assert project is not None
    return project


def _due(project_id: str, key: str, days: int) -> ObligationRow:
    return ObligationRow(
        project_id=project_id,
        key=key,
        kind="report",
        due_on=date(2026, 6, 1) + timedelta(days=days),
        status="open",
        hub="hub-1",
        data={"key": key, "days": days},
    )


def _after(change: Change) -> Project:
    assert change.after is not None
    return change.after


# -- statements -----------------------------------------------------------------------


def test_a_row_reaches_each_driver_in_its_statements_order() -> None:
    """Values handed over in `names` order are laid out as each paramstyle binds them.

    SQLite's positional parameters in the statement's order, a literal SQLAlchemy turned
    into a parameter included; psycopg's named ones as a dict; a statement binding only
    a literal; and names that are not the statement's parameters are refused.
    """
    t = sqlalchemy.table("t", sqlalchemy.column("a"), sqlalchemy.column("b"))
    stmt = (
        sqlalchemy.update(t)
        .where(t.c.a == sqlalchemy.bindparam("w_a"))
        .values(b=sqlalchemy.func.coalesce(sqlalchemy.bindparam("n_b"), 0))
    )
    names = ("w_a", "n_b")
    assert _Statement(stmt, sqlite.dialect(), names).row(("A", "B")) == ("B", 0, "A")
    named = _Statement(stmt, postgresql.psycopg.dialect(), names).row(("A", "B"))
    assert sorted(named.values(), key=str) == [0, "A", "B"]
    assert (named["w_a"], named["n_b"]) == ("A", "B")
    plain = sqlalchemy.select(t.c.a).where(t.c.a == sqlalchemy.bindparam("w_a"))
    assert _Statement(plain, sqlite.dialect(), ("w_a",)).row(("A",)) == ("A",)
    assert _Statement(sqlalchemy.select(sqlalchemy.literal(1)), sqlite.dialect(), ()).row(()) == (
        1,
    )
    with pytest.raises(ValueError, match="binds"):
        _Statement(stmt, sqlite.dialect(), ("w_a", "n_b", "extra"))
    with pytest.raises(ValueError, match="binds"):
        _Statement(stmt, sqlite.dialect(), ("w_a",))


# -- regressions ----------------------------------------------------------------------


def test_a_project_changed_twice_in_a_chunk_keeps_only_the_last_obligations(
    make_store: StoreFactory,
) -> None:
    """Two changes to one project in one chunk leave the second change's due dates only.

    As if applied one by one: each change replaces the project's obligation rows, so the
    first change's rows (under other keys) must not survive the batch.
    """
    batched, single = make_store(), make_store()
    project = _seeded(batched)
    assert _seeded(single) == project
    first = dataclasses.replace(
        transition(project, "reviewed"),
        obligations=(_due("p1", "interim", 10), _due("p1", "final", 90)),
    )
    second = dataclasses.replace(
        transition(_after(first), "approved"), obligations=(_due("p1", "signing", 5),)
    )
    _commit_chunk(batched, [first, second])
    single.commit(first)
    single.commit(second)

    kept = _rows(batched, batched.tables.obligations)
    assert [row[1] for row in kept] == ["signing"]
    assert kept == _rows(single, single.tables.obligations)


def test_a_data_change_then_a_plain_move_of_one_project_hold_in_one_batch(
    make_store: StoreFactory,
) -> None:
    """A change rewriting a project's data, then one leaving it, both commit in one batch.

    The second change's compare-and-set expects the version the first one writes, so
    the batch must run the two updates in the changes' order; it then holds (no fallback)
    and leaves the project as applying them one by one does.
    """
    store = make_store()
    project = _seeded(store)
    first = transition(project, "reviewed", data={"score": 7})
    second = transition(_after(first), "approved")

    assert _apply_batch(store, [first, second]) is True
    assert store.load("p1") == second.after
    assert [e.seq for e in store.entries("p1")] == [1, 2, 3]


def test_a_data_change_then_a_plain_move_commit_as_one_chunk(make_store: StoreFactory) -> None:
    """Through `commit_chunk`: the two changes commit together instead of a conflict."""
    store = make_store()
    project = _seeded(store)
    first = transition(project, "reviewed", data={"score": 7})
    second = transition(_after(first), "approved")

    _commit_chunk(store, [first, second])
    loaded = store.load("p1")
    assert loaded is not None
    assert (loaded.state, loaded.version, dict(loaded.data)) == (
        "approved",
        3,
        {"title": "Skills", "score": 7},
    )


class _Counting:
    """A DBAPI cursor that counts the statements the server executes through it.

    ``executemany`` executes its statement once per row; ``COPY`` is one statement.
    """

    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor
        self.executed = 0

    def execute(self, sql: Any, params: Any = None) -> Any:
        self.executed += 1
        return self._cursor.execute(sql, params)

    def executemany(self, sql: Any, rows: Sequence[Any]) -> Any:
        self.executed += len(rows)
        return self._cursor.executemany(sql, rows)

    def copy(self, sql: Any) -> Any:
        self.executed += 1
        return self._cursor.copy(sql)

    @property
    def rowcount(self) -> int:
        return int(self._cursor.rowcount)


@pytest.mark.postgres
def test_a_postgresql_batch_is_three_statements_whatever_its_size(
    pg_url: str, pg_schema: str
) -> None:
    """On PostgreSQL a batch of plain moves runs three statements, not three per change.

    One set-based compare-and-set, one ``COPY`` of the audit rows and one of their
    outbox messages; the moves are all written (the row count of the update held).
    """
    store = SqlStore.open(pg_url, schema=pg_schema, table_prefix="three_")
    changes = [transition(_seeded(store, f"p{n}"), "reviewed") for n in range(40)]
    counting: list[_Counting] = []

    def work(conn: sqlalchemy.Connection) -> bool:
        cursor = _Counting(conn.connection.cursor())
        counting.append(cursor)
        return store._writer.apply_batch(cursor, changes)

    assert store._db.write(work) is True
    assert counting[0].executed == 3
    assert [store.load(f"p{n}").state for n in range(40)] == ["reviewed"] * 40  # type: ignore[union-attr]
    assert verify(store).ok
    store.close()


def test_a_lost_compare_and_set_in_a_batch_is_reported(make_store: StoreFactory) -> None:
    """A stale change makes the batch return False and `commit_chunk` raise a conflict."""
    store = make_store()
    project = _seeded(store)
    stale = transition(project, "reviewed")
    store.commit(transition(project, "rejected"))

    assert _apply_batch(store, [stale, transition(_seeded(store, "p2"), "reviewed")]) is False
    with pytest.raises(ConcurrencyError) as info:
        _commit_chunk(store, [stale, stale])
    assert info.value.index == 0
    loaded = store.load("p1")
    assert loaded is not None
    assert loaded.state == "rejected"


def test_a_taken_record_id_fails_the_batch_and_the_chunk_is_redone_item_by_item(
    make_store: StoreFactory,
) -> None:
    """A record whose id is taken makes the batch return False and write nothing.

    `commit_chunk` then raises a conflict at a position of the chunk (the bulk runner's
    signal to redo it item by item), and the items committed one by one go through
    `Writer.apply`: the good one commits, the bad one fails alone.
    """
    store = make_store()
    p1, p2 = _seeded(store, "p1"), _seeded(store, "p2")
    taken = Record(kind="review", id="r1", data={"score": 1})
    store.commit(transition(p2, "reviewed", records=[taken]))
    p2 = store.load("p2")
    assert p2 is not None
    good = transition(p1, "reviewed", records=[Record(kind="review", id="r1", data={"n": 2})])
    bad = transition(p2, "approved", records=[taken])

    assert _apply_batch(store, [good, bad]) is False
    with pytest.raises(ConcurrencyError) as info:
        _commit_chunk(store, [good, bad])
    assert info.value.index == 0
    assert store.load("p1") == p1  # nothing of the batch was written
    assert store.find_records("review", "n", ["2"]) == []

    store.commit_chunk([good], progress("k", 0, "a", 1), now=_NOW, lease=60)
    with pytest.raises(ConcurrencyError) as info:
        store.commit_chunk([bad], progress("k", 0, "a", 2), now=_NOW, lease=60)
    assert info.value.index == 0
    assert store.load("p1") == good.after
    assert store.load("p2") == p2
    assert [(pid, r.id) for pid, r in store.find_records("review", "n", ["2"])] == [("p1", "r1")]


# -- the batch equals one by one ------------------------------------------------------

_STATES = ("reviewed", "approved", "signed", "closed")
#: The tables a change writes to.
_WRITTEN = ("projects", "audit", "records", "record_keys", "obligations", "outbox")
# Backslashes, tabs, newlines and quotes: what PostgreSQL's COPY text must escape.
_TEXT = st.text(alphabet='aé中 x\\\t\n"\u2028', max_size=3)
_STEP = st.fixed_dictionaries(
    {
        "project": st.integers(0, 2),
        "to": st.sampled_from(_STATES),
        "accepted": st.booleans(),
        "data": st.none()
        | st.dictionaries(st.sampled_from(["score", "note"]), _TEXT | st.integers(0, 9)),
        "records": st.integers(0, 2),
        "obligations": st.none()
        | st.lists(
            st.tuples(st.sampled_from(["interim", "final", "audit"]), st.integers(0, 60)),
            max_size=3,
            unique_by=lambda due: due[0],
        ),
        "messages": st.lists(st.sampled_from(["m1", "m2", "m3"]), max_size=2, unique=True),
    }
)


def _changes(
    prefix: str, projects: dict[str, Project], steps: list[dict[str, Any]]
) -> list[Change]:
    """The changes `steps` make, each on what the project's previous change left."""
    current = dict(projects)
    ids = sorted(current)
    numbers = itertools.count()
    changes: list[Change] = []
    for step in steps:
        pid = ids[step["project"] % len(ids)]
        records = [
            Record(kind="review", id=f"r{n}", data={"score": n, "by": "eval", "ok": True})
            for n in itertools.islice(numbers, step["records"])
        ]
        change = transition(
            current[pid], step["to"], accepted=step["accepted"], data=step["data"], records=records
        )
        entry = change.entry
        messages = tuple(
            OutboxMessage(
                id=f"{prefix}{name}",
                topic="reminder",
                created_at=entry.at,
                project_id=pid,
                seq=entry.seq,
                payload={"name": name, "seq": entry.seq},
            )
            for name in step["messages"]
        )
        obligations = None
        if step["obligations"] is not None:
            obligations = tuple(_due(pid, key, days) for key, days in step["obligations"])
        change = dataclasses.replace(change, obligations=obligations, messages=messages)
        current[pid] = _after(change)
        changes.append(change)
    return changes


def test_a_batch_leaves_the_rows_applying_its_changes_one_by_one_does(
    make_store: StoreFactory, backend: str
) -> None:
    """For random changes (several per project) a batch leaves the rows one by one does.

    `apply_batch` holds, and every table holds exactly the rows `apply` writes change
    after change: states, data, audit rows, records and their keys, due dates (the last
    change's) and outbox messages in order.
    """
    # No wait for the disk on SQLite (WAL): a few hundred commits per run.
    options = {"synchronous": "NORMAL"} if backend == "sqlite" else {}
    batched, single = make_store(**options), make_store(**options)
    examples = itertools.count()

    @settings(max_examples=30, deadline=None)
    @given(projects=st.integers(1, 3), steps=st.lists(_STEP, min_size=1, max_size=8))
    def check(projects: int, steps: list[dict[str, Any]]) -> None:
        prefix = f"x{next(examples)}-"
        seeded = {}
        for n in range(projects):
            pid = f"{prefix}p{n}"
            seeded[pid] = _seeded(batched, pid)
            assert _seeded(single, pid) == seeded[pid]
        changes = _changes(prefix, seeded, steps)

        assert _apply_batch(batched, changes) is True
        for change in changes:
            single.commit(change)
        for name in _WRITTEN:
            table, twin = getattr(batched.tables, name), getattr(single.tables, name)
            assert _rows(batched, table) == _rows(single, twin), name

    check()


_TEXT = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=8)
_DETAIL = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | _TEXT
    | st.decimals(allow_nan=False, allow_infinity=False, places=2)
    | st.dates(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=120, deadline=None)
@given(
    evidence=evidence_values(max_leaves=8),
    data=evidence_values(max_leaves=8),
    details=st.dictionaries(_TEXT, _DETAIL, max_size=3),
    record_data=st.lists(evidence_values(max_leaves=6), max_size=3),
    accepted=st.booleans(),
)
def test_the_sealed_texts_are_the_audit_columns_the_writer_would_encode(
    evidence: dict[str, Any],
    data: dict[str, Any],
    details: dict[str, Any],
    record_data: list[dict[str, Any]],
    accepted: bool,
) -> None:
    """The writer puts a sealed entry's `EntryTexts` in its JSON columns as they are.

    They must be exactly what it would encode from the entry's values itself (the
    spelling every audit row had before), for any evidence, data, refusal details
    (decimals and dates included) and records: else rows written with and without them
    would differ.
    """
    refusals = (
        () if accepted else (Refusal(code="x.y", message="m", message_zh="中", details=details),)
    )
    records = [
        Record(kind="note", id=f"n{n}", data=value, seq=3) for n, value in enumerate(record_data)
    ]
    entry, texts = sealed(
        project_id="p-1",
        seq=3,
        kind="fire",
        event="approve",
        from_state="applied",
        to_state="reviewed" if accepted else "applied",
        accepted=accepted,
        actor=Actor(id="staff", roles=frozenset({"purchaser"}), organisation=None),
        at=datetime(2026, 12, 4, tzinfo=UTC),
        evidence=plain(evidence),  # JSON at the door, as the engine takes it
        refusals=refusals,
        records=records,
        data=plain(data),
        prev_hash="0" * 64,
    )
    assert texts == _values_json(entry)
