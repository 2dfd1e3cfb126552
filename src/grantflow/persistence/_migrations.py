"""Schema versions: an ordered list of migrations, each run in a transaction and recorded.

The ``schema_version`` table holds one row per applied migration. Opening a store
compares its highest version with `SCHEMA_VERSION`; `upgrade` applies the missing
migrations in order, under a lock (SQLite ``BEGIN IMMEDIATE``; a PostgreSQL advisory
lock), so two processes upgrading at once apply each migration exactly once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, func, insert, inspect, select, text
from sqlalchemy.schema import CreateSchema

from grantflow.errors import SchemaVersionError
from grantflow.persistence._schema import KEY_FIELD, KEY_VALUE, Tables

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "Migration", "apply_pending", "check", "current_version"]


@dataclass(frozen=True)
class Migration:
    """One schema change: the version it produces, what it does, and the function doing it."""

    version: int
    description: str
    apply: Callable[[Connection, Tables], None]


def _v1(conn: Connection, t: Tables) -> None:
    t.metadata.create_all(
        conn,
        tables=[t.projects, t.audit, t.records, t.entities, t.checkpoints, t.checkpoint_leaves],
    )


def _v2(conn: Connection, t: Tables) -> None:
    t.metadata.create_all(conn, tables=[t.bulk_jobs, t.bulk_chunks])


def _v3(conn: Connection, t: Tables) -> None:
    # A database created by this release already has the column (v2 builds the table
    # from the current definition): add it only where an older release left it out.
    columns = {c["name"] for c in inspect(conn).get_columns(t.bulk_jobs.name, schema=t.schema)}
    if "holder" not in columns:
        table = conn.dialect.identifier_preparer.format_table(t.bulk_jobs)
        conn.exec_driver_sql(
            f"ALTER TABLE {table} ADD COLUMN holder VARCHAR(160) NOT NULL DEFAULT ''"
        )


def _v4(conn: Connection, t: Tables) -> None:
    t.metadata.create_all(conn, tables=[t.audit_log])


def _v5(conn: Connection, t: Tables) -> None:
    # An index of due dates: projects that exist already get their rows from
    # `Engine.reindex_obligations` (``grantflow due --reindex``), which knows the regime.
    t.metadata.create_all(conn, tables=[t.obligations])


def _v6(conn: Connection, t: Tables) -> None:
    # As in v3: a database created by this release has the columns already.
    columns = {c["name"] for c in inspect(conn).get_columns(t.audit.name, schema=t.schema)}
    table = conn.dialect.identifier_preparer.format_table(t.audit)
    json_type = "JSONB" if conn.dialect.name == "postgresql" else "JSON"
    time_type = "TIMESTAMP WITH TIME ZONE" if conn.dialect.name == "postgresql" else "DATETIME"
    for name, kind in (("decided_under", json_type), ("clamped_from", time_type)):
        if name not in columns:
            conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")


def _v7(conn: Connection, t: Tables) -> None:
    t.metadata.create_all(conn, tables=[t.outbox])


def _v8(conn: Connection, t: Tables) -> None:
    from grantflow.persistence._sqlindexes import create_query_indexes

    create_query_indexes(conn, t)


def _v9(conn: Connection, t: Tables) -> None:
    t.metadata.create_all(conn, tables=[t.record_keys])
    keys = conn.dialect.identifier_preparer.format_table(t.record_keys)
    records = conn.dialect.identifier_preparer.format_table(t.records)
    # The records written before this version get their keys, as the writer makes them.
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(
            f"INSERT INTO {keys} (kind, field, value, project_id, record_id) "
            f"SELECT r.kind, j.key, j.value #>> '{{}}', r.project_id, r.id FROM {records} r, "
            "jsonb_each(r.data) j WHERE (jsonb_typeof(j.value) = 'string' OR "
            "(jsonb_typeof(j.value) = 'number' AND j.value::text ~ '^-?[0-9]+$')) "
            f"AND length(j.key) <= {KEY_FIELD} AND length(j.value #>> '{{}}') <= {KEY_VALUE}"
        )
    else:
        conn.exec_driver_sql(
            f"INSERT INTO {keys} (kind, field, value, project_id, record_id) "
            f"SELECT r.kind, j.key, CAST(j.value AS TEXT), r.project_id, r.id FROM {records} r, "
            "json_each(r.data) j WHERE j.type IN ('text', 'integer') "
            f"AND length(j.key) <= {KEY_FIELD} AND length(CAST(j.value AS TEXT)) <= {KEY_VALUE}"
        )


#: Every migration, oldest first; append, never edit a released one.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "projects, audit chain, records, entities, checkpoints", _v1),
    Migration(2, "bulk jobs and their chunks (idempotency keys, leases, progress)", _v2),
    Migration(3, "bulk jobs name their holder, so a dead one is taken over at once", _v3),
    Migration(4, "the audit log order: a gap-free position per sequenced entry", _v4),
    Migration(5, "obligations: an index of every project's due dates", _v5),
    Migration(6, "audit entries name what decided them and a clock that was behind", _v6),
    Migration(7, "the outbox: a message per committed audit entry, leased to consumers", _v7),
    Migration(8, "indexes for project queries: state, update time, hub, call, brand, ...", _v8),
    Migration(9, "record keys: records found by a field's value through an index", _v9),
)
#: The schema version this grantflow reads and writes.
SCHEMA_VERSION = MIGRATIONS[-1].version


def current_version(conn: Connection, t: Tables) -> int | None:
    """Return the database's schema version, or ``None`` if it has no grantflow schema."""
    if not inspect(conn).has_table(t.schema_version.name, schema=t.schema):
        return None
    found = conn.execute(select(func.max(t.schema_version.c.version))).scalar()
    return int(found) if found is not None else None


def check(found: int | None, *, create_hint: bool) -> None:
    """Raise `SchemaVersionError` unless `found` is `SCHEMA_VERSION`."""
    if found == SCHEMA_VERSION:
        return
    if found is None:
        hint = "open it with create=True or run `grantflow db upgrade`" if create_hint else ""
        raise SchemaVersionError(
            f"the database has no grantflow schema; {hint or 'run `grantflow db upgrade`'}",
            found=None,
            expected=SCHEMA_VERSION,
        )
    if found < SCHEMA_VERSION:
        raise SchemaVersionError(
            f"the database schema is at version {found}, this grantflow needs "
            f"{SCHEMA_VERSION}: back the database up, then run `grantflow db upgrade`",
            found=found,
            expected=SCHEMA_VERSION,
        )
    raise SchemaVersionError(
        f"the database schema is at version {found}, newer than this grantflow "
        f"({SCHEMA_VERSION}) understands: upgrade the grantflow package; refusing to open",
        found=found,
        expected=SCHEMA_VERSION,
    )


def apply_pending(conn: Connection, t: Tables) -> int:
    """Apply the missing migrations inside the caller's write transaction; return the version.

    Raises `SchemaVersionError` if the database is newer than this grantflow.
    """
    if conn.dialect.name == "postgresql":
        if t.schema is not None:
            conn.execute(CreateSchema(t.schema, if_not_exists=True))
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _lock_key(t)})
    t.metadata.create_all(conn, tables=[t.schema_version])
    found = current_version(conn, t) or 0
    if found > SCHEMA_VERSION:
        check(found, create_hint=False)
    for migration in MIGRATIONS:
        if migration.version <= found:
            continue
        migration.apply(conn, t)
        conn.execute(
            insert(t.schema_version).values(
                version=migration.version,
                description=migration.description,
                applied_at=datetime.now(UTC),
            )
        )
    return SCHEMA_VERSION


def _lock_key(t: Tables) -> int:
    digest = hashlib.sha256(f"grantflow:{t.schema}:{t.prefix}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)
