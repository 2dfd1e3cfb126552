"""Connections for the SQL store: SQLite pragmas, write transactions, retries, fork safety.

SQLite: every connection of an engine grantflow created itself (from a URL) gets
``busy_timeout``, ``synchronous`` and ``foreign_keys`` once, and the file is put in WAL
mode when opened. A host application's engine is left exactly as configured: grantflow
needs none of these pragmas to be correct (they buy concurrency and durability), so it
never sets them on connections it did not create. Write transactions start with
``BEGIN IMMEDIATE`` so two writers queue on the busy timeout instead of deadlocking
on a lock upgrade. pysqlite would emit its own deferred ``BEGIN``: for the duration of
our transaction its ``isolation_level`` is ``None`` (the documented SQLAlchemy recipe,
applied per transaction so a host's own engine keeps its behaviour).

PostgreSQL: a transaction that fails with a serialization failure (40001) or a
deadlock (40P01) is run again, at most `PG_RETRIES` times, after a jittered pause.

`HostConnector` runs everything on a host's `Connection` or ORM `Session` instead,
inside the host's transaction: each write is a savepoint, nothing is committed, retried
or configured; the host commits or rolls back grantflow's rows with its own.
"""

from __future__ import annotations

import os
import random
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Literal, TypeVar

import sqlalchemy
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session
from sqlalchemy.pool import PoolProxiedConnection

from grantflow.errors import InvalidInput, StoreError

__all__ = [
    "NETWORK_FILESYSTEMS",
    "PG_RETRIES",
    "Connector",
    "HostConnector",
    "StorageWarning",
    "filesystem_type",
]

T = TypeVar("T")

#: How often a PostgreSQL transaction is retried after a serialization failure/deadlock.
PG_RETRIES = 5
_RETRY_STATES = frozenset({"40001", "40P01"})
_SQLITE_LOCK_RETRIES = 3
#: File system types on which SQLite's locking cannot be trusted.
NETWORK_FILESYSTEMS = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smb",
        "smb2",
        "smb3",
        "smbfs",
        "9p",
        "afs",
        "ceph",
        "glusterfs",
        "lustre",
        "gpfs",
        "davfs",
        "fuse.sshfs",
        "fuse.glusterfs",
        "fuse.rclone",
    }
)
Synchronous = Literal["FULL", "NORMAL"]


class StorageWarning(UserWarning):
    """The store works, but in a way that can lose or corrupt data (e.g. on NFS)."""


def filesystem_type(path: Path, mounts: str) -> str | None:
    """Return the type of the file system holding `path`, from ``/proc/mounts`` text."""
    best: tuple[int, str] | None = None
    resolved = str(path.resolve())
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        mount_point = fields[1].replace("\\040", " ")
        inside = resolved == mount_point or resolved.startswith(mount_point.rstrip("/") + "/")
        if inside and (best is None or len(mount_point) > best[0]):
            best = (len(mount_point), fields[2])
    return best[1] if best else None


def sqlstate(exc: BaseException) -> str | None:
    """Return the SQLSTATE of a database error (psycopg), if it has one."""
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return str(state) if state else None


def _sqlite_locked(exc: BaseException) -> bool:
    return "database is locked" in str(exc) or "database is busy" in str(exc)


class Connector:
    """Owns the engine's use by one store: connection setup, write transactions, fork safety."""

    def __init__(
        self,
        engine: sqlalchemy.Engine,
        *,
        owned: bool,
        synchronous: Synchronous = "FULL",
        busy_timeout: float = 10.0,
        allow_network_filesystem: bool = False,
        mounts_file: Path = Path("/proc/mounts"),
    ) -> None:
        self.engine = engine
        self.owned = owned
        self.dialect: str = engine.dialect.name
        if self.dialect not in {"sqlite", "postgresql"}:
            raise StoreError(f"grantflow supports SQLite and PostgreSQL, not {self.dialect!r}")
        if synchronous not in {"FULL", "NORMAL"}:
            raise InvalidInput("synchronous must be 'FULL' or 'NORMAL'", field="synchronous")
        self._pragmas = (
            f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}",
            f"PRAGMA synchronous = {synchronous}",
            "PRAGMA foreign_keys = ON",
        )
        self._busy_timeout = busy_timeout
        self._synchronous = synchronous
        self._pid = os.getpid()
        dbapi = engine.dialect.loaded_dbapi
        self.integrity_error: type[Exception] = dbapi.IntegrityError
        self._dbapi_error: type[Exception] = dbapi.Error
        if self.dialect == "sqlite":
            self._check_sqlite_file(allow_network_filesystem, mounts_file)

    # -- connections ---------------------------------------------------------------------

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """Yield a configured connection (reads; the transaction is rolled back after).

        A database error on the way (a server gone, a connection killed, a file that
        cannot be read) is raised as `StoreError`, with the driver's error as its cause.
        """
        try:
            with self._connect() as conn:
                yield conn
        except (SQLAlchemyError, self._dbapi_error) as exc:
            raise self._store_error(exc) from exc

    #: Whether `cursor` may take a pooled DBAPI connection directly: not on a host's
    #: connection (reads must see the host's transaction) nor on an asyncio driver.
    _raw_reads = True

    @contextmanager
    def cursor(self) -> Iterator[Any]:
        """Yield a DBAPI cursor on a configured pooled connection (reads on the hot path).

        No SQLAlchemy `Connection` around it: for a single project's load its set-up
        cost as much as the two queries. Errors are raised as by `connect`.
        """
        if not self._raw_reads:
            with self.connect() as conn:
                cursor = conn.connection.cursor()
                try:
                    yield cursor
                finally:
                    cursor.close()
            return
        try:
            self._after_fork()
            raw = self.engine.raw_connection()
            try:
                if self.dialect == "sqlite" and self.owned:
                    self._configure_raw(raw)
                cursor = raw.cursor()
                try:
                    yield cursor
                finally:
                    cursor.close()
            finally:
                raw.close()  # back to the pool, which rolls back whatever is left
        except (SQLAlchemyError, self._dbapi_error) as exc:
            raise self._store_error(exc) from exc

    @contextmanager
    def _connect(self) -> Iterator[Connection]:
        self._after_fork()
        with self.engine.connect() as conn:
            if self.dialect == "sqlite" and self.owned:  # a host's connections stay as they are
                self._configure(conn)
            yield conn

    def write(self, work: Callable[[Connection], T], *, durable: bool = True) -> T:
        """Run `work` in one write transaction, retried on PostgreSQL conflicts/SQLite busy.

        ``durable=False`` is for bookkeeping whose loss on a power cut is harmless (a
        bulk chunk's lease): a SQLite file grantflow opened with ``synchronous=FULL``
        commits it without waiting for the disk. The write-ahead log keeps commits in
        order, so the next durable commit makes it durable too, and a power cut loses
        at most a suffix of such writes, never corrupts the file.
        """
        relaxed = not durable and self.owned and self.dialect == "sqlite"
        relaxed = relaxed and self._synchronous == "FULL"

        def attempt() -> T:
            with self._connect() as conn, self._relaxed(conn, relaxed), self._transaction(conn):
                return work(conn)

        return self._retrying(attempt)

    def write_cursor(self, work: Callable[[Any], T], *, durable: bool = True) -> T:
        """`write` for work that needs only a DBAPI cursor (a commit's statements).

        On a SQLite file grantflow opened, the transaction runs on a pooled DBAPI
        connection with no SQLAlchemy `Connection` around it: for one transition its
        set-up cost more than the statements. Elsewhere (PostgreSQL, a host's
        connection, an asyncio driver) it is `write` with a cursor of its connection.
        Retries, errors and durability (`durable`) are `write`'s.
        """
        if not (self._raw_reads and self.owned and self.dialect == "sqlite"):
            return self.write(lambda conn: _on_cursor(conn, work), durable=durable)
        relaxed = not durable and self._synchronous == "FULL"
        return self._retrying(lambda: self._raw_transaction(work, relaxed=relaxed))

    def _retrying(self, attempt: Callable[[], T]) -> T:
        """Run one transaction `attempt`, again on PostgreSQL conflicts and SQLite busy."""
        retries = PG_RETRIES if self.dialect == "postgresql" else _SQLITE_LOCK_RETRIES
        for number in range(retries + 1):
            try:
                return attempt()
            except (DBAPIError, self._dbapi_error) as exc:
                if number == retries or not self._retryable(exc):
                    raise self._store_error(exc) from exc
                self._pause(number)
        raise AssertionError("unreachable")  # pragma: no cover

    def _raw_transaction(self, work: Callable[[Any], T], *, relaxed: bool = False) -> T:
        self._after_fork()
        raw = self.engine.raw_connection()
        try:
            self._configure_raw(raw)
            driver: Any = raw.driver_connection
            saved = driver.isolation_level
            driver.isolation_level = None
            try:
                with self._no_disk_wait(driver) if relaxed else nullcontext():
                    driver.execute("BEGIN IMMEDIATE")
                    cursor = driver.cursor()
                    try:
                        result = work(cursor)
                    except BaseException:
                        driver.rollback()
                        raise
                    finally:
                        cursor.close()
                    driver.commit()
                    return result
            finally:
                driver.isolation_level = saved
        finally:
            raw.close()  # back to the pool, which rolls back whatever is left

    def _pause(self, attempt: int) -> None:
        """Wait before retry `attempt` + 1: exponential backoff with full jitter."""
        time.sleep(random.uniform(0, 0.01 * 2**attempt))

    def dispose(self) -> None:
        """Release the pool if this store created the engine."""
        if self.owned:
            self.engine.dispose()

    # -- internals -----------------------------------------------------------------------

    def _after_fork(self) -> None:
        # A pooled connection inherited through fork() is shared with the parent: drop
        # the child's references without closing the parent's sockets (SQLAlchemy docs).
        pid = os.getpid()
        if pid != self._pid:
            self.engine.dispose(close=False)
            self._pid = pid

    def _configure(self, conn: Connection) -> None:
        self._configure_raw(conn.connection)

    def _configure_raw(self, raw: PoolProxiedConnection) -> None:
        info = raw.info
        if info.get("grantflow.configured"):
            return
        driver = raw.driver_connection
        assert driver is not None
        for pragma in self._pragmas:
            driver.execute(pragma)
        info["grantflow.configured"] = True

    @contextmanager
    def _relaxed(self, conn: Connection, relaxed: bool) -> Iterator[None]:
        if not relaxed:
            yield
            return
        with self._no_disk_wait(conn.connection.driver_connection):
            yield

    @contextmanager
    def _no_disk_wait(self, driver: Any) -> Iterator[None]:
        """Commit on SQLite `driver` without waiting for the disk, then as configured."""
        driver.execute("PRAGMA synchronous = NORMAL")
        try:
            yield
        finally:
            driver.execute(f"PRAGMA synchronous = {self._synchronous}")

    @contextmanager
    def _transaction(self, conn: Connection) -> Iterator[None]:
        if self.dialect != "sqlite":
            with conn.begin():
                yield
            return
        # BEGIN, COMMIT and ROLLBACK go straight to the driver: SQLAlchemy's execution
        # context around them cost more than the statements (tens of µs a transaction).
        driver: Any = conn.connection.driver_connection
        saved = driver.isolation_level
        driver.isolation_level = None
        try:
            driver.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                driver.rollback()
                if conn.in_transaction():  # work that went through SQLAlchemy: its state too
                    conn.rollback()
                raise
            driver.commit()
            if conn.in_transaction():  # nothing left for the database: only bookkeeping
                conn.commit()
        finally:
            driver.isolation_level = saved

    def _retryable(self, exc: BaseException) -> bool:
        if self.dialect == "postgresql":
            return sqlstate(exc) in _RETRY_STATES
        return _sqlite_locked(exc)

    def _store_error(self, exc: BaseException) -> StoreError:
        orig = exc.orig if isinstance(exc, DBAPIError) else exc
        text = " ".join(str(orig).split())[:300]  # one line, whatever the driver wrote
        if self.dialect == "sqlite" and "readonly" in text.replace("-", "").replace(" ", ""):
            return StoreError(
                f"the SQLite database is read-only ({text}): grantflow writes to its "
                "database; give it write access to the file and its folder"
            )
        return StoreError(f"database error ({self.dialect}): {text}")

    def _check_sqlite_file(self, allow: bool, mounts_file: Path) -> None:
        database = self.engine.url.database
        if not database or database == ":memory:" or database.startswith("file:"):
            return
        try:
            mounts = mounts_file.read_text()
        except OSError:
            return
        fstype = filesystem_type(Path(database).parent, mounts)
        if fstype is None or fstype.lower() not in NETWORK_FILESYSTEMS:
            return
        message = (
            f"SQLite database {database!r} is on a network file system ({fstype}): its "
            "locking is unreliable there and concurrent writers can corrupt the file. "
            "Use a local disk or PostgreSQL"
        )
        if not allow:
            raise StoreError(message + " (or pass allow_network_filesystem=True).")
        warnings.warn(message + ".", StorageWarning, stacklevel=4)


def _on_cursor(conn: Connection, work: Callable[[Any], T]) -> T:
    cursor = conn.connection.cursor()
    try:
        return work(cursor)
    finally:
        cursor.close()


class HostConnector(Connector):
    """Runs the store inside a transaction the host owns, on its connection or session.

    Reads and writes go through ``session.connection()`` (or the given connection), so
    they see the host's uncommitted rows and the host's commit or rollback covers
    grantflow's. Each write runs under a savepoint: a failed write leaves the host's
    transaction usable and holds nothing of grantflow's. Nothing is retried (a conflict
    inside someone else's transaction is theirs to handle) and nothing is configured.
    """

    _raw_reads = False

    def __init__(self, source: Connection | Session) -> None:
        self._source = source
        bind = source if isinstance(source, Connection) else source.get_bind()
        engine = bind.engine
        self.engine = engine
        self.owned = False
        self.dialect = engine.dialect.name
        if self.dialect not in {"sqlite", "postgresql"}:
            raise StoreError(f"grantflow supports SQLite and PostgreSQL, not {self.dialect!r}")
        dbapi = engine.dialect.loaded_dbapi
        self.integrity_error = dbapi.IntegrityError
        self._dbapi_error = dbapi.Error

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """Yield the host's connection (left open, in the host's transaction).

        Database errors of grantflow's reads are raised as `StoreError`.
        """
        try:
            yield self._connection()
        except (SQLAlchemyError, self._dbapi_error) as exc:
            raise self._store_error(exc) from exc

    def write(self, work: Callable[[Connection], T], *, durable: bool = True) -> T:
        """Run `work` under a savepoint of the host's transaction; never commit."""
        conn = self._connection()
        self._begin(conn)
        conn.exec_driver_sql("SAVEPOINT grantflow_write")
        try:
            result = work(conn)
        except BaseException as exc:
            conn.exec_driver_sql("ROLLBACK TO SAVEPOINT grantflow_write")
            conn.exec_driver_sql("RELEASE SAVEPOINT grantflow_write")
            if isinstance(exc, DBAPIError | self._dbapi_error):
                raise self._store_error(exc) from exc
            raise
        conn.exec_driver_sql("RELEASE SAVEPOINT grantflow_write")
        return result

    def dispose(self) -> None:
        """Nothing to release: the connection and its engine are the host's."""

    def _connection(self) -> Connection:
        if isinstance(self._source, Connection):
            return self._source
        return self._source.connection()

    def _begin(self, conn: Connection) -> None:
        # pysqlite begins a transaction only before its first DML statement. A SAVEPOINT
        # issued first would open the transaction itself, and its RELEASE would commit
        # it behind the host's back: begin the host's transaction explicitly first.
        if self.dialect != "sqlite":
            return
        driver: Any = conn.connection.driver_connection
        if not driver.in_transaction:
            conn.exec_driver_sql("BEGIN")
