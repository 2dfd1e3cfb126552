"""Tests for grantflow.persistence._sqlwrite: the batched write path equals the one-by-one one.

`Writer.apply_batch` is the fast path of bulk runs (one ``executemany`` per kind of row);
whatever a batch holds, it must leave the tables exactly as `Writer.apply` does, change
after change, or return False (the caller then redoes the changes one by one).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

import pytest
import sqlalchemy

from grantflow.errors import ConcurrencyError
from grantflow.models import Project
from grantflow.persistence import Change, ObligationRow
from grantflow.persistence.sql import SqlStore
from grantflow.testing.job_contract import progress
from grantflow.testing.store_contract import submission, transition

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
