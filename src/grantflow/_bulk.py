"""The bulk runner behind `Engine.fire_many`: chunks, leases, atomic progress, resume.

Input is cut into fixed chunks by position (chunk ``n`` holds items ``n*size`` to
``(n+1)*size - 1``), so a re-run with the same idempotency key finds the same chunks.
Each chunk is claimed with a lease, then committed in as few transactions as possible:
every transaction holds the chunk's compare-and-sets, audit rows, and the chunk's progress
(next item, tallies), so after a crash nothing is done twice and nothing is lost. When a
compare-and-set fails inside a batch, the batch rolls back and its items are redone one at
a time on fresh state.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

import structlog

from grantflow._canonical import (
    canonical_bytes,
    describe,
    digest_bytes,
    freeze,
    plain,
    validate_json,
)
from grantflow.bulk import BulkItem, BulkResult, ItemResult, ItemStatus, Worker
from grantflow.errors import (
    ConcurrencyError,
    GrantflowError,
    IdempotencyKeyMismatch,
    InvalidInput,
    StoreError,
)
from grantflow.models import Actor, Project, Refusal, trusted
from grantflow.persistence import Change, ChunkClaim, ChunkProgress, JobStore, StoredJob
from grantflow.persistence._cache import EntityCache

if TYPE_CHECKING:
    from grantflow._engine import Engine

__all__ = ["BulkRunner", "Keep", "Worker"]

_log = structlog.get_logger("grantflow")

#: Which item results a `BulkResult` keeps: all, or only those that were not applied.
Keep = Literal["all", "failures"]
_MAX_ID = 128
_NO_EVIDENCE: Mapping[str, Any] = MappingProxyType({})


@dataclass(slots=True)
class _Work:
    index: int
    item: BulkItem
    error: str = ""


class BulkRunner:
    """Runs one `fire_many` call; see the module docstring for the protocol."""

    def __init__(
        self,
        engine: Engine,
        event: str,
        actor: Actor,
        *,
        key: str,
        digest: str,
        chunk_size: int,
        stop_on_error: bool,
        keep: Keep,
        progress: Callable[[int], None] | None,
        lease: float,
        worker: Worker | None,
    ) -> None:
        store = engine.store
        if not isinstance(store, JobStore):
            raise StoreError(f"{type(store).__name__} cannot run bulk jobs (no JobStore)")
        self._engine = engine
        self._store: JobStore = store
        self._event = event
        self._actor = actor
        self._key = key
        self._digest = digest
        self._size = chunk_size
        self._stop_on_error = stop_on_error
        self._keep = keep
        self._progress = progress
        self._lease = lease
        self._worker = worker or Worker(run_id=uuid.uuid4().hex, owner=_owner_id())
        self._kept_applied: list[ItemResult] = []
        self._reader = EntityCache(store)
        self._record_kind = event.removeprefix("record.") if event.startswith("record.") else None
        lifecycle = engine.lifecycle
        self._creating = lifecycle.has_event(event) and lifecycle.event(event).creates
        self._stopped = False

    def run(self, items: Iterable[Any]) -> BulkResult:
        """Process `items`; return the tally of the whole job (earlier runs included)."""
        stored = self._store.job_begin(
            self._key,
            event=self._event,
            digest=self._digest,
            run_id=self._worker.run_id,
            now=time.time(),
            lease=self._lease,
        )
        replay = stored.status == "done"
        chunks = 0
        for number, chunk in enumerate(_chunks(items, self._size)):
            chunks = number + 1
            digest = _chunk_digest(chunk)
            known = stored.chunk_digests.get(number)
            if known is not None and known != digest:
                raise IdempotencyKeyMismatch(
                    f"key {self._key!r} was used for other input (chunk {number} differs)",
                    key=self._key,
                    event=self._event,
                )
            if replay or known is not None or self._stopped:
                continue
            self._run_chunk(number, chunk, digest)
        if replay:
            return self._result(stored, replayed=True)
        if self._stopped:
            current = self._store.job_get(self._key)
            assert current is not None
            return self._result(current, replayed=False)
        final = self._store.job_end(self._key, run_id=self._worker.run_id, chunks_total=chunks)
        return self._result(final, replayed=False)

    # -- one chunk -----------------------------------------------------------------------

    def _run_chunk(self, number: int, chunk: list[_Work], digest: str) -> None:
        start = number * self._size
        claim = self._store.chunk_claim(
            self._key,
            number,
            start=start,
            end=start + len(chunk),
            owner=self._worker.owner,
            now=time.time(),
            lease=self._lease,
        )
        if claim is None:
            return
        counts = dict(claim.counts)
        kept = list(claim.items)
        todo = [w for w in chunk if w.index >= claim.next_index]
        if todo:
            batch = todo
            end = batch[-1].index + 1
            if not self._commit_batch(claim, batch, end, counts, kept, digest):
                self._commit_singly(claim, batch, counts, kept, digest)
            if self._progress is not None:
                self._progress(len(batch))
            if self._stop_on_error and any(s not in {"applied", "skipped"} for s in counts):
                self._stopped = True
                return

    def _commit_batch(
        self,
        claim: ChunkClaim,
        batch: list[_Work],
        end: int,
        counts: dict[str, int],
        kept: list[Mapping[str, Any]],
        digest: str,
    ) -> bool:
        """Commit `batch` in one transaction; False if a compare-and-set failed (rolled back)."""
        projects: dict[str, Project | None] = dict(
            self._store.load_many([w.item.project_id for w in batch if not w.error])
        )
        changes: list[Change] = []
        results: list[ItemResult] = []
        now = self._engine._now()  # one transaction, one instant
        self._reader.begin_batch()
        for work in batch:
            change, result = self._decide(work, projects.get(work.item.project_id), now)
            if change is not None:
                changes.append(change)
                self._reader.add_pending(change)
                # A later item on the same project is decided on the state this one
                # leaves behind; the transaction applies them in order.
                projects[work.item.project_id] = change.after or _chain_only(change)
            results.append(result)
        new_counts, new_kept = _tally(counts, kept, results)
        progress = _progress(claim, end, new_counts, new_kept, digest)
        try:
            self._store.commit_chunk(changes, progress, now=time.time(), lease=self._lease)
        except ConcurrencyError as exc:
            if exc.index is None:
                raise
            return False
        self._after_commit(changes, results, counts, kept, new_counts, new_kept)
        return True

    def _commit_singly(
        self,
        claim: ChunkClaim,
        batch: list[_Work],
        counts: dict[str, int],
        kept: list[Mapping[str, Any]],
        digest: str,
    ) -> None:
        """Redo a batch item by item, deciding each again on fresh state."""
        self._reader.begin_batch()
        for work in batch:
            for attempt in itertools.count():
                project = self._store.load_many([work.item.project_id]).get(work.item.project_id)
                change, result = self._decide(
                    work, project if not work.error else None, self._engine._now()
                )
                if attempt > self._engine_retries():
                    change = None
                    result = _result(work, "conflict", error="project kept changing")
                changes = [change] if change is not None else []
                new_counts, new_kept = _tally(counts, kept, [result])
                progress = _progress(claim, work.index + 1, new_counts, new_kept, digest)
                try:
                    self._store.commit_chunk(changes, progress, now=time.time(), lease=self._lease)
                except ConcurrencyError as exc:
                    if exc.index is None:
                        raise
                    continue
                self._after_commit(changes, [result], counts, kept, new_counts, new_kept)
                break

    def _engine_retries(self) -> int:
        return self._engine._retries

    def _decide(
        self, work: _Work, project: Project | None, now: datetime
    ) -> tuple[Change | None, ItemResult]:
        if work.error:
            return None, _result(work, "invalid", error=work.error)
        if self._creating:
            if project is not None and project.state:
                pid = work.item.project_id
                return None, _result(
                    work, "invalid", state=project.state, error=f"project {pid!r} already exists"
                )
            project = self._draft(work, project, now)
        if project is None:
            return None, _result(work, "not_found", error=f"no project {work.item.project_id!r}")
        try:
            evidence, record = work.item.evidence, None
            if self._record_kind is not None:
                record, evidence = self._engine._record_inputs(
                    project, self._record_kind, evidence, None
                )
            actor = work.item.actor or self._actor
            if self._creating:
                evidence = _NO_EVIDENCE  # the item's evidence is the project's data
            change = self._engine._prepare(
                project, self._event, actor, evidence, now, record, self._reader
            )
        except GrantflowError as exc:
            return None, _result(work, "invalid", state=project.state, error=exc.message)
        entry = change.entry
        status: ItemStatus = "applied" if entry.accepted else "refused"
        state = change.after.state if change.after else project.state
        return change, _result(work, status, state=state, refusals=entry.refusals)

    def _draft(self, work: _Work, pending: Project | None, now: datetime) -> Project:
        """The draft a submission item proposes, chained after any earlier attempt."""
        pid = work.item.project_id
        if pending is not None:  # refused earlier in this batch: the chain moved on
            version, head = pending.version, pending.head
        else:
            version, head = self._engine.store.chain_tip(pid)
        return self._engine._draft(pid, work.item.evidence, version, head, now)

    def _after_commit(
        self,
        changes: list[Change],
        results: list[ItemResult],
        counts: dict[str, int],
        kept: list[Mapping[str, Any]],
        new_counts: dict[str, int],
        new_kept: list[Mapping[str, Any]],
    ) -> None:
        counts.clear()
        counts.update(new_counts)
        kept[:] = new_kept
        if self._keep == "all":
            self._kept_applied.extend(r for r in results if r.status == "applied")
        log = _log.bind()
        for change in changes:
            self._engine._emit(change.entry, log)

    def _result(self, stored: StoredJob, *, replayed: bool) -> BulkResult:
        result = BulkResult(event=self._event, key=self._key, replayed=replayed)
        result.counts = dict(stored.counts)
        items = [_from_dict(d) for d in stored.items]
        result.items = sorted([*items, *self._kept_applied], key=lambda r: r.index)
        return result


# -- input handling -------------------------------------------------------------------------


def _normalise(index: int, raw: Any) -> _Work:  # noqa: PLR0911
    """Turn one input element into work, or into an invalid item saying why."""
    if type(raw) is str and 0 < len(raw) <= _MAX_ID and raw.isprintable():
        return _Work(index, BulkItem(raw, _NO_EVIDENCE, index + 1))  # the common case
    if isinstance(raw, BulkItem):
        item = raw
        given: object = item.actor  # typed, but bulk input may come from anywhere
        if given is not None and not isinstance(given, Actor):
            return _Work(
                index,
                BulkItem(project_id=describe(item.project_id, _MAX_ID), row=item.row),
                "actor: must be an Actor",
            )
    elif isinstance(raw, str):
        item = BulkItem(project_id=raw, row=index + 1)
    elif isinstance(raw, tuple) and len(raw) == 2 and isinstance(raw[1], Mapping | None):
        item = BulkItem(project_id=raw[0], evidence=raw[1] or {}, row=index + 1)
    else:
        return _Work(
            index,
            BulkItem(project_id=describe(raw, _MAX_ID), row=index + 1),
            "item must be a project id, an (id, evidence) pair or a BulkItem",
        )
    pid = item.project_id
    if not isinstance(pid, str) or not 0 < len(pid) <= _MAX_ID or not pid.isprintable():
        return _Work(
            index,
            BulkItem(project_id=describe(pid, _MAX_ID), row=item.row),
            "project_id: must be 1-128 printable characters",
        )
    if not item.evidence:
        return _Work(index, BulkItem(pid, _NO_EVIDENCE, item.row, item.actor))
    try:
        validate_json(item.evidence, field="evidence", row=item.row)
    except InvalidInput as exc:
        return _Work(index, BulkItem(project_id=pid, row=item.row), exc.message)
    return _Work(index, BulkItem(pid, freeze(plain(item.evidence)), item.row, item.actor))


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[_Work]]:
    iterator = iter(items)
    base = 0
    while True:
        raw = list(itertools.islice(iterator, size))
        if not raw:
            return
        yield [_normalise(base + i, r) for i, r in enumerate(raw)]
        base += len(raw)


def _digest_part(project_id: object, evidence: object, actor: Actor | None = None) -> bytes:
    # Cheap for the common case (a bare id); canonical JSON when there is evidence.
    if actor is not None:
        who = canonical_bytes(plain(actor)) + b"\x02"
        return who + _digest_part(project_id, evidence)
    if not isinstance(project_id, str):  # refused later, item by item
        project_id = describe(project_id, 1000)
    if not evidence:
        return f"{project_id}\x00".encode("utf-8", "surrogatepass")
    encoded = digest_bytes(evidence)  # never raises: bad evidence is refused per item
    return f"{project_id}\x01".encode("utf-8", "surrogatepass") + encoded + b"\x00"


def _chunk_digest(chunk: Sequence[_Work]) -> str:
    h = hashlib.sha256()
    for w in chunk:
        h.update(_digest_part(w.item.project_id, w.item.evidence, w.item.actor))
        if w.error:
            h.update(w.error.encode())
    return h.hexdigest()


def input_digest(event: str, actor: Actor, items: Sequence[Any]) -> str:
    """Digest of a whole bulk input known up front (a list): its ids and evidence."""
    h = hashlib.sha256(canonical_bytes({"event": event, "actor": actor}))
    for raw in items:
        if isinstance(raw, BulkItem):
            h.update(_digest_part(raw.project_id, raw.evidence, raw.actor))
        elif isinstance(raw, tuple) and len(raw) == 2:
            h.update(_digest_part(raw[0], raw[1]))
        else:
            h.update(_digest_part(raw, None))
    return h.hexdigest()


def job_digest(event: str, actor: Actor, data: bytes | None) -> str:
    """Digest binding a job to its event, its actor and (when known) its input bytes."""
    h = hashlib.sha256(canonical_bytes({"event": event, "actor": actor}))
    if data is not None:
        h.update(data)
    return h.hexdigest()


def _owner_id() -> str:
    return f"{os.uname().nodename}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _result(
    work: _Work,
    status: ItemStatus,
    *,
    state: str | None = None,
    refusals: tuple[Refusal, ...] = (),
    error: str = "",
) -> ItemResult:
    return ItemResult(
        index=work.index,
        project_id=work.item.project_id,
        status=status,
        state=state,
        refusals=refusals,
        error=error,
        row=work.item.row,
    )


def _chain_only(change: Change) -> Project:
    """A refused submission's trace: no project, but its chain moved on."""
    entry = change.entry
    return trusted(
        Project,
        id=entry.project_id,
        state="",
        version=entry.seq,
        head=entry.hash,
        data={},
        records=(),
        created_at=entry.at,
        updated_at=entry.at,
    )


def _progress(
    claim: ChunkClaim,
    end: int,
    counts: Mapping[str, int],
    kept: Sequence[Mapping[str, Any]],
    digest: str,
) -> ChunkProgress:
    """The chunk's progress after items up to `end`; the digest seals a finished chunk."""
    done = end == claim.end
    return ChunkProgress(
        key=claim.key,
        chunk=claim.chunk,
        owner=claim.owner,
        next_index=end,
        done=done,
        counts=counts,
        items=tuple(kept),
        digest=digest if done else "",
    )


def _tally(
    counts: Mapping[str, int], kept: Sequence[Mapping[str, Any]], results: Sequence[ItemResult]
) -> tuple[dict[str, int], list[Mapping[str, Any]]]:
    new_counts = dict(counts)
    new_kept = list(kept)
    for r in results:
        new_counts[r.status] = new_counts.get(r.status, 0) + 1
        if r.status != "applied":
            new_kept.append(r.to_dict())
    return new_counts, new_kept


def _from_dict(data: Mapping[str, Any]) -> ItemResult:
    return ItemResult(
        index=int(data["index"]),
        project_id=str(data["project_id"]),
        status=data["status"],
        state=data.get("state"),
        refusals=tuple(Refusal.model_validate(r) for r in data.get("refusals", ())),
        error=str(data.get("error", "")),
        row=data.get("row"),
    )
