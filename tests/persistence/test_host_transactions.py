"""Running inside a transaction the host owns: one commit or one rollback for both.

A host application passes its `sqlalchemy.Connection` or ORM `Session` to
`grantflow.open` (or binds an open store to it): grantflow's rows (state, audit,
records) then commit or roll back with the host's own writes, and grantflow never
commits, retries or configures the host's connection.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import sqlmodel
from sqlalchemy.orm import Session

import grantflow
from grantflow import Actor, Engine, InvalidInput, ProjectExists
from grantflow.persistence.sql import SqlStore
from grantflow.rules import RuleBook

APPLICANT = Actor(id="org-1", roles=frozenset({"applicant"}), organisation="org-1")
PURCHASER = Actor(id="staff-1", roles=frozenset({"purchaser"}), organisation="city")


@dataclass
class Host:
    """A host application's engine, one table of its own, and where grantflow's go."""

    engine: sa.Engine
    orders: sa.Table
    options: dict[str, Any]

    def open(self, source: Any) -> Engine:
        return grantflow.open(source, rules=RuleBook(), discover_rules=False, **self.options)

    def order_ids(self) -> list[int]:
        with self.engine.connect() as conn:
            return sorted(conn.execute(sa.select(self.orders.c.id)).scalars())

    def project_ids(self) -> list[str]:
        store = SqlStore.open(self.engine, **self.options)
        return [p.id for p in store.projects()]

    def chain_ids(self) -> list[str]:
        return list(SqlStore.open(self.engine, **self.options).chain_ids())


@pytest.fixture
def host(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Host]:
    """A host engine with an ``orders`` table; grantflow's tables created beside it."""
    options: dict[str, Any] = {}
    if backend == "postgres":
        engine = sa.create_engine(request.getfixturevalue("pg_url"))
        options = {"schema": request.getfixturevalue("pg_schema")}
    else:
        engine = sa.create_engine(f"sqlite:///{tmp_path / 'app.db'}")
    options["table_prefix"] = f"g{uuid.uuid4().hex[:8]}_"
    metadata = sa.MetaData()
    orders = sa.Table(
        f"orders_{uuid.uuid4().hex[:8]}",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("status", sa.String(20)),
    )
    metadata.create_all(engine)
    SqlStore.open(engine, **options)  # grantflow's tables, outside the tests' transactions
    yield Host(engine, orders, options)
    metadata.drop_all(engine)
    engine.dispose()


def test_host_write_and_transition_commit_together(host: Host) -> None:
    """Inside ``engine.begin()``, the host's row and the transition commit as one."""
    with host.engine.begin() as conn:
        conn.execute(host.orders.insert().values(id=1, status="paid"))
        engine = host.open(conn)
        pid = engine.submit(actor=APPLICANT, project_id="p-1").project_id
        engine.add_record("p-1", "review", {"score": Decimal("88")}, actor=APPLICANT)
        assert engine.fire("p-1", "approve", actor=PURCHASER).accepted
        assert host.project_ids() == [] or host.engine.dialect.name == "sqlite"
    assert (host.order_ids(), host.project_ids(), pid) == ([1], ["p-1"], "p-1")
    stored = host.open(host.engine)
    assert [e.event for e in stored.history("p-1")] == ["submit", "record.review", "approve"]
    assert stored.get("p-1").records_of("review")[0].data == {"score": "88"}
    assert stored.verify().ok


def test_host_rollback_undoes_state_audit_and_records(host: Host) -> None:
    """When the host's transaction fails, neither its row nor grantflow's survive."""

    def unit_of_work() -> None:
        with host.engine.begin() as conn:
            conn.execute(host.orders.insert().values(id=2, status="paid"))
            engine = host.open(conn)
            engine.submit(actor=APPLICANT, project_id="p-2")
            engine.add_record("p-2", "review", {"score": 70}, actor=APPLICANT)
            raise RuntimeError("host failed")

    with pytest.raises(RuntimeError, match="host failed"):
        unit_of_work()
    assert (host.order_ids(), host.chain_ids()) == ([], [])


@pytest.mark.parametrize("session_class", [Session, sqlmodel.Session])
def test_an_orm_session_commits_or_rolls_back_both(host: Host, session_class: type) -> None:
    """A SQLAlchemy or SQLModel session: its commit and rollback cover grantflow's rows."""
    with session_class(host.engine) as session:
        engine = host.open(session)
        session.execute(host.orders.insert().values(id=3, status="open"))
        engine.submit(actor=APPLICANT, project_id="p-3")
        session.rollback()
        session.execute(host.orders.insert().values(id=4, status="open"))
        engine.submit(actor=APPLICANT, project_id="p-4")
        assert engine.get("p-4").state == "applied"  # reads see the open transaction
        session.commit()
    assert (host.order_ids(), host.project_ids()) == ([4], ["p-4"])


def test_a_failed_write_leaves_the_host_transaction_usable(host: Host) -> None:
    """A refused write rolls back to grantflow's savepoint; the host goes on and commits."""
    host.open(host.engine).submit(actor=APPLICANT, project_id="taken")
    with host.engine.begin() as conn:
        engine = host.open(conn)
        with pytest.raises(ProjectExists):
            engine.submit(actor=APPLICANT, project_id="taken")
        conn.execute(host.orders.insert().values(id=5, status="paid"))
        engine.submit(actor=APPLICANT, project_id="p-5")
    assert (host.order_ids(), host.project_ids()) == ([5], ["p-5", "taken"])


def test_bulk_runs_inside_the_host_transaction(host: Host) -> None:
    """`fire_many` on a bound store writes nothing the host's rollback does not undo."""
    store = SqlStore.open(host.engine, **host.options)
    with host.engine.connect() as conn:
        engine = grantflow.open(store.bind(conn), rules=RuleBook(), discover_rules=False)
        result = engine.fire_many(
            "submit", [(f"b{i}", {"n": i}) for i in range(30)], actor=APPLICANT, chunk_size=7
        )
        assert result.counts == {"applied": 30}
        assert len(list(engine.store.projects())) == 30
        conn.rollback()
    assert host.chain_ids() == []


def test_no_stall_when_the_host_holds_a_sqlite_write_transaction(tmp_path: Path) -> None:
    """On the host's own connection a transition never waits for the host's write lock.

    Through a second connection it would wait for the busy timeout, several times, and
    then fail with ``database is locked``.
    """
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'app.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    SqlStore.open(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO notes (body) VALUES ('holding the write lock')")
        started = time.monotonic()
        gf = grantflow.open(conn, rules=RuleBook(), discover_rules=False)
        pid = gf.submit(actor=APPLICANT).project_id
        assert pid is not None
        gf.fire(pid, "withdraw", actor=APPLICANT, evidence={"reason": "duplicate"})
        elapsed = time.monotonic() - started
    assert elapsed < 5, elapsed
    assert grantflow.open(engine, rules=RuleBook()).get(pid).state == "withdrawn"
    engine.dispose()


def test_sqlite_pragmas_are_set_only_on_connections_grantflow_creates(tmp_path: Path) -> None:
    """A host's engine keeps its journal mode, foreign-key and busy settings."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'app.db'}")

    def pragmas() -> dict[str, Any]:
        with engine.connect() as conn:
            return {
                name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "foreign_keys", "busy_timeout", "synchronous")
            }

    before = pragmas()
    with grantflow.open(engine, rules=RuleBook()) as gf:
        gf.submit(actor=APPLICANT, project_id="p-1")
        with engine.begin() as conn:
            grantflow.open(conn, rules=RuleBook()).submit(actor=APPLICANT, project_id="p-2")
    assert pragmas() == before
    assert before["journal_mode"] == "delete"
    engine.dispose()


@pytest.mark.parametrize(
    "option", [{"synchronous": "NORMAL"}, {"busy_timeout": 1.0}, {"engine_options": {}}]
)
def test_connection_settings_for_a_host_engine_are_refused(
    tmp_path: Path, option: dict[str, Any]
) -> None:
    """Options that configure connections apply only to engines grantflow creates."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'app.db'}")
    (name,) = option
    with pytest.raises(InvalidInput, match=f"{name} applies only to a database") as info:
        grantflow.open(engine, **option)
    assert info.value.field == name
    with engine.connect() as conn, pytest.raises(InvalidInput, match=name):
        grantflow.open(conn, **option)
    engine.dispose()


def test_bind_joins_a_unit_of_work_without_reopening_the_store(host: Host) -> None:
    """Open the store once; `bind` it to each request's session; close leaves it open."""
    store = SqlStore.open(host.engine, **host.options)
    for n in (6, 7):
        with Session(host.engine) as session, session.begin():
            bound = store.bind(session)
            session.execute(host.orders.insert().values(id=n, status="paid"))
            grantflow.open(bound, rules=RuleBook()).submit(actor=APPLICANT, project_id=f"p-{n}")
            bound.close()
    assert (host.order_ids(), host.project_ids()) == ([6, 7], ["p-6", "p-7"])
    with pytest.raises(InvalidInput, match="Connection or Session"):
        store.bind(host.engine)  # type: ignore[arg-type]
