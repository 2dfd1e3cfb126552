"""Table definitions (SQLModel) and their copy under a host's table prefix and schema.

The SQLModel classes below live in a private registry, so they never mix with a host
application's own SQLModel metadata. `build_tables` copies them into a fresh `MetaData`
with the configured prefix and schema; the rest of the SQL store only sees that copy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Dialect,
    Float,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    TypeDecorator,
)
from sqlalchemy.dialects.postgresql import JSONB, VARCHAR
from sqlalchemy.orm import registry
from sqlalchemy.sql.schema import RETAIN_SCHEMA
from sqlmodel import Field, SQLModel

from grantflow.errors import InvalidInput

__all__ = ["KEY_FIELD", "KEY_VALUE", "Tables", "UTCDateTime", "build_tables", "record_keys"]

#: Identifiers compare byte-wise everywhere (``COLLATE "C"`` on PostgreSQL), so SQL
#: ``ORDER BY id`` agrees with Python's ``sorted`` and with the memory store.
_ID = String(128).with_variant(VARCHAR(128, collation="C"), "postgresql")
_NAME = String(160)
_KEY = String(300).with_variant(VARCHAR(300, collation="C"), "postgresql")
_HASH = String(64)
_JSON = JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime with microseconds, identical after a round trip.

    SQLite has no time zone type: values are stored as naive UTC text and come back
    marked UTC. PostgreSQL stores ``timestamptz``; values come back converted to UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Refuse naive datetimes; hand SQLite naive UTC and PostgreSQL aware UTC."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise InvalidInput("datetime must be timezone-aware", field="at")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Return the stored instant as an aware UTC datetime."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class _Row(SQLModel, registry=registry()):
    """Base of grantflow's table classes, in a registry of their own."""


class SchemaVersionRow(_Row, table=True):
    """One applied migration: the schema version it reached and when."""

    __tablename__ = "schema_version"
    version: int = Field(
        primary_key=True, sa_type=Integer, sa_column_kwargs={"autoincrement": False}
    )
    description: str = Field(sa_type=String(200))
    applied_at: datetime = Field(sa_type=UTCDateTime)


class ProjectRow(_Row, table=True):
    """The current snapshot of a project; (state, version) is the compare-and-set token."""

    __tablename__ = "projects"
    id: str = Field(primary_key=True, sa_type=_ID)
    state: str = Field(sa_type=_ID)
    version: int = Field(sa_type=Integer)
    head: str = Field(sa_type=_HASH)
    data: dict[str, Any] = Field(sa_type=_JSON)
    created_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)


class AuditRow(_Row, table=True):
    """One audit entry; the primary key is the ``UNIQUE(project_id, seq)`` of the chain.

    No foreign key to the projects: a refused submission leaves a chain without a project.
    """

    __tablename__ = "audit"
    project_id: str = Field(primary_key=True, sa_type=_ID)
    seq: int = Field(primary_key=True, sa_type=Integer, sa_column_kwargs={"autoincrement": False})
    kind: str = Field(sa_type=String(16))
    event: str = Field(sa_type=_NAME)
    from_state: str | None = Field(default=None, sa_type=_ID, nullable=True)
    to_state: str | None = Field(default=None, sa_type=_ID, nullable=True)
    accepted: bool = Field(sa_type=Boolean)
    actor: dict[str, Any] = Field(sa_type=_JSON)
    at: datetime = Field(sa_type=UTCDateTime)
    evidence: dict[str, Any] = Field(sa_type=_JSON)
    refusals: list[Any] = Field(sa_type=_JSON)
    records: list[Any] = Field(sa_type=_JSON)
    data: dict[str, Any] = Field(sa_type=_JSON)
    prev_hash: str = Field(sa_type=_HASH)
    hash: str = Field(sa_type=_HASH)
    #: The lifecycle, rule book and policy fingerprints (NULL in entries written before).
    decided_under: dict[str, Any] | None = Field(default=None, sa_type=_JSON, nullable=True)
    #: The clock's reading when it was behind the project's last change (else NULL).
    clamped_from: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)


class RecordRow(_Row, table=True):
    """A project record; `seq` is the audit entry that added it, `pos` its place there."""

    __tablename__ = "records"
    project_id: str = Field(primary_key=True, sa_type=_ID)
    kind: str = Field(primary_key=True, sa_type=_ID)
    id: str = Field(primary_key=True, sa_type=_ID)
    seq: int = Field(sa_type=Integer)
    pos: int = Field(sa_type=Integer)
    data: dict[str, Any] = Field(sa_type=_JSON)


class RecordKeyRow(_Row, table=True):
    """One top-level field of a record, for look-ups across projects (`find_records`).

    Every text or integer field of every record (field names up to `KEY_FIELD` and
    values up to `KEY_VALUE` characters), written in the transaction that writes the
    record: finding an invoice number among all expenditures is one index probe, however
    many records the store holds.
    """

    __tablename__ = "record_keys"
    kind: str = Field(primary_key=True, sa_type=_ID)
    field: str = Field(primary_key=True, sa_type=_ID)
    value: str = Field(
        primary_key=True,
        sa_type=String(255).with_variant(VARCHAR(255, collation="C"), "postgresql"),
    )
    project_id: str = Field(primary_key=True, sa_type=_ID)
    record_id: str = Field(primary_key=True, sa_type=_ID)


#: Longest field name and value `RecordKeyRow` keeps; longer ones are found by a scan.
KEY_FIELD = 128
KEY_VALUE = 255


class AuditLogRow(_Row, table=True):
    """The place of one audit entry in the append-only log that checkpoints cover.

    Positions run 0, 1, 2, ... with no gap; entries get theirs when a checkpoint sequences
    them (see `grantflow.audit.tree_head`), in one transaction, never changed afterwards.
    """

    __tablename__ = "audit_log"
    position: int = Field(
        primary_key=True, sa_type=BigInteger, sa_column_kwargs={"autoincrement": False}
    )
    project_id: str = Field(sa_type=_ID)
    seq: int = Field(sa_type=Integer)


class EntityRow(_Row, table=True):
    """Reference data: hubs, providers, calls, brands, people."""

    __tablename__ = "entities"
    kind: str = Field(primary_key=True, sa_type=_ID)
    id: str = Field(primary_key=True, sa_type=_ID)
    parent: str | None = Field(default=None, sa_type=_ID, nullable=True)
    data: dict[str, Any] = Field(sa_type=_JSON)


class CheckpointRow(_Row, table=True):
    """A portfolio checkpoint: a Merkle root over chain heads."""

    __tablename__ = "checkpoints"
    id: str = Field(primary_key=True, sa_type=_HASH)
    at: datetime = Field(sa_type=UTCDateTime)
    size: int = Field(sa_type=Integer)
    root: str = Field(sa_type=_HASH)


class CheckpointLeafRow(_Row, table=True):
    """One chain head covered by a checkpoint, in Merkle leaf order."""

    __tablename__ = "checkpoint_leaves"
    checkpoint_id: str = Field(primary_key=True, sa_type=_HASH)
    pos: int = Field(primary_key=True, sa_type=Integer, sa_column_kwargs={"autoincrement": False})
    project_id: str = Field(sa_type=_ID)
    seq: int = Field(sa_type=Integer)
    head: str = Field(sa_type=_HASH)


class BulkJobRow(_Row, table=True):
    """A bulk job, named by its idempotency key: input digest, run holding it, status."""

    __tablename__ = "bulk_jobs"
    key: str = Field(primary_key=True, sa_type=_ID)
    event: str = Field(sa_type=_NAME)
    digest: str = Field(sa_type=_HASH)
    run_id: str = Field(sa_type=String(128))
    #: The owner id (``host:pid:nonce``) of the worker that began or took over the run.
    holder: str = Field(default="", sa_type=String(160), sa_column_kwargs={"server_default": ""})
    status: str = Field(sa_type=String(16))
    chunks_total: int | None = Field(default=None, sa_type=Integer, nullable=True)
    lease_until: float = Field(sa_type=Float)
    created_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)


class BulkChunkRow(_Row, table=True):
    """One chunk of a bulk job: its lease, progress and the tally of its items."""

    __tablename__ = "bulk_chunks"
    key: str = Field(primary_key=True, sa_type=_ID)
    chunk: int = Field(primary_key=True, sa_type=Integer, sa_column_kwargs={"autoincrement": False})
    owner: str = Field(sa_type=String(160))
    start: int = Field(sa_type=Integer)
    stop: int = Field(sa_type=Integer)
    next_index: int = Field(sa_type=Integer)
    done: bool = Field(sa_type=Boolean)
    digest: str = Field(sa_type=_HASH)
    lease_until: float = Field(sa_type=Float)
    counts: dict[str, Any] = Field(sa_type=_JSON)
    items: list[Any] = Field(sa_type=_JSON)


class ObligationIndexRow(_Row, table=True):
    """One due date of a project (`grantflow.obligations`), rewritten with each change to it.

    An index: every row can be derived again from the project (``Engine.reindex_obligations``).
    """

    __tablename__ = "obligations"
    project_id: str = Field(primary_key=True, sa_type=_ID)
    key: str = Field(primary_key=True, sa_type=_KEY)
    kind: str = Field(sa_type=_ID)
    due_on: date = Field(sa_type=Date)
    status: str = Field(sa_type=String(16))
    hub: str | None = Field(default=None, sa_type=_ID, nullable=True)
    data: dict[str, Any] = Field(sa_type=_JSON)


class OutboxRow(_Row, table=True):
    """One outbox message: committed with its audit entry, claimed by consumers with leases.

    `position` orders the messages (roughly commit order). `id` is the stable message id
    receivers de-duplicate on; an audit message stores neither id nor payload (``NULL``):
    both come from its audit row when read (the id is the entry's hash), so the hot
    path of a bulk run writes a short row and no random-order index entry.
    """

    __tablename__ = "outbox"
    position: int | None = Field(
        default=None,
        primary_key=True,
        sa_type=BigInteger().with_variant(Integer(), "sqlite"),
        sa_column_kwargs={"autoincrement": True},
    )
    id: str | None = Field(default=None, sa_type=_ID, nullable=True)
    topic: str = Field(sa_type=String(64))
    project_id: str | None = Field(default=None, sa_type=_ID, nullable=True)
    seq: int | None = Field(default=None, sa_type=Integer, nullable=True)
    payload: dict[str, Any] | None = Field(default=None, sa_type=_JSON, nullable=True)
    created_at: datetime = Field(sa_type=UTCDateTime)
    status: str = Field(
        default="pending", sa_type=String(16), sa_column_kwargs={"server_default": "pending"}
    )
    attempts: int = Field(default=0, sa_type=Integer, sa_column_kwargs={"server_default": "0"})
    available_at: float = Field(
        default=0.0, sa_type=Float, sa_column_kwargs={"server_default": "0"}
    )
    lease_owner: str = Field(
        default="", sa_type=String(160), sa_column_kwargs={"server_default": ""}
    )
    lease_until: float = Field(default=0.0, sa_type=Float, sa_column_kwargs={"server_default": "0"})
    last_error: str = Field(
        default="", sa_type=String(2000), sa_column_kwargs={"server_default": ""}
    )
    done_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)


_MODELS: tuple[type[_Row], ...] = (
    SchemaVersionRow,
    ProjectRow,
    AuditRow,
    AuditLogRow,
    RecordRow,
    RecordKeyRow,
    EntityRow,
    CheckpointRow,
    CheckpointLeafRow,
    BulkJobRow,
    BulkChunkRow,
    ObligationIndexRow,
    OutboxRow,
)


@dataclass(frozen=True)
class Tables:
    """grantflow's tables under one prefix and schema."""

    metadata: MetaData
    prefix: str
    schema: str | None
    schema_version: Table
    projects: Table
    audit: Table
    audit_log: Table
    records: Table
    record_keys: Table
    entities: Table
    checkpoints: Table
    checkpoint_leaves: Table
    bulk_jobs: Table
    bulk_chunks: Table
    obligations: Table
    outbox: Table


def record_keys(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The (field, value) pairs of a record's data that `RecordKeyRow` indexes.

    Text and integer values (not booleans) as ``str(value)``, the text `find_records`
    compares; names and values within `KEY_FIELD` and `KEY_VALUE` characters.
    """
    return [
        (name, text)
        for name, value in data.items()
        if (type(value) is str or type(value) is int)
        and len(name) <= KEY_FIELD
        and len(text := str(value)) <= KEY_VALUE
    ]


def build_tables(prefix: str = "grantflow_", schema: str | None = None) -> Tables:
    """Copy the table definitions under `prefix` and `schema` into a fresh `MetaData`."""
    if not prefix.replace("_", "").isalnum() and prefix != "":
        raise InvalidInput(
            f"table_prefix {prefix!r} must be letters, digits and underscores", field="table_prefix"
        )
    metadata = MetaData(schema=schema)
    copied: dict[str, Table] = {}
    for model in _MODELS:
        source: Table = model.__table__  # type: ignore[attr-defined]
        copied[source.name] = source.to_metadata(
            metadata, schema=schema or RETAIN_SCHEMA, name=prefix + source.name
        )
    records, leaves = copied["records"], copied["checkpoint_leaves"]
    records.append_constraint(
        ForeignKeyConstraint(
            ["project_id"], [copied["projects"].c.id], name=f"{prefix}records_project_fk"
        )
    )
    leaves.append_constraint(
        ForeignKeyConstraint(
            ["checkpoint_id"], [copied["checkpoints"].c.id], name=f"{prefix}leaves_checkpoint_fk"
        )
    )
    # Index names are per schema in PostgreSQL: prefix them like the tables.
    Index(f"{prefix}ix_records_kind", records.c.kind)
    log = copied["audit_log"]
    Index(f"{prefix}ux_audit_log_entry", log.c.project_id, log.c.seq, unique=True)
    Index(f"{prefix}ix_entities_parent", copied["entities"].c.kind, copied["entities"].c.parent)
    due = copied["obligations"]
    Index(f"{prefix}ix_obligations_due", due.c.status, due.c.due_on)
    Index(f"{prefix}ix_obligations_hub", due.c.hub, due.c.status, due.c.due_on)
    outbox = copied["outbox"]
    given = outbox.c.id.isnot(None)
    Index(
        f"{prefix}ux_outbox_id",
        outbox.c.id,
        unique=True,
        sqlite_where=given,
        postgresql_where=given,
    )
    # Consumers look for pending messages in position order, and for their own leases.
    pending = outbox.c.status == "pending"
    Index(
        f"{prefix}ix_outbox_pending",
        outbox.c.position,
        sqlite_where=pending,
        postgresql_where=pending,
    )
    leased = outbox.c.lease_owner != ""
    Index(
        f"{prefix}ix_outbox_owner",
        outbox.c.lease_owner,
        sqlite_where=leased,
        postgresql_where=leased,
    )
    return Tables(
        metadata=metadata,
        prefix=prefix,
        schema=schema,
        schema_version=copied["schema_version"],
        projects=copied["projects"],
        audit=copied["audit"],
        audit_log=log,
        records=records,
        record_keys=copied["record_keys"],
        entities=copied["entities"],
        checkpoints=copied["checkpoints"],
        checkpoint_leaves=leaves,
        bulk_jobs=copied["bulk_jobs"],
        bulk_chunks=copied["bulk_chunks"],
        obligations=due,
        outbox=outbox,
    )
