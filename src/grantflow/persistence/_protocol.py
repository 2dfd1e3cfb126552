"""The store protocol every backend implements, and the `Change` a transition commits."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from dataclasses import field as _derived  # `field` is also a guard's attribute
from datetime import date, datetime
from decimal import Decimal
from typing import Any, NamedTuple, Protocol, runtime_checkable

from grantflow._canonical import canonical_bytes
from grantflow.audit import Checkpoint, EntryTexts
from grantflow.models import Actor, AuditEntry, DecisionBasis, Entity, Project, Record
from grantflow.persistence._outbox import OutboxMessage

__all__ = [
    "Change",
    "Guard",
    "Leaf",
    "LogLeaf",
    "Move",
    "MoveCommitter",
    "ObligationIndex",
    "ObligationRow",
    "RecordGuard",
    "Store",
    "StoreReader",
]

#: One chain head in a checkpoint: (project id, sequence number, entry hash).
Leaf = tuple[str, int, str]
#: One place in the audit log: (position, project id, seq, the entry's stored hash or
#: ``None`` when the entry is no longer there).
LogLeaf = tuple[int, str, int, str | None]


@dataclass(frozen=True, slots=True)
class ObligationRow:
    """One due date of a project as a store indexes it (see `grantflow.obligations`).

    The store treats it as data: it filters on the columns and hands `data` back.
    """

    project_id: str
    key: str
    kind: str
    due_on: date
    status: str
    hub: str | None
    data: Mapping[str, Any]


class Move(NamedTuple):
    """An accepted fire of a bare event, sealed down to the values its rows need.

    What the decision core hands a SQL store for the commonest item of a bulk run in
    place of a `Change` (no `AuditEntry`, no row after it): the project moves from
    `from_state` at `version` to `to_state` at ``version + 1``, its head becomes `hash`,
    and the audit row holds the other fields. Bulk runs build moves only for stores
    that take them (`MoveCommitter`, as the SQL stores do); every other path, and every
    other store, gets `Change`s.
    """

    project_id: str
    version: int
    event: str
    from_state: str
    to_state: str
    actor: Actor
    at: datetime
    evidence: Mapping[str, Any]
    texts: EntryTexts
    prev_hash: str
    hash: str
    decided_under: DecisionBasis

    # Read like the entry's own fields (the audit log renders moves and entries alike).
    @property
    def seq(self) -> int:
        """The entry's sequence number: the version the project moves to."""
        return self.version + 1

    @property
    def accepted(self) -> bool:
        """Always true: a move is an accepted fire."""
        return True

    @property
    def refusals(self) -> tuple[()]:
        """Always empty: a move is an accepted fire."""
        return ()


@runtime_checkable
class MoveCommitter(Protocol):
    """A job store that writes `Move`s as well as changes (the SQL stores)."""

    def commit_moves(
        self,
        changes: Sequence[Change | Move],
        progress: ChunkProgress,
        *,
        now: float,
        lease: float,
    ) -> None:
        """`JobStore.commit_chunk` of changes some of which are `Move`s."""
        ...


@dataclass(frozen=True, slots=True)
class Guard:
    """An aggregate over project rows that a decision read, and its stored value then.

    A fact provider that counts or sums over other projects (`StoreReader.count_projects`,
    `StoreReader.sum_projects`: a call's reserved budget, a provider's applications) reads
    a value another writer may change before the decision commits. The decision core
    notes each such read of an accepted decision as a guard on its `Change`; a store
    re-reads every guard inside the commit's transaction, serialised against other
    guarded commits, and raises `ConcurrencyError` when a value moved, so the engine
    decides again on fresh state instead of committing on a stale total.

    Attributes:
        field: the data key summed; ``None`` for a count.
        data_equals: the data values the rows must have (as `count_projects` takes them).
        exclude_states: the states left out.
        value: what the store answered when the decision read it (a bulk batch's pending
            changes not included: they commit in the same transaction).
    """

    field: str | None
    data_equals: Mapping[str, Any]
    exclude_states: frozenset[str]
    value: Decimal | int
    #: The aggregate's identity (its value left out), one text per distinct read.
    key: str = _derived(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        identity = {
            "field": self.field,
            "data_equals": dict(self.data_equals),
            "exclude_states": sorted(self.exclude_states),
        }
        object.__setattr__(self, "key", canonical_bytes(identity).decode())

    def current(self, reader: StoreReader) -> Decimal | int:
        """The aggregate's value as `reader` reads it now."""
        if self.field is None:
            return reader.count_projects(self.data_equals, exclude_states=self.exclude_states)
        return reader.sum_projects(self.field, self.data_equals, exclude_states=self.exclude_states)


@dataclass(frozen=True, slots=True)
class RecordGuard:
    """A look-up of records across projects that a decision made, and what it found then.

    `Guard`'s counterpart for `StoreReader.find_records` (the expenditures already using
    an invoice number, a provider's sanctions): a store re-reads it inside the commit's
    transaction and raises `ConcurrencyError` when the records found are no longer the
    same, so two engines cannot both accept one invoice on two projects.

    Attributes:
        kind: the record kind looked up.
        field: the data key matched.
        values: the values looked for, sorted.
        value: (project id, record id) of each record found, sorted (a bulk batch's
            pending records not included).
    """

    kind: str
    field: str
    values: tuple[str, ...]
    value: tuple[tuple[str, str], ...]
    #: The look-up's identity (what it found left out), one text per distinct read.
    key: str = _derived(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        identity = {"records": self.kind, "field": self.field, "values": list(self.values)}
        object.__setattr__(self, "key", canonical_bytes(identity).decode())

    @classmethod
    def of(
        cls, kind: str, field: str, values: Collection[str], found: Sequence[tuple[str, Record]]
    ) -> RecordGuard:
        """The guard of a `find_records` look-up of `values` that answered `found`."""
        return cls(kind, field, tuple(sorted({str(v) for v in values})), found_ids(found))

    def current(self, reader: StoreReader) -> tuple[tuple[str, str], ...]:
        """What the look-up finds in `reader` now."""
        return found_ids(reader.find_records(self.kind, self.field, self.values))


def found_ids(found: Sequence[tuple[str, Record]]) -> tuple[tuple[str, str], ...]:
    """The sorted (project id, record id) pairs of a `find_records` answer."""
    return tuple(sorted((pid, record.id) for pid, record in found))


@dataclass(frozen=True, slots=True)
class Change:
    """One attempt to commit atomically: a compare-and-set plus the audit entry it appends.

    Attributes:
        entry: the audit entry to append (its ``seq`` is ``expected_version + 1``).
        expected_state: the project's state when the decision was taken; ``None`` when no
            project row exists yet (a submission).
        expected_version: the project's (or chain's) version when the decision was taken.
        after: the project row after the change; ``None`` when a refused submission
            leaves no project behind. Its records beyond the old ones are ``entry.records``.
        obligations: the project's due dates after the change, for a store that indexes
            them (`ObligationIndex`) to replace its rows with, in the same transaction;
            ``None`` when the change leaves them as they were.
        messages: outbox messages to commit with the entry, besides the entry's own
            (reminders, ...); stores with an outbox write them in the same transaction.
        texts: the canonical JSON of the entry's evidence, refusals, records and data
            as its hash was computed from them (`grantflow.audit.value_texts`), when the
            decision core sealed it; a store may write them as they are instead of
            encoding the values again. ``None``: encode them.
        guards: the totals and record look-ups over other projects an accepted decision
            read (`Guard`, `RecordGuard`); the store commits the change only if each
            still reads as it did.
    """

    entry: AuditEntry
    expected_state: str | None
    expected_version: int
    after: Project | None
    obligations: tuple[ObligationRow, ...] | None = None
    messages: tuple[OutboxMessage, ...] = ()
    texts: EntryTexts | None = field(default=None, repr=False, compare=False)
    guards: tuple[Guard | RecordGuard, ...] = ()


@runtime_checkable
class StoreReader(Protocol):
    """Read side of a store; what fact providers and reports may use."""

    def load(self, project_id: str) -> Project | None:
        """Return the project, with its records, or ``None``."""
        ...

    def chain_tip(self, project_id: str) -> tuple[int, str]:
        """Return (last seq, last hash) of the project's audit chain; (0, GENESIS) if none."""
        ...

    def entries(self, project_id: str) -> Iterator[AuditEntry]:
        """Yield the project's audit entries in sequence order."""
        ...

    def chain_ids(self) -> Iterator[str]:
        """Yield, sorted, the id of every chain (every project, and refused submissions)."""
        ...

    def all_entries(self) -> Iterator[AuditEntry]:
        """Yield every audit entry ordered by (project id, seq), streaming (for `verify`)."""
        ...

    def projects(self, *, state: str | None = None) -> Iterator[Project]:
        """Yield projects (all, or those in `state`) in id order, without records."""
        ...

    def find_records(
        self, kind: str, field: str, values: Collection[str]
    ) -> list[tuple[str, Record]]:
        """Return (project id, record) for `kind` records whose ``data[field]`` is in `values`."""
        ...

    def count_projects(
        self, data_equals: Mapping[str, Any], *, exclude_states: Collection[str] = ()
    ) -> int:
        """Count projects whose data has all of `data_equals` and whose state is not excluded."""
        ...

    def sum_projects(
        self, field: str, data_equals: Mapping[str, Any], *, exclude_states: Collection[str] = ()
    ) -> Decimal:
        """Sum ``data[field]`` over the projects `count_projects` would count, exactly.

        Each value is read as a decimal, as money is read everywhere: absent,
        non-numeric, boolean or non-finite values count as zero. The sum is not rounded.
        """
        ...

    def counts_at(self, when: datetime) -> dict[str, int]:
        """Count projects by state as of `when` (from the audit chains; absent states omitted)."""
        ...

    def get_entity(self, kind: str, entity_id: str) -> Entity | None:
        """Return one reference-data entity, or ``None``."""
        ...

    def entities(self, kind: str, *, parent: str | None = None) -> Iterator[Entity]:
        """Yield the entities of `kind` (children of `parent` when given), in id order."""
        ...


@runtime_checkable
class Store(StoreReader, Protocol):
    """A place projects and their audit chains live; writes are atomic compare-and-sets."""

    def commit(self, change: Change) -> None:
        """Apply `change` in one transaction or not at all.

        Raises `ConcurrencyError` when the project moved on since the decision (state or
        version differ, or the sequence number is taken), `ProjectExists` when a
        submission's id is already used.
        """
        ...

    def put_entity(self, entity: Entity) -> None:
        """Insert or replace a reference-data entity (keyed by kind and id)."""
        ...

    def save_checkpoint(self, checkpoint: Checkpoint, leaves: Sequence[Leaf]) -> None:
        """Store a checkpoint and the chain heads it covers."""
        ...

    def checkpoint_leaves(self, checkpoint_id: str) -> list[Leaf] | None:
        """Return the chain heads a stored checkpoint covers, or ``None`` if it is unknown."""
        ...

    def entry_hash_at(self, project_id: str, seq: int) -> str | None:
        """Return the stored hash of one audit entry, or ``None`` if there is none."""
        ...

    def all_records(self) -> Iterator[tuple[str, Record]]:
        """Yield (project id, record) for every record row, streaming (for `verify`).

        Ordered by project id, then as `load` orders a project's records (by the entry
        that added them, then their place in it).
        """
        ...

    def sequence_log(self) -> int:
        """Append every committed audit entry not yet in the log to it; return the log size.

        In one transaction, serialised against other calls: the new entries take the
        next positions, gap-free, ordered by (project id, seq), so each chain keeps its
        order. Positions once given never change.
        """
        ...

    def log_size(self) -> int:
        """Return the number of positions given so far (the highest plus one; 0 if none)."""
        ...

    def log_leaves(self, start: int, stop: int) -> list[LogLeaf]:
        """Return the log's places in ``[start, stop)`` in position order, with entry hashes.

        A position with no row is left out (a gap the caller detects); a row whose audit
        entry is gone has ``None`` for its hash.
        """
        ...

    def log_position(self, project_id: str, seq: int) -> int | None:
        """Return the log position of one audit entry, or ``None`` if it has none yet."""
        ...

    def close(self) -> None:
        """Release connections; the store is unusable afterwards."""
        ...


@runtime_checkable
class ObligationIndex(Protocol):
    """A store that keeps every project's due dates in an index, for `Engine.due`.

    It writes a change's `Change.obligations` in the change's transaction. A store
    without one is still complete: the engine then derives due dates project by project.
    """

    def obligation_rows(
        self,
        *,
        status: str | None = "open",
        due_by: date | None = None,
        kinds: Collection[str] = (),
        hubs: Collection[str] = (),
    ) -> list[ObligationRow]:
        """Return the rows matching every filter, by (due date, project id, key).

        `status` ``None`` matches any; `due_by` keeps rows due on or before it; empty
        `kinds` or `hubs` match any.
        """
        ...

    def index_obligations(self, rows: Mapping[str, Sequence[ObligationRow]]) -> None:
        """Replace the indexed rows of each project named in `rows`, in one transaction."""
        ...


@dataclass(frozen=True, slots=True)
class ChunkClaim:
    """A chunk of a bulk job held by one worker: items ``[start, end)``, resume at `next_index`.

    `counts` and `items` are what the chunk recorded so far (per-status counts and the
    non-applied item results as JSON-ready dicts), so a resumed chunk continues its tally.
    """

    key: str
    chunk: int
    owner: str
    start: int
    end: int
    next_index: int
    counts: Mapping[str, int]
    items: tuple[Mapping[str, Any], ...]


@dataclass(frozen=True, slots=True)
class ChunkProgress:
    """What a chunk commit records beside its changes, in the same transaction."""

    key: str
    chunk: int
    owner: str
    next_index: int
    done: bool
    counts: Mapping[str, int]
    items: tuple[Mapping[str, Any], ...]
    digest: str


@dataclass(frozen=True, slots=True)
class StoredJob:
    """A bulk job as stored: its input digest, status and the tally of its chunks."""

    key: str
    event: str
    digest: str
    status: str
    run_id: str
    chunks_total: int | None
    chunk_digests: Mapping[int, str]
    counts: Mapping[str, int]
    items: tuple[Mapping[str, Any], ...]


def stored_job(
    key: str,
    job: Any,
    chunks: Sequence[tuple[int, bool, str, Mapping[str, int], Sequence[Mapping[str, Any]]]],
) -> StoredJob:
    """Build a `StoredJob` from a job's fields and its chunks (number, done, digest, tally)."""
    counts: dict[str, int] = {}
    items: list[Mapping[str, Any]] = []
    for _number, _done, _digest, chunk_counts, chunk_items in chunks:
        for status, count in chunk_counts.items():
            counts[status] = counts.get(status, 0) + int(count)
        items.extend(chunk_items)
    return StoredJob(
        key=key,
        event=job.event,
        digest=job.digest,
        status=job.status,
        run_id=job.run_id,
        chunks_total=job.chunks_total,
        chunk_digests={number: digest for number, done, digest, _c, _i in chunks if done},
        counts=counts,
        items=tuple(items),
    )


@runtime_checkable
class JobStore(Protocol):
    """Bulk-job bookkeeping: idempotency keys, chunk leases, progress committed atomically."""

    def load_many(self, project_ids: Sequence[str]) -> dict[str, Project]:
        """Return the projects (with records) that exist among `project_ids`, by id."""
        ...

    def chain_tips(self, project_ids: Sequence[str]) -> dict[str, tuple[int, str]]:
        """Return (last seq, last hash) of each chain among `project_ids` that has one.

        A bulk submission reads its batch's chains in one go (a refused submission
        leaves a chain without a project row).
        """
        ...

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
        """Create job `key`, join it, or take it over from a dead holder; return it as stored.

        `owner` names the calling worker (``host:pid:nonce``) and becomes the job's
        holder. Another run's job is taken over when its lease expired, or at once when
        its holder is provably dead (its process is gone from this host, or, where the
        store can tell, its database session ended); its unfinished chunks are then
        free to claim. Raises `IdempotencyKeyMismatch` if the job exists with another
        event or digest (an empty digest matches any), `IdempotencyKeyInUse` if another
        run holds it and may be alive.
        """
        ...

    def job_get(self, key: str) -> StoredJob | None:
        """Return job `key` as stored, or ``None``."""
        ...

    def chunk_claim(
        self, key: str, chunk: int, *, start: int, end: int, owner: str, now: float, lease: float
    ) -> ChunkClaim | None:
        """Claim chunk `chunk` of job `key`: new, or abandoned and not done.

        A chunk is abandoned when its owner's lease expired or its owner is provably
        dead. Returns ``None`` when the chunk is done or another live owner holds it.
        """
        ...

    def commit_chunk(
        self, changes: Sequence[Change], progress: ChunkProgress, *, now: float, lease: float
    ) -> None:
        """Apply `changes` and record `progress` in ONE transaction, all or nothing.

        Raises `ConcurrencyError` if any compare-and-set fails (its `index` is a position
        in `changes`; a store that checks the chunk in one statement may name the first)
        or if `progress.owner` no longer holds the chunk (`index` is ``None``); nothing is
        written then.
        """
        ...

    def job_end(self, key: str, *, run_id: str, chunks_total: int) -> StoredJob:
        """Record the number of chunks; mark the job done when all are; return it."""
        ...
