"""The write path: compare-and-set commits on a raw DBAPI cursor, one or many per transaction.

Statements are SQLAlchemy Core constructs compiled once per store; each change runs as
plain ``cursor.execute`` calls, without ORM or validation overhead:

* an existing project: ``UPDATE projects ... WHERE id AND state AND version`` (the
  compare-and-set; row count 0 means another writer won), then the audit row (its
  primary key is ``UNIQUE(project_id, seq)``), then the records;
* a new chain (a submission): the audit row is inserted only if no project has the id
  and the chain's last ``seq`` is the expected version; then the project row.

Nothing is read in Python before a write. A change whose first statement matches no row
wrote nothing and is reported on its own; if a later statement of a change fails, the
whole chunk is rolled back and run again with one savepoint per change.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    Dialect,
    Table,
    and_,
    bindparam,
    cast,
    delete,
    exists,
    func,
    insert,
    literal,
    literal_column,
    null,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.expression import ClauseElement

from grantflow._canonical import plain
from grantflow.errors import ConcurrencyError, GrantflowError, InvalidInput, ProjectExists
from grantflow.models import Actor, AuditEntry, DecisionBasis, Project
from grantflow.persistence._outbox import AUDIT_TOPIC
from grantflow.persistence._protocol import Change, ChunkProgress, ObligationRow
from grantflow.persistence._schema import Tables, record_keys

__all__ = ["Partial", "Writer"]

# The audit table's columns are the entry's fields, named once (in `AuditEntry`).
_AUDIT_COLUMNS = tuple(AuditEntry.model_fields)
_JSON_AUDIT = frozenset({"actor", "evidence", "refusals", "records", "data", "decided_under"})
_PROJECT_COLUMNS = ("id", "state", "version", "head", "data", "created_at", "updated_at")
_RECORD_COLUMNS = ("project_id", "kind", "id", "seq", "pos", "data")
_OBLIGATION_COLUMNS = ("project_id", "key", "kind", "due_on", "status", "hub", "data")


class Partial(Exception):  # noqa: N818 - internal signal, never escapes the store
    """A change failed after writing part of itself; its transaction must be rolled back."""

    def __init__(self, error: GrantflowError) -> None:
        super().__init__(error.message)
        self.error = error


class _Statement:
    """A compiled statement and how to lay out its parameters for the driver."""

    def __init__(self, stmt: ClauseElement, dialect: Dialect) -> None:
        compiled = stmt.compile(dialect=dialect)
        assert isinstance(compiled, SQLCompiler)
        self.sql = str(compiled)
        self._order: tuple[str, ...] | None = (
            tuple(compiled.positiontup) if compiled.positional and compiled.positiontup else None
        )

        # Literals SQLAlchemy turned into parameters (e.g. the 0 in COALESCE) keep their value.
        self._defaults = {k: v for k, v in compiled.params.items() if v is not None}

    def params(self, values: Mapping[str, Any]) -> Any:
        if self._defaults:
            values = {**self._defaults, **values}
        if self._order is None:
            return values
        return tuple(map(values.__getitem__, self._order))


_ENCODER = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _dumps(value: Any) -> str:
    return _ENCODER.encode(plain(value))


def _dumps_plain(value: Mapping[str, Any]) -> str:
    # Model fields typed JsonObject hold plain JSON already: skip the `plain` walk.
    return _ENCODER.encode(value) if value else "{}"


def _dumps_seq(value: tuple[Any, ...]) -> str:
    return _dumps(value) if value else "[]"


@functools.lru_cache(maxsize=256)
def _dumps_basis(basis: DecisionBasis | None) -> str | None:
    return None if basis is None else _ENCODER.encode(basis.model_dump())


@functools.lru_cache(maxsize=1024)
def _dumps_actor(actor: Actor) -> str:
    return _ENCODER.encode(
        {"id": actor.id, "organisation": actor.organisation, "roles": sorted(actor.roles)}
    )


class _Batch:
    """The driver parameters of a batch's rows, one list per statement."""

    __slots__ = ("audits", "keys", "outbox", "records", "seen", "waves")

    def __init__(self) -> None:
        # A project's n-th change of the batch goes in the n-th wave of updates (rows
        # keeping the data, rows rewriting it): its compare-and-set expects the version
        # the project's previous change writes.
        self.waves: list[tuple[list[Any], list[Any]]] = []
        self.seen: dict[str, int] = {}
        self.audits: list[Any] = []
        self.records: list[Any] = []
        self.keys: list[Any] = []
        self.outbox: list[Any] = []

    def wave(self, project_id: str) -> tuple[list[Any], list[Any]]:
        """The update rows of the wave `project_id`'s next change goes in."""
        wave = self.seen.get(project_id, 0)
        self.seen[project_id] = wave + 1
        if wave == len(self.waves):
            self.waves.append(([], []))
        return self.waves[wave]


class Writer:
    """Applies changes on a DBAPI cursor; the caller owns the transaction."""

    def __init__(self, tables: Tables, dialect: Dialect, integrity_error: type[Exception]) -> None:
        self._integrity = integrity_error
        self._time: Callable[[datetime], Any] = (
            _sqlite_time if dialect.name == "sqlite" else _aware_utc
        )
        t = tables
        pid: ColumnElement[Any] = bindparam("p_project_id")
        cas = update(t.projects).where(
            t.projects.c.id == bindparam("w_id"),
            t.projects.c.state == bindparam("w_state"),
            t.projects.c.version == bindparam("w_version"),
        )
        moved: dict[str, Any] = {
            "state": bindparam("n_state"),
            "version": bindparam("n_version"),
            "head": bindparam("n_head"),
            "updated_at": bindparam("n_updated_at"),
        }
        self._update = _Statement(cas.values(**moved, data=_json_param("n_data", dialect)), dialect)
        # Most transitions leave the data alone: don't rewrite (or re-encode) it.
        self._update_keep_data = _Statement(cas.values(**moved), dialect)
        self._insert_audit = _Statement(
            insert(t.audit).values({c: _audit_param(c, dialect) for c in _AUDIT_COLUMNS}),
            dialect,
        )
        tip = (
            select(func.coalesce(func.max(t.audit.c.seq), 0))
            .where(t.audit.c.project_id == pid)
            .scalar_subquery()
        )
        guarded = select(*[_audit_param(c, dialect) for c in _AUDIT_COLUMNS]).where(
            and_(
                ~exists().where(t.projects.c.id == pid),
                tip == bindparam("w_version"),
            )
        )
        self._insert_chain = _Statement(
            _dialect_insert(t.audit, dialect)
            .from_select(list(_AUDIT_COLUMNS), guarded)
            .on_conflict_do_nothing(),
            dialect,
        )
        self._insert_project = _Statement(
            insert(t.projects).values(
                {
                    c: _json_param(f"p_{c}", dialect) if c == "data" else bindparam(f"p_{c}")
                    for c in _PROJECT_COLUMNS
                }
            ),
            dialect,
        )
        self._insert_record = _Statement(
            insert(t.records).values(
                {
                    c: _json_param(f"p_{c}", dialect) if c == "data" else bindparam(f"p_{c}")
                    for c in _RECORD_COLUMNS
                }
            ),
            dialect,
        )
        self._insert_key = _Statement(
            insert(t.record_keys).values(
                {
                    c: bindparam(f"k_{c}")
                    for c in ("kind", "field", "value", "project_id", "record_id")
                }
            ),
            dialect,
        )
        chunks, jobs = t.bulk_chunks, t.bulk_jobs
        self._fence = _Statement(
            update(chunks)
            .where(
                chunks.c.key == bindparam("w_key"),
                chunks.c.chunk == bindparam("w_chunk"),
                chunks.c.owner == bindparam("w_owner"),
                chunks.c.done == bindparam("w_done"),
            )
            .values(
                next_index=bindparam("n_next_index"),
                done=bindparam("n_done"),
                digest=bindparam("n_digest"),
                counts=_json_param("n_counts", dialect),
                items=_json_param("n_items", dialect),
                lease_until=bindparam("n_lease_until"),
            ),
            dialect,
        )
        self._job_lease = _Statement(
            update(jobs)
            .where(jobs.c.key == bindparam("w_key"))
            .values(lease_until=bindparam("n_lease_until")),
            dialect,
        )
        self._project_exists = _Statement(
            select(literal(1)).where(t.projects.c.id == bindparam("w_id")), dialect
        )
        self._delete_obligations = _Statement(
            delete(t.obligations).where(t.obligations.c.project_id == bindparam("o_project_id")),
            dialect,
        )
        self._insert_obligation = _Statement(
            insert(t.obligations).values(
                {
                    c: _json_param(f"o_{c}", dialect) if c == "data" else bindparam(f"o_{c}")
                    for c in _OBLIGATION_COLUMNS
                }
            ),
            dialect,
        )
        self._date: Callable[[date], Any] = (
            date.isoformat if dialect.name == "sqlite" else _same_date
        )
        # The outbox: one message per committed entry, written with it (its id and payload
        # are the audit row's), and a change's own messages, skipped if already queued.
        fresh: dict[str, Any] = {
            **{c: bindparam(f"o_{c}") for c in ("topic", "project_id", "seq")},
            "created_at": _time_param("o_created_at", dialect),
            # A new message's state, inline: nothing more to bind per row.
            "status": literal_column("'pending'"),
            "attempts": literal_column("0"),
            "available_at": literal_column("0"),
            "lease_owner": literal_column("''"),
            "lease_until": literal_column("0"),
            "last_error": literal_column("''"),
            "done_at": null(),
        }
        # inline(): no RETURNING of the generated position, which nobody reads.
        self._insert_outbox = _Statement(
            insert(t.outbox).inline().values({**fresh, "id": null(), "payload": null()}), dialect
        )
        self._insert_message = _Statement(
            _dialect_insert(t.outbox, dialect)
            .inline()
            .values(
                {**fresh, "id": bindparam("o_id"), "payload": _json_param("o_payload", dialect)}
            )
            .on_conflict_do_nothing(
                index_elements=[t.outbox.c.id], index_where=t.outbox.c.id.isnot(None)
            ),
            dialect,
        )

    # -- entry points --------------------------------------------------------------------

    def apply(self, cursor: Any, changes: Sequence[Change]) -> list[GrantflowError | None]:
        """Apply `changes` in order; return one error (or ``None``) per change.

        A change that fails half-way raises `Partial` (the caller rolls the transaction
        back).
        """
        return [self._apply_one(cursor, change) for change in changes]

    @staticmethod
    def batchable(change: Change) -> bool:
        """Whether `apply_batch` takes `change`: a change to an existing project, in sequence."""
        return (
            change.expected_state is not None
            and change.after is not None
            and change.entry.seq == change.expected_version + 1
        )

    def apply_batch(self, cursor: Any, changes: Sequence[Change]) -> bool:
        """Apply changes to existing projects with ``executemany``; False if any CAS lost.

        The fast path of bulk runs: one statement per kind of row instead of one per row,
        as a hand-written sqlite3 script would do. Every ``UPDATE`` matches at most one
        row (``id`` is the key), so the summed row count says whether every
        compare-and-set held; if not, the caller rolls back and redoes the changes one
        by one to find the loser. A project changed several times in the batch has its
        updates run in the changes' order (one wave of statements per repeat), and its
        due dates are its last change's, as if the changes were applied one by one.
        The audit rows, records and their keys are one ``executemany`` each; a
        constraint they break (a record id taken, ...) returns False as well. Changes
        that create projects go through `apply` (see `batchable`).
        """
        batch = _Batch()
        for change in changes:
            self._add_to_batch(batch, change)
        for keep, rewrite in batch.waves:
            updated = 0
            for statement, rows in ((self._update_keep_data, keep), (self._update, rewrite)):
                if rows:
                    cursor.executemany(statement.sql, rows)
                    updated += cursor.rowcount
            if updated != len(keep) + len(rewrite):
                return False
        try:
            cursor.executemany(self._insert_audit.sql, batch.audits)
            if batch.records:
                cursor.executemany(self._insert_record.sql, batch.records)
            if batch.keys:
                cursor.executemany(self._insert_key.sql, batch.keys)
            self.write_obligations(cursor, changes)
        except self._integrity:
            return False
        if any(change.messages for change in changes):
            cursor.executemany(self._insert_message.sql, self._queued(changes))
        else:
            cursor.executemany(self._insert_outbox.sql, batch.outbox)
        return True

    def record_progress(self, cursor: Any, progress: ChunkProgress, lease_until: float) -> bool:
        """Write a chunk's progress if `progress.owner` still holds it; False if not.

        The fence of `commit_chunk`, on the raw cursor: it runs once per chunk.
        """
        values = {
            "w_key": progress.key,
            "w_chunk": progress.chunk,
            "w_owner": progress.owner,
            "w_done": False,
            "n_next_index": progress.next_index,
            "n_done": progress.done,
            "n_digest": progress.digest,
            "n_counts": json.dumps(dict(progress.counts)),
            "n_items": json.dumps([dict(i) for i in progress.items]),
            "n_lease_until": lease_until,
        }
        cursor.execute(self._fence.sql, self._fence.params(values))
        return bool(cursor.rowcount == 1)

    def extend_job_lease(self, cursor: Any, key: str, lease_until: float) -> None:
        """Move job `key`'s lease to `lease_until`."""
        values = {"w_key": key, "n_lease_until": lease_until}
        cursor.execute(self._job_lease.sql, self._job_lease.params(values))

    def write_obligations(self, cursor: Any, changes: Sequence[Change]) -> None:
        """Replace the indexed due dates of every change that carries them.

        A project's rows are its last change's: an earlier change's are replaced.
        """
        last: dict[str, Change] = {}
        for change in changes:
            if change.obligations is not None:
                last[change.entry.project_id] = change
        if not last:
            return
        dated = last.values()
        cursor.executemany(
            self._delete_obligations.sql,
            [self._delete_obligations.params({"o_project_id": c.entry.project_id}) for c in dated],
        )
        rows = [
            self._insert_obligation.params(self._obligation_values(row))
            for c in dated
            for row in c.obligations or ()
        ]
        if rows:
            cursor.executemany(self._insert_obligation.sql, rows)

    # -- a batch ------------------------------------------------------------------------

    def _add_to_batch(self, batch: _Batch, change: Change) -> None:
        entry, after = change.entry, change.after
        if after is None or not self.batchable(change):
            raise ValueError("apply_batch takes changes to existing projects, in sequence")
        keep, rewrite = batch.wave(entry.project_id)
        values = self._update_values(change, after)
        if entry.data:
            values["n_data"] = _dumps_plain(after.data)
            rewrite.append(self._update.params(values))
        else:
            keep.append(self._update_keep_data.params(values))
        batch.audits.append(self._insert_audit.params(self._audit_values(entry, change)))
        if entry.records:
            self._record_params(entry, batch.records, batch.keys)
        batch.outbox.append(self._insert_outbox.params(self._outbox_values(entry)))

    def _queued(self, changes: Sequence[Change]) -> list[Any]:
        """The outbox rows of `changes` in their order, as applying them one by one queues.

        Each entry's message, then its change's own, all through the statement that skips
        a message already queued (an entry's message has no id: it never conflicts).
        """
        queued: list[Any] = []
        for change in changes:
            values = self._outbox_values(change.entry)
            values["o_id"] = values["o_payload"] = None
            queued.append(self._insert_message.params(values))
            queued.extend(self._message_params(change))
        return queued

    # -- one change ----------------------------------------------------------------------

    def _apply_one(self, cursor: Any, change: Change) -> GrantflowError | None:
        entry = change.entry
        if entry.seq != change.expected_version + 1:
            return _conflict(change)
        if change.expected_state is None:
            return self._create(cursor, change)
        after = change.after
        if after is None:
            return InvalidInput(
                "a change to an existing project needs the project row after it",
                field="after",
                project_id=entry.project_id,
                event=entry.event,
            )
        if entry.data:
            values = self._update_values(change, after)
            values["n_data"] = _dumps_plain(after.data)
            cursor.execute(self._update.sql, self._update.params(values))
        else:
            update = self._update_keep_data
            cursor.execute(update.sql, update.params(self._update_values(change, after)))
        if cursor.rowcount != 1:
            return _conflict(change)
        self._run(cursor, self._insert_audit, self._audit_values(entry, change), _conflict(change))
        self._insert_records(cursor, entry)
        self.write_obligations(cursor, (change,))
        self._enqueue(cursor, change)
        return None

    def _create(self, cursor: Any, change: Change) -> GrantflowError | None:
        entry = change.entry
        cursor.execute(
            self._insert_chain.sql, self._insert_chain.params(self._audit_values(entry, change))
        )
        if cursor.rowcount != 1:
            cursor.execute(
                self._project_exists.sql, self._project_exists.params({"w_id": entry.project_id})
            )
            if cursor.fetchone() is not None:
                return _exists(entry)
            return _conflict(change)
        if change.after is not None:
            self._run(
                cursor, self._insert_project, self._project_values(change.after), _exists(entry)
            )
            self._insert_records(cursor, entry)
            self.write_obligations(cursor, (change,))
        self._enqueue(cursor, change)
        return None

    def _enqueue(self, cursor: Any, change: Change) -> None:
        """Queue the entry's outbox message and the change's own, in its transaction."""
        entry = change.entry
        error = _conflict(change)
        self._run(cursor, self._insert_outbox, self._outbox_values(entry), error)
        for params in self._message_params(change):
            cursor.execute(self._insert_message.sql, params)

    def _insert_records(self, cursor: Any, entry: AuditEntry) -> None:
        records: list[Any] = []
        keys: list[Any] = []
        self._record_params(entry, records, keys)
        for params, record in zip(records, entry.records, strict=True):
            error = InvalidInput(
                f"record {record.kind}/{record.id} already exists on project {entry.project_id!r}",
                field="records",
                project_id=entry.project_id,
                event=entry.event,
            )
            self._run_params(cursor, self._insert_record.sql, params, error)
        if keys:  # in the record's transaction: the index never disagrees with the records
            cursor.executemany(self._insert_key.sql, keys)

    def _record_params(self, entry: AuditEntry, records: list[Any], keys: list[Any]) -> None:
        """Append the driver parameters of `entry`'s records and of their keys."""
        pid = entry.project_id
        record_params, key_params = self._insert_record.params, self._insert_key.params
        for pos, record in enumerate(entry.records):
            records.append(
                record_params(
                    {
                        "p_project_id": pid,
                        "p_kind": record.kind,
                        "p_id": record.id,
                        "p_seq": record.seq,
                        "p_pos": pos,
                        "p_data": _dumps_plain(record.data),
                    }
                )
            )
            keys.extend(
                key_params(
                    {
                        "k_kind": record.kind,
                        "k_field": name,
                        "k_value": value,
                        "k_project_id": pid,
                        "k_record_id": record.id,
                    }
                )
                for name, value in record_keys(record.data)
            )

    def _run(
        self, cursor: Any, statement: _Statement, values: Mapping[str, Any], error: GrantflowError
    ) -> None:
        self._run_params(cursor, statement.sql, statement.params(values), error)

    def _run_params(self, cursor: Any, sql: str, params: Any, error: GrantflowError) -> None:
        try:
            cursor.execute(sql, params)
        except self._integrity as exc:
            raise Partial(error) from exc
        if cursor.rowcount != 1:
            raise Partial(error)

    # -- parameters ----------------------------------------------------------------------

    def _audit_values(self, entry: AuditEntry, change: Change) -> dict[str, Any]:
        values: dict[str, Any] = {
            "p_project_id": entry.project_id,
            "p_seq": entry.seq,
            "p_kind": entry.kind,
            "p_event": entry.event,
            "p_from_state": entry.from_state,
            "p_to_state": entry.to_state,
            "p_accepted": entry.accepted,
            "p_at": self._time(entry.at),
            "p_prev_hash": entry.prev_hash,
            "p_hash": entry.hash,
            "p_decided_under": _dumps_basis(entry.decided_under),
            "p_clamped_from": None
            if entry.clamped_from is None
            else self._time(entry.clamped_from),
            "w_version": change.expected_version,
        }
        values["p_actor"] = _dumps_actor(entry.actor)
        values["p_evidence"] = _dumps_plain(entry.evidence)
        values["p_data"] = _dumps_plain(entry.data)
        values["p_refusals"] = _dumps_seq(entry.refusals)
        values["p_records"] = _dumps_seq(entry.records)
        return values

    def _obligation_values(self, row: ObligationRow) -> dict[str, Any]:
        return {
            "o_project_id": row.project_id,
            "o_key": row.key,
            "o_kind": row.kind,
            "o_due_on": self._date(row.due_on),
            "o_status": row.status,
            "o_hub": row.hub,
            "o_data": _dumps(row.data),
        }

    def _outbox_values(self, entry: AuditEntry) -> dict[str, Any]:
        return {
            "o_topic": AUDIT_TOPIC,
            "o_project_id": entry.project_id,
            "o_seq": entry.seq,
            "o_created_at": self._time(entry.at),
        }

    def _message_params(self, change: Change) -> list[Any]:
        return [
            self._insert_message.params(
                {
                    "o_id": m.id,
                    "o_topic": m.topic,
                    "o_project_id": m.project_id,
                    "o_seq": m.seq,
                    "o_created_at": self._time(m.created_at),
                    "o_payload": _dumps(m.payload),
                }
            )
            for m in change.messages
        ]

    def _update_values(self, change: Change, after: Project) -> dict[str, Any]:
        return {
            "w_id": change.entry.project_id,
            "w_state": change.expected_state,
            "w_version": change.expected_version,
            "n_state": after.state,
            "n_version": after.version,
            "n_head": after.head,
            "n_updated_at": self._time(after.updated_at),
        }

    def _project_values(self, project: Project) -> dict[str, Any]:
        return {
            "p_id": project.id,
            "p_state": project.state,
            "p_version": project.version,
            "p_head": project.head,
            "p_data": _dumps_plain(project.data),
            "p_created_at": self._time(project.created_at),
            "p_updated_at": self._time(project.updated_at),
        }


def _json_param(name: str, dialect: Dialect) -> ColumnElement[Any]:
    # The driver gets JSON text; PostgreSQL must be told it is jsonb.
    if dialect.name == "postgresql":
        return cast(bindparam(name), postgresql.JSONB)
    return bindparam(name)


def _audit_param(column: str, dialect: Dialect) -> ColumnElement[Any]:
    if column in _JSON_AUDIT:
        return _json_param(f"p_{column}", dialect)
    if dialect.name == "postgresql" and column in {"at", "clamped_from"}:
        return cast(bindparam(f"p_{column}"), postgresql.TIMESTAMP(timezone=True))
    return bindparam(f"p_{column}")


def _time_param(name: str, dialect: Dialect) -> ColumnElement[Any]:
    if dialect.name == "postgresql":
        return cast(bindparam(name), postgresql.TIMESTAMP(timezone=True))
    return bindparam(name)


def _dialect_insert(table: Table, dialect: Dialect) -> Any:
    if dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


@functools.lru_cache(maxsize=64)
def _sqlite_time(value: datetime) -> str:
    # SQLAlchemy's SQLite DATETIME text format: naive UTC with microseconds. Cached: a
    # bulk batch stamps every entry with the same instant.
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _same_date(value: date) -> date:
    return value


def _aware_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _conflict(change: Change) -> ConcurrencyError:
    entry = change.entry
    return ConcurrencyError(
        f"project {entry.project_id!r} changed since version {change.expected_version}",
        project_id=entry.project_id,
        event=entry.event,
        state=change.expected_state,
        expected_version=change.expected_version,
    )


def _exists(entry: AuditEntry) -> ProjectExists:
    return ProjectExists(
        f"project {entry.project_id!r} already exists",
        project_id=entry.project_id,
        event=entry.event,
    )
