"""`SqlStore`: the store protocol on SQLite or PostgreSQL (see `grantflow.persistence.sql`)."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Collection, Iterator, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy
from sqlalchemy import (
    JSON,
    ColumnElement,
    String,
    Table,
    and_,
    case,
    cast,
    func,
    literal,
    literal_column,
    or_,
    select,
    union,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from grantflow._canonical import respelt
from grantflow._values import decimal_or_zero
from grantflow.audit import GENESIS, Checkpoint
from grantflow.errors import InvalidInput
from grantflow.models import AuditEntry, Entity, Project, Record, trusted
from grantflow.persistence._guards import check_guards, guard_lock_id, guards_of
from grantflow.persistence._migrations import apply_pending, check, current_version
from grantflow.persistence._protocol import (
    Change,
    Guard,
    Leaf,
    LogLeaf,
    Move,
    ObligationRow,
    RecordGuard,
)
from grantflow.persistence._schema import (
    KEY_FIELD,
    KEY_VALUE,
    Tables,
    UTCDateTime,
    build_tables,
)
from grantflow.persistence._sqlconn import Connector, HostConnector, Synchronous
from grantflow.persistence._sqlindexes import QUERY_INDEXES
from grantflow.persistence._sqljobs import SeenRows, SqlJobs
from grantflow.persistence._sqloutbox import SqlOutbox
from grantflow.persistence._sqlwrite import Partial, Writer

__all__ = ["SqlStore", "connector_for"]

_PAGE = 500
# The audit columns in the order `audit.verify`'s fast path reads them.
_AUDIT_FIELDS = tuple(AuditEntry.model_fields)
RawRows = Iterator[tuple[Any, ...]]
#: The project and record columns `verify` reads raw, in the order it unpacks them.
_RAW_PROJECT = ("id", "state", "version", "head", "data", "created_at", "updated_at")
_RAW_RECORD = ("project_id", "kind", "id", "data", "seq", "pos")


#: Where `_AUDIT_FIELDS` puts the JSON an entry's hash covers: the columns that vary
#: from entry to entry, and the two that repeat (a few actors, one decision basis).
_VARIED_JSON, _REPEATED_JSON = (
    tuple(_AUDIT_FIELDS.index(name) for name in names)
    for names in (("evidence", "refusals", "records", "data"), ("actor", "decided_under"))
)


#: At most this many actor and basis texts kept spelt while `verify` reads PostgreSQL.
_REPEATED_KEPT = 1_000


def _respelt_entries(rows: RawRows) -> RawRows:
    """PostgreSQL's audit rows with the JSON their hash covers spelt canonically."""
    repeated: dict[str, str] = {}
    for row in rows:
        values = list(row)
        for i in _VARIED_JSON:
            text = values[i]
            if type(text) is str and text not in ("{}", "[]"):  # NULL and {} as they are
                values[i] = respelt(text)
        for i in _REPEATED_JSON:
            text = values[i]
            if type(text) is str:
                found = repeated.get(text)
                if found is None:
                    if len(repeated) >= _REPEATED_KEPT:
                        repeated.clear()
                    found = repeated[text] = respelt(text)
                values[i] = found
        yield tuple(values)


def connector_for(
    source: str | sqlalchemy.Engine | sqlalchemy.Connection | Session,
    *,
    synchronous: Synchronous | None = None,
    busy_timeout: float | None = None,
    allow_network_filesystem: bool = False,
    engine_options: Mapping[str, Any] | None = None,
) -> Connector:
    """Return a `Connector` on a URL (a new engine, owned) or on what a host lends.

    A host's engine is borrowed as it is; a host's connection or session is joined
    (`HostConnector`). SQLite pragmas and engine options apply only to an engine
    grantflow creates, so passing them with anything else is an error.
    """
    if isinstance(source, str):
        options = dict(engine_options or {})
        if source.startswith("postgresql"):
            # A pooled connection the server dropped (a restart, pg_terminate_backend, an
            # idle timeout) is replaced before use instead of failing the next read.
            options.setdefault("pool_pre_ping", True)
        engine = sqlalchemy.create_engine(source, **options)
        try:
            connector = Connector(
                engine,
                owned=True,
                synchronous=synchronous or "FULL",
                busy_timeout=10.0 if busy_timeout is None else busy_timeout,
                allow_network_filesystem=allow_network_filesystem,
            )
            if connector.dialect == "sqlite":
                with connector.connect() as conn:
                    # WAL is a property of the database file: readers never block the writer.
                    conn.exec_driver_sql("PRAGMA journal_mode = WAL")
        except BaseException:
            engine.dispose()
            raise
        return connector
    if not isinstance(source, sqlalchemy.Engine | sqlalchemy.Connection | Session):
        raise InvalidInput(
            "expected a database URL, a sqlalchemy Engine, Connection or Session, "
            f"not {type(source).__name__}",
            field="url",
        )
    given = {
        "synchronous": synchronous,
        "busy_timeout": busy_timeout,
        "engine_options": engine_options,
    }
    for name, value in given.items():
        if value is not None:
            raise InvalidInput(
                f"{name} applies only to a database grantflow opens from a URL; configure "
                f"your own {type(source).__name__} instead (see the Embedding docs)",
                field=name,
            )
    if isinstance(source, sqlalchemy.Engine):
        return Connector(source, owned=False, allow_network_filesystem=allow_network_filesystem)
    return HostConnector(source)


class SqlStore(SqlJobs, SqlOutbox):
    """Projects, audit chains, records and checkpoints in SQLite or PostgreSQL.

    Open one with `SqlStore.open` (or `grantflow.open(url)`). Each `commit` is one
    transaction: a compare-and-set ``UPDATE``, the audit row and the records.
    """

    def __init__(self, connector: Connector, tables: Tables, seen: SeenRows | None = None) -> None:
        self._db = connector
        self._t = tables
        self._seen = SeenRows() if seen is None else seen
        self._writer = Writer(tables, connector.engine.dialect, connector.integrity_error)
        self._job_locks = {}
        self._job_locks_guard = threading.Lock()

    @classmethod
    def open(
        cls,
        url_or_engine: str | sqlalchemy.Engine | sqlalchemy.Connection | Session,
        *,
        table_prefix: str = "grantflow_",
        schema: str | None = None,
        create: bool = True,
        synchronous: Synchronous | None = None,
        busy_timeout: float | None = None,
        allow_network_filesystem: bool = False,
        engine_options: Mapping[str, Any] | None = None,
    ) -> SqlStore:
        """Open (and with `create`, initialise) grantflow's tables in a database.

        Args:
            url_or_engine: a SQLAlchemy URL (``sqlite:///grants.db``,
                ``postgresql+psycopg://user@host/db``); a host application's
                `sqlalchemy.Engine` (grantflow then never disposes it nor changes its
                connections' settings); or a host's `sqlalchemy.Connection` or ORM
                `Session`, whose transaction the store joins: its writes commit or roll
                back with the host's (see `SqlStore.bind`).
            table_prefix: prefix of every table name, so the tables sit beside a host's.
            schema: PostgreSQL schema holding the tables (created when `create`).
            create: create the tables in a database that has none. An existing schema of
                another version is never changed here: see `upgrade`.
            synchronous: SQLite files opened from a URL: the ``synchronous`` pragma,
                ``"FULL"`` (default; a commit survives power loss) or ``"NORMAL"``
                (faster; in WAL mode the last commits may be lost on power loss, never
                corrupted).
            busy_timeout: SQLite files opened from a URL: seconds a writer waits for
                another one (default 10).
            allow_network_filesystem: open a SQLite file on NFS/SMB anyway (with a
                `StorageWarning`) instead of refusing.
            engine_options: keyword arguments for `sqlalchemy.create_engine`.

        Raises:
            SchemaVersionError: the database schema is older (run ``grantflow db
                upgrade``) or newer than this grantflow, or missing and not `create`.
            StoreError: unsupported database, or a SQLite file on a network file system.
        """
        connector = connector_for(
            url_or_engine,
            synchronous=synchronous,
            busy_timeout=busy_timeout,
            allow_network_filesystem=allow_network_filesystem,
            engine_options=engine_options,
        )
        try:
            if schema is not None and connector.dialect == "sqlite":
                raise InvalidInput("schema= applies to PostgreSQL only", field="schema")
            tables = build_tables(table_prefix, schema)
            with connector.connect() as conn:
                found = current_version(conn, tables)
            if found is None and create:
                found = connector.write(lambda conn: apply_pending(conn, tables))
            check(found, create_hint=not create)
        except BaseException:
            connector.dispose()
            raise
        return cls(connector, tables)

    def bind(self, source: sqlalchemy.Connection | Session) -> SqlStore:
        """Return this store working inside the host transaction of `source`.

        The bound store reads and writes on ``source`` (``session.connection()`` for a
        session), under savepoints, and never commits: the host's commit or rollback
        covers grantflow's rows too. Cheap (no query): bind once per request or unit
        of work, and open the store itself once. Its `close` leaves `source` alone.
        """
        if not isinstance(source, sqlalchemy.Connection | Session):
            raise InvalidInput(
                f"bind takes a sqlalchemy Connection or Session, not {type(source).__name__}",
                field="source",
            )
        connector = HostConnector(source)
        if connector.engine.url != self._db.engine.url:
            raise InvalidInput(
                "the connection is to another database than the store's", field="source"
            )
        return type(self)(connector, self._t, self._seen)

    def __repr__(self) -> str:
        url = self._db.engine.url.render_as_string(hide_password=True)
        return f"SqlStore({url!r}, table_prefix={self._t.prefix!r}, schema={self._t.schema!r})"

    @property
    def engine(self) -> sqlalchemy.Engine:
        """The SQLAlchemy engine the store uses."""
        return self._db.engine

    @property
    def tables(self) -> Tables:
        """Grantflow's tables under this store's prefix and schema."""
        return self._t

    # -- reads ---------------------------------------------------------------------------

    def load(self, project_id: str) -> Project | None:
        """Return the project with its records, or ``None``.

        The bulk path's read (`load_many`): two queries on the driver's cursor, rows
        turned into models directly, since they come from grantflow's own tables.
        """
        return self.load_many((project_id,)).get(project_id)

    def chain_tip(self, project_id: str) -> tuple[int, str]:
        """Return (last seq, last hash) of the chain; (0, GENESIS) if there is none."""
        a = self._t.audit
        stmt = (
            select(a.c.seq, a.c.hash)
            .where(a.c.project_id == project_id)
            .order_by(a.c.seq.desc())
            .limit(1)
        )
        with self._db.connect() as conn:
            row = conn.execute(stmt).first()
        return (0, GENESIS) if row is None else (int(row.seq), str(row.hash))

    def entries(self, project_id: str) -> Iterator[AuditEntry]:
        """Yield the chain's entries in sequence order."""
        a = self._t.audit
        stmt = select(a).where(a.c.project_id == project_id).order_by(a.c.seq)
        with self._db.connect() as conn:
            rows = conn.execute(stmt).mappings().all()
        for row in rows:
            yield AuditEntry.model_validate(dict(row))

    def all_entries(self) -> Iterator[AuditEntry]:
        """Yield every entry ordered by (project id, seq), a page of rows at a time."""
        a = self._t.audit
        after: tuple[str, int] | None = None
        while True:
            stmt = select(a).order_by(a.c.project_id, a.c.seq).limit(_PAGE * 10)
            if after is not None:
                stmt = stmt.where(
                    (a.c.project_id > after[0])
                    | ((a.c.project_id == after[0]) & (a.c.seq > after[1]))
                )
            with self._db.connect() as conn:
                rows = conn.execute(stmt).mappings().all()
            for row in rows:
                yield AuditEntry.model_validate(dict(row))
            if len(rows) < _PAGE * 10:
                return
            after = (rows[-1]["project_id"], rows[-1]["seq"])

    def _verify_rows(self) -> tuple[RawRows, RawRows, RawRows, bool]:
        """Raw rows for `verify`'s fast path, as SQLite stores them.

        Audit rows in (project id, seq) order, project rows in id order and record rows in
        (project id, seq, pos) order, each read a page at a time on the DBAPI cursor, as
        stored on SQLite (JSON as text, times as SQLite text): `audit.verify` checks each
        value's form before it trusts it, and reads a chain again through `_verify_models`
        when anything about it is not exactly as grantflow writes it.

        PostgreSQL's rows come in the same form: times as SQLite's UTC text (``to_char``,
        to the microsecond ``timestamptz`` keeps), ``jsonb`` as text, and the JSON an
        entry's hash covers spelt canonically again (`respelt`: ``jsonb`` keeps values,
        not their spelling). What grantflow never writes (a number with a point) keeps
        PostgreSQL's spelling, is not canonical, and so sends its chain to the models.
        """
        a, p, r = (self._t.audit, self._t.projects, self._t.records)
        entries = self._pages(
            f"SELECT {self._raw_columns(a, _AUDIT_FIELDS)} FROM {self._name(a)}",
            "(project_id, seq)",
            "project_id, seq",
            (0, 1),
        )
        respelt = self._db.dialect != "sqlite"
        if respelt:
            entries = _respelt_entries(entries)
        projects = self._pages(
            f"SELECT {self._raw_columns(p, _RAW_PROJECT)} FROM {self._name(p)}", "id", "id", (0,)
        )
        records = self._pages(
            f"SELECT {self._raw_columns(r, _RAW_RECORD)} FROM {self._name(r)}",
            "(project_id, seq, pos)",
            "project_id, seq, pos",
            (0, 4, 5),
        )
        return entries, projects, records, respelt

    def _raw_columns(self, table: Table, names: Sequence[str]) -> str:
        """`names` of `table` as columns that read the way SQLite stores them."""
        if self._db.dialect == "sqlite":
            return ", ".join(names)
        quote = self._db.engine.dialect.identifier_preparer.quote
        columns = []
        for name in names:
            column, quoted = table.c[name], quote(name)
            if isinstance(column.type, UTCDateTime):
                quoted = f"to_char({quoted} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')"
            elif isinstance(column.type, JSON):
                quoted = f"{quoted}::text"
            columns.append(quoted)
        return ", ".join(columns)

    def _pages(
        self, select_sql: str, key: str, order: str, key_columns: tuple[int, ...]
    ) -> RawRows:
        """Every row `select_sql` reads, in `order` (the table's key), a page at a time.

        SQLite: one query a page, after the last page's `key` (`key_columns` of its last
        row). PostgreSQL: one server-side cursor, so the ordered read is planned once. A
        query a page is planned again every page, and before autovacuum has analysed a
        freshly filled table the planner reads each page by scanning and sorting the
        whole table: 20 pages of a 40,000-row audit took 0.33 s against 0.07 s for the
        cursor's one sort (tests/test_verify_fast.py counts the queries).
        """
        size = _PAGE * 4  # a page of raw rows is a few MB at most: memory stays flat
        if self._db.dialect == "postgresql":
            yield from self._cursor_pages(f"{select_sql} ORDER BY {order}", size)
            return
        after: tuple[Any, ...] | None = None
        mark = self._mark()
        while True:
            where = ""
            if after is not None:
                marks = ", ".join([mark] * len(after))
                where = f" WHERE {key} > ({marks})" if len(after) > 1 else f" WHERE {key} > {mark}"
            sql = f"{select_sql}{where} ORDER BY {order} LIMIT {size}"
            with self._db.connect() as conn:
                cursor = conn.connection.cursor()
                try:
                    cursor.execute(sql, after or ())
                    rows = cursor.fetchall()
                finally:
                    cursor.close()
            yield from rows
            if len(rows) < size:
                return
            last = rows[-1]
            after = tuple(last[i] for i in key_columns)

    def _cursor_pages(self, sql: str, size: int) -> RawRows:
        """The rows of `sql` from a server-side cursor, `size` rows a fetch.

        SQLAlchemy's `stream_results` (a named cursor with psycopg, also through the
        asyncio engine): in the host's transaction for a bound store, otherwise on a
        connection of its own, whose transaction ends (nothing was written) when the
        rows are read or the reader stops.
        """
        with self._db.connect() as conn:
            result = conn.execution_options(stream_results=True).exec_driver_sql(sql)
            try:
                for rows in result.partitions(size):
                    yield from map(tuple, rows)
            finally:
                result.close()  # the server's cursor too, when the reader stops early

    def _verify_models(
        self, project_id: str
    ) -> tuple[list[AuditEntry], Project | None, list[Record]]:
        """One chain, its project row and its record rows, read as `verify`'s streams read them.

        The same values `all_entries`, `projects` and `all_records` give for `project_id`
        (validated the same way, raising the same errors): `verify` falls back to these
        for a chain its fast path does not vouch for.
        """
        chain = list(self.entries(project_id))
        p, r = self._t.projects, self._t.records
        with self._db.connect() as conn:
            found = conn.execute(select(p).where(p.c.id == project_id)).first()
            stmt = (
                select(r.c.kind, r.c.id, r.c.data, r.c.seq)
                .where(r.c.project_id == project_id)
                .order_by(r.c.seq, r.c.pos)
            )
            rows = conn.execute(stmt).all()
        row = None if found is None else _project(found, ())
        records = [
            trusted(Record, kind=rec.kind, id=rec.id, data=rec.data, seq=int(rec.seq))
            for rec in rows
        ]
        return chain, row, records

    def all_records(self) -> Iterator[tuple[str, Record]]:
        """Yield (project id, record) for every record row, a page of rows at a time."""
        r = self._t.records
        after: tuple[str, int, int] | None = None
        size = _PAGE * 10
        while True:
            stmt = select(r.c.project_id, r.c.kind, r.c.id, r.c.data, r.c.seq, r.c.pos)
            stmt = stmt.order_by(r.c.project_id, r.c.seq, r.c.pos).limit(size)
            if after is not None:
                pid, seq, pos = after
                stmt = stmt.where(
                    (r.c.project_id > pid)
                    | ((r.c.project_id == pid) & (r.c.seq > seq))
                    | ((r.c.project_id == pid) & (r.c.seq == seq) & (r.c.pos > pos))
                )
            with self._db.connect() as conn:
                rows = conn.execute(stmt).all()
            for row in rows:
                # Read back as written (plain JSON): no second validation per row.
                yield (
                    str(row.project_id),
                    trusted(Record, kind=row.kind, id=row.id, data=row.data, seq=int(row.seq)),
                )
            if len(rows) < size:
                return
            last = rows[-1]
            after = (str(last.project_id), int(last.seq), int(last.pos))

    def chain_ids(self) -> Iterator[str]:
        """Yield, sorted, every id with a chain or a project row."""
        stmt = union(select(self._t.audit.c.project_id), select(self._t.projects.c.id))
        with self._db.connect() as conn:
            ids = sorted(str(row[0]) for row in conn.execute(stmt))
        yield from ids

    def projects(self, *, state: str | None = None) -> Iterator[Project]:
        """Yield projects in id order, without records, a page of rows at a time."""
        p = self._t.projects
        after: str | None = None
        while True:
            stmt = select(p).order_by(p.c.id).limit(_PAGE)
            if state is not None:
                stmt = stmt.where(p.c.state == state)
            if after is not None:
                stmt = stmt.where(p.c.id > after)
            with self._db.connect() as conn:
                rows = conn.execute(stmt).all()
            for row in rows:
                yield _project(row, ())
            if len(rows) < _PAGE:
                return
            after = rows[-1].id

    def find_records(
        self, kind: str, field: str, values: Collection[str]
    ) -> list[tuple[str, Record]]:
        """Return (project id, record) for `kind` records with ``str(data[field])`` in `values`.

        Text and integer fields are found through the record-key index (one probe per
        value, whatever the number of records); anything else by reading the kind's
        records.
        """
        wanted = sorted({str(v) for v in values})
        if not wanted:
            return []
        if _keyed(field, wanted):
            return self._find_keyed(kind, field, wanted)
        with self._db.connect() as conn:
            rows = conn.execute(self._find_stmt(kind, field, wanted)).all()
        return [
            (row.project_id, Record(kind=row.kind, id=row.id, data=row.data, seq=row.seq))
            for row in rows
        ]

    def _find_stmt(self, kind: str, field: str, wanted: list[str]) -> Any:
        r = self._t.records
        if self._db.dialect == "sqlite":
            # The JSON path SQLAlchemy's SQLite dialect binds (`'$."%s"'`), spelt out: the
            # statement also runs on a bare DBAPI cursor (`_guard_value`), where no bind
            # processor formats it.
            extracted: Any = func.json_extract(r.c.data, f'$."{field}"')
        else:
            extracted = r.c.data[field].as_string()
        as_text = cast(extracted, String)
        return (
            select(r.c.project_id, r.c.kind, r.c.id, r.c.data, r.c.seq)
            .where(r.c.kind == kind, as_text.in_(wanted))
            .order_by(r.c.project_id, r.c.seq, r.c.pos)
        )

    def _find_keyed_sql(
        self,
        kind: str,
        field: str,
        wanted: list[str],
        columns: str = "r.project_id, r.kind, r.id, r.data, r.seq",
    ) -> tuple[str, list[str]]:
        """The record-key look-up of `wanted` values (non-empty), reading `columns`."""
        mark = self._mark()
        marks = ", ".join([mark] * len(wanted))
        sql = (
            f"SELECT {columns} "
            f"FROM {self._name(self._t.record_keys)} k JOIN {self._name(self._t.records)} r "
            "ON r.project_id = k.project_id AND r.kind = k.kind AND r.id = k.record_id "
            f"WHERE k.kind = {mark} AND k.field = {mark} AND k.value IN ({marks}) "
            "ORDER BY r.project_id, r.seq, r.pos"
        )
        return sql, [kind, field, *wanted]

    def _find_keyed(self, kind: str, field: str, wanted: list[str]) -> list[tuple[str, Record]]:
        # Plain DBAPI, no statement building: fact providers call this once per item.
        sql, params = self._find_keyed_sql(kind, field, wanted)
        with self._db.connect() as conn:
            cursor = conn.connection.cursor()
            try:
                cursor.execute(sql, params)
                rows = cursor.fetchall()
            finally:
                cursor.close()
        # Rows of our own tables, written from validated records.
        return [
            (pid, trusted(Record, kind=rkind, id=rid, data=self._json(data), seq=seq))
            for pid, rkind, rid, data, seq in rows
        ]

    def count_projects(
        self, data_equals: Mapping[str, Any], *, exclude_states: Collection[str] = ()
    ) -> int:
        """Count projects whose data has every key of `data_equals` equal (as JSON)."""
        if data_equals and all(_indexed_kind(k, v) for k, v in data_equals.items()):
            return self._count_indexed(data_equals, exclude_states)
        with self._db.connect() as conn:
            return int(conn.execute(self._count_stmt(data_equals, exclude_states)).scalar_one())

    def _where(
        self, data_equals: Mapping[str, Any], exclude_states: Collection[str]
    ) -> ColumnElement[bool]:
        conditions = [self._json_equals(key, value) for key, value in data_equals.items()]
        if exclude_states:
            conditions.append(self._t.projects.c.state.not_in(sorted(exclude_states)))
        return and_(True, *conditions)

    def _count_stmt(self, data_equals: Mapping[str, Any], exclude_states: Collection[str]) -> Any:
        p = self._t.projects
        return select(func.count()).select_from(p).where(self._where(data_equals, exclude_states))

    def _count_indexed(
        self, data_equals: Mapping[str, str | int], exclude_states: Collection[str]
    ) -> int:
        # Plain DBAPI, no statement building: the default regime counts a provider's
        # applications once per submission. Only indexed fields, read through their index.
        sql, params = self._count_sql(data_equals, exclude_states)
        with self._db.connect() as conn:
            cursor = conn.connection.cursor()
            try:
                cursor.execute(sql, params)
                row = cursor.fetchone()
            finally:
                cursor.close()
        return int(row[0]) if row else 0

    def _count_sql(
        self, data_equals: Mapping[str, str | int], exclude_states: Collection[str] = ()
    ) -> tuple[str, list[Any]]:
        """The SQL and parameters `count_projects` runs for indexed fields (see its tests)."""
        mark, postgres = self._mark(), self._db.dialect == "postgresql"
        conditions: list[str] = []
        params: list[Any] = []
        for key, value in sorted(data_equals.items()):
            if postgres:
                conditions.append(f"(data -> '{key}') = CAST({mark} AS JSONB)")
                params.append(json.dumps(value, ensure_ascii=False))
            else:
                conditions.append(f"q_{key} = {mark}")
                params.append(value)
        excluded = sorted(exclude_states)
        if excluded:
            conditions.append(f"state NOT IN ({', '.join([mark] * len(excluded))})")
            params.extend(excluded)
        where = " AND ".join(conditions)
        return f"SELECT count(*) FROM {self._name(self._t.projects)} WHERE {where}", params

    def sum_projects(
        self, field: str, data_equals: Mapping[str, Any], *, exclude_states: Collection[str] = ()
    ) -> Decimal:
        """Sum ``data[field]`` (as decimals) over the projects `count_projects` counts.

        One query reads the matching values; Python adds them, exactly (SQLite has no
        exact decimal type).
        """
        stmt = self._sum_stmt(field, data_equals, exclude_states)
        with self._db.connect() as conn:
            return _summed(conn.execute(stmt).all())

    def _sum_stmt(
        self, field: str, data_equals: Mapping[str, Any], exclude_states: Collection[str]
    ) -> Any:
        p = self._t.projects
        if '"' in field or "\\" in field:
            raise InvalidInput("data keys may not contain quotes or backslashes", field="field")
        if self._db.dialect == "postgresql":
            stmt = select(literal("value"), p.c.data[field])
        else:  # SQLite's JSON_EXTRACT turns true into 1: ask for the JSON type too
            path = f'$."{field}"'
            stmt = select(func.json_type(p.c.data, path), func.json_extract(p.c.data, path))
        return stmt.where(self._where(data_equals, exclude_states))

    def _check_guards(self, cursor: Any, changes: Sequence[Change | Move]) -> None:
        """`check_guards` of `changes`, read on the commit's own `cursor`.

        On PostgreSQL what each guard reads is first locked for the transaction (an
        advisory lock per guard, all in one statement, taken in the order of their
        numbers), so that two guarded commits of one total run one after the other and
        the second reads what the first committed; SQLite's ``BEGIN IMMEDIATE`` already
        runs writers one at a time.
        """
        lock = None
        if self._db.dialect == "postgresql":

            def lock(guards: Sequence[Guard | RecordGuard]) -> None:
                self._lock_guards(cursor, guards)

        guarded = guards_of(changes)
        known = self._found_together(cursor, guarded)

        def read(guard: Guard | RecordGuard) -> object:
            found = known.get(guard.key) if isinstance(guard, RecordGuard) else None
            return found if found is not None else self._guard_value(cursor, guard)

        check_guards(guarded, read, lock)

    def _lock_guards(self, cursor: Any, guards: Sequence[Guard | RecordGuard]) -> None:
        """Hold off, until this transaction ends, every other commit guarded by `guards`.

        PostgreSQL only (an advisory lock per guard, all in one statement, in the order
        of their numbers); on SQLite a writer's ``BEGIN IMMEDIATE`` already does.
        """
        if not guards or self._db.dialect != "postgresql":
            return
        # Our own 64-bit numbers, written into the text: no driver's paramstyle.
        numbers = ",".join(str(n) for n in sorted({guard_lock_id(g) for g in guards}))
        cursor.execute(
            "SELECT pg_advisory_xact_lock(k) FROM "
            f"(SELECT unnest(ARRAY[{numbers}]::bigint[]) AS k ORDER BY k) AS locks"
        )

    def _found_together(
        self, cursor: Any, guarded: Sequence[tuple[int, Change, Guard | RecordGuard]]
    ) -> dict[str, tuple[tuple[str, str], ...]]:
        """What the indexed record look-ups of a chunk find now, one query per kind and field.

        A bulk chunk of expenditures holds a look-up per item (its invoice number):
        read one by one, each is a round trip inside the transaction.
        """
        groups: dict[tuple[str, str], list[RecordGuard]] = {}
        for _index, _change, guard in guarded:
            if isinstance(guard, RecordGuard) and _keyed(guard.field, list(guard.values)):
                groups.setdefault((guard.kind, guard.field), []).append(guard)
        known: dict[str, tuple[tuple[str, str], ...]] = {}
        for (kind, field), guards in groups.items():
            if len(guards) < 2:
                continue
            wanted = sorted({v for g in guards for v in g.values})
            if not wanted:
                continue
            columns = "k.value, r.project_id, r.id"
            cursor.execute(*self._find_keyed_sql(kind, field, wanted, columns))
            by_value: dict[str, set[tuple[str, str]]] = {}
            for value, pid, rid in cursor.fetchall():
                by_value.setdefault(str(value), set()).add((str(pid), str(rid)))
            for guard in guards:
                ids = set().union(*(by_value.get(v, set()) for v in guard.values))
                known[guard.key] = tuple(sorted(ids))
        return known

    def _guard_value(self, cursor: Any, guard: Guard | RecordGuard) -> object:
        """What `guard` reads as the transaction of `cursor` sees it."""
        if isinstance(guard, RecordGuard):
            wanted = sorted(guard.values)
            if not wanted:
                return ()
            if _keyed(guard.field, wanted):
                sql, params = self._find_keyed_sql(guard.kind, guard.field, wanted)
                cursor.execute(sql, params)
                rows = list(cursor.fetchall())
            else:
                rows = self._on_cursor(cursor, self._find_stmt(guard.kind, guard.field, wanted))
            return tuple(sorted((str(row[0]), str(row[2])) for row in rows))
        data_equals, excluded = guard.data_equals, guard.exclude_states
        if guard.field is not None:
            stmt = self._sum_stmt(guard.field, data_equals, excluded)
            return _summed(self._on_cursor(cursor, stmt))
        if data_equals and all(_indexed_kind(k, v) for k, v in data_equals.items()):
            sql, params = self._count_sql(data_equals, excluded)
            cursor.execute(sql, params)
            row = cursor.fetchone()
            return int(row[0]) if row else 0
        return int(self._on_cursor(cursor, self._count_stmt(data_equals, excluded))[0][0])

    def _on_cursor(self, cursor: Any, stmt: Any) -> list[Any]:
        """Run a SQLAlchemy statement on a DBAPI `cursor`; return its rows."""
        compiled = stmt.compile(
            dialect=self._db.engine.dialect, compile_kwargs={"render_postcompile": True}
        )
        params = compiled.construct_params()
        if compiled.positional:
            cursor.execute(str(compiled), tuple(params[name] for name in compiled.positiontup))
        else:
            cursor.execute(str(compiled), params)
        return list(cursor.fetchall())

    def counts_at(self, when: datetime) -> dict[str, int]:
        """Count projects by state as of `when`, from the audit table alone."""
        a = self._t.audit
        last = (
            select(a.c.project_id, func.max(a.c.seq).label("seq"))
            .where(a.c.accepted.is_(True), a.c.at <= when)
            .group_by(a.c.project_id)
            .subquery()
        )
        stmt = (
            select(a.c.to_state, func.count())
            .select_from(
                a.join(last, and_(a.c.project_id == last.c.project_id, a.c.seq == last.c.seq))
            )
            .group_by(a.c.to_state)
        )
        with self._db.connect() as conn:
            return {str(state): int(n) for state, n in conn.execute(stmt) if state is not None}

    def get_entity(self, kind: str, entity_id: str) -> Entity | None:
        """Return one entity, or ``None``."""
        # Plain DBAPI: fact providers ask for an entity or two per decided item.
        mark = self._mark()
        sql = (
            f"SELECT parent, data FROM {self._name(self._t.entities)} "
            f"WHERE kind = {mark} AND id = {mark}"
        )
        with self._db.connect() as conn:
            cursor = conn.connection.cursor()
            try:
                cursor.execute(sql, (kind, entity_id))
                row = cursor.fetchone()
            finally:
                cursor.close()
        if row is None:
            return None
        return Entity(kind=kind, id=entity_id, parent=row[0], data=self._json(row[1]))

    def entities(self, kind: str, *, parent: str | None = None) -> Iterator[Entity]:
        """Yield the entities of `kind` (children of `parent` when given), in id order."""
        e = self._t.entities
        stmt = select(e).where(e.c.kind == kind).order_by(e.c.id)
        if parent is not None:
            stmt = stmt.where(e.c.parent == parent)
        with self._db.connect() as conn:
            rows = conn.execute(stmt).all()
        for row in rows:
            yield _entity(row)

    def entry_hash_at(self, project_id: str, seq: int) -> str | None:
        """Return the stored hash of entry `seq` of the chain, or ``None``."""
        a = self._t.audit
        stmt = select(a.c.hash).where(a.c.project_id == project_id, a.c.seq == seq)
        with self._db.connect() as conn:
            found = conn.execute(stmt).scalar()
        return None if found is None else str(found)

    def checkpoint_leaves(self, checkpoint_id: str) -> list[Leaf] | None:
        """Return the chain heads a stored checkpoint covers, or ``None`` if unknown."""
        c, leaf = self._t.checkpoints, self._t.checkpoint_leaves
        stmt = (
            select(c.c.id, leaf.c.project_id, leaf.c.seq, leaf.c.head)
            .select_from(c.outerjoin(leaf, leaf.c.checkpoint_id == c.c.id))
            .where(c.c.id == checkpoint_id)
            .order_by(leaf.c.pos)
        )
        with self._db.connect() as conn:
            rows = conn.execute(stmt).all()
        if not rows:
            return None
        return [
            (str(row.project_id), int(row.seq), str(row.head))
            for row in rows
            if row.project_id is not None
        ]

    def log_size(self) -> int:
        """Return the highest log position plus one (0 for an empty log)."""
        log = self._t.audit_log
        with self._db.connect() as conn:
            found = conn.execute(select(func.max(log.c.position))).scalar()
        return 0 if found is None else int(found) + 1

    def log_leaves(self, start: int, stop: int) -> list[LogLeaf]:
        """Return the log's places in ``[start, stop)`` with the entries' stored hashes."""
        log, a = self._t.audit_log, self._t.audit
        stmt = (
            select(log.c.position, log.c.project_id, log.c.seq, a.c.hash)
            .select_from(
                log.outerjoin(a, and_(a.c.project_id == log.c.project_id, a.c.seq == log.c.seq))
            )
            .where(log.c.position >= start, log.c.position < stop)
            .order_by(log.c.position)
        )
        with self._db.connect() as conn:
            rows = conn.execute(stmt).all()
        return [
            (int(row[0]), str(row[1]), int(row[2]), None if row[3] is None else str(row[3]))
            for row in rows
        ]

    def log_position(self, project_id: str, seq: int) -> int | None:
        """Return the log position of entry `seq` of the chain, or ``None``."""
        log = self._t.audit_log
        stmt = select(log.c.position).where(log.c.project_id == project_id, log.c.seq == seq)
        with self._db.connect() as conn:
            found = conn.execute(stmt).scalar()
        return None if found is None else int(found)

    def obligation_rows(
        self,
        *,
        status: str | None = "open",
        due_by: date | None = None,
        kinds: Collection[str] = (),
        hubs: Collection[str] = (),
    ) -> list[ObligationRow]:
        """Indexed due dates matching the filters, by (due date, project id, key)."""
        o = self._t.obligations
        stmt = select(o).order_by(o.c.due_on, o.c.project_id, o.c.key)
        if status is not None:
            stmt = stmt.where(o.c.status == status)
        if due_by is not None:
            stmt = stmt.where(o.c.due_on <= due_by)
        if kinds:
            stmt = stmt.where(o.c.kind.in_(sorted(kinds)))
        if hubs:
            stmt = stmt.where(o.c.hub.in_(sorted(hubs)))
        with self._db.connect() as conn:
            rows = conn.execute(stmt).all()
        return [
            ObligationRow(
                project_id=row.project_id,
                key=row.key,
                kind=row.kind,
                due_on=row.due_on,
                status=row.status,
                hub=row.hub,
                data=row.data,
            )
            for row in rows
        ]

    def index_obligations(self, rows: Mapping[str, Sequence[ObligationRow]]) -> None:
        """Replace the indexed due dates of each project in `rows`, in one transaction."""
        o = self._t.obligations
        values = [
            {
                "project_id": row.project_id,
                "key": row.key,
                "kind": row.kind,
                "due_on": row.due_on,
                "status": row.status,
                "hub": row.hub,
                "data": dict(row.data),
            }
            for found in rows.values()
            for row in found
        ]
        ids = sorted(rows)

        def work(conn: sqlalchemy.Connection) -> None:
            for start in range(0, len(ids), _PAGE):
                conn.execute(o.delete().where(o.c.project_id.in_(ids[start : start + _PAGE])))
            if values:
                conn.execute(o.insert(), values)

        self._db.write(work)

    @contextlib.contextmanager
    def connect(self) -> Iterator[sqlalchemy.Connection]:
        """Yield a connection for reads (a host's own connection when the store is bound).

        For read-only SQL beside the store's methods (`grantflow.portfolio` totals in the
        database); the transaction is rolled back after, unless it is the host's.
        """
        with self._db.connect() as conn:
            yield conn

    # -- writes --------------------------------------------------------------------------

    def commit(self, change: Change) -> None:
        """Apply `change` in one transaction or not at all.

        Raises:
            ConcurrencyError: the project moved on (state, version or seq taken).
            ProjectExists: a submission's id is already used.
        """

        def work(cursor: Any) -> list[Any]:
            if change.guards:
                self._check_guards(cursor, [change])
            return self._writer.apply(cursor, [change])

        try:
            (error,) = self._db.write_cursor(work)
        except Partial as partial:
            raise partial.error from None
        if error is not None:
            raise error
        self._seen.hold_after((change,))

    def put_entity(self, entity: Entity) -> None:
        """Insert or replace an entity (keyed by kind and id)."""
        e = self._t.entities
        values = {
            "kind": entity.kind,
            "id": entity.id,
            "parent": entity.parent,
            "data": entity.data,
        }
        dialect_insert = postgresql.insert if self._db.dialect == "postgresql" else sqlite.insert
        stmt = dialect_insert(e).values(values)
        stmt = stmt.on_conflict_do_update(
            index_elements=[e.c.kind, e.c.id],
            set_={"parent": stmt.excluded.parent, "data": stmt.excluded.data},
        )
        self._db.write(lambda conn: conn.execute(stmt))

    def save_checkpoint(self, checkpoint: Checkpoint, leaves: Sequence[Leaf]) -> None:
        """Store a checkpoint and the chain heads it covers, in one transaction."""
        rows = [
            {"checkpoint_id": checkpoint.id, "pos": i, "project_id": pid, "seq": seq, "head": head}
            for i, (pid, seq, head) in enumerate(leaves)
        ]

        def work(conn: sqlalchemy.Connection) -> None:
            conn.execute(
                self._t.checkpoints.insert().values(
                    id=checkpoint.id, at=checkpoint.at, size=checkpoint.size, root=checkpoint.root
                )
            )
            if rows:
                conn.execute(self._t.checkpoint_leaves.insert(), rows)

        self._db.write(work)

    def sequence_log(self) -> int:
        """Give the committed entries not yet in the log the next positions; return its size.

        One transaction holding the log table's lock (SQLite: the database write lock of
        ``BEGIN IMMEDIATE``; PostgreSQL: ``LOCK TABLE ... IN EXCLUSIVE MODE``, which lets
        readers and the writers of audit entries go on). The ``INSERT ... SELECT`` sees
        the entries committed when it starts; later ones wait for the next call. So the
        positions are gap-free and only ever appended, whatever the number of writers.
        """
        log, a = self._t.audit_log, self._t.audit

        def work(conn: sqlalchemy.Connection) -> int:
            if self._db.dialect == "postgresql":
                table = conn.dialect.identifier_preparer.format_table(log)
                conn.exec_driver_sql(f"LOCK TABLE {table} IN EXCLUSIVE MODE")
            base = conn.execute(select(func.coalesce(func.max(log.c.position), -1))).scalar_one()
            number = func.row_number().over(order_by=(a.c.project_id, a.c.seq))
            pending = (
                select((number + int(base)).label("position"), a.c.project_id, a.c.seq)
                .select_from(
                    a.outerjoin(log, and_(log.c.project_id == a.c.project_id, log.c.seq == a.c.seq))
                )
                .where(log.c.position.is_(None))
            )
            conn.execute(log.insert().from_select(["position", "project_id", "seq"], pending))
            size = conn.execute(select(func.coalesce(func.max(log.c.position), -1) + 1))
            return int(size.scalar_one())

        return self._db.write(work)

    def close(self) -> None:
        """Dispose of the engine if the store created it (a host's engine is left alone)."""
        self._unlock_all_jobs()
        self._db.dispose()

    # -- internals -----------------------------------------------------------------------

    def _indexed_equals(self, key: str, value: str | int, encoded: str) -> ColumnElement[bool]:
        """`_json_equals` spelled as the query indexes of migration 8 are, so they serve it.

        The generated column on SQLite (the text or integer, else NULL: the same test as
        `_json_equals` makes), the expression with its key as a literal on PostgreSQL.
        """
        if self._db.dialect == "postgresql":
            field = self._t.projects.c.data.op("->")(literal_column(f"'{key}'"))
            return field == cast(literal(encoded), postgresql.JSONB)
        table = self._db.engine.dialect.identifier_preparer.format_table(self._t.projects)
        return literal_column(f"{table}.q_{key}") == value

    def _json_equals(self, key: str, value: Any) -> ColumnElement[bool]:
        column = self._t.projects.c.data
        if '"' in key or "\\" in key:
            raise InvalidInput("data keys may not contain quotes or backslashes", field="data")
        encoded = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        if _indexed_kind(key, value):
            return self._indexed_equals(key, value, encoded)
        if self._db.dialect == "postgresql":
            equal = column[key] == cast(literal(encoded), postgresql.JSONB)
            # A key the data lacks counts as null, as in the memory store.
            return or_(equal, column[key].is_(None)) if value is None else equal
        return _sqlite_json_equals(column, key, value, encoded)


def _sqlite_json_equals(column: Any, key: str, value: Any, encoded: str) -> ColumnElement[bool]:
    path = f'$."{key}"'
    kind = func.json_type(column, path)
    extracted = func.json_extract(column, path)
    if value is None:  # a key the data lacks counts as null, as in the memory store
        return or_(kind == "null", kind.is_(None))
    if isinstance(value, bool):
        return kind == ("true" if value else "false")
    if isinstance(value, int):
        return and_(kind == "integer", extracted == value)
    if isinstance(value, str):
        return and_(kind == "text", extracted == value)
    return case((kind.in_(["object", "array"]), func.json(extracted)), else_=None) == func.json(
        encoded
    )


def _indexed_kind(key: str, value: Any) -> bool:
    """Whether `key` is indexed and `value` has the type its index holds (year: int, else text)."""
    if key not in QUERY_INDEXES:
        return False
    if key == "year":
        return type(value) is int
    return type(value) is str


def _project(row: Any, records: tuple[Record, ...]) -> Project:
    return Project(
        id=row.id,
        state=row.state,
        version=row.version,
        head=row.head,
        data=row.data,
        records=records,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _entity(row: Any) -> Entity:
    return Entity(kind=row.kind, id=row.id, parent=row.parent, data=row.data)


def _summed(rows: Any) -> Decimal:
    """The exact sum of (JSON type, value) rows, as `SqlStore.sum_projects` reads them."""
    return sum(
        (decimal_or_zero(value) for kind, value in rows if kind not in {"true", "false"}),
        Decimal(0),
    )


def _keyed(field: str, wanted: list[str]) -> bool:
    """Whether a look-up of `wanted` values of `field` goes through the record-key index."""
    return len(field) <= KEY_FIELD and all(len(v) <= KEY_VALUE for v in wanted)
