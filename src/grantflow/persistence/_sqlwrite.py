"""The write path: compare-and-set commits on a raw DBAPI cursor, one or many per transaction.

Statements are SQLAlchemy Core constructs compiled once per store, with the layout of
their parameters for the driver; each change runs as plain ``cursor.execute`` calls,
without ORM or validation overhead:

* an existing project: ``UPDATE projects ... WHERE id AND state AND version`` (the
  compare-and-set; row count 0 means another writer won), then the audit row (its
  primary key is ``UNIQUE(project_id, seq)``), then the records;
* a new chain (a submission): the audit row is inserted only if no project has the id
  and the chain's last ``seq`` is the expected version; then the project row.

Nothing is read in Python before a write. A change whose first statement matches no row
wrote nothing and is reported on its own; if a later statement of a change fails, the
whole chunk is rolled back and run again with one savepoint per change.

`Writer.apply_batch`, the path of bulk chunks, writes the same rows with one
``executemany`` per statement (on PostgreSQL: one ``UPDATE ... FROM unnest`` and a
``COPY`` each for the audit and outbox rows): the tables hold what applying the
changes one by one leaves (a property test holds it on SQLite and PostgreSQL), or it
returns False.
"""

from __future__ import annotations

import copy
import functools
import json
import operator
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

from grantflow._canonical import LastText, canonical_text, loads, model_text, plain
from grantflow.audit import EntryTexts
from grantflow.errors import ConcurrencyError, GrantflowError, InvalidInput, ProjectExists
from grantflow.models import AuditEntry, DecisionBasis, Project, Record
from grantflow.persistence._outbox import AUDIT_TOPIC
from grantflow.persistence._protocol import Change, ChunkProgress, Move
from grantflow.persistence._schema import Tables, record_keys

__all__ = ["Partial", "Writer"]

# The audit table's columns are the entry's fields, in the order `Writer._audit_row` lays
# an entry's values out in.
_AUDIT_COLUMNS = (
    "project_id",
    "seq",
    "kind",
    "event",
    "from_state",
    "to_state",
    "accepted",
    "actor",
    "at",
    "evidence",
    "refusals",
    "records",
    "data",
    "prev_hash",
    "hash",
    "decided_under",
    "clamped_from",
)
if set(_AUDIT_COLUMNS) != set(AuditEntry.model_fields):  # pragma: no cover - a new field
    raise RuntimeError("the audit table's columns must be AuditEntry's fields")
_AUDIT_NAMES = tuple(f"p_{c}" for c in _AUDIT_COLUMNS)
_AUDIT_AT = _AUDIT_COLUMNS.index("at")
_JSON_AUDIT = frozenset({"actor", "evidence", "refusals", "records", "data", "decided_under"})
_PROJECT_COLUMNS = ("id", "state", "version", "head", "data", "created_at", "updated_at")
_RECORD_COLUMNS = ("project_id", "kind", "id", "seq", "pos", "data")
_OBLIGATION_COLUMNS = ("project_id", "key", "kind", "due_on", "status", "hub", "data")
_KEY_COLUMNS = ("kind", "field", "value", "project_id", "record_id")
# The compare-and-set's values, in the order `Writer._move` lays them out in.
_MOVE_NAMES = ("n_state", "n_version", "n_head", "n_updated_at", "w_id", "w_state", "w_version")
_OUTBOX_NAMES = ("o_topic", "o_project_id", "o_seq", "o_created_at")
_MESSAGE_NAMES = ("o_id", "o_topic", "o_project_id", "o_seq", "o_payload", "o_created_at")
#: A new message's state (the columns an entry's message gets besides `_OUTBOX_NAMES`).
_NEW_MESSAGE: Mapping[str, Any] = {
    "status": "pending",
    "attempts": 0,
    "available_at": 0.0,
    "lease_owner": "",
    "lease_until": 0.0,
    "last_error": "",
}


class Partial(Exception):  # noqa: N818 - internal signal, never escapes the store
    """A change failed after writing part of itself; its transaction must be rolled back."""

    def __init__(self, error: GrantflowError) -> None:
        super().__init__(error.message)
        self.error = error


class _Statement:
    """A compiled statement and how the driver takes one row of its values.

    `names` orders the values a caller hands `row` as a tuple. `row` lays them out for
    the driver, as worked out once here: the tuple itself when the statement's
    positional parameters come in that order, else the values picked into the
    statement's order (one C call), or a dict by name for a named paramstyle.
    """

    __slots__ = ("names", "row", "sql")

    def __init__(self, stmt: ClauseElement, dialect: Dialect, names: Sequence[str]) -> None:
        compiled = stmt.compile(dialect=dialect)
        assert isinstance(compiled, SQLCompiler)
        self.sql = str(compiled)
        self.names = tuple(names)
        # Literals SQLAlchemy turned into parameters (e.g. the 0 in COALESCE) keep their value.
        defaults = {k: v for k, v in compiled.params.items() if v is not None}
        bound = set(compiled.params) - set(defaults)
        if bound != set(self.names) or len(self.names) != len(bound):
            raise ValueError(f"the statement binds {sorted(bound)}, not {self.names}")
        order = tuple(compiled.positiontup or ()) if compiled.positional else None
        self.row: Callable[[tuple[Any, ...]], Any] = _layout(self.names, defaults, order)

    def params(self, values: Mapping[str, Any]) -> Any:
        """The driver's parameters from values by name (statements off the hot path)."""
        return self.row(tuple(map(values.__getitem__, self.names)))


def _positional(dialect: Dialect) -> Dialect:
    """`dialect`, compiling ``%s`` placeholders where it would compile ``%(name)s``.

    The writer runs its statements on the raw cursor with many rows a chunk: positional
    parameters go to the driver as the tuples `_Statement.row` picks, where named ones
    need a dict per row (psycopg then looks every name up again). A shallow copy: the
    engine's own dialect is left as it is.
    """
    if dialect.paramstyle != "pyformat":
        return dialect
    positional = copy.copy(dialect)
    positional.paramstyle = "format"
    positional.positional = True
    return positional


def _layout(
    names: tuple[str, ...], defaults: Mapping[str, Any], order: tuple[str, ...] | None
) -> Callable[[tuple[Any, ...]], Any]:
    """How to turn a row of values in `names` order into the driver's parameters."""
    if order is None:  # a named paramstyle (psycopg): a dict per row
        if defaults:
            fixed = dict(defaults)
            return lambda values: {**fixed, **dict(zip(names, values, strict=True))}
        return lambda values: dict(zip(names, values, strict=True))
    slots = {name: i for i, name in enumerate(names)}
    slots.update({name: len(names) + i for i, name in enumerate(defaults)})
    index = tuple(slots[name] for name in order)
    if index == tuple(range(len(names))):
        return _same
    tail = tuple(defaults.values())
    pick = operator.itemgetter(*index)
    if len(index) == 1:
        return lambda values: (pick((*values, *tail)),)
    if tail:
        return lambda values: pick((*values, *tail))
    return pick


def _same(values: tuple[Any, ...]) -> tuple[Any, ...]:
    return values


def _many(cursor: Any, statement: _Statement, rows: list[tuple[Any, ...]]) -> int:
    """Run `statement` once per row of values (in its names order); the rows it matched."""
    if not rows:
        return 0
    layout = statement.row
    cursor.executemany(statement.sql, rows if layout is _same else list(map(layout, rows)))
    return int(cursor.rowcount)


#: The PostgreSQL array type each kind of column is sent as (`_Sets`' ``unnest``).
_ARRAY_TYPES = {"VARCHAR": "text[]", "INTEGER": "integer[]", "TIMESTAMP": "timestamptz[]"}


class _Sets:
    """A PostgreSQL batch as three set-based statements instead of three rows per change.

    ``executemany`` runs a statement once per row (psycopg pipelines them, but every row
    is still a Bind/Execute for the server and a round of Python in the driver): a
    chunk of 1,000 moves is 3,000 executions. Here the compare-and-sets of a wave are
    one ``UPDATE ... FROM unnest(...)`` (a column of values per array, the same ``WHERE``
    on id, state and version, so the row count says whether every one held, as the
    summed counts of ``executemany`` do), and the audit and outbox rows are one
    ``COPY`` each, in the batch's order (the outbox's positions follow it). The rows
    written are the same as the per-row statements write; a property test holds it.
    """

    __slots__ = ("_audit", "_keep", "_outbox", "_rewrite")

    def __init__(self, tables: Tables, dialect: Dialect) -> None:
        quote = dialect.identifier_preparer.quote
        table = dialect.identifier_preparer.format_table
        projects = tables.projects

        def update(names: tuple[str, ...]) -> str:
            # n_x: the value written to column x; w_x: the value column x must hold.
            columns = [n[2:] for n in names]
            # %b: arrays go in binary, no element quoted or spelled out in text (a
            # timestamp is 10x cheaper).
            arrays = ", ".join(
                "%t::jsonb[]" if c == "data" else f"%b::{_array_type(projects.c[c], dialect)}"
                for c in columns
            )
            sets = ", ".join(f"{quote(n[2:])} = v.{n}" for n in names if n.startswith("n_"))
            where = " AND ".join(f"p.{quote(n[2:])} = v.{n}" for n in names if n[0] == "w")
            # The ids once more, as an array the primary key looks up: without it the
            # planner may hash-join the whole table, every chunk.
            # Identifiers only (quoted by the dialect), and placeholders: no value.
            return (
                f"UPDATE {table(projects)} AS p SET {sets} "  # noqa: S608
                f"FROM unnest({arrays}) AS v({', '.join(names)}) "
                f"WHERE p.{quote('id')} = ANY(%b::text[]) AND {where}"
            )

        self._keep = update(_MOVE_NAMES)
        self._rewrite = update((*_MOVE_NAMES, "n_data"))
        audit_columns = ", ".join(map(quote, _AUDIT_COLUMNS))
        self._audit = f"COPY {table(tables.audit)} ({audit_columns}) FROM STDIN"
        outbox_columns = ", ".join(map(quote, (*(n[2:] for n in _OUTBOX_NAMES), *_NEW_MESSAGE)))
        self._outbox = f"COPY {table(tables.outbox)} ({outbox_columns}) FROM STDIN"

    def update(self, cursor: Any, keep: list[Any], rewrite: list[Any]) -> int:
        """Run one wave's compare-and-sets; the rows they matched."""
        updated = 0
        for sql, rows in ((self._keep, keep), (self._rewrite, rewrite)):
            if rows:
                columns = [list(column) for column in zip(*rows, strict=True)]
                cursor.execute(sql, [*columns, columns[_MOVE_NAMES.index("w_id")]])
                updated += cursor.rowcount
        return updated

    def copy_audit(self, cursor: Any, rows: list[tuple[Any, ...]]) -> None:
        """Write the audit rows (values in `_AUDIT_COLUMNS` order)."""
        with cursor.copy(self._audit) as copy:
            for row in rows:
                copy.write_row(row)

    def copy_outbox(self, cursor: Any, rows: list[tuple[Any, ...]]) -> None:
        """Write the entries' messages (values in `_OUTBOX_NAMES` order), in order."""
        fresh = tuple(_NEW_MESSAGE.values())
        with cursor.copy(self._outbox) as copy:
            for row in rows:
                copy.write_row((*row, *fresh))


def _array_type(column: Any, dialect: Dialect) -> str:
    spelled = column.type.compile(dialect=dialect).split("(")[0].split(" ")[0]
    return _ARRAY_TYPES[spelled]


def _dumps(value: Any) -> str:
    return canonical_text(plain(value))


def _dumps_plain(value: Mapping[str, Any]) -> str:
    # Model fields typed JsonObject hold plain JSON already: skip the `plain` walk.
    return canonical_text(value) if value else "{}"


def _dumps_seq(value: tuple[Any, ...]) -> str:
    return _dumps(value) if value else "[]"


def _values_json(entry: AuditEntry) -> EntryTexts:
    """The entry's evidence, refusals, records and data as the audit row's JSON columns."""
    return (
        _dumps_plain(entry.evidence),
        _dumps_seq(entry.refusals),
        _dumps_seq(entry.records),
        _dumps_plain(entry.data),
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
        # The entry's own spelling of both (`model_text`), as its hash covers them.
        self._actor_json = LastText(model_text)
        self._basis_dumps = LastText(model_text)
        self._time: Callable[[datetime], Any] = (
            _sqlite_time if dialect.name == "sqlite" else _aware_utc
        )
        # PostgreSQL writes a batch with set-based statements (`_Sets`).
        self._sets = _Sets(tables, dialect) if dialect.name == "postgresql" else None
        dialect = _positional(dialect)
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
        self._update = _Statement(
            cas.values(**moved, data=_json_param("n_data", dialect)),
            dialect,
            (*_MOVE_NAMES, "n_data"),
        )
        # Most transitions leave the data alone: don't rewrite (or re-encode) it.
        self._update_keep_data = _Statement(cas.values(**moved), dialect, _MOVE_NAMES)
        self._insert_audit = _Statement(
            insert(t.audit).values({c: _audit_param(c, dialect) for c in _AUDIT_COLUMNS}),
            dialect,
            _AUDIT_NAMES,
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
            (*_AUDIT_NAMES, "w_version"),
        )
        self._insert_project = _Statement(
            insert(t.projects).values(
                {
                    c: _json_param(f"p_{c}", dialect) if c == "data" else bindparam(f"p_{c}")
                    for c in _PROJECT_COLUMNS
                }
            ),
            dialect,
            [f"p_{c}" for c in _PROJECT_COLUMNS],
        )
        self._insert_record = _Statement(
            insert(t.records).values(
                {
                    c: _json_param(f"p_{c}", dialect) if c == "data" else bindparam(f"p_{c}")
                    for c in _RECORD_COLUMNS
                }
            ),
            dialect,
            [f"p_{c}" for c in _RECORD_COLUMNS],
        )
        self._insert_key = _Statement(
            insert(t.record_keys).values({c: bindparam(f"k_{c}") for c in _KEY_COLUMNS}),
            dialect,
            [f"k_{c}" for c in _KEY_COLUMNS],
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
            [
                *("w_key", "w_chunk", "w_owner", "w_done", "n_next_index", "n_done"),
                *("n_digest", "n_counts", "n_items", "n_lease_until"),
            ],
        )
        # A chunk's claim (`SqlJobs.chunk_claim`): read it (row-locked, skipping rows
        # another worker holds, on PostgreSQL), create it, or move its lease.
        read_chunk = select(
            chunks.c.owner,
            chunks.c.done,
            chunks.c.lease_until,
            chunks.c.start,
            chunks.c.stop,
            chunks.c.next_index,
            chunks.c.counts,
            chunks.c["items"],
        ).where(chunks.c.key == bindparam("w_key"), chunks.c.chunk == bindparam("w_chunk"))
        if dialect.name == "postgresql":
            read_chunk = read_chunk.with_for_update(skip_locked=True)
        self._read_chunk = _Statement(read_chunk, dialect, ("w_key", "w_chunk"))
        chunk_columns = ("key", "chunk", "owner", "start", "stop", "lease_until")
        self._insert_chunk = _Statement(
            _dialect_insert(chunks, dialect)
            .values(
                {
                    **{c: bindparam(f"c_{c}") for c in chunk_columns},
                    "next_index": bindparam("c_start"),
                    "done": False,
                    "digest": "",
                    "counts": _json_param("c_counts", dialect),
                    "items": _json_param("c_items", dialect),
                }
            )
            .on_conflict_do_nothing(),
            dialect,
            [*(f"c_{c}" for c in chunk_columns), "c_counts", "c_items"],
        )
        self._lease_chunk = _Statement(
            update(chunks)
            .where(chunks.c.key == bindparam("w_key"), chunks.c.chunk == bindparam("w_chunk"))
            .values(owner=bindparam("n_owner"), lease_until=bindparam("n_lease_until")),
            dialect,
            ("w_key", "w_chunk", "n_owner", "n_lease_until"),
        )
        self._job_lease = _Statement(
            update(jobs)
            .where(jobs.c.key == bindparam("w_key"))
            .values(lease_until=bindparam("n_lease_until")),
            dialect,
            ("w_key", "n_lease_until"),
        )
        self._project_exists = _Statement(
            select(literal(1)).where(t.projects.c.id == bindparam("w_id")), dialect, ("w_id",)
        )
        self._delete_obligations = _Statement(
            delete(t.obligations).where(t.obligations.c.project_id == bindparam("o_project_id")),
            dialect,
            ("o_project_id",),
        )
        self._insert_obligation = _Statement(
            insert(t.obligations).values(
                {
                    c: _json_param(f"o_{c}", dialect) if c == "data" else bindparam(f"o_{c}")
                    for c in _OBLIGATION_COLUMNS
                }
            ),
            dialect,
            [f"o_{c}" for c in _OBLIGATION_COLUMNS],
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
            insert(t.outbox).inline().values({**fresh, "id": null(), "payload": null()}),
            dialect,
            _OUTBOX_NAMES,
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
            _MESSAGE_NAMES,
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

    def apply_batch(self, cursor: Any, changes: Sequence[Change | Move]) -> bool:
        """Apply changes to existing projects, a statement per kind of row; False if a CAS lost.

        The fast path of bulk runs: one ``executemany`` per kind of row instead of a
        statement per row, as a hand-written sqlite3 script would do; on PostgreSQL, one
        set-based statement per kind of row (`_Sets`). Every ``UPDATE`` matches at most one
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
        full: list[Change] = []  # the changes that are not `Move`s
        for change in changes:
            if type(change) is Move:
                self._add_move(batch, change)
            else:
                assert isinstance(change, Change)
                self._add_to_batch(batch, change)
                full.append(change)
        # The set-based statements need psycopg's COPY (not an async driver's adapter).
        sets = self._sets if self._sets is not None and hasattr(cursor, "copy") else None
        for keep, rewrite in batch.waves:
            if sets is not None:
                updated = sets.update(cursor, keep, rewrite)
            else:
                updated = _many(cursor, self._update_keep_data, keep)
                updated += _many(cursor, self._update, rewrite)
            if updated != len(keep) + len(rewrite):
                return False
        try:
            self._insert_rows(cursor, batch, full, sets)
        except self._integrity:
            return False
        if any(change.messages for change in full):
            cursor.executemany(self._insert_message.sql, self._queued(changes))
        elif sets is not None:
            sets.copy_outbox(cursor, batch.outbox)
        else:
            _many(cursor, self._insert_outbox, batch.outbox)
        return True

    def _insert_rows(
        self, cursor: Any, batch: _Batch, full: Sequence[Change], sets: _Sets | None
    ) -> None:
        """A batch's audit rows, records, record keys and due dates."""
        if sets is not None:
            sets.copy_audit(cursor, batch.audits)
        else:
            _many(cursor, self._insert_audit, batch.audits)
        _many(cursor, self._insert_record, batch.records)
        _many(cursor, self._insert_key, batch.keys)
        self.write_obligations(cursor, full)

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

    def read_chunk(self, cursor: Any, key: str, chunk: int) -> tuple[Any, ...] | None:
        """Chunk `chunk` of job `key`, its JSON decoded; ``None`` if there is none.

        (owner, done, lease_until, start, stop, next_index, counts, items). On PostgreSQL
        the row is locked, and a row another worker holds reads as none.
        """
        cursor.execute(self._read_chunk.sql, self._read_chunk.row((key, chunk)))
        row = cursor.fetchone()
        if row is None:
            return None
        *head, counts, items = row
        return (*head, _decoded(counts), _decoded(items))

    def insert_chunk(
        self, cursor: Any, key: str, chunk: int, owner: str, start: int, stop: int, until: float
    ) -> bool:
        """Create chunk `chunk` of job `key`, leased to `owner`; False if it exists already."""
        row = self._insert_chunk.row((key, chunk, owner, start, stop, until, "{}", "[]"))
        cursor.execute(self._insert_chunk.sql, row)
        return bool(cursor.rowcount == 1)

    def lease_chunk(self, cursor: Any, key: str, chunk: int, owner: str, until: float) -> None:
        """Lease chunk `chunk` of job `key` to `owner` until `until`."""
        cursor.execute(self._lease_chunk.sql, self._lease_chunk.row((key, chunk, owner, until)))

    def extend_job_lease(self, cursor: Any, key: str, lease_until: float) -> None:
        """Move job `key`'s lease to `lease_until`."""
        cursor.execute(self._job_lease.sql, self._job_lease.row((key, lease_until)))

    def write_obligations(self, cursor: Any, changes: Sequence[Change]) -> None:
        """Replace the indexed due dates of every change that carries them.

        A project's rows are its last change's: an earlier change's are replaced.
        """
        last: dict[str, Change] = {}
        for change in changes:
            if change.obligations is not None:  # in the order of each project's last change
                last.pop(change.entry.project_id, None)
                last[change.entry.project_id] = change
        if not last:
            return
        delete = self._delete_obligations.row
        cursor.executemany(self._delete_obligations.sql, [delete((pid,)) for pid in last])
        insert, date_of = self._insert_obligation.row, self._date
        rows = [
            insert(
                (
                    row.project_id,
                    row.key,
                    row.kind,
                    date_of(row.due_on),
                    row.status,
                    row.hub,
                    _dumps(row.data),
                )
            )
            for change in last.values()
            for row in change.obligations or ()
        ]
        if rows:
            cursor.executemany(self._insert_obligation.sql, rows)

    # -- a batch ------------------------------------------------------------------------

    def _add_to_batch(self, batch: _Batch, change: Change) -> None:
        entry, after = change.entry, change.after
        if (
            after is None
            or change.expected_state is None
            or entry.seq != change.expected_version + 1
        ):
            raise ValueError("apply_batch takes changes to existing projects, in sequence")
        audit = self._audit_row(entry, change.texts)
        at = audit[_AUDIT_AT]  # the entry's time as the driver takes it
        keep, rewrite = batch.wave(entry.project_id)
        move = self._move(change, after, at if after.updated_at is entry.at else None)
        if entry.data:
            rewrite.append((*move, _dumps_plain(after.data)))
        else:
            keep.append(move)
        batch.audits.append(audit)
        if entry.records:
            self._record_rows(entry, batch.records, batch.keys, raw=True)
        batch.outbox.append((AUDIT_TOPIC, entry.project_id, entry.seq, at))

    def _add_move(self, batch: _Batch, move: Move) -> None:
        """`_add_to_batch` of the change `move` stands for, from its values alone.

        The same rows, in the same statements (a test holds the stored rows equal):
        the compare-and-set keeping the data, the audit row, the entry's message.
        """
        at = self._time(move.at)
        seq = move.version + 1
        pid = move.project_id
        keep, _rewrite = batch.wave(pid)
        keep.append((move.to_state, seq, move.hash, at, pid, move.from_state, move.version))
        audit = (
            pid,
            seq,
            "fire",
            move.event,
            move.from_state,
            move.to_state,
            True,
            self._actor_json(move.actor),
            at,
            *move.texts,
            move.prev_hash,
            move.hash,
            self._basis_json(move.decided_under),
            None,
        )
        batch.audits.append(audit)
        batch.outbox.append((AUDIT_TOPIC, pid, seq, at))

    def _queued(self, changes: Sequence[Change | Move]) -> list[Any]:
        """The outbox rows of `changes` in their order, as applying them one by one queues.

        Each entry's message, then its change's own, all through the statement that skips
        a message already queued (an entry's message has no id: it never conflicts).
        """
        queued: list[Any] = []
        message = self._insert_message.row
        for change in changes:
            if type(change) is Move:  # an entry's message, and nothing of its own
                seq, created = change.version + 1, self._time(change.at)
                queued.append(message((None, AUDIT_TOPIC, change.project_id, seq, None, created)))
                continue
            assert isinstance(change, Change)
            entry = change.entry
            created = self._time(entry.at)
            queued.append(message((None, AUDIT_TOPIC, entry.project_id, entry.seq, None, created)))
            queued.extend(self._message_rows(change))
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
        move = self._move(change, after, None)
        if entry.data:
            cursor.execute(self._update.sql, self._update.row((*move, _dumps_plain(after.data))))
        else:
            cursor.execute(self._update_keep_data.sql, self._update_keep_data.row(move))
        if cursor.rowcount != 1:
            return _conflict(change)
        self._run(
            cursor, self._insert_audit, self._audit_row(entry, change.texts), change, _conflict
        )
        self._insert_records(cursor, entry)
        self.write_obligations(cursor, (change,))
        self._enqueue(cursor, change)
        return None

    def _create(self, cursor: Any, change: Change) -> GrantflowError | None:
        entry = change.entry
        chain = self._insert_chain
        cursor.execute(
            chain.sql, chain.row((*self._audit_row(entry, change.texts), change.expected_version))
        )
        if cursor.rowcount != 1:
            exists = self._project_exists
            cursor.execute(exists.sql, exists.row((entry.project_id,)))
            if cursor.fetchone() is not None:
                return _exists(entry)
            return _conflict(change)
        if change.after is not None:
            row = self._project_row(change.after)
            self._run(cursor, self._insert_project, row, change, _exists_of)
            self._insert_records(cursor, entry)
            self.write_obligations(cursor, (change,))
        self._enqueue(cursor, change)
        return None

    def _enqueue(self, cursor: Any, change: Change) -> None:
        """Queue the entry's outbox message and the change's own, in its transaction."""
        entry = change.entry
        row = (AUDIT_TOPIC, entry.project_id, entry.seq, self._time(entry.at))
        self._run(cursor, self._insert_outbox, row, change, _conflict)
        for params in self._message_rows(change):
            cursor.execute(self._insert_message.sql, params)

    def _insert_records(self, cursor: Any, entry: AuditEntry) -> None:
        if not entry.records:
            return
        records: list[Any] = []
        keys: list[Any] = []
        self._record_rows(entry, records, keys, raw=False)
        for params, record in zip(records, entry.records, strict=True):
            try:
                cursor.execute(self._insert_record.sql, params)
            except self._integrity as exc:
                raise Partial(_record_exists(entry, record)) from exc
        if keys:  # in the record's transaction: the index never disagrees with the records
            cursor.executemany(self._insert_key.sql, keys)

    def _record_rows(
        self, entry: AuditEntry, records: list[Any], keys: list[Any], *, raw: bool
    ) -> None:
        """Append the values of `entry`'s records and of their keys.

        As the driver takes them, or (`raw`) in the statements' names order (a batch's
        rows, laid out when they run).
        """
        pid = entry.project_id
        record_row, key_row = (
            (_same, _same) if raw else (self._insert_record.row, self._insert_key.row)
        )
        for pos, record in enumerate(entry.records):
            kind, rid = record.kind, record.id
            records.append(record_row((pid, kind, rid, record.seq, pos, _dumps_plain(record.data))))
            keys.extend(
                key_row((kind, name, value, pid, rid)) for name, value in record_keys(record.data)
            )

    def _run(
        self,
        cursor: Any,
        statement: _Statement,
        values: tuple[Any, ...],
        change: Change,
        error: Callable[[Change], GrantflowError],
    ) -> None:
        """Run a statement that must write one row; else raise `Partial` with `error`'s."""
        try:
            cursor.execute(statement.sql, statement.row(values))
        except self._integrity as exc:
            raise Partial(error(change)) from exc
        if cursor.rowcount != 1:
            raise Partial(error(change))

    # -- parameters ----------------------------------------------------------------------

    def _audit_row(self, entry: AuditEntry, texts: EntryTexts | None) -> tuple[Any, ...]:
        """The entry's values in `_AUDIT_COLUMNS` order, as the driver takes them.

        `texts` (the change's, from sealing) are the four JSON columns already encoded:
        the spelling `_values_json` gives (a test holds the two equal).
        """
        time = self._time
        clamped = entry.clamped_from
        return (
            entry.project_id,
            entry.seq,
            entry.kind,
            entry.event,
            entry.from_state,
            entry.to_state,
            entry.accepted,
            self._actor_json(entry.actor),
            time(entry.at),
            *(_values_json(entry) if texts is None else texts),
            entry.prev_hash,
            entry.hash,
            self._basis_json(entry.decided_under),
            None if clamped is None else time(clamped),
        )

    def _basis_json(self, basis: DecisionBasis | None) -> str | None:
        return None if basis is None else self._basis_dumps(basis)

    def _message_rows(self, change: Change) -> list[Any]:
        message, time = self._insert_message.row, self._time
        return [
            message((m.id, m.topic, m.project_id, m.seq, _dumps(m.payload), time(m.created_at)))
            for m in change.messages
        ]

    def _move(self, change: Change, after: Project, updated_at: Any) -> tuple[Any, ...]:
        """The compare-and-set's values in `_MOVE_NAMES` order (`updated_at` if known)."""
        return (
            after.state,
            after.version,
            after.head,
            self._time(after.updated_at) if updated_at is None else updated_at,
            change.entry.project_id,
            change.expected_state,
            change.expected_version,
        )

    def _project_row(self, project: Project) -> tuple[Any, ...]:
        return (
            project.id,
            project.state,
            project.version,
            project.head,
            _dumps_plain(project.data),
            self._time(project.created_at),
            self._time(project.updated_at),
        )


def _decoded(value: Any) -> Any:
    # SQLite hands JSON columns back as text; psycopg decodes jsonb itself.
    return loads(value) if type(value) is str else value


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


def _exists_of(change: Change) -> ProjectExists:
    return _exists(change.entry)


def _record_exists(entry: AuditEntry, record: Record) -> InvalidInput:
    return InvalidInput(
        f"record {record.kind}/{record.id} already exists on project {entry.project_id!r}",
        field="records",
        project_id=entry.project_id,
        event=entry.event,
    )


def _exists(entry: AuditEntry) -> ProjectExists:
    return ProjectExists(
        f"project {entry.project_id!r} already exists",
        project_id=entry.project_id,
        event=entry.event,
    )
