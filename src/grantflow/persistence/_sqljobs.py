"""Bulk-job bookkeeping for `SqlStore`: the `JobStore` half (jobs, chunk leases, progress).

A chunk is claimed with a lease; on PostgreSQL the claim reads the chunk row with
``FOR UPDATE SKIP LOCKED``, so workers on several hosts never wait on each other's
claims. `commit_chunk` fences on the chunk's owner first, then applies the changes on
the raw cursor, all in one transaction: progress and transitions land together or not
at all.

A job names its holder (``host:pid:nonce``). A new run takes a job over when the
holder's lease expired or, at once, when the holder is provably dead: on the same
host its process is gone (`provably_dead`); on PostgreSQL the holder keeps a
session-level advisory lock on a connection of its own for as long as it runs, and the
server frees it when that session ends, so a lock we can take means the holder's
session is gone (whichever host it ran on). A takeover frees the dead run's unfinished
chunks at once, and the new run resumes them where their last commit left them.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy
from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from grantflow._canonical import loads
from grantflow._kept import Kept
from grantflow.errors import ConcurrencyError, IdempotencyKeyInUse, IdempotencyKeyMismatch
from grantflow.models import Project, Record, trusted, trusted_fields
from grantflow.persistence._liveness import provably_dead
from grantflow.persistence._protocol import (
    Change,
    ChunkClaim,
    ChunkProgress,
    Guard,
    Move,
    RecordGuard,
    StoredJob,
    stored_job,
)
from grantflow.persistence._schema import Tables
from grantflow.persistence._sqlconn import Connector, HostConnector
from grantflow.persistence._sqlwrite import Partial, Writer

__all__ = ["SeenRows", "SqlJobs"]

_LOAD_BATCH = 500


class SeenRows:
    """Records read from stored rows before, handed out again while the row is unchanged.

    A bulk run reads the same projects in every run (the demo: 500 projects, 31 runs)
    and every reload would decode each record's JSON and build its `Record` again.
    Only record rows are kept: the decision core's parse cache knows a record's data by
    its identity, so handing out the same object saves parsing it again. A project
    row's data is decoded on every read (compact JSON decodes in well under a
    microsecond for a small row): keeping it saved no more than that, and every kept
    dict is one more object each full collection walks, for rows a one-shot bulk run
    never reads again (a bare bulk run of 20,000 items ran 12 % faster without it).
    Kept by the row's key with the stored JSON text itself: a row whose text changed
    (another writer, an edit by hand) is decoded afresh, so a read never returns
    anything but what is stored. What is handed out again is the same object, as the
    memory store hands out its own: the models are frozen and their data read-only by
    contract (a host that changes a returned dict in place changes later reads). Two
    generations of at most `limit` rows bound the memory (`grantflow._kept`). Rows are
    read as text (PostgreSQL's ``jsonb`` cast to its text); a value a driver decoded
    itself is passed on.

    A project's whole records are kept too, by the project's head (`held`): a project's
    records are those of its audit chain, which its head (the last entry's hash) fixes.
    The store keeps them when it reads them and when it commits a change (the row after
    it), and a decision's read (`SqlJobs._load_chunk`: a bulk chunk, a single fire, a
    preview) skips the records query for the projects whose row still has the head
    kept: the next chunk of a bulk run over the same projects reads only their rows.
    """

    __slots__ = ("_held", "_kept")

    def __init__(self, limit: int = 10_000) -> None:
        self._kept: Kept[tuple[Any, ...], tuple[str, Any]] = Kept(limit)
        self._held: Kept[str, tuple[str, tuple[Record, ...]]] = Kept(limit)

    def held(self, project_id: str, head: str) -> tuple[Record, ...] | None:
        """The records kept for `project_id` at `head`, or ``None``."""
        hit = self._held.get(project_id)
        return hit[1] if hit is not None and hit[0] == head else None

    def hold(self, project_id: str, head: str, records: tuple[Record, ...]) -> None:
        """Keep `records` as those of `project_id` while its head is `head`."""
        self._held.put(project_id, (head, records))

    def hold_after(self, changes: Sequence[Change | Move]) -> None:
        """Keep the records of the rows `changes` leave behind (once they are written).

        A change's head is the hash of its entry, which covers the records it adds and
        the head before it: a row with that head has exactly these records, whether or
        not this commit is the one that wrote it (a host may roll its transaction back).
        """
        for change in changes:
            if isinstance(change, Move):  # a bare move adds no record
                kept = self.held(change.project_id, change.prev_hash)
                if kept is not None:
                    self.hold(change.project_id, change.hash, kept)
            elif (row := change.after) is not None:
                self.hold(row.id, row.head, row.records)

    def __len__(self) -> int:
        return len(self._kept)

    def record(self, project_id: str, kind: str, record_id: str, data: Any, seq: int) -> Record:
        """The record of this row: the one built before if its stored text is the same."""
        if type(data) is not str:
            return trusted(Record, kind=kind, id=record_id, data=_json(data), seq=seq)
        record: Record = self._decoded(
            (project_id, kind, record_id, seq),
            data,
            lambda: trusted(Record, kind=kind, id=record_id, data=loads(data), seq=seq),
        )
        return record

    def _decoded(self, key: tuple[Any, ...], text: str, decode: Callable[[], Any]) -> Any:
        hit = self._kept.get(key)
        if hit is not None and hit[0] == text:
            return hit[1]
        value = decode()
        self._kept.put(key, (text, value))
        return value


def _json(value: Any) -> Any:
    if type(value) is str:
        return loads(value)
    return json.loads(value) if isinstance(value, str | bytes) else value


class SqlJobs:
    """Mixed into `SqlStore`; relies on its connector, tables and writer."""

    _db: Connector
    _t: Tables
    #: Rows read before (`SeenRows`), shared by the store and the stores `bind` makes.
    _seen: SeenRows
    _writer: Writer
    _check_guards: Callable[[Any, Sequence[Change | Move]], None]
    _lock_guards: Callable[[Any, Sequence[Guard | RecordGuard]], None]
    #: Job key -> the connection holding its PostgreSQL advisory lock (our runs only).
    _job_locks: dict[str, sqlalchemy.Connection]
    _job_locks_guard: threading.Lock

    def load_many(self, project_ids: Sequence[str]) -> dict[str, Project]:
        """Return the existing projects among `project_ids`, with records, in two queries.

        The bulk path's read: plain DBAPI rows turned into models directly (no ORM, no
        result processing), because it runs once per chunk of thousands of items.
        Every row is read as stored now (see `_load_chunk` for what decisions read).
        """
        return self._load(project_ids, held=False)

    def _load_chunk(self, project_ids: Sequence[str]) -> dict[str, Project]:
        """`load_many` for a decision (a bulk chunk, a single fire, a preview).

        A project's records are those its audit chain added, which its head fixes
        (`SeenRows.held`): for a project whose row still has the head they were kept
        at, only the project row is read. A record row edited by hand under an
        unchanged head (which `verify` reports) is therefore not seen by a decision on
        a project whose records were kept before; `load`, `load_many` and `Engine.get`
        always read the rows.
        """
        return self._load(project_ids, held=True)

    def _load(self, project_ids: Sequence[str], *, held: bool) -> dict[str, Project]:
        found: dict[str, Project] = {}
        ids = list(dict.fromkeys(project_ids))
        with self._db.cursor() as cursor:
            for start in range(0, len(ids), _LOAD_BATCH):
                self._load_batch(cursor, ids[start : start + _LOAD_BATCH], found, held=held)
        return found

    def _load_batch(
        self, cursor: Any, batch: list[str], found: dict[str, Project], *, held: bool
    ) -> None:
        members, params = self._members(batch)
        # PostgreSQL's jsonb read as its text, so that `SeenRows` can key on it there too.
        text = "data::text" if self._db.dialect == "postgresql" else "data"
        cursor.execute(
            f"SELECT id, state, version, head, {text}, created_at, updated_at "
            f"FROM {self._name(self._t.projects)} WHERE id {members}",
            params,
        )
        rows = cursor.fetchall()
        # With `held`, records only of the projects whose head moved since they were kept.
        seen = self._seen
        records: dict[str, tuple[Record, ...]] = {}
        missing: list[str] = []
        for row in rows:
            kept = seen.held(row[0], row[3]) if held else None
            if kept is None:
                missing.append(row[0])
            else:
                records[row[0]] = kept
        if missing:
            read = self._read_records(cursor, text, missing)
            for row in rows:
                pid = row[0]
                if pid not in records:
                    records[pid] = owned = tuple(read.get(pid, ()))
                    seen.hold(pid, row[3], owned)
        # A chunk's rows were mostly written by one transaction, at one instant: each
        # distinct stored time is parsed once per batch (datetimes are immutable).
        stamps: dict[Any, datetime] = {}
        stamp = self._stamp
        for pid, state, version, head, data, created, updated in rows:
            # Rows come from our own tables, written from validated values.
            found[pid] = trusted_fields(
                Project,
                {
                    "id": pid,
                    "state": state,
                    "version": version,
                    "head": head,
                    "data": _json(data),  # decoded afresh: see `SeenRows`
                    "records": records[pid],
                    "created_at": stamps.get(created) or stamp(stamps, created),
                    "updated_at": stamps.get(updated) or stamp(stamps, updated),
                },
            )

    def _read_records(self, cursor: Any, text: str, ids: list[str]) -> dict[str, list[Record]]:
        """The record rows of the projects `ids`, in their order (seq, then place)."""
        members, params = self._members(ids)
        cursor.execute(
            f"SELECT project_id, kind, id, {text}, seq FROM {self._name(self._t.records)} "
            f"WHERE project_id {members} ORDER BY project_id, seq, pos",
            params,
        )
        records: dict[str, list[Record]] = {}
        seen = self._seen
        for pid, kind, rid, data, seq in cursor.fetchall():
            records.setdefault(pid, []).append(seen.record(pid, kind, rid, data, seq))
        return records

    def chain_tips(self, project_ids: Sequence[str]) -> dict[str, tuple[int, str]]:
        """Return (last seq, last hash) of the chains among `project_ids`, a query a batch."""
        tips: dict[str, tuple[int, str]] = {}
        ids = list(dict.fromkeys(project_ids))
        audit = self._name(self._t.audit)
        with self._db.cursor() as cursor:
            for start in range(0, len(ids), _LOAD_BATCH):
                members, params = self._members(ids[start : start + _LOAD_BATCH])
                cursor.execute(
                    f"SELECT a.project_id, a.seq, a.hash FROM {audit} a "
                    f"WHERE a.project_id {members} AND a.seq = (SELECT max(b.seq) "
                    f"FROM {audit} b WHERE b.project_id = a.project_id)",
                    params,
                )
                tips.update((pid, (int(seq), str(h))) for pid, seq, h in cursor.fetchall())
        return tips

    def _mark(self) -> str:
        return "?" if self._db.dialect == "sqlite" else "%s"

    def _members(self, ids: list[str]) -> tuple[str, list[Any]]:
        """A test of membership in `ids` and its parameters, for a raw cursor's query.

        PostgreSQL takes the ids as one array (``= ANY(%b)``): the query text stays the
        same for any number of ids, so psycopg parses it once instead of splitting a
        text of 500 placeholders on every chunk. SQLite gets one ``?`` per id.
        """
        if self._db.dialect == "postgresql":
            # %b: the array goes in binary (no id quoted in text: 4x cheaper to send).
            return "= ANY(%b::text[])", [ids]
        return f"IN ({', '.join(['?'] * len(ids))})", ids

    def _name(self, table: sqlalchemy.Table) -> str:
        preparer = self._db.engine.dialect.identifier_preparer
        return str(preparer.format_table(table))

    _json = staticmethod(_json)

    @classmethod
    def _stamp(cls, stamps: dict[Any, datetime], value: Any) -> datetime:
        """`_time` of `value`, kept in `stamps` for the rows after it."""
        stamps[value] = stamp = cls._time(value)
        return stamp

    @staticmethod
    def _time(value: Any) -> datetime:
        if isinstance(value, str):
            return datetime.fromisoformat(value).replace(tzinfo=UTC)
        stamp: datetime = value
        return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)

    def job_begin(
        self,
        key: str,
        *,
        event: str,
        digest: str,
        run_id: str,
        now: float,
        lease: float,
        owner: str = "",
    ) -> StoredJob:
        """Create job `key`, join it, or take it over from a dead holder (see `JobStore`)."""
        jobs, chunks = self._t.bulk_jobs, self._t.bulk_chunks
        held_before = key in self._job_locks
        locked = self._lock_job(key)

        def work(conn: sqlalchemy.Connection) -> None:
            stamp = datetime.now(UTC)
            # Insert-or-nothing, then lock: two workers starting one job at once cannot
            # both see "no row" and collide on the key.
            created = conn.execute(
                self._insert(jobs)
                .values(
                    key=key,
                    event=event,
                    digest=digest,
                    run_id=run_id,
                    holder=owner,
                    status="running",
                    chunks_total=None,
                    lease_until=now + lease,
                    created_at=stamp,
                    updated_at=stamp,
                )
                .on_conflict_do_nothing(index_elements=[jobs.c.key])
            )
            if created.rowcount == 1:
                return
            row = conn.execute(self._locked(select(jobs).where(jobs.c.key == key))).one()
            if row.event != event or (digest and row.digest and row.digest != digest):
                raise IdempotencyKeyMismatch(
                    f"key {key!r} was used for other input", key=key, event=event
                )
            values: dict[str, Any] = {"lease_until": now + lease, "updated_at": stamp}
            if row.status != "done" and row.run_id != run_id and row.lease_until > now:
                if not (locked and not held_before) and not self._holders_dead(conn, row, now):
                    raise IdempotencyKeyInUse(
                        f"key {key!r} is being run by another process", key=key, event=event
                    )
                # The holder is dead: its unfinished chunks are free from now on.
                conn.execute(
                    update(chunks)
                    .where((chunks.c.key == key) & (chunks.c.done == False))  # noqa: E712
                    .values(lease_until=0.0)
                )
            if row.status != "done":
                values["run_id"] = run_id
                values["holder"] = owner
            conn.execute(update(jobs).where(jobs.c.key == key).values(**values))

        try:
            self._db.write(work)
        except BaseException:
            if locked and not held_before:
                self._unlock_job(key)
            raise
        stored = self.job_get(key)
        assert stored is not None
        if stored.status == "done" and locked and not held_before:
            self._unlock_job(key)
        return stored

    def _holders_dead(self, conn: sqlalchemy.Connection, job: Any, now: float) -> bool:
        """True if every worker known to hold job `job` is provably dead."""
        chunks = self._t.bulk_chunks
        owners = conn.execute(
            select(chunks.c.owner).where(
                (chunks.c.key == job.key)
                & (chunks.c.done == False)  # noqa: E712
                & (chunks.c.lease_until > now)
            )
        ).scalars()
        holders = {job.holder, *owners} - {""}
        return bool(holders) and all(provably_dead(h) for h in holders)

    # -- PostgreSQL advisory locks: a holder's liveness, whichever host it runs on --------

    def _lock_job(self, key: str) -> bool:
        """Take job `key`'s session lock on a connection of our own; False if taken."""
        if self._db.dialect != "postgresql" or isinstance(self._db, HostConnector):
            return False
        with self._job_locks_guard:
            if key in self._job_locks:
                return True
        conn = self._db.engine.connect()
        try:
            got = conn.execute(select(func.pg_try_advisory_lock(self._job_lock_key(key)))).scalar()
            conn.commit()  # a session lock outlives the transaction that took it
        except BaseException:
            conn.invalidate()
            conn.close()
            raise
        if not got:
            conn.close()
            return False
        with self._job_locks_guard:
            self._job_locks[key] = conn
        return True

    def _unlock_job(self, key: str) -> None:
        with self._job_locks_guard:
            conn = self._job_locks.pop(key, None)
        if conn is None:
            return
        try:
            conn.execute(select(func.pg_advisory_unlock(self._job_lock_key(key))))
            conn.commit()
        except Exception:
            conn.invalidate()
        finally:
            conn.close()

    def _unlock_all_jobs(self) -> None:
        for key in list(self._job_locks):
            self._unlock_job(key)

    def _job_lock_key(self, key: str) -> int:
        name = f"grantflow-job:{self._t.schema}:{self._t.prefix}:{key}"
        return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)

    def job_get(self, key: str) -> StoredJob | None:
        """Return job `key` with the tally of its chunks, or ``None``."""
        jobs, chunks = self._t.bulk_jobs, self._t.bulk_chunks
        with self._db.connect() as conn:
            job = conn.execute(select(jobs).where(jobs.c.key == key)).first()
            if job is None:
                return None
            rows = conn.execute(
                select(
                    chunks.c.chunk,
                    chunks.c.done,
                    chunks.c.digest,
                    chunks.c.counts,
                    chunks.c["items"],
                )
                .where(chunks.c.key == key)
                .order_by(chunks.c.chunk)
            ).all()
        tallies = [
            (int(r.chunk), bool(r.done), r.digest, r.counts, r._mapping["items"]) for r in rows
        ]
        return stored_job(key, job, tallies)

    def chunk_claim(
        self, key: str, chunk: int, *, start: int, end: int, owner: str, now: float, lease: float
    ) -> ChunkClaim | None:
        """Claim a new or abandoned chunk; ``None`` if done or leased to a live worker."""
        writer = self._writer

        def work(cursor: Any) -> ChunkClaim | None:
            row = writer.read_chunk(cursor, key, chunk)
            if row is None:
                if not writer.insert_chunk(cursor, key, chunk, owner, start, end, now + lease):
                    return None  # another worker created it first, or holds its lock
                return ChunkClaim(key, chunk, owner, start, end, start, {}, ())
            held_by, done, lease_until, first, stop, next_index, counts, items = row
            if done or (held_by != owner and lease_until > now and not provably_dead(held_by)):
                return None
            writer.lease_chunk(cursor, key, chunk, owner, now + lease)
            return ChunkClaim(
                key, chunk, owner, first, stop, next_index, dict(counts), tuple(items)
            )

        # A lost lease is harmless (the chunk is claimed again): no need to wait for the
        # disk, which would double the commits a chunk waits for. The statements are
        # compiled once (`Writer`): this runs once per chunk.
        claim: ChunkClaim | None = self._db.write_cursor(work, durable=False)
        return claim

    def commit_chunk(
        self, changes: Sequence[Change], progress: ChunkProgress, *, now: float, lease: float
    ) -> None:
        """Apply `changes` and `progress` in one transaction, all or nothing."""
        self.commit_moves(changes, progress, now=now, lease=lease)

    def commit_moves(
        self,
        changes: Sequence[Change | Move],
        progress: ChunkProgress,
        *,
        now: float,
        lease: float,
    ) -> None:
        """`commit_chunk` of changes some of which are `Move`s (a bare event's plain moves).

        The bulk runner's fast path: a `Move` is written as the change it stands for
        would be. A batch that cannot go in one `executemany` wave (a compare-and-set
        lost, a change that is not a plain update) or whose guards moved raises
        `ConcurrencyError` with an index; the runner decides it again with the totals
        held (`_commit_decided`) when guards moved, else redoes it item by item
        through `commit_chunk`.
        """

        def work(cursor: Any) -> None:
            self._write_chunk(cursor, changes, progress, now=now, lease=lease)

        self._db.write_cursor(work)
        self._seen.hold_after(changes)

    def _commit_decided(
        self,
        decide: Callable[[], tuple[Sequence[Change | Move], ChunkProgress]],
        guards: Sequence[Guard | RecordGuard],
        *,
        lease: float,
    ) -> None:
        """Decide a chunk inside the transaction that commits it (`commit_moves` otherwise).

        The bulk runner's way through a chunk whose totals other writers keep moving
        (a call's budget two workers approve from): the transaction first holds off
        every other guarded commit of the totals `guards` read (SQLite: its write lock,
        taken by ``BEGIN IMMEDIATE``; PostgreSQL: their advisory locks), then `decide`
        reads what is committed and decides the chunk, which is written as
        `commit_moves` writes it, guards checked. While `decide` runs, those commits
        wait (on SQLite every commit does).
        """
        decided: list[Sequence[Change | Move]] = []

        def work(cursor: Any) -> None:
            self._lock_guards(cursor, guards)
            changes, progress = decide()
            decided[:] = [changes]
            self._write_chunk(cursor, changes, progress, now=time.time(), lease=lease)

        self._db.write_cursor(work)
        self._seen.hold_after(decided[0])

    def _write_chunk(
        self,
        cursor: Any,
        changes: Sequence[Change | Move],
        progress: ChunkProgress,
        *,
        now: float,
        lease: float,
    ) -> None:
        """The statements of `commit_moves`, on the commit's `cursor`."""
        # Every statement on the raw cursor, compiled once per store: this runs per chunk.
        # Fence first: if our lease was taken over, write nothing at all.
        if not self._writer.record_progress(cursor, progress, now + lease):
            raise ConcurrencyError(f"chunk {progress.chunk} of job {progress.key!r} was taken over")
        if any(isinstance(c, Change) and c.guards for c in changes):
            self._check_guards(cursor, changes)  # a total read moved: the runner redoes it
        errors: list[Any] = []
        if changes:
            try:
                errors = self._apply_chunk(cursor, changes)
            except Partial as partial:
                errors = [partial.error]
        for index, error in enumerate(errors):
            if error is not None:
                raise ConcurrencyError(
                    error.message,
                    project_id=error.project_id,
                    event=error.event,
                    state=error.state,
                    index=index,
                )
        self._writer.extend_job_lease(cursor, progress.key, now + lease)

    def job_end(self, key: str, *, run_id: str, chunks_total: int) -> StoredJob:
        """Record the number of chunks; mark the job done once every chunk is."""
        jobs, chunks = self._t.bulk_jobs, self._t.bulk_chunks

        def work(conn: sqlalchemy.Connection) -> None:
            done = conn.execute(
                select(func.count())
                .select_from(chunks)
                .where(
                    (chunks.c.key == key)
                    & (chunks.c.chunk < chunks_total)
                    & (chunks.c.done == True)  # noqa: E712 - SQL expression
                )
            ).scalar_one()
            values: dict[str, Any] = {
                "chunks_total": chunks_total,
                "updated_at": datetime.now(UTC),
            }
            if done == chunks_total:
                values["status"] = "done"
            conn.execute(update(jobs).where(jobs.c.key == key).values(**values))

        self._db.write(work)
        self._unlock_job(key)  # this run is over, done or not
        stored = self.job_get(key)
        assert stored is not None
        return stored

    def _apply_chunk(self, cursor: Any, changes: Sequence[Change | Move]) -> list[Any]:
        plain = [c for c in changes if isinstance(c, Change)]
        batchable = all(map(self._writer.batchable, plain))
        if len(plain) < len(changes) or (len(changes) > 1 and batchable):
            if batchable and self._writer.apply_batch(cursor, changes):
                return [None] * len(changes)
            # Some compare-and-set lost (or a row broke a constraint): report it without
            # saying which; the bulk runner redoes the chunk item by item on fresh state.
            first = changes[0]
            pid, event = (
                (first.entry.project_id, first.entry.event)
                if isinstance(first, Change)
                else (first.project_id, first.event)
            )
            return [
                ConcurrencyError(
                    "a project in the chunk changed meanwhile", project_id=pid, event=event
                )
            ]
        return self._writer.apply(cursor, plain)

    # -- dialect helpers -----------------------------------------------------------------

    def _locked(self, stmt: Any) -> Any:
        # SQLite's BEGIN IMMEDIATE already serialises writers; PostgreSQL locks rows.
        if self._db.dialect != "postgresql":
            return stmt
        return stmt.with_for_update()

    def _insert(self, table: sqlalchemy.Table) -> Any:
        return (
            postgresql.insert(table) if self._db.dialect == "postgresql" else sqlite.insert(table)
        )
