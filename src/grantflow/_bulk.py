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
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any, NamedTuple

from grantflow._canonical import (
    canonical_bytes,
    describe,
    digest_bytes,
    freeze,
    plain,
    validate_json,
)
from grantflow._decide import DecisionCore, Request, decision_projects
from grantflow._overlay import PendingReader
from grantflow.audit import GENESIS
from grantflow.bulk import BulkItem, BulkResult, ItemResult, Worker
from grantflow.errors import (
    ConcurrencyError,
    GrantflowError,
    IdempotencyKeyMismatch,
    InvalidInput,
    ProjectNotFound,
    StoreError,
)
from grantflow.models import Actor, AuditEntry, Project, Refusal
from grantflow.persistence import (
    Change,
    ChunkClaim,
    ChunkProgress,
    Guard,
    JobStore,
    Move,
    MoveCommitter,
    RecordGuard,
    Store,
    StoredJob,
    StoreReader,
    owner_id,
)
from grantflow.typing import ItemStatus, Keep

__all__ = ["BulkRunner", "chunks", "input_digest", "job_digest"]

_MAX_ID = 128
#: Batches decided with the totals held after one lost to another writer's commit.
_HELD_CHUNKS = 8
_NO_EVIDENCE: Mapping[str, Any] = MappingProxyType({})


@dataclass(slots=True)
class _Work:
    index: int
    item: BulkItem
    error: str = ""


class _Batch(NamedTuple):
    """A chunk's items still to do, and where its progress stands before them."""

    claim: ChunkClaim
    todo: list[_Work]
    end: int
    counts: dict[str, int]
    kept: list[Mapping[str, Any]]
    digest: str


class _Prepared(NamedTuple):
    """A batch decided: its changes, and the counts, kept results and progress after it."""

    changes: list[Change | Move]
    counts: dict[str, int]
    kept: list[Mapping[str, Any]]
    progress: ChunkProgress


class BulkRunner:
    """Runs one `fire_many` call; see the module docstring for the protocol.

    The runner decides through the same `DecisionCore` as single fires, reading through a
    `PendingReader` so that a later item of a batch sees the earlier ones; a dry run is
    the same path with the writes turned off.

    Args:
        core: decides every item.
        store: where projects live (a `JobStore` too, unless `dry_run`).
        event: the event fired on every item (``record.<kind>`` adds records).
        actor: who fires, unless an item names its own actor.
        now: the engine's clock (timezone-aware UTC).
        publish: told about committed entries (a `Move` stands for its entry), after each
            commit.
        retries: how often an item that lost a race is decided again.
        dry_run: decide every item and write nothing.
        skip: asked before each item is decided, on the state it is decided on; a reason
            returned skips the item (status ``skipped``, nothing written). The timer
            sweep uses it so that an occurrence fired meanwhile is never fired again.
    """

    def __init__(
        self,
        core: DecisionCore,
        store: Store,
        event: str,
        actor: Actor,
        *,
        now: Callable[[], datetime],
        publish: Callable[[Sequence[AuditEntry | Move]], None],
        retries: int,
        key: str,
        digest: str,
        chunk_size: int,
        stop_on_error: bool,
        keep: Keep,
        progress: Callable[[int], None] | None,
        lease: float,
        worker: Worker | None,
        dry_run: bool = False,
        skip: Callable[[BulkItem, StoreReader], str | None] | None = None,
        observed: Callable[[], bool] | None = None,
    ) -> None:
        if not dry_run and not isinstance(store, JobStore):
            raise StoreError(f"{type(store).__name__} cannot run bulk jobs (no JobStore)")
        self._core = core
        self._store = store
        self._event = event
        self._actor = actor
        self._now = now
        self._publish = publish
        self._retries = retries
        self._key = key
        self._digest = digest
        self._size = chunk_size
        self._stop_on_error = stop_on_error
        self._keep = keep
        self._keep_all = keep == "all"
        self._progress = progress
        self._lease = lease
        self._worker = worker or Worker(run_id=uuid.uuid4().hex, owner=owner_id())
        self._reader = PendingReader(store)
        self._kind = core.request_kind(event)
        # A bare event's decision reads only its own project (`DecisionCore.bare`).
        self._bare = self._kind == "fire" and core.bare(event)
        self._stopped = False
        #: The totals another writer moved under a batch of this run (see `_commit_batch`),
        #: and how many more batches are decided with them held (the latest batch's).
        self._contended: Sequence[Guard | RecordGuard] = ()
        self._held_left = 0
        self._skip = skip
        self._observed = observed
        # Plain moves of a bare event are written as `Move`s where the store takes them.
        self._moves = (
            self._bare and skip is None and not dry_run and isinstance(store, MoveCommitter)
        )

    @property
    def _jobs(self) -> JobStore:
        assert isinstance(self._store, JobStore)  # checked in __init__ for real runs
        return self._store

    def run(self, items: Iterable[Any]) -> BulkResult:
        """Process `items`; return the tally of the whole job (earlier runs included)."""
        stored = self._jobs.job_begin(
            self._key,
            event=self._event,
            digest=self._digest,
            run_id=self._worker.run_id,
            now=time.time(),
            lease=self._lease,
            owner=self._worker.owner,
        )
        replay = stored.status == "done"
        count = 0
        for number, chunk in enumerate(chunks(items, self._size)):
            count = number + 1
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
            current = self._jobs.job_get(self._key)
            assert current is not None
            return self._result(current, replayed=False)
        final = self._jobs.job_end(self._key, run_id=self._worker.run_id, chunks_total=count)
        return self._result(final, replayed=False)

    def dry_run(self, items: Iterable[Any]) -> BulkResult:
        """Decide every item as `run` would, in the same batches, and write nothing."""
        result = BulkResult(event=self._event, dry_run=True)
        for chunk in chunks(items, self._size):
            if self._stopped:
                break
            now = self._now()
            self._begin(chunk, keep_pending=True)  # nothing commits: every item stays pending
            for work in chunk:
                change, item = self._decide(work, now)
                if change is not None:
                    self._reader.add_pending(change)
                if item is None:  # applied, and not kept
                    result.counts["applied"] = result.counts.get("applied", 0) + 1
                else:
                    result.add(item, keep=self._keep_all)
            if self._progress is not None:
                self._progress(len(chunk))
            if self._stop_on_error and any(s not in {"applied", "skipped"} for s in result.counts):
                self._stopped = True
        return result

    # -- one chunk -----------------------------------------------------------------------

    def _run_chunk(self, number: int, chunk: list[_Work], digest: str) -> None:
        start = number * self._size
        claim = self._jobs.chunk_claim(
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
            end = todo[-1].index + 1
            batch = _Batch(claim, todo, end, counts, kept, digest)
            if not self._commit_batch(batch):
                self._commit_singly(batch)
            if self._progress is not None:
                self._progress(len(todo))
            if self._stop_on_error and any(s not in {"applied", "skipped"} for s in counts):
                self._stopped = True

    def _begin(self, batch: Sequence[_Work], *, keep_pending: bool = False) -> None:
        """Start a batch on fresh state: the batch's project rows read in one go."""
        ids = [w.item.project_id for w in batch if not w.error]
        tips: dict[str, tuple[int, str]] = {}
        if isinstance(self._store, JobStore):
            found: Mapping[str, Project] = decision_projects(self._store, ids)
            if self._kind == "submit":  # new chains: their tips (a refusal leaves one)
                fresh = [pid for pid in ids if pid not in found]
                tips = dict.fromkeys(fresh, (0, GENESIS))
                tips.update(self._store.chain_tips(fresh))
        else:
            found = {pid: p for pid in ids if (p := self._store.load(pid)) is not None}
        self._reader.begin_batch(
            {pid: found.get(pid) for pid in ids}, tips=tips, keep_pending=keep_pending
        )

    def _commit_batch(self, batch: _Batch) -> bool:
        """Commit `batch` in one transaction; False if a compare-and-set failed (rolled back).

        A batch that lost because a total it read moved (another worker approving from
        the same call) is decided again inside its commit's transaction, with those
        totals held (`_commit_held`), and so are the run's next `_HELD_CHUNKS` batches
        (then it tries without holding again): redone item by item, every item would
        read the total again and lose again to the other worker's next commit.
        """
        held = getattr(self._store, "_commit_decided", None)
        if held is not None and self._held_left > 0:  # then the optimistic way again
            self._held_left -= 1
            return self._commit_held(held, self._contended, batch)
        prepared = self._prepare(batch)
        try:
            self._commit(prepared)
        except ConcurrencyError as exc:
            if exc.index is None:
                raise
            guards = _guards(prepared.changes)
            if held is None or not guards:
                return False
            self._contended, self._held_left = guards, _HELD_CHUNKS
            return self._commit_held(held, guards, batch)
        self._after_commit(
            prepared.changes, batch.counts, batch.kept, prepared.counts, prepared.kept
        )
        return True

    def _prepare(self, batch: _Batch) -> _Prepared:
        """Load `batch` afresh and decide it: its changes, and the progress they make."""
        changes: list[Change | Move] = []
        results: list[ItemResult | None] = []
        now = self._now()  # one transaction, one instant
        self._begin(batch.todo)
        # A later item is decided on what the earlier ones leave behind; the transaction
        # applies them in order. Under a bare event only a later item of the same
        # project reads a pending change: the others skip the overlay.
        again = _repeated(batch.todo) if self._bare else None
        for work in batch.todo:
            if self._moves and again is not None and work.item.project_id not in again:
                move = self._move(work, now)
                if move is not None:
                    changes.append(move)
                    results.append(
                        _result(work, "applied", state=move.to_state) if self._keep_all else None
                    )
                    continue
            change, result = self._decide(work, now)
            if change is not None:
                changes.append(change)
                if again is None or change.entry.project_id in again:
                    self._reader.add_pending(change)
            results.append(result)
        counts, kept = _tally(batch.counts, batch.kept, results, self._keep_all)
        progress = _progress(batch.claim, batch.end, counts, kept, batch.digest)
        return _Prepared(changes, counts, kept, progress)

    def _commit(self, prepared: _Prepared) -> None:
        if self._moves:
            assert isinstance(self._store, MoveCommitter)
            self._store.commit_moves(
                prepared.changes, prepared.progress, now=time.time(), lease=self._lease
            )
        else:
            plain = [c for c in prepared.changes if isinstance(c, Change)]
            self._jobs.commit_chunk(plain, prepared.progress, now=time.time(), lease=self._lease)

    def _commit_held(
        self, held: Callable[..., None], guards: Sequence[Guard | RecordGuard], batch: _Batch
    ) -> bool:
        """`_commit_batch` deciding inside the commit's transaction, with `guards` held.

        No other guarded commit of those totals lands between the reads and the
        writes, so the batch loses only to a writer that reads no total (False then,
        and it is redone item by item).
        """
        decided: list[_Prepared] = []

        def decide() -> tuple[Sequence[Change | Move], ChunkProgress]:
            prepared = self._prepare(batch)
            decided[:] = [prepared]
            return prepared.changes, prepared.progress

        try:
            held(decide, guards, lease=self._lease)
        except ConcurrencyError as exc:
            if exc.index is None:
                raise
            return False
        prepared = decided[0]
        self._contended = _guards(prepared.changes) or guards
        self._after_commit(
            prepared.changes, batch.counts, batch.kept, prepared.counts, prepared.kept
        )
        return True

    def _commit_singly(self, batch: _Batch) -> None:
        """Redo a batch item by item, deciding each again on fresh state."""
        claim, counts, kept, digest = batch.claim, batch.counts, batch.kept, batch.digest
        for work in batch.todo:
            for attempt in itertools.count():
                self._begin([work])
                change, result = self._decide(work, self._now())
                if attempt > self._retries:
                    change = None
                    result = _result(work, "conflict", error="project kept changing")
                changes = [change] if change is not None else []
                new_counts, new_kept = _tally(counts, kept, [result], self._keep_all)
                progress = _progress(claim, work.index + 1, new_counts, new_kept, digest)
                try:
                    self._jobs.commit_chunk(changes, progress, now=time.time(), lease=self._lease)
                except ConcurrencyError as exc:
                    if exc.index is None:
                        raise
                    continue
                self._after_commit(changes, counts, kept, new_counts, new_kept)
                break

    def _decide(self, work: _Work, now: datetime) -> tuple[Change | None, ItemResult | None]:
        """Decide one item: its change (``None``: nothing to write) and its result.

        The result is ``None`` for an applied item the run does not keep (``keep`` is not
        ``"all"``): it is only counted, so a run of thousands of successes builds no
        result object for them.
        """
        if work.error:
            return None, _result(work, "invalid", error=work.error)
        item = work.item
        if self._skip is not None:
            reason = self._skip(item, self._reader)
            if reason is not None:
                current = self._reader.load(item.project_id)
                state = current.state if current is not None else None
                return None, _result(work, "skipped", state=state, error=reason)
        evidence = item.evidence
        request = Request(
            kind=self._kind,
            project_id=item.project_id,
            event=self._event,
            actor=item.actor or self._actor,
            # A submission item's evidence is the new project's data; a record item's,
            # the record's data: exactly what `submit` and `add_record` take.
            evidence=evidence if self._kind == "fire" else _NO_EVIDENCE,
            data=evidence if self._kind != "fire" else _NO_EVIDENCE,
        )
        try:
            change = self._core.prepare(request, self._reader, now)
        except ProjectNotFound:
            return None, _result(work, "not_found", error=f"no project {item.project_id!r}")
        except GrantflowError as exc:
            current = self._reader.load(item.project_id)
            state = current.state if current is not None else None
            return None, _result(work, "invalid", state=state, error=exc.message)
        entry = change.entry
        if entry.accepted and not self._keep_all:
            return change, None
        status: ItemStatus = "applied" if entry.accepted else "refused"
        state = change.after.state if change.after else None
        return change, _result(work, status, state=state, refusals=entry.refusals)

    def _move(self, work: _Work, now: datetime) -> Move | None:
        """The item as a `Move` (`DecisionCore.move`), or ``None``: the general path decides."""
        item = work.item
        project = self._reader.load(item.project_id)
        if project is None:
            return None
        request = Request(
            kind="fire",
            project_id=item.project_id,
            event=self._event,
            actor=item.actor or self._actor,
            evidence=item.evidence,
        )
        return self._core.move(project, request, now)

    def _after_commit(
        self,
        changes: Sequence[Change | Move],
        counts: dict[str, int],
        kept: list[Mapping[str, Any]],
        new_counts: dict[str, int],
        new_kept: list[Mapping[str, Any]],
    ) -> None:
        counts.clear()
        counts.update(new_counts)
        kept[:] = new_kept
        if changes and (self._observed is None or self._observed()):
            # A move is published as it is: the log renders it as an entry, and only a
            # listener gets its `AuditEntry` built (`Engine._publish_batch`).
            self._publish([c.entry if isinstance(c, Change) else c for c in changes])

    def _result(self, stored: StoredJob, *, replayed: bool) -> BulkResult:
        result = BulkResult(event=self._event, key=self._key, replayed=replayed)
        result.counts = dict(stored.counts)
        # The job's stored results, whichever run wrote them (applied ones too with "all").
        items = (_from_dict(d) for d in stored.items)
        if self._keep != "all":
            items = (r for r in items if r.status != "applied")
        result.items = sorted(items, key=lambda r: r.index)
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


def _repeated(batch: Sequence[_Work]) -> set[str]:
    """The project ids named more than once in `batch`."""
    seen: set[str] = set()
    again: set[str] = set()
    for work in batch:
        pid = work.item.project_id
        if pid in seen:
            again.add(pid)
        seen.add(pid)
    return again


def chunks(items: Iterable[Any], size: int) -> Iterator[list[_Work]]:
    """Cut `items` into lists of `size` work items (the last may be shorter), lazily."""
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


def _guards(changes: Sequence[Change | Move]) -> list[Guard | RecordGuard]:
    """Every guard of `changes` (what their decisions read of other projects)."""
    return [guard for c in changes if isinstance(c, Change) for guard in c.guards]


def _tally(
    counts: Mapping[str, int],
    kept: Sequence[Mapping[str, Any]],
    results: Sequence[ItemResult | None],
    keep_applied: bool,
) -> tuple[dict[str, int], list[Mapping[str, Any]]]:
    """Counts and kept results after `results` (``None``: an applied item not kept)."""
    new_counts = dict(counts)
    new_kept = list(kept)
    for r in results:
        if r is None:
            new_counts["applied"] = new_counts.get("applied", 0) + 1
            continue
        new_counts[r.status] = new_counts.get(r.status, 0) + 1
        if keep_applied or r.status != "applied":
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
