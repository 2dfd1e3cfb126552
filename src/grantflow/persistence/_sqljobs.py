"""Bulk-job bookkeeping for `SqlStore`: the `JobStore` half (jobs, chunk leases, progress).

A chunk is claimed with a lease; on PostgreSQL the claim reads the chunk row with
``FOR UPDATE SKIP LOCKED``, so workers on several hosts never wait on each other's
claims, and a chunk whose worker died is taken over once its lease has expired.
`commit_chunk` fences on the chunk's owner first, then applies the changes on the raw
cursor, all in one transaction: progress and transitions land together or not at all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy
from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from grantflow.errors import ConcurrencyError, IdempotencyKeyInUse, IdempotencyKeyMismatch
from grantflow.models import Project, Record
from grantflow.persistence._protocol import Change, ChunkClaim, ChunkProgress, StoredJob
from grantflow.persistence._schema import Tables
from grantflow.persistence._sqlconn import Connector
from grantflow.persistence._sqlwrite import Partial, Writer

__all__ = ["SqlJobs"]

_LOAD_BATCH = 500


class SqlJobs:
    """Mixed into `SqlStore`; relies on its connector, tables and writer."""

    _db: Connector
    _t: Tables
    _writer: Writer

    def load_many(self, project_ids: Sequence[str]) -> dict[str, Project]:
        """Return the existing projects among `project_ids`, with records, in few queries."""
        found: dict[str, Project] = {}
        p, r = self._t.projects, self._t.records
        ids = list(dict.fromkeys(project_ids))
        with self._db.connect() as conn:
            for start in range(0, len(ids), _LOAD_BATCH):
                batch = ids[start : start + _LOAD_BATCH]
                stmt = (
                    select(
                        p,
                        r.c.kind,
                        r.c.id.label("record_id"),
                        r.c.data.label("record_data"),
                        r.c.seq.label("record_seq"),
                    )
                    .select_from(p.outerjoin(r, r.c.project_id == p.c.id))
                    .where(p.c.id.in_(batch))
                    .order_by(p.c.id, r.c.seq, r.c.pos)
                )
                rows: dict[str, tuple[Any, list[Record]]] = {}
                for row in conn.execute(stmt):
                    head = rows.setdefault(row.id, (row, []))
                    if row.kind is not None:
                        head[1].append(
                            Record.model_construct(
                                kind=row.kind,
                                id=row.record_id,
                                data=row.record_data,
                                seq=row.record_seq,
                            )
                        )
                for pid, (row, records) in rows.items():
                    # Rows come from our own tables, written from validated values.
                    found[pid] = Project.model_construct(
                        id=row.id,
                        state=row.state,
                        version=row.version,
                        head=row.head,
                        data=row.data,
                        records=tuple(records),
                        created_at=row.created_at,
                        updated_at=row.updated_at,
                    )
        return found

    def job_begin(
        self, key: str, *, event: str, digest: str, run_id: str, now: float, lease: float
    ) -> StoredJob:
        """Create job `key` or join it (see `JobStore.job_begin`)."""
        jobs = self._t.bulk_jobs

        def work(conn: sqlalchemy.Connection) -> None:
            row = conn.execute(self._locked(select(jobs).where(jobs.c.key == key))).first()
            stamp = datetime.now(UTC)
            if row is None:
                conn.execute(
                    jobs.insert().values(
                        key=key,
                        event=event,
                        digest=digest,
                        run_id=run_id,
                        status="running",
                        chunks_total=None,
                        lease_until=now + lease,
                        created_at=stamp,
                        updated_at=stamp,
                    )
                )
                return
            if row.event != event or (digest and row.digest and row.digest != digest):
                raise IdempotencyKeyMismatch(
                    f"key {key!r} was used for other input", key=key, event=event
                )
            if row.status != "done" and row.run_id != run_id and row.lease_until > now:
                raise IdempotencyKeyInUse(
                    f"key {key!r} is being run by another process", key=key, event=event
                )
            values: dict[str, Any] = {"lease_until": now + lease, "updated_at": stamp}
            if row.status != "done":
                values["run_id"] = run_id
            conn.execute(update(jobs).where(jobs.c.key == key).values(**values))

        self._db.write(work)
        stored = self.job_get(key)
        assert stored is not None
        return stored

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
        counts: dict[str, int] = {}
        items: list[Mapping[str, Any]] = []
        for row in rows:
            for status, count in row.counts.items():
                counts[status] = counts.get(status, 0) + int(count)
            items.extend(row._mapping["items"])
        return StoredJob(
            key=key,
            event=job.event,
            digest=job.digest,
            status=job.status,
            run_id=job.run_id,
            chunks_total=job.chunks_total,
            chunk_digests={int(r.chunk): r.digest for r in rows if r.done},
            counts=counts,
            items=tuple(items),
        )

    def chunk_claim(
        self, key: str, chunk: int, *, start: int, end: int, owner: str, now: float, lease: float
    ) -> ChunkClaim | None:
        """Claim a new or abandoned chunk; ``None`` if done or leased to a live worker."""
        chunks = self._t.bulk_chunks

        def work(conn: sqlalchemy.Connection) -> ChunkClaim | None:
            where = (chunks.c.key == key) & (chunks.c.chunk == chunk)
            row = conn.execute(self._locked(select(chunks).where(where), skip=True)).first()
            if row is None:
                inserted = conn.execute(
                    self._insert(chunks)
                    .values(
                        key=key,
                        chunk=chunk,
                        owner=owner,
                        start=start,
                        stop=end,
                        next_index=start,
                        done=False,
                        digest="",
                        lease_until=now + lease,
                        counts={},
                        items=[],
                    )
                    .on_conflict_do_nothing()
                )
                if inserted.rowcount != 1:
                    return None  # another worker created it first, or holds its lock
                return ChunkClaim(key, chunk, owner, start, end, start, {}, ())
            if row.done or (row.owner != owner and row.lease_until > now):
                return None
            conn.execute(update(chunks).where(where).values(owner=owner, lease_until=now + lease))
            return ChunkClaim(
                key,
                chunk,
                owner,
                row.start,
                row.stop,
                row.next_index,
                dict(row.counts),
                tuple(row.items),
            )

        claim: ChunkClaim | None = self._db.write(work)
        return claim

    def commit_chunk(
        self, changes: Sequence[Change], progress: ChunkProgress, *, now: float, lease: float
    ) -> None:
        """Apply `changes` and `progress` in one transaction, all or nothing."""
        chunks, jobs = self._t.bulk_chunks, self._t.bulk_jobs

        def work(conn: sqlalchemy.Connection) -> None:
            # Fence first: if our lease was taken over, write nothing at all.
            fenced = conn.execute(
                update(chunks)
                .where(
                    (chunks.c.key == progress.key)
                    & (chunks.c.chunk == progress.chunk)
                    & (chunks.c.owner == progress.owner)
                    & (chunks.c.done == False)  # noqa: E712 - SQL expression
                )
                .values(
                    next_index=progress.next_index,
                    done=progress.done,
                    digest=progress.digest,
                    counts=dict(progress.counts),
                    items=[dict(i) for i in progress.items],
                    lease_until=now + lease,
                )
            )
            if fenced.rowcount != 1:
                raise ConcurrencyError(
                    f"chunk {progress.chunk} of job {progress.key!r} was taken over"
                )
            if changes:
                cursor = conn.connection.cursor()
                try:
                    errors = self._writer.apply(cursor, changes, savepoints=False)
                except Partial as partial:
                    errors = [partial.error]
                finally:
                    cursor.close()
                for index, error in enumerate(errors):
                    if error is not None:
                        raise ConcurrencyError(
                            error.message,
                            project_id=error.project_id,
                            event=error.event,
                            state=error.state,
                            index=index,
                        )
            conn.execute(
                update(jobs).where(jobs.c.key == progress.key).values(lease_until=now + lease)
            )

        self._db.write(work)

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
        stored = self.job_get(key)
        assert stored is not None
        return stored

    # -- dialect helpers -----------------------------------------------------------------

    def _locked(self, stmt: Any, *, skip: bool = False) -> Any:
        # SQLite's BEGIN IMMEDIATE already serialises writers; PostgreSQL locks rows.
        if self._db.dialect != "postgresql":
            return stmt
        return stmt.with_for_update(skip_locked=skip)

    def _insert(self, table: sqlalchemy.Table) -> Any:
        return (
            postgresql.insert(table) if self._db.dialect == "postgresql" else sqlite.insert(table)
        )
