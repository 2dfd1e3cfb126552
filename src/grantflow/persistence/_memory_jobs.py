"""Bulk-job bookkeeping for the in-memory store (the `JobStore` half of `MemoryStore`)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from grantflow.errors import ConcurrencyError, IdempotencyKeyInUse, IdempotencyKeyMismatch
from grantflow.models import AuditEntry, Project
from grantflow.persistence._guards import check_guards, guards_of
from grantflow.persistence._liveness import provably_dead
from grantflow.persistence._protocol import (
    Change,
    ChunkClaim,
    ChunkProgress,
    Guard,
    RecordGuard,
    StoredJob,
    stored_job,
)

__all__ = ["MemoryJobs"]


@dataclass
class _Chunk:
    owner: str
    start: int
    end: int
    next_index: int
    lease_until: float
    done: bool = False
    digest: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    items: tuple[Mapping[str, Any], ...] = ()


@dataclass
class _Job:
    event: str
    digest: str
    run_id: str
    lease_until: float
    holder: str = ""
    status: str = "running"
    chunks_total: int | None = None
    chunks: dict[int, _Chunk] = field(default_factory=dict)


class MemoryJobs:
    """Jobs and chunk leases in dictionaries; `commit_chunk` is atomic under the store lock."""

    _lock: threading.Lock
    _projects: dict[str, Project]
    _chains: dict[str, list[AuditEntry]]

    def _jobs(self) -> dict[str, _Job]:
        jobs: dict[str, _Job] | None = getattr(self, "_job_table", None)
        if jobs is None:
            jobs = {}
            self._job_table = jobs
        return jobs

    def load_many(self, project_ids: Sequence[str]) -> dict[str, Project]:
        """Return the existing projects among `project_ids`."""
        return {pid: self._projects[pid] for pid in project_ids if pid in self._projects}

    def chain_tips(self, project_ids: Sequence[str]) -> dict[str, tuple[int, str]]:
        """Return (last seq, last hash) of the chains among `project_ids`."""
        return {
            pid: (chain[-1].seq, chain[-1].hash)
            for pid in project_ids
            if (chain := self._chains.get(pid))
        }

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
        """Create, join or take over job `key` (see `JobStore.job_begin`)."""
        with self._lock:
            jobs = self._jobs()
            job = jobs.get(key)
            if job is None:
                job = jobs[key] = _Job(
                    event=event, digest=digest, run_id=run_id, lease_until=now + lease
                )
                job.holder = owner
                return self._stored(key, job)
            if job.event != event or (digest and job.digest and job.digest != digest):
                raise IdempotencyKeyMismatch(
                    f"key {key!r} was used for other input", key=key, event=event
                )
            if job.status != "done" and job.run_id != run_id:
                if job.lease_until > now:
                    if not self._holders_dead(job, now):
                        raise IdempotencyKeyInUse(
                            f"key {key!r} is being run by another process", key=key, event=event
                        )
                    for chunk in job.chunks.values():
                        if not chunk.done:
                            chunk.lease_until = 0.0
                job.run_id = run_id
                job.holder = owner
            job.lease_until = now + lease
            return self._stored(key, job)

    @staticmethod
    def _holders_dead(job: _Job, now: float) -> bool:
        owners = {c.owner for c in job.chunks.values() if not c.done and c.lease_until > now}
        holders = {job.holder, *owners} - {""}
        return bool(holders) and all(provably_dead(h) for h in holders)

    def job_get(self, key: str) -> StoredJob | None:
        """Return job `key`, or ``None``."""
        job = self._jobs().get(key)
        return None if job is None else self._stored(key, job)

    def chunk_claim(
        self, key: str, chunk: int, *, start: int, end: int, owner: str, now: float, lease: float
    ) -> ChunkClaim | None:
        """Claim a new or abandoned chunk."""
        with self._lock:
            job = self._jobs()[key]
            current = job.chunks.get(chunk)
            if current is None:
                current = job.chunks[chunk] = _Chunk(owner, start, end, start, now + lease)
            elif current.done or (
                current.owner != owner
                and current.lease_until > now
                and not provably_dead(current.owner)
            ):
                return None
            current.owner = owner
            current.lease_until = now + lease
            return ChunkClaim(
                key,
                chunk,
                owner,
                current.start,
                current.end,
                current.next_index,
                dict(current.counts),
                current.items,
            )

    def commit_chunk(
        self, changes: Sequence[Change], progress: ChunkProgress, *, now: float, lease: float
    ) -> None:
        """Apply changes and progress atomically."""
        with self._lock:
            self._commit_chunk_locked(changes, progress, now=now, lease=lease)

    def _commit_decided(
        self,
        decide: Callable[[], tuple[Sequence[Change], ChunkProgress]],
        guards: Sequence[Guard | RecordGuard],
        *,
        lease: float,
    ) -> None:
        """Decide a chunk under the store's lock, then commit it (see `SqlJobs._commit_decided`).

        Every other commit to this store waits while `decide` reads and decides (reads
        take no lock), so the totals `guards` read cannot move under the chunk.
        """
        with self._lock:
            changes, progress = decide()
            self._commit_chunk_locked(changes, progress, now=time.time(), lease=lease)

    def _commit_chunk_locked(
        self, changes: Sequence[Change], progress: ChunkProgress, *, now: float, lease: float
    ) -> None:
        job = self._jobs()[progress.key]
        chunk = job.chunks.get(progress.chunk)
        if chunk is None or chunk.owner != progress.owner or chunk.done:
            raise ConcurrencyError(f"chunk {progress.chunk} of {progress.key!r} was taken over")
        check_guards(guards_of(changes), self._guard_value)
        self._apply_all(changes)
        chunk.next_index = progress.next_index
        chunk.done = progress.done
        chunk.digest = progress.digest or chunk.digest
        chunk.counts = dict(progress.counts)
        chunk.items = progress.items
        chunk.lease_until = now + lease
        job.lease_until = now + lease

    def job_end(self, key: str, *, run_id: str, chunks_total: int) -> StoredJob:
        """Record the chunk count; the job is done once every chunk is."""
        with self._lock:
            job = self._jobs()[key]
            job.chunks_total = chunks_total
            if all(
                job.chunks.get(n) is not None and job.chunks[n].done for n in range(chunks_total)
            ):
                job.status = "done"
            return self._stored(key, job)

    @staticmethod
    def _stored(key: str, job: _Job) -> StoredJob:
        chunks = [(n, c.done, c.digest, c.counts, c.items) for n, c in sorted(job.chunks.items())]
        return stored_job(key, job, chunks)

    def _apply_all(self, changes: Sequence[Change]) -> None:  # provided by MemoryStore
        raise NotImplementedError

    def _guard_value(self, guard: Guard | RecordGuard) -> object:  # provided by MemoryStore
        raise NotImplementedError
