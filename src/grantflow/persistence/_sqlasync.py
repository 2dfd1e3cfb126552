"""The SQL store on SQLAlchemy's asyncio engine (aiosqlite; psycopg's async mode).

`open_async` returns an ordinary `SqlStore` (the same reads, writes, outbox and bulk
bookkeeping, statement for statement) whose connections come from an
`sqlalchemy.ext.asyncio.AsyncEngine`. Its methods must run inside
``sqlalchemy.util.greenlet_spawn``: there every database call awaits the async driver
(the event loop runs other tasks meanwhile) while the code calling it stays plain
synchronous Python. `grantflow.aio` does exactly that for every call.

`GreenConnector` is the `Connector` for such a store: SQLite connections get their
pragmas through SQLAlchemy (the raw aiosqlite connection is async), pysqlite's own
``BEGIN`` is switched off once per connection (SQLAlchemy's documented aiosqlite recipe)
so that writers start with ``BEGIN IMMEDIATE``, and retries wait with ``asyncio.sleep``.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import sqlalchemy
from sqlalchemy import Connection, event
from sqlalchemy.util import await_only, greenlet_spawn

from grantflow.errors import InvalidInput, StoreError
from grantflow.persistence._migrations import apply_pending, check, current_version
from grantflow.persistence._schema import build_tables
from grantflow.persistence._sql import SqlStore
from grantflow.persistence._sqlconn import Connector, Synchronous

__all__ = ["GreenConnector", "async_url", "open_async"]


def async_url(url: str) -> sqlalchemy.URL:
    """The URL with an asyncio driver: ``sqlite+aiosqlite``, ``postgresql+psycopg``."""
    parsed = sqlalchemy.make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite" and parsed.get_driver_name() in {"pysqlite", "aiosqlite"}:
        return parsed.set(drivername="sqlite+aiosqlite")
    if backend == "postgresql" and parsed.get_driver_name() in {"psycopg2", "psycopg", "asyncpg"}:
        # create_async_engine picks psycopg's async dialect for postgresql+psycopg.
        return parsed.set(drivername="postgresql+psycopg")
    raise StoreError(f"no asyncio driver for {parsed.drivername!r}: use SQLite or PostgreSQL")


class GreenConnector(Connector):
    """A `Connector` over an asyncio engine, used from code run in ``greenlet_spawn``."""

    def __init__(
        self,
        engine: Any,
        *,
        synchronous: Synchronous = "FULL",
        busy_timeout: float = 10.0,
        allow_network_filesystem: bool = False,
    ) -> None:
        super().__init__(
            engine.sync_engine,
            owned=True,
            synchronous=synchronous,
            busy_timeout=busy_timeout,
            allow_network_filesystem=allow_network_filesystem,
        )
        self.async_engine = engine
        if self.dialect == "sqlite":
            # SQLAlchemy's aiosqlite recipe: no implicit BEGIN from the driver, so our
            # BEGIN IMMEDIATE is the transaction (and reads run in autocommit mode).
            event.listen(engine.sync_engine, "connect", _no_driver_begin)

    _raw_reads = False  # the driver's connection is asyncio's: only through SQLAlchemy

    def _pause(self, attempt: int) -> None:
        # Wait on the event loop, not the thread: other tasks run meanwhile.
        await_only(asyncio.sleep(random.uniform(0, 0.01 * 2**attempt)))  # noqa: S311 - jitter

    @contextmanager
    def _relaxed(self, conn: Connection, relaxed: bool) -> Iterator[None]:
        # Every write is durable here: aiosqlite's driver connection cannot switch
        # ``synchronous`` synchronously from inside the greenlet, so a bulk chunk's
        # lease (``durable=False``) waits for the disk like every other commit.
        yield

    def dispose(self) -> None:
        """Dispose of the asyncio engine (from inside the greenlet)."""
        await_only(self.async_engine.dispose())

    def _configure(self, conn: Connection) -> None:
        info = conn.connection.info
        if info.get("grantflow.configured"):
            return
        for pragma in self._pragmas:
            conn.exec_driver_sql(pragma)
        info["grantflow.configured"] = True

    @contextmanager
    def _transaction(self, conn: Connection) -> Iterator[None]:
        if self.dialect != "sqlite":
            with conn.begin():
                yield
            return
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            conn.rollback()
            raise
        conn.commit()


def _no_driver_begin(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None


async def open_async(
    url: str,
    *,
    table_prefix: str = "grantflow_",
    schema: str | None = None,
    create: bool = True,
    synchronous: Synchronous | None = None,
    busy_timeout: float | None = None,
    allow_network_filesystem: bool = False,
    engine_options: Mapping[str, Any] | None = None,
) -> SqlStore:
    """Open a `SqlStore` on an asyncio engine for `url` (see the module docstring).

    Takes the options of `SqlStore.open`. Its methods (``close`` too) must be called
    inside ``sqlalchemy.util.greenlet_spawn``.
    """
    from sqlalchemy.ext.asyncio import create_async_engine

    if not isinstance(url, str):
        raise InvalidInput("grantflow.aio opens a database from its URL", field="url")
    engine = create_async_engine(async_url(url), **dict(engine_options or {}))
    try:
        connector = GreenConnector(
            engine,
            synchronous=synchronous or "FULL",
            busy_timeout=10.0 if busy_timeout is None else busy_timeout,
            allow_network_filesystem=allow_network_filesystem,
        )
        return await greenlet_spawn(_initialise, connector, table_prefix, schema, create)
    except BaseException:
        await engine.dispose()
        raise


def _initialise(
    connector: GreenConnector, table_prefix: str, schema: str | None, create: bool
) -> SqlStore:
    if schema is not None and connector.dialect == "sqlite":
        raise InvalidInput("schema= applies to PostgreSQL only", field="schema")
    if connector.dialect == "sqlite":
        with connector.connect() as conn:
            conn.exec_driver_sql("PRAGMA journal_mode = WAL")
    tables = build_tables(table_prefix, schema)
    with connector.connect() as conn:
        found = current_version(conn, tables)
    if found is None and create:
        found = connector.write(lambda conn: apply_pending(conn, tables))
    check(found, create_hint=not create)
    return SqlStore(connector, tables)
