"""`verify`'s raw-row path on both SQL backends gives the straightforward path's report.

`SqlStore._verify_rows` hands `audit.verify` the audit, project and record rows in the
form SQLite stores them. On PostgreSQL the store reads times through ``to_char`` in UTC
and ``jsonb`` as text, and spells the JSON an entry's hash covers canonically itself
(``jsonb`` keeps values, not their spelling). These tests hold that path equal to the
straightforward one (`audit._verify_chains`, every chain through the models) on both
backends: untouched, under a session time zone other than UTC, and under random
tampering of stored values, rows and hashes (PostgreSQL; the SQLite side has its own
exhaustive tests in tests/test_verify_fast.py), each case rolled back afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Table, delete, select, update

import grantflow
from grantflow import Actor, audit
from grantflow.audit import VerifyReport, entry_hash, verify
from grantflow.models import DecisionBasis, Record
from grantflow.persistence.sql import SqlStore
from grantflow.rules import PASS, Effects, RuleBook, RuleContext, Verdict, refuse
from grantflow.states import PURCHASED_SERVICE
from grantflow.testing import FrozenClock

from .conftest import StoreFactory

APPLICANT = Actor(id="org-1", roles=frozenset({"applicant"}))
PURCHASER = Actor(id="staff-1", roles=frozenset({"purchaser"}), organisation="城市联合会")
T0 = datetime(2026, 3, 2, 9, 0, 0, 123456, tzinfo=UTC)


def _award(ctx: RuleContext) -> Effects:
    amount = str(ctx.evidence.get("amount", "300000.00"))
    return Effects(
        records=(Record(kind="contract", id="c-1", data={"amount": amount, "lines": [1, 2]}),),
        data={"amount_awarded": amount},
    )


def _eligible(ctx: RuleContext) -> Verdict:
    if ctx.project.data.get("ineligible"):
        return refuse("eligibility.test", "not eligible", "不符合条件", score=3)
    return PASS


@dataclass
class Portfolio:
    store: SqlStore
    bases: frozenset[DecisionBasis]


@pytest.fixture
def portfolio(make_store: StoreFactory) -> Portfolio:
    """Records, data, evidence, refusals, a refused submission, a clamped time, bases."""
    clock = FrozenClock(T0)
    book = RuleBook().on("submit", _eligible).on("approve", lambda _ctx: PASS)
    store = make_store()
    engine = grantflow.open(
        store, rules=book.effect("sign", _award), discover_rules=False, clock=clock
    )
    ids = [f"p-{i}" for i in range(5)]
    for n, pid in enumerate(ids):
        clock.now = T0 + timedelta(minutes=n, microseconds=n)
        engine.submit(actor=APPLICANT, project_id=pid, data={"title": f"项目 {n}", "n": n})
    engine.fire_many("approve", ids[:3], actor=PURCHASER)
    clock.now = T0 + timedelta(days=1)
    engine.fire(ids[0], "sign", actor=PURCHASER, evidence={"amount": "100000.00"})
    engine.add_record(ids[0], "note", {"text": "visit", "nested": {"a": [1]}}, actor=PURCHASER)
    clock.now = T0 - timedelta(days=30)  # behind: the entry is dated at the last change
    engine.fire(ids[3], "pass_midterm", actor=PURCHASER)  # refused: no edge from applied
    engine.fire(ids[4], "withdraw", actor=APPLICANT, evidence={"reason": "moved"})
    assert not engine.submit(
        actor=APPLICANT, project_id="refused", data={"ineligible": True}
    ).accepted
    return Portfolio(store, engine.decision_bases)


def _both(bound: SqlStore, bases: frozenset[DecisionBasis]) -> tuple[Any, Any]:
    def outcome(work: Callable[[], VerifyReport]) -> VerifyReport | str:
        try:
            return work()
        except Exception:  # a row no model accepts stops both paths alike
            return "failed"

    fast = outcome(lambda: verify(bound, lifecycle=PURCHASED_SERVICE, expect=bases))
    slow = outcome(lambda: audit._verify_chains(bound, PURCHASED_SERVICE, bases, None))
    return fast, slow


def _in_rollback(store: SqlStore, work: Callable[[sqlalchemy.Connection, SqlStore], Any]) -> Any:
    with store.engine.connect() as conn:
        transaction = conn.begin()
        try:
            return work(conn, store.bind(conn))
        finally:
            transaction.rollback()


def _counting_models(store: SqlStore, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The chains `verify` reads again through the models (its straightforward path)."""
    read: list[str] = []
    original = store._verify_models

    def counted(project_id: str) -> Any:
        read.append(project_id)
        return original(project_id)

    monkeypatch.setattr(store, "_verify_models", counted)
    return read


def test_the_raw_rows_vouch_for_every_untouched_chain(
    portfolio: Portfolio, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Untouched, no chain is read again through the models, and the report is clean."""
    read = _counting_models(portfolio.store, monkeypatch)
    report = verify(portfolio.store, lifecycle=PURCHASED_SERVICE, expect=portfolio.bases)
    assert report.ok
    assert report.entries > report.projects == 6
    assert read == []
    assert report == audit._verify_chains(portfolio.store, PURCHASED_SERVICE, portfolio.bases, None)


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"])
def test_a_session_time_zone_other_than_utc_reads_the_same_times(
    portfolio: Portfolio, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a connection set to Asia/Shanghai time, times are still read in UTC: all vouched."""
    read: list[str] = []

    def run(conn: sqlalchemy.Connection, bound: SqlStore) -> VerifyReport:
        conn.exec_driver_sql("SET TIME ZONE 'Asia/Shanghai'")
        counted = _counting_models(bound, monkeypatch)
        report = verify(bound, lifecycle=PURCHASED_SERVICE, expect=portfolio.bases)
        read.extend(counted)
        return report

    report = _in_rollback(portfolio.store, run)
    assert report.ok
    assert report.entries > 0
    assert read == []


# -- tampering on PostgreSQL ---------------------------------------------------------------

KEYS = {
    "audit": ("project_id", "seq"),
    "projects": ("id",),
    "records": ("project_id", "kind", "id"),
}
COLUMNS = {
    "audit": (
        "seq", "kind", "event", "from_state", "to_state", "accepted", "actor", "at",
        "evidence", "refusals", "records", "data", "prev_hash", "hash", "decided_under",
        "clamped_from",
    ),
    "projects": ("state", "version", "head", "data", "created_at", "updated_at"),
    "records": ("seq", "pos", "data"),
}  # fmt: skip
CHANGES = ("edit", "float", "empty", "swap", "delete")

Tamper = tuple[str, str, int, str, bool]

tampering = st.lists(
    st.tuples(
        st.sampled_from(sorted(COLUMNS)),
        st.integers(0, 20),
        st.integers(0, 1_000),
        st.sampled_from(CHANGES),
        st.booleans(),
    ).map(lambda t: (t[0], COLUMNS[t[0]][t[1] % len(COLUMNS[t[0]])], t[2], t[3], t[4])),
    min_size=1,
    max_size=3,
)


def _changed(value: Any, change: str, other: Any) -> Any:  # noqa: PLR0911 - one per type
    """`value` edited (still what grantflow could write), with a float, emptied, or `other`."""
    if change == "swap":
        return other
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, datetime):
        return value + timedelta(microseconds=1)
    if isinstance(value, dict):
        return {} if change == "empty" else {**value, "n": 1.5 if change == "float" else "x"}
    if isinstance(value, list):
        if change == "empty" or not value:
            return []
        first = value[0]
        extra = {"n": 1.5} if change == "float" else {"id": "c-2"}
        return [{**first, **extra} if isinstance(first, dict) else 1.5, *value[1:]]
    if isinstance(value, str):
        return "" if change == "empty" else value + "x"
    return {} if value is None and change != "empty" else value


def _rehash(conn: sqlalchemy.Connection, store: SqlStore, key: tuple[Any, ...]) -> None:
    """Recompute an audit row's hash from its values, as a forger writing SQL would."""
    a, p = store.tables.audit, store.tables.projects
    where = [a.c[name] == value for name, value in zip(KEYS["audit"], key, strict=True)]
    row = conn.execute(select(a).where(*where)).mappings().first()
    if row is None:
        return
    try:
        digest = entry_hash(dict(row))
    except Exception:  # not a value an entry can hold: nothing a forger could hash
        return
    conn.execute(update(a).where(*where).values(hash=digest))
    conn.execute(update(p).where(p.c.head == row["hash"]).values(head=digest))


def _apply(conn: sqlalchemy.Connection, store: SqlStore, changes: list[Tamper]) -> None:
    for name, column, pick, change, rehash in changes:
        table: Table = getattr(store.tables, name)
        keys = [table.c[k] for k in KEYS[name]]
        rows = conn.execute(select(*keys, table.c[column]).order_by(*keys)).all()
        if not rows:
            continue
        row = rows[pick % len(rows)]
        key, value = tuple(row[: len(keys)]), row[-1]
        where = [c == v for c, v in zip(keys, key, strict=True)]
        with conn.begin_nested() as savepoint:  # a value the schema refuses: not made
            try:
                if change == "delete":
                    conn.execute(delete(table).where(*where))
                else:
                    other = rows[(pick + 1) % len(rows)][-1]
                    new = _changed(value, change, other)
                    conn.execute(update(table).where(*where).values({column: new}))
            except sqlalchemy.exc.StatementError:  # refused by the database or the type
                savepoint.rollback()
                continue
        if rehash and name == "audit" and change != "delete":
            _rehash(conn, store, key)


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"])
@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(changes=tampering)
def test_tampered_postgresql_rows_give_the_straightforward_report(
    portfolio: Portfolio, changes: list[Tamper]
) -> None:
    """Values edited, given floats, emptied, swapped or deleted (hashes recomputed or not)."""

    def run(conn: sqlalchemy.Connection, bound: SqlStore) -> tuple[Any, Any]:
        _apply(conn, bound, changes)
        return _both(bound, portfolio.bases)

    fast, slow = _in_rollback(portfolio.store, run)
    assert fast == slow


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"])
def test_every_column_tampered_alone_gives_the_straightforward_report(
    portfolio: Portfolio,
) -> None:
    """Each column of three rows of each table, changed every way (audit: hash recomputed or not).

    Exhaustive over the single changes, so that none the fast path might vouch for is
    left to the random combinations above.
    """
    cases = [
        (table, column, pick, change, rehash)
        for table, columns in COLUMNS.items()
        for column in columns
        for pick in (0, 4, 9)
        for change in CHANGES
        for rehash in ((False, True) if table == "audit" else (False,))
        if change != "delete" or column == columns[0]
    ]
    differ = []
    for case in cases:

        def run(conn: sqlalchemy.Connection, bound: SqlStore) -> tuple[Any, Any]:
            _apply(conn, bound, [case])  # noqa: B023 - called at once, in the loop
            return _both(bound, portfolio.bases)

        fast, slow = _in_rollback(portfolio.store, run)
        if fast != slow:
            differ.append(case)
    assert len(cases) > 300
    assert differ == []


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"])
def test_a_float_in_hashed_jsonb_sends_the_chain_to_the_models(
    portfolio: Portfolio, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A number with a point is never written by grantflow: that chain is checked by the models.

    The forger also recomputes the hash over the float, so only the models can say what
    is wrong (the entry does not validate); the report is theirs.
    """
    read: list[str] = []

    def run(conn: sqlalchemy.Connection, bound: SqlStore) -> tuple[Any, Any]:
        a = bound.tables.audit
        where = (a.c.project_id == "p-4", a.c.seq == 2)
        conn.execute(update(a).where(*where).values(evidence={"reason": "moved", "n": 2.5}))
        _rehash(conn, bound, ("p-4", 2))
        counted = _counting_models(bound, monkeypatch)
        outcome = _both(bound, portfolio.bases)
        read.extend(counted)
        return outcome

    fast, slow = _in_rollback(portfolio.store, run)
    assert fast == slow
    assert "p-4" in read
