"""`Engine.projects`: filters, order, keyset pages; SQL equals memory (a property test)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import grantflow
from grantflow.errors import InvalidInput
from grantflow.models import Entity, Project
from grantflow.persistence import Change, MemoryStore, Store
from grantflow.persistence.sql import SqlStore
from grantflow.rules import RuleBook
from grantflow.testing.store_contract import T0, submission, transition

STATES = ("applied", "reviewed", "rejected")
ORDERS = ("id", "-id", "updated_at", "-updated_at", "created_at", "-created_at")


# -- portfolios ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Portfolio:
    """Hubs (id, parent) and the changes that build the projects, for any store."""

    hubs: list[tuple[str, str | None]]
    changes: list[Change]

    def load(self, store: Store) -> grantflow.Engine:
        for hub, parent in self.hubs:
            store.put_entity(Entity(kind="hub", id=hub, parent=parent))
        for change in self.changes:
            store.commit(change)
        return grantflow.open(store, rules=RuleBook(), discover_rules=False)


@st.composite
def portfolios(draw: st.DrawFn) -> Portfolio:
    """A hub tree and up to 14 projects with random data, states and (tied) times."""
    hubs: list[tuple[str, str | None]] = []
    for i in range(draw(st.integers(1, 6))):
        parent = draw(st.none() | st.sampled_from([h for h, _ in hubs])) if hubs else None
        hubs.append((f"h{i}", parent))
    hub_ids = [h for h, _ in hubs]
    changes: list[Change] = []
    count = draw(st.integers(0, 14))
    for i in range(count):
        data: dict[str, Any] = {}
        for key, values in (
            ("hub", [*hub_ids, "elsewhere", 7]),
            ("call", ["c1", "c2"]),
            ("brand", ["heart", "skills"]),
            ("provider", ["org-1", "org-2", "org-3"]),
            ("year", [2025, 2026, "2026"]),
        ):
            if draw(st.booleans()):
                data[key] = draw(st.sampled_from(values))
        at = T0 + timedelta(seconds=draw(st.integers(0, 4)))  # ties on purpose
        first = submission(f"p-{i:02d}", data=data, at=at)
        changes.append(first)
        assert first.after is not None
        moves = draw(st.sampled_from([(), ("reviewed",), ("rejected",)]))
        for state in moves:
            when = at + timedelta(seconds=draw(st.integers(0, 4)))
            changes.append(transition(first.after, state, at=when))
    return Portfolio(hubs, changes)


@st.composite
def filters(draw: st.DrawFn) -> dict[str, Any]:
    """Any combination of the filters, an order and a page size."""
    found: dict[str, Any] = {
        "order": draw(st.sampled_from(ORDERS)),
        "limit": draw(st.integers(1, 5)),
    }
    options: dict[str, st.SearchStrategy[Any]] = {
        "state": st.sampled_from(STATES),
        "hub": st.sampled_from(["h0", "h1", "h2", "elsewhere", "none"]),
        "subtree": st.sampled_from(["h0", "h1", "h3", "none"]),
        "call": st.sampled_from(["c1", "c2"]),
        "brand": st.sampled_from(["heart", "skills"]),
        "provider": st.sampled_from(["org-1", "org-2"]),
        "year": st.sampled_from([2025, 2026]),
        "updated_since": st.integers(0, 8).map(lambda s: T0 + timedelta(seconds=s)),
    }
    for name, strategy in options.items():
        if draw(st.integers(0, 3)) == 0:
            found[name] = draw(strategy)
    return found


def every_page(engine: grantflow.Engine, **query: Any) -> list[str]:
    """Ids of every page of a query, following the cursors."""
    page = engine.projects(**query)
    ids = [p.id for p in page]
    while page.cursor is not None:
        page = engine.projects(**query, cursor=page.cursor)
        assert len(page) >= 1
        ids += [p.id for p in page]
    return ids


def reference(store: Store, hubs: list[tuple[str, str | None]], **query: Any) -> list[str]:
    """The expected ids, computed naively from every project and the hub list."""
    below: dict[str | None, list[str]] = {}
    for hub, parent in hubs:
        below.setdefault(parent, []).append(hub)

    def tree(root: str) -> set[str]:
        found = {root}
        for child in below.get(root, []):
            found |= tree(child)
        return found

    def keep(p: Project) -> bool:
        data = p.data
        checks = [
            "state" not in query or p.state == query["state"],
            "year" not in query
            or (type(data.get("year")) is int and data.get("year") == query["year"]),
            "updated_since" not in query or p.updated_at >= query["updated_since"],
            "subtree" not in query
            or (isinstance(data.get("hub"), str) and data["hub"] in tree(query["subtree"])),
        ]
        for key in ("hub", "call", "brand", "provider"):
            if key in query:
                checks.append(isinstance(data.get(key), str) and data[key] == query[key])
        return all(checks)

    order = query.get("order", "id")
    column = order.removeprefix("-")
    rows = sorted(
        (p for p in store.projects() if keep(p)),
        key=lambda p: (getattr(p, column), p.id),
        reverse=order.startswith("-"),
    )
    return [p.id for p in rows]


PROPERTY = settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@PROPERTY
@given(portfolio=portfolios(), queries=st.lists(filters(), min_size=1, max_size=6))
def test_sqlite_pages_equal_memory_pages(
    portfolio: Portfolio, queries: list[dict[str, Any]]
) -> None:
    """Random portfolios × random filters: SQLite's pages are the memory store's, and right."""
    memory_store = MemoryStore()
    memory = portfolio.load(memory_store)
    sqlite = portfolio.load(SqlStore.open("sqlite://"))
    try:
        for query in queries:
            expected = reference(memory_store, portfolio.hubs, **query)
            assert every_page(memory, **query) == expected, query
            assert every_page(sqlite, **query) == expected, query
    finally:
        sqlite.close()


@pytest.mark.postgres
@settings(PROPERTY, max_examples=8)
@given(portfolio=portfolios(), queries=st.lists(filters(), min_size=2, max_size=8))
def test_postgres_pages_equal_memory_pages(
    pg_url: str, pg_schema: str, portfolio: Portfolio, queries: list[dict[str, Any]]
) -> None:
    """Random portfolios × random filters: PostgreSQL's pages are the memory store's."""
    memory = portfolio.load(MemoryStore())
    store = SqlStore.open(pg_url, schema=pg_schema, table_prefix=f"q{uuid.uuid4().hex[:8]}_")
    postgres = portfolio.load(store)
    try:
        for query in queries:
            assert every_page(postgres, **query) == every_page(memory, **query), query
    finally:
        with store.engine.begin() as conn:
            for table in reversed(store.tables.metadata.sorted_tables):
                conn.execute(sa.text(f'DROP TABLE "{pg_schema}"."{table.name}"'))
        postgres.close()


# -- the API ------------------------------------------------------------------------------------


@pytest.fixture(params=["memory", "sqlite"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[grantflow.Engine]:
    """Five projects of two calls on a memory store or a SQLite file."""
    store: Store = (
        MemoryStore()
        if request.param == "memory"
        else SqlStore.open(f"sqlite:///{tmp_path / 'q.db'}")
    )
    changes = [
        submission(f"p-{i}", data={"call": f"c{i % 2}", "hub": "h0"}, at=T0 + timedelta(hours=i))
        for i in range(5)
    ]
    with Portfolio([("h0", None)], changes).load(store) as opened:
        yield opened


def test_a_page_carries_a_cursor_until_the_last(engine: grantflow.Engine) -> None:
    """Limit rows per page; the cursor is None on the last page; pages never overlap."""
    first = engine.projects(limit=2, order="-created_at")
    assert [p.id for p in first] == ["p-4", "p-3"]
    assert first.cursor is not None
    second = engine.projects(limit=2, order="-created_at", cursor=first.cursor)
    third = engine.projects(limit=2, order="-created_at", cursor=second.cursor)
    assert [p.id for p in second] == ["p-2", "p-1"]
    assert ([p.id for p in third], third.cursor) == (["p-0"], None)
    assert all(p.records == () for p in first)


def test_a_cursor_is_bound_to_its_filters_and_order(engine: grantflow.Engine) -> None:
    """Another order or filter, or text that is no cursor, is refused with InvalidInput."""
    cursor = engine.projects(limit=1, call="c0").cursor
    assert cursor is not None
    assert [p.id for p in engine.projects(limit=5, call="c0", cursor=cursor)] == ["p-2", "p-4"]
    for bad in ({"call": "c1"}, {"call": "c0", "order": "-id"}):
        with pytest.raises(InvalidInput) as caught:
            engine.projects(cursor=cursor, **bad)
        assert caught.value.field == "cursor"
    with pytest.raises(InvalidInput):
        engine.projects(cursor="not-a-cursor")


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"order": "title"}, "order"),
        ({"year": "2026"}, "year"),
        ({"hub": ""}, "hub"),
        ({"updated_since": datetime(2026, 1, 1)}, "updated_since"),
    ],
)
def test_bad_arguments_name_the_field(
    engine: grantflow.Engine, arguments: dict[str, Any], field: str
) -> None:
    """Each bad argument raises InvalidInput naming it."""
    with pytest.raises(InvalidInput) as caught:
        engine.projects(**arguments)
    assert caught.value.field == field


def test_sql_filters_use_the_indexes(tmp_path: Path) -> None:
    """On SQLite the state, hub and call filters are answered from their indexes."""
    store = SqlStore.open(f"sqlite:///{tmp_path / 'plan.db'}")
    try:
        from grantflow._query import ProjectQuery
        from grantflow._query_sql import query_rows

        for arguments, index in (
            ({"state": "applied"}, "ix_projects_state"),
            ({"hub": "h1"}, "ix_projects_hub"),
            ({"call": "c1"}, "ix_projects_call"),
            ({"order": "-updated_at"}, "ix_projects_updated"),
        ):
            plan = explain(
                store,
                lambda conn, a=arguments: query_rows(conn, store.tables, ProjectQuery.build(**a)),
            )
            assert index in plan, (arguments, plan)
    finally:
        store.close()


def explain(store: SqlStore, run: Callable[[sa.Connection], Any]) -> str:
    """The query plan of the SELECT statements `run` executes (SQLite or PostgreSQL)."""
    plans: list[str] = []
    prefix = "EXPLAIN QUERY PLAN " if store.engine.dialect.name == "sqlite" else "EXPLAIN "

    def before(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            rows = cursor.connection.execute(prefix + statement, parameters)
            plans.extend(str(row[-1]) for row in rows.fetchall())

    sa.event.listen(store.engine, "before_cursor_execute", before)
    try:
        with store.engine.connect() as conn:
            if store.engine.dialect.name == "postgresql":
                conn.exec_driver_sql("SET enable_seqscan = off")  # tiny tables: force the choice
            run(conn)
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", before)
    return "\n".join(plans)


@pytest.mark.postgres
def test_postgres_filters_use_the_indexes(pg_url: str, pg_schema: str) -> None:
    """On PostgreSQL the data filters match their expression indexes."""
    from grantflow._query import ProjectQuery
    from grantflow._query_sql import query_rows

    store = SqlStore.open(pg_url, schema=pg_schema, table_prefix=f"x{uuid.uuid4().hex[:8]}_")
    try:
        for arguments, index in (
            ({"state": "applied"}, "ix_projects_state"),
            ({"hub": "h1"}, "ix_projects_hub"),
            ({"provider": "org-1"}, "ix_projects_provider"),
            ({"year": 2026}, "ix_projects_year"),
        ):
            query = ProjectQuery.build(**arguments)
            plan = explain(store, lambda conn, q=query: query_rows(conn, store.tables, q))
            assert index in plan, (arguments, plan)
    finally:
        store.close()


def test_a_version_5_database_gains_the_query_indexes(tmp_path: Path) -> None:
    """Migration 6 creates the indexes on a database that has none (and is idempotent)."""
    from grantflow.persistence._sqlindexes import create_query_indexes

    store = SqlStore.open(f"sqlite:///{tmp_path / 'idx.db'}")
    try:
        with store.engine.connect() as conn:
            rows = conn.exec_driver_sql("PRAGMA index_list(grantflow_projects)").all()
        names = {row[1] for row in rows}
        assert {"grantflow_ix_projects_state", "grantflow_ix_projects_hub"} <= names
        with store.engine.begin() as conn:
            create_query_indexes(conn, store.tables)  # again: nothing to do, no error
    finally:
        store.close()


def test_updated_since_is_inclusive_and_timezone_aware(engine: grantflow.Engine) -> None:
    """updated_since keeps projects updated at or after the instant, in any time zone."""
    since = (T0 + timedelta(hours=3)).astimezone(__import__("zoneinfo").ZoneInfo("Asia/Shanghai"))
    assert [p.id for p in engine.projects(updated_since=since)] == ["p-3", "p-4"]
    assert datetime.now(UTC) > since
