"""The store as a bulk batch sees it: pending (decided, uncommitted) changes overlaid.

A bulk batch decides many items before it commits them in one transaction. For a later
item to be decided exactly as a single `fire` after the earlier ones would decide it,
every read a fact provider can make must see the earlier items: their creations, state
changes, records and audit entries. `PendingReader` implements the whole `StoreReader`
protocol method by method (no attribute pass-through), so a new reader method cannot
silently read stale data: the overlay stops satisfying the protocol until it is written
out here, and the protocol test fails.

Reference data (hubs, providers, calls, people) is not written by transitions; it is read
once per run and cached. Aggregates over other projects (`count_projects`,
`sum_projects`) are read from the store once per batch and key, then kept current as
pending changes arrive, so a fact about the whole portfolio costs one query per chunk,
not one per item.
"""

from __future__ import annotations

import heapq
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from grantflow._values import decimal_or_zero
from grantflow.models import AuditEntry, Entity, Project, Record
from grantflow.persistence import Change, StoreReader

__all__ = ["PendingReader"]


@dataclass(slots=True)
class _Touched:
    """What the pending changes did to one project: its stored row and its latest row."""

    stored: Project | None  # the row as committed before the batch (None: none yet)
    latest: Project | None  # the row after the batch's last pending change on it
    entries: list[AuditEntry]


class PendingReader:
    """A `StoreReader` over `reader` that also sees the changes added with `add_pending`.

    Args:
        reader: the store (or any reader) underneath.
    """

    def __init__(self, reader: StoreReader) -> None:
        self._reader = reader
        self._entities: dict[tuple[str, str], Entity | None] = {}
        self._lists: dict[tuple[str, str | None], list[Entity]] = {}
        self._touched: dict[str, _Touched] = {}
        self._prefetched: Mapping[str, Project | None] = {}
        self._tips: Mapping[str, tuple[int, str]] = {}
        # The records of accepted pending entries, and indexes of them by (kind, field).
        self._records: list[tuple[str, Record]] = []
        self._indexes: dict[tuple[str, str], dict[str, list[int]]] = {}
        # Aggregates of this batch, by key: the store's answer plus the pending changes.
        self._aggregates: dict[tuple[Any, ...], _Aggregate] = {}

    def __repr__(self) -> str:
        return f"PendingReader({self._reader!r}, pending={len(self._touched)})"

    # -- the batch -------------------------------------------------------------------------

    def begin_batch(
        self,
        prefetched: Mapping[str, Project | None] | None = None,
        *,
        tips: Mapping[str, tuple[int, str]] | None = None,
        keep_pending: bool = False,
    ) -> None:
        """Start a batch: `prefetched` holds the stored rows read for it, by id.

        An id mapped to ``None`` is known to have no row; ids not in it are read on
        demand. `tips` holds the stored chain tips read for the batch, likewise. Pending
        changes are forgotten (the last batch committed or rolled back) unless
        `keep_pending` (a dry run, where nothing is ever committed).
        """
        if not keep_pending:
            self._touched.clear()
            self._records.clear()
            self._indexes.clear()
        self._prefetched = prefetched or {}
        self._tips = tips or {}
        self._aggregates.clear()  # the store moved on (a commit): read them again

    def add_pending(self, change: Change) -> None:
        """Make a decided, not yet committed change visible to every later read."""
        pid = change.entry.project_id
        touched = self._touched.get(pid)
        if touched is None:
            stored = self._stored(pid)
            touched = self._touched[pid] = _Touched(stored, stored, [])
        touched.entries.append(change.entry)
        if change.entry.accepted:
            for record in change.entry.records:
                position = len(self._records)
                self._records.append((pid, record))
                for (kind, field), index in self._indexes.items():
                    if record.kind == kind:
                        index.setdefault(str(record.data.get(field)), []).append(position)
        if change.after is not None:
            for aggregate in self._aggregates.values():
                aggregate.replace(touched.latest, change.after)
            touched.latest = change.after

    @property
    def pending(self) -> int:
        """How many projects the pending changes touch."""
        return len(self._touched)

    def _stored(self, project_id: str) -> Project | None:
        if project_id in self._prefetched:
            return self._prefetched[project_id]
        return self._reader.load(project_id)

    # -- projects --------------------------------------------------------------------------

    def load(self, project_id: str) -> Project | None:
        """The project after the pending changes, else as stored."""
        touched = self._touched.get(project_id)
        if touched is not None:
            return touched.latest
        return self._stored(project_id)

    def projects(self, *, state: str | None = None) -> Iterator[Project]:
        """Stored projects with pending rows in their place, new ones merged in id order."""
        if not self._touched:
            yield from self._reader.projects(state=state)
            return
        touched = self._touched
        stored = (p for p in self._reader.projects(state=state) if p.id not in touched)
        pending = sorted(
            (t.latest.model_copy(update={"records": ()}) for t in touched.values() if t.latest),
            key=lambda p: p.id,
        )
        wanted = [p for p in pending if state is None or p.state == state]
        yield from heapq.merge(stored, wanted, key=lambda p: p.id)

    def count_projects(
        self, data_equals: Mapping[str, Any], *, exclude_states: Collection[str] = ()
    ) -> int:
        """The stored count, less the touched projects as stored, plus them as pending."""
        key = ("count", _key(data_equals), frozenset(exclude_states))
        aggregate = self._aggregates.get(key)
        if aggregate is None:
            stored = self._reader.count_projects(data_equals, exclude_states=exclude_states)
            aggregate = self._aggregate(key, Decimal(stored), None, data_equals, exclude_states)
        return int(aggregate.value)

    def sum_projects(
        self, field: str, data_equals: Mapping[str, Any], *, exclude_states: Collection[str] = ()
    ) -> Decimal:
        """The stored sum, less the touched projects as stored, plus them as pending."""
        key = ("sum", field, _key(data_equals), frozenset(exclude_states))
        aggregate = self._aggregates.get(key)
        if aggregate is None:
            stored = self._reader.sum_projects(field, data_equals, exclude_states=exclude_states)
            aggregate = self._aggregate(key, stored, field, data_equals, exclude_states)
        return aggregate.value

    def _aggregate(
        self,
        key: tuple[Any, ...],
        stored: Decimal,
        field: str | None,
        data_equals: Mapping[str, Any],
        exclude_states: Collection[str],
    ) -> _Aggregate:
        aggregate = _Aggregate(stored, field, dict(data_equals), frozenset(exclude_states))
        for touched in self._touched.values():
            aggregate.replace(touched.stored, touched.latest)
        self._aggregates[key] = aggregate
        return aggregate

    def counts_at(self, when: datetime) -> dict[str, int]:
        """Counts by state at `when`, the touched projects' chains including pending entries."""
        counts = self._reader.counts_at(when)
        for pid, touched in self._touched.items():
            stored_chain = list(self._reader.entries(pid))
            before = _state_at(stored_chain, when)
            after = _state_at([*stored_chain, *touched.entries], when)
            if before is not None:
                counts[before] -= 1
            if after is not None:
                counts[after] = counts.get(after, 0) + 1
        return {state: n for state, n in counts.items() if n}

    # -- chains ----------------------------------------------------------------------------

    def chain_tip(self, project_id: str) -> tuple[int, str]:
        """The last pending entry of the project's chain, else the stored tip."""
        touched = self._touched.get(project_id)
        if touched is not None:
            last = touched.entries[-1]
            return last.seq, last.hash
        tip = self._tips.get(project_id)
        return tip if tip is not None else self._reader.chain_tip(project_id)

    def entries(self, project_id: str) -> Iterator[AuditEntry]:
        """Stored entries, then the pending ones."""
        yield from self._reader.entries(project_id)
        touched = self._touched.get(project_id)
        if touched is not None:
            yield from touched.entries

    def chain_ids(self) -> Iterator[str]:
        """Stored chain ids with the pending ones merged in, sorted, without duplicates."""
        last = None
        for pid in heapq.merge(self._reader.chain_ids(), sorted(self._touched)):
            if pid != last:
                yield pid
            last = pid

    def all_entries(self) -> Iterator[AuditEntry]:
        """Every stored entry and every pending one, by (project id, seq)."""
        pending = sorted(
            (e for t in self._touched.values() for e in t.entries),
            key=lambda e: (e.project_id, e.seq),
        )
        yield from heapq.merge(
            self._reader.all_entries(), pending, key=lambda e: (e.project_id, e.seq)
        )

    def find_records(
        self, kind: str, field: str, values: Collection[str]
    ) -> list[tuple[str, Record]]:
        """Stored matches plus those among the pending records, by (project id, seq)."""
        found = self._reader.find_records(kind, field, values)
        if self._records:
            index = self._record_index(kind, field)
            # In the order they were added, as the store would list them.
            pending = sorted(m for v in {str(v) for v in values} for m in index.get(v, ()))
            found.extend(self._records[position] for position in pending)
        return sorted(found, key=lambda pair: (pair[0], pair[1].seq))

    def _record_index(self, kind: str, field: str) -> dict[str, list[int]]:
        """Positions of the pending `kind` records by ``str(data[field])``, kept current."""
        index = self._indexes.get((kind, field))
        if index is None:
            index = self._indexes[(kind, field)] = {}
            for position, (_pid, record) in enumerate(self._records):
                if record.kind == kind:
                    index.setdefault(str(record.data.get(field)), []).append(position)
        return index

    # -- reference data --------------------------------------------------------------------

    def get_entity(self, kind: str, entity_id: str) -> Entity | None:
        """Return one entity, read from the store the first time only."""
        key = (kind, entity_id)
        if key not in self._entities:
            self._entities[key] = self._reader.get_entity(kind, entity_id)
        return self._entities[key]

    def entities(self, kind: str, *, parent: str | None = None) -> Iterator[Entity]:
        """Yield the entities of `kind`, read from the store the first time only."""
        key = (kind, parent)
        if key not in self._lists:
            self._lists[key] = list(self._reader.entities(kind, parent=parent))
        yield from self._lists[key]


class _Aggregate:
    """A count (`field` is ``None``) or a sum over matching project rows, kept current."""

    __slots__ = ("data_equals", "exclude_states", "field", "value")

    def __init__(
        self,
        value: Decimal,
        field: str | None,
        data_equals: Mapping[str, Any],
        exclude_states: frozenset[str],
    ) -> None:
        self.value = value
        self.field = field
        self.data_equals = data_equals
        self.exclude_states = exclude_states

    def replace(self, old: Project | None, new: Project | None) -> None:
        """Account for one project row turning from `old` into `new`."""
        self.value += self._part(new) - self._part(old)

    def _part(self, project: Project | None) -> Decimal:
        if project is None or not _matches(project, self.data_equals, self.exclude_states):
            return Decimal(0)
        if self.field is None:
            return Decimal(1)
        return decimal_or_zero(project.data.get(self.field))


def _key(data_equals: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    # repr tells 1 from "1" and keeps lists hashable.
    return tuple(sorted((str(k), repr(v)) for k, v in data_equals.items()))


def _matches(
    project: Project | None, data_equals: Mapping[str, Any], exclude_states: Collection[str]
) -> int:
    """1 when a stored row of `project` would be counted by ``count_projects``, else 0."""
    if project is None or not project.state or project.state in exclude_states:
        return 0
    return int(all(project.data.get(k) == v for k, v in data_equals.items()))


def _state_at(chain: list[AuditEntry], when: datetime) -> str | None:
    state = None
    for entry in chain:
        if entry.accepted and entry.at <= when and entry.to_state is not None:
            state = entry.to_state
    return state
