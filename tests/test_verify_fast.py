"""verify's fast path over raw SQL rows gives the same report as the straightforward path.

`audit.verify` on a SQL store reads raw rows and vouches for a chain only when every
stored value is exactly as grantflow writes it; anything else is checked again through
the store's models (`audit._verify_chains`, the straightforward path). These tests hold
the two equal on one portfolio (records, data, evidence, refusals, a refused submission,
clamped times, decision bases) under random tampering of raw values, rows and hashes,
each case inside a transaction that is rolled back afterwards: on SQLite, and on
PostgreSQL, whose rows the store reads into SQLite's form (the last part).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
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
from grantflow.persistence import _sql as sql_module
from grantflow.persistence.sql import SqlStore
from grantflow.rules import PASS, Effects, RuleBook, RuleContext, Verdict, refuse
from grantflow.states import PURCHASED_SERVICE
from grantflow.testing import FrozenClock

APPLICANT = Actor(id="org-1", roles=frozenset({"applicant"}))
PURCHASER = Actor(id="staff-1", roles=frozenset({"purchaser"}), organisation="城市联合会")
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


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


def _filled(source: str | SqlStore) -> grantflow.Engine:
    """An engine on `source` with a portfolio to verify.

    Records, data, evidence, refusals, a refused submission, clamped times, bases.
    """
    clock = FrozenClock(T0)
    book = RuleBook().on("submit", _eligible).on("approve", lambda _ctx: PASS)
    engine = grantflow.open(
        source, rules=book.effect("sign", _award), discover_rules=False, clock=clock
    )
    ids = [f"p-{i}" for i in range(8)]
    for n, pid in enumerate(ids):
        clock.now = T0 + timedelta(minutes=n)
        engine.submit(actor=APPLICANT, project_id=pid, data={"title": f"项目 {n}", "n": n})
    engine.fire_many("approve", ids[:6], actor=PURCHASER)
    for n, pid in enumerate(ids[:3]):
        clock.now = T0 + timedelta(days=1, minutes=n)
        engine.fire(pid, "sign", actor=PURCHASER, evidence={"amount": f"{100000 + n}.00"})
        engine.add_record(
            pid, "note", {"text": f"visit {n}", "nested": {"a": [n]}}, actor=PURCHASER
        )
    clock.now = T0 - timedelta(days=30)  # behind: the entry is dated at the last change
    engine.fire(ids[6], "pass_midterm", actor=PURCHASER)  # refused: no edge from applied
    engine.fire(ids[7], "withdraw", actor=APPLICANT, evidence={"reason": "moved"})
    assert not engine.submit(
        actor=APPLICANT, project_id="refused", data={"ineligible": True}
    ).accepted
    return engine


@pytest.fixture(scope="module")
def portfolio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Portfolio]:
    path: Path = tmp_path_factory.mktemp("fast") / "grants.db"
    engine = _filled(f"sqlite:///{path}")
    store = engine.store
    assert isinstance(store, SqlStore)
    yield Portfolio(store, engine.decision_bases)
    engine.close()


# -- tampering with raw values -------------------------------------------------------------

COLUMNS = {
    "audit": (
        "project_id", "seq", "kind", "event", "from_state", "to_state", "accepted", "actor",
        "at", "evidence", "refusals", "records", "data", "prev_hash", "hash", "decided_under",
        "clamped_from",
    ),
    "projects": ("id", "state", "version", "head", "data", "created_at", "updated_at"),
    "records": ("project_id", "kind", "id", "seq", "pos", "data"),
}  # fmt: skip
SWAP, RESPELL, EDIT = "<swap>", "<respell>", "<edit>"
SPECIAL: tuple[Any, ...] = (
    None, 0, 1, 2, -1, 3.0, "", "x", "p-1", "p-9", "{}", "[]", '{"a": 1}', '{"a":1.5}',
    '{"a":1,"a":2}', '{"amount_awarded":"100000.00"}', "NaN", '[{"code":"c"}]', "[1]",
    '[{"data":{},"id":"c-1","kind":"contract","seq":3}]',
    '[{"code":"c","details":{},"message":"m","message_zh":"m","rule":""}]',
    "2026-03-02 09:00:00.000000", "2026-03-02 09:00:00", "2026-03-02T09:00:00.000000",
    "2026-13-02 09:00:00.000000", "0" * 64, "submit", "fire", "record", "applied",
    "reviewed", "approve", b"bytes", SWAP, SWAP, RESPELL, RESPELL, EDIT, EDIT,
)  # fmt: skip

Tamper = tuple[str, str, int, Any, bool]

tampering = st.lists(
    st.one_of(
        st.tuples(
            st.sampled_from(sorted(COLUMNS)),
            st.integers(0, 16),
            st.integers(0, 10_000),
            st.one_of(st.sampled_from(SPECIAL), st.text(max_size=4), st.integers(-3, 40)),
            st.booleans(),
        ).map(lambda t: (t[0], COLUMNS[t[0]][t[1] % len(COLUMNS[t[0]])], t[2], t[3], t[4])),
        st.tuples(
            st.sampled_from(["delete", "orphan"]),
            st.sampled_from(sorted(COLUMNS)),
            st.integers(0, 10_000),
            st.none(),
            st.booleans(),
        ),
    ),
    max_size=3,
)


def _respelt(value: Any) -> Any:
    """The same JSON value spelt another way (or the value itself if it is not JSON text)."""
    try:
        return json.dumps(json.loads(value))  # white space after separators
    except (TypeError, ValueError):
        return value


def _edited(value: Any) -> Any:
    """A JSON text with one value changed, still canonical; other values nudged."""
    if isinstance(value, int):
        return value + 1
    try:
        loaded = json.loads(value)
    except (TypeError, ValueError):
        return value + "x" if isinstance(value, str) else value
    if isinstance(loaded, dict):
        loaded = {**loaded, "amount_awarded": "1.00"}
    elif isinstance(loaded, list) and loaded and isinstance(loaded[0], dict):
        loaded = [{**loaded[0], "id": "c-2"}, *loaded[1:]]
    return json.dumps(loaded, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _rehash(cursor: Any, table: str, rowid: int) -> None:
    """Recompute an audit row's hash over its stored text, as a forger writing SQL would.

    The project row's head follows when the entry is the chain's last.
    """
    cursor.execute(f"SELECT * FROM {table} WHERE rowid = ?", (rowid,))
    names = [d[0] for d in cursor.description]
    row = dict(zip(names, cursor.fetchone(), strict=True))

    def iso(value: Any) -> Any:
        return value.replace(" ", "T") + "Z" if isinstance(value, str) else value

    try:
        text = audit._assemble(
            row["project_id"], row["seq"], row["kind"], row["event"], row["from_state"],
            row["to_state"], bool(row["accepted"]), row["actor"], iso(row["at"]),
            iso(row["clamped_from"]), row["evidence"], row["refusals"], row["records"],
            row["data"], row["prev_hash"], row["decided_under"],
        )  # fmt: skip
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    except (TypeError, ValueError):
        return  # not text any more: nothing a forger could hash
    cursor.execute(f"UPDATE {table} SET hash = ? WHERE rowid = ?", (digest, rowid))
    projects = table.removesuffix("audit") + "projects"
    cursor.execute(f"UPDATE {projects} SET head = ? WHERE head = ?", (digest, row["hash"]))


def _apply(conn: sqlalchemy.Connection, store: SqlStore, changes: list[Tamper]) -> None:
    cursor = conn.connection.cursor()
    tables = {"audit": store.tables.audit.name, "projects": store.tables.projects.name}
    tables["records"] = store.tables.records.name
    # Foreign keys checked at commit (never: rolled back), once the transaction is open.
    cursor.execute(f"UPDATE {tables['projects']} SET id = id WHERE 0")
    cursor.execute("PRAGMA defer_foreign_keys = ON")
    for what, column, pick, value, rehash in changes:
        if what in ("delete", "orphan"):
            table = tables[column]
            rowids = [r[0] for r in cursor.execute(f"SELECT rowid FROM {table} ORDER BY rowid")]
            if not rowids:
                continue
            rowid = rowids[pick % len(rowids)]
            if what == "delete":
                cursor.execute(f"DELETE FROM {table} WHERE rowid = ?", (rowid,))
            else:  # a record row of no project (or another row of one that exists)
                cursor.execute(
                    f"INSERT OR IGNORE INTO {tables['records']} "
                    "(project_id, kind, id, seq, pos, data) "
                    "VALUES (?, 'note', ?, 1, 0, '{\"text\":\"stray\"}')",
                    (f"p-{'zab'[pick % 3]}{pick % 5}", f"n-{pick}"),
                )
            continue
        table = tables[what]
        rows = list(cursor.execute(f"SELECT rowid, {column} FROM {table} ORDER BY rowid"))
        if value in (RESPELL, EDIT):  # rows where there is something to re-spell or edit
            rows = [r for r in rows if r[1] not in (None, "{}", "[]")] or rows
        rowid, current = rows[pick % len(rows)]
        new = value
        if value == SWAP:
            new = rows[(pick // len(rows) + 1 + pick) % len(rows)][1]
        elif value == RESPELL:
            new = _respelt(current)
        elif value == EDIT:
            new = _edited(current)
        try:
            cursor.execute(f"UPDATE {table} SET {column} = ? WHERE rowid = ?", (new, rowid))
        except sqlite3.Error:  # a key taken twice, JSON a trigger cannot read: not made
            continue
        if rehash and what == "audit":
            _rehash(cursor, table, rowid)
    cursor.close()


def _outcome(work: Callable[[], VerifyReport]) -> VerifyReport | str:
    # A row no model accepts stops both paths. Which error comes first may differ when
    # several rows are unreadable (the straightforward path decodes a page of rows
    # before it validates any), so only the failure itself is compared.
    try:
        return work()
    except Exception:  # the two paths must fail alike
        return "failed"


def _in_rollback(store: SqlStore, work: Callable[[sqlalchemy.Connection, SqlStore], Any]) -> Any:
    with store.engine.connect() as conn:
        transaction = conn.begin()
        try:
            return work(conn, store.bind(conn))
        finally:
            transaction.rollback()


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(changes=tampering, strict=st.booleans())
def test_fast_and_straightforward_paths_give_the_same_report(
    portfolio: Portfolio, changes: list[Tamper], strict: bool
) -> None:
    """Random raw tampering (values, rows, re-spelt JSON, recomputed hashes): same report."""
    lifecycle = PURCHASED_SERVICE if strict else None
    known = portfolio.bases if strict else None

    def both(conn: sqlalchemy.Connection, bound: SqlStore) -> tuple[Any, Any]:
        _apply(conn, bound, changes)
        fast = _outcome(lambda: verify(bound, lifecycle=lifecycle, expect=known))
        slow = _outcome(lambda: audit._verify_chains(bound, lifecycle, known, None))
        return fast, slow

    fast, slow = _in_rollback(portfolio.store, both)
    assert fast == slow


@pytest.mark.slow
def test_every_value_edited_or_respelt_gives_the_same_report(portfolio: Portfolio) -> None:
    """Each stored value in turn, edited, re-spelt or emptied (hash recomputed or not): same report.

    Exhaustive over every column of every audit, project and record row, so that no
    single-value change the fast path might vouch for is left to chance.
    """
    store = portfolio.store
    counts = {}
    with store.engine.connect() as conn:
        for table in COLUMNS:
            name = getattr(store.tables, table).name
            counts[table] = conn.exec_driver_sql(f"SELECT count(*) FROM {name}").scalar_one()
    cases = [
        (table, column, pick, value, rehash)
        for table, columns in COLUMNS.items()
        for column in columns
        for pick in range(counts[table])
        for value, rehash in ((EDIT, False), (EDIT, True), (RESPELL, True), (None, True))
        if table == "audit" or not rehash
    ]
    differ = []
    for case in cases:

        def both(conn: sqlalchemy.Connection, bound: SqlStore) -> tuple[Any, Any]:
            _apply(conn, bound, [case])  # noqa: B023 - called at once, in the loop
            fast = _outcome(
                lambda: verify(bound, lifecycle=PURCHASED_SERVICE, expect=portfolio.bases)
            )
            slow = _outcome(
                lambda: audit._verify_chains(bound, PURCHASED_SERVICE, portfolio.bases, None)
            )
            return fast, slow

        fast, slow = _in_rollback(store, both)
        if fast != slow:
            differ.append(case)
    assert len(cases) > 1000
    assert differ == []


def test_the_fast_path_vouches_for_every_untouched_chain(
    portfolio: Portfolio, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Untouched, no chain is read again through the models, and the report is clean."""
    read: list[str] = []
    original = portfolio.store._verify_models

    def counted(project_id: str) -> Any:
        read.append(project_id)
        return original(project_id)

    monkeypatch.setattr(portfolio.store, "_verify_models", counted)
    report = verify(portfolio.store, lifecycle=PURCHASED_SERVICE, expect=portfolio.bases)
    assert report.ok
    assert report == audit._verify_chains(portfolio.store, PURCHASED_SERVICE, portfolio.bases, None)
    assert report.entries > report.projects == 9
    assert read == []


def test_json_respelt_and_rehashed_is_a_hash_mismatch(portfolio: Portfolio) -> None:
    """A forger who re-spells a chain's last entry and hashes the stored text is caught.

    The hash covers the canonical encoding, not the stored text: the fast path hashes
    the stored text only after checking it is canonical. Here the last entry's records
    are re-spelt with white space, its hash recomputed over that text and the project
    row's head moved along.
    """

    def run(conn: sqlalchemy.Connection, bound: SqlStore) -> VerifyReport:
        cursor = conn.connection.cursor()
        table = bound.tables.audit.name
        rowid, records = cursor.execute(
            f"SELECT rowid, records FROM {table} WHERE project_id = 'p-0' ORDER BY seq DESC"
        ).fetchone()
        respelt = json.dumps(json.loads(records), ensure_ascii=False)
        assert respelt != records
        cursor.execute(f"UPDATE {table} SET records = ? WHERE rowid = ?", (respelt, rowid))
        _rehash(cursor, table, rowid)
        cursor.close()
        return verify(bound)

    report = _in_rollback(portfolio.store, run)
    assert [(p.project_id, p.seq, p.reason) for p in report.problems] == [
        ("p-0", 4, "hash mismatch")
    ]


def test_progress_counts_every_entry_once(portfolio: Portfolio) -> None:
    """The fast path reports progress as the straightforward path does."""
    fast: list[int] = []
    slow: list[int] = []
    report = verify(portfolio.store, progress=fast.append)
    audit._verify_chains(portfolio.store, None, None, slow.append)
    assert fast == slow
    assert sum(fast) == report.entries


# -- PostgreSQL: the store reads its rows into the form SQLite stores ----------------------
#
# `SqlStore._verify_rows` reads times through ``to_char`` in UTC and ``jsonb`` as text, and
# spells the JSON an entry's hash covers canonically itself (``jsonb`` keeps values, not
# their spelling). The tests below hold that path to the straightforward one: untouched,
# under a session time zone other than UTC, and tampered (every column alone, and random
# combinations), with SQLAlchemy rather than SQLite's rowid.


@pytest.fixture(scope="module")
def pg_portfolio(pg_url: str, pg_schema: str) -> Iterator[Portfolio]:
    store = SqlStore.open(pg_url, schema=pg_schema, table_prefix=f"t{uuid.uuid4().hex[:8]}_")
    engine = _filled(store)
    yield Portfolio(store, engine.decision_bases)
    engine.close()
    store.close()


def _both(bound: SqlStore, bases: frozenset[DecisionBasis]) -> tuple[Any, Any]:
    def outcome(work: Callable[[], VerifyReport]) -> VerifyReport | str:
        try:
            return work()
        except Exception:  # a row no model accepts stops both paths alike
            return "failed"

    fast = outcome(lambda: verify(bound, lifecycle=PURCHASED_SERVICE, expect=bases))
    slow = outcome(lambda: audit._verify_chains(bound, PURCHASED_SERVICE, bases, None))
    return fast, slow


def _counting_models(store: SqlStore, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The chains `verify` reads again through the models (its straightforward path)."""
    read: list[str] = []
    original = store._verify_models

    def counted(project_id: str) -> Any:
        read.append(project_id)
        return original(project_id)

    monkeypatch.setattr(store, "_verify_models", counted)
    return read


@pytest.mark.postgres
def test_postgresql_rows_untouched_are_all_vouched_for(
    pg_portfolio: Portfolio, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL too, untouched, no chain is read through the models; the report is clean."""
    read = _counting_models(pg_portfolio.store, monkeypatch)
    report = verify(pg_portfolio.store, lifecycle=PURCHASED_SERVICE, expect=pg_portfolio.bases)
    assert report.ok
    assert report.entries > report.projects == 9
    assert read == []
    assert report == audit._verify_chains(
        pg_portfolio.store, PURCHASED_SERVICE, pg_portfolio.bases, None
    )


@pytest.mark.postgres
def test_a_session_time_zone_other_than_utc_reads_the_same_times(
    pg_portfolio: Portfolio, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a connection set to Asia/Shanghai time, times are still read in UTC: all vouched."""
    read: list[str] = []

    def run(conn: sqlalchemy.Connection, bound: SqlStore) -> VerifyReport:
        conn.exec_driver_sql("SET TIME ZONE 'Asia/Shanghai'")
        counted = _counting_models(bound, monkeypatch)
        report = verify(bound, lifecycle=PURCHASED_SERVICE, expect=pg_portfolio.bases)
        read.extend(counted)
        return report

    report = _in_rollback(pg_portfolio.store, run)
    assert report.ok
    assert report.entries > 0
    assert read == []


# -- PostgreSQL pg_tampering ---------------------------------------------------------------

PG_KEYS = {
    "audit": ("project_id", "seq"),
    "projects": ("id",),
    "records": ("project_id", "kind", "id"),
}
PG_COLUMNS = {
    "audit": (
        "seq", "kind", "event", "from_state", "to_state", "accepted", "actor", "at",
        "evidence", "refusals", "records", "data", "prev_hash", "hash", "decided_under",
        "clamped_from",
    ),
    "projects": ("state", "version", "head", "data", "created_at", "updated_at"),
    "records": ("seq", "pos", "data"),
}  # fmt: skip
PG_CHANGES = ("edit", "float", "empty", "swap", "delete")

PgTamper = tuple[str, str, int, str, bool]

pg_tampering = st.lists(
    st.tuples(
        st.sampled_from(sorted(PG_COLUMNS)),
        st.integers(0, 20),
        st.integers(0, 1_000),
        st.sampled_from(PG_CHANGES),
        st.booleans(),
    ).map(lambda t: (t[0], PG_COLUMNS[t[0]][t[1] % len(PG_COLUMNS[t[0]])], t[2], t[3], t[4])),
    min_size=1,
    max_size=3,
)


def _pg_changed(value: Any, change: str, other: Any) -> Any:  # noqa: PLR0911 - one per type
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


def _pg_rehash(conn: sqlalchemy.Connection, store: SqlStore, key: tuple[Any, ...]) -> None:
    """Recompute an audit row's hash from its values, as a forger writing SQL would."""
    a, p = store.tables.audit, store.tables.projects
    where = [a.c[name] == value for name, value in zip(PG_KEYS["audit"], key, strict=True)]
    row = conn.execute(select(a).where(*where)).mappings().first()
    if row is None:
        return
    try:
        digest = entry_hash(dict(row))
    except Exception:  # not a value an entry can hold: nothing a forger could hash
        return
    conn.execute(update(a).where(*where).values(hash=digest))
    conn.execute(update(p).where(p.c.head == row["hash"]).values(head=digest))


def _pg_apply(conn: sqlalchemy.Connection, store: SqlStore, changes: list[PgTamper]) -> None:
    for name, column, pick, change, rehash in changes:
        table: Table = getattr(store.tables, name)
        keys = [table.c[k] for k in PG_KEYS[name]]
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
                    new = _pg_changed(value, change, other)
                    conn.execute(update(table).where(*where).values({column: new}))
            except sqlalchemy.exc.StatementError:  # refused by the database or the type
                savepoint.rollback()
                continue
        if rehash and name == "audit" and change != "delete":
            _pg_rehash(conn, store, key)


@pytest.mark.postgres
@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(changes=pg_tampering)
def test_tampered_postgresql_rows_give_the_straightforward_report(
    pg_portfolio: Portfolio, changes: list[PgTamper]
) -> None:
    """Values edited, given floats, emptied, swapped or deleted (hashes recomputed or not)."""

    def run(conn: sqlalchemy.Connection, bound: SqlStore) -> tuple[Any, Any]:
        _pg_apply(conn, bound, changes)
        return _both(bound, pg_portfolio.bases)

    fast, slow = _in_rollback(pg_portfolio.store, run)
    assert fast == slow


@pytest.mark.slow
@pytest.mark.postgres
def test_every_column_tampered_alone_gives_the_straightforward_report(
    pg_portfolio: Portfolio,
) -> None:
    """Each column of three rows of each table, changed every way (audit: hash recomputed or not).

    Exhaustive over the single changes, so that none the fast path might vouch for is
    left to the random combinations above.
    """
    cases = [
        (table, column, pick, change, rehash)
        for table, columns in PG_COLUMNS.items()
        for column in columns
        for pick in (0, 4, 9)
        for change in PG_CHANGES
        for rehash in ((False, True) if table == "audit" else (False,))
        if change != "delete" or column == columns[0]
    ]
    differ = []
    for case in cases:

        def run(conn: sqlalchemy.Connection, bound: SqlStore) -> tuple[Any, Any]:
            _pg_apply(conn, bound, [case])  # noqa: B023 - called at once, in the loop
            return _both(bound, pg_portfolio.bases)

        fast, slow = _in_rollback(pg_portfolio.store, run)
        if fast != slow:
            differ.append(case)
    assert len(cases) > 300
    assert differ == []


@pytest.mark.postgres
def test_a_float_in_hashed_jsonb_sends_the_chain_to_the_models(
    pg_portfolio: Portfolio, monkeypatch: pytest.MonkeyPatch
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
        _pg_rehash(conn, bound, ("p-4", 2))
        counted = _counting_models(bound, monkeypatch)
        outcome = _both(bound, pg_portfolio.bases)
        read.extend(counted)
        return outcome

    fast, slow = _in_rollback(pg_portfolio.store, run)
    assert fast == slow
    assert "p-4" in read


@pytest.mark.postgres
def test_postgresql_reads_each_table_with_one_query(
    pg_portfolio: Portfolio, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The audit, project and record tables are each read by one query, however many pages.

    Pages of four rows here. A query a page is planned again every page, and before
    autovacuum has analysed a freshly filled table each of those plans scans and sorts
    the whole table; one server-side cursor is planned once.
    """
    monkeypatch.setattr(sql_module, "_PAGE", 1)
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    engine = pg_portfolio.store.engine
    sqlalchemy.event.listen(engine, "before_cursor_execute", seen)
    try:
        report = verify(pg_portfolio.store)
    finally:
        sqlalchemy.event.remove(engine, "before_cursor_execute", seen)
    assert report.ok
    assert report.entries > 4 * 3
    tables = pg_portfolio.store.tables
    for table in (tables.audit, tables.projects, tables.records):
        reads = [s for s in statements if table.name in s and "ORDER BY" in s]
        assert len(reads) == 1, (table.name, reads)
