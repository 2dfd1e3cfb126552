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

from grantflow._canonical import same_json
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
        # Aggregates of this batch, by key: the store's answer plus the pending changes;
        # and the same aggregates by the data keys they filter on (see `_Group`).
        self._aggregates: dict[tuple[Any, ...], _Aggregate] = {}
        self._groups: dict[tuple[str, ...], _Group] = {}
        # The store's answers to record look-ups of this batch, by (kind, field, values).
        self._found: dict[tuple[str, str, frozenset[str]], tuple[tuple[str, Record], ...]] = {}

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
        self._groups.clear()
        self._found.clear()

    def add_pending(self, change: Change) -> None:
        """Make a decided, not yet committed change visible to every later read."""
        pid = change.entry.project_id
        touched = self._touched.get(pid)
        if touched is None:
            stored = self._stored(pid)
            touched = self._touched[pid] = _Touched(stored, stored, [])
            for group in self._groups.values():
                group.track(pid, stored)
        touched.entries.append(change.entry)
        if change.entry.accepted:
            for record in change.entry.records:
                position = len(self._records)
                self._records.append((pid, record))
                for (kind, field), index in self._indexes.items():
                    if record.kind == kind:
                        index.setdefault(str(record.data.get(field)), []).append(position)
        if change.after is not None:
            for group in self._groups.values():
                group.replace(pid, touched, change.after)
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

    def stored_aggregate(
        self,
        field: str | None,
        data_equals: Mapping[str, Any],
        *,
        exclude_states: Collection[str] = (),
    ) -> Decimal | int:
        """The store's own answer to a sum (a count when `field` is ``None``) of this batch.

        What a `Guard` expects at commit: the batch's pending changes left out.
        """
        states = frozenset(exclude_states)
        if field is None:
            key: tuple[Any, ...] = ("count", _key(data_equals), states)
            found = self._aggregates.get(key)
            if found is None:
                return self._reader.count_projects(data_equals, exclude_states=states)
            return int(found.stored)
        key = ("sum", field, _key(data_equals), states)
        found = self._aggregates.get(key)
        if found is None:
            return self._reader.sum_projects(field, data_equals, exclude_states=states)
        return found.stored

    def _aggregate(
        self,
        key: tuple[Any, ...],
        stored: Decimal,
        field: str | None,
        data_equals: Mapping[str, Any],
        exclude_states: Collection[str],
    ) -> _Aggregate:
        aggregate = _Aggregate(stored, field, dict(data_equals), frozenset(exclude_states))
        names = tuple(sorted(aggregate.data_equals))
        group = self._groups.get(names)
        if group is None:
            group = self._groups[names] = _Group(names, self._touched)
        for touched in group.candidates(aggregate, self._touched):
            aggregate.replace(touched.stored, touched.latest)
        group.add(aggregate)
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
        found = list(self.stored_records(kind, field, values))
        if self._records:
            index = self._record_index(kind, field)
            # In the order they were added, as the store would list them.
            pending = sorted(m for v in {str(v) for v in values} for m in index.get(v, ()))
            found.extend(self._records[position] for position in pending)
        return sorted(found, key=lambda pair: (pair[0], pair[1].seq))

    def stored_records(
        self, kind: str, field: str, values: Collection[str]
    ) -> tuple[tuple[str, Record], ...]:
        """The store's own answer to `find_records`, read once per batch (see `RecordGuard`)."""
        key = (kind, field, frozenset(str(v) for v in values))
        found = self._found.get(key)
        if found is None:
            found = self._found[key] = tuple(self._reader.find_records(kind, field, values))
        return found

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


class _Group:
    """The aggregates filtering on one set of data keys, and the touched projects, indexed.

    A row counts towards an aggregate only when its values of the keys equal the
    aggregate's; so a change need only reach the aggregates wanting the values of its
    old or new row, and a new aggregate need only replay the touched projects whose
    stored or latest row has its values. (A batch deciding 500 submissions, each asking
    for its own (provider, call) count, otherwise replays 500 x 500 rows.) Values that
    cannot be hashed (lists, objects) are not indexed: they are checked every time.
    """

    __slots__ = ("loose", "loose_rows", "names", "rows", "wanted")

    def __init__(self, names: tuple[str, ...], touched: Mapping[str, _Touched]) -> None:
        self.names = names
        self.wanted: dict[tuple[Any, ...], list[_Aggregate]] = {}
        self.loose: list[_Aggregate] = []
        # Touched project ids by the values of their stored and of their latest row.
        self.rows: dict[tuple[Any, ...], set[str]] = {}
        self.loose_rows: set[str] = set()
        for pid, t in touched.items():
            self._index(pid, t.stored)
            self._index(pid, t.latest)

    def add(self, aggregate: _Aggregate) -> None:
        """Keep `aggregate` current from now on."""
        wanted = self._values(aggregate.data_equals)
        if wanted is None:
            self.loose.append(aggregate)
        else:
            self.wanted.setdefault(wanted, []).append(aggregate)

    def candidates(self, aggregate: _Aggregate, touched: Mapping[str, _Touched]) -> list[_Touched]:
        """The touched projects whose rows may count towards `aggregate`."""
        wanted = self._values(aggregate.data_equals)
        if wanted is None:
            return list(touched.values())
        pids = self.rows.get(wanted, set()) | self.loose_rows
        return [touched[pid] for pid in sorted(pids)]

    def track(self, pid: str, stored: Project | None) -> None:
        """Index a newly touched project under its stored row's values."""
        self._index(pid, stored)

    def replace(self, pid: str, touched: _Touched, new: Project) -> None:
        """Project `pid`'s latest row turns from ``touched.latest`` into `new`."""
        old = touched.latest
        # Values that cannot be hashed never equal ones that can: only loose aggregates
        # may count such a row.
        keys = {v for v in (self._row(old), self._row(new)) if v is not None}
        for aggregate in [*self.loose, *(a for k in keys for a in self.wanted.get(k, ()))]:
            aggregate.replace(old, new)
        if old is not None and old is not touched.stored:
            self._unindex(pid, old, keep=touched.stored)
        self._index(pid, new)

    def _row(self, project: Project | None) -> tuple[Any, ...] | None:
        return None if project is None else self._values(project.data)

    def _values(self, data: Mapping[str, Any]) -> tuple[Any, ...] | None:
        values = tuple(data.get(name) for name in self.names)
        try:
            hash(values)
        except TypeError:
            return None
        return values

    def _index(self, pid: str, project: Project | None) -> None:
        if project is None:
            return
        values = self._values(project.data)
        if values is None:
            self.loose_rows.add(pid)
        else:
            self.rows.setdefault(values, set()).add(pid)

    def _unindex(self, pid: str, project: Project, *, keep: Project | None) -> None:
        values = self._values(project.data)
        if values is None or (keep is not None and self._values(keep.data) == values):
            return  # loose ids stay loose; an id still under its stored row's values stays
        self.rows.get(values, set()).discard(pid)


class _Aggregate:
    """A count (`field` is ``None``) or a sum over matching project rows, kept current."""

    __slots__ = ("data_equals", "exclude_states", "field", "stored", "value")

    def __init__(
        self,
        value: Decimal,
        field: str | None,
        data_equals: Mapping[str, Any],
        exclude_states: frozenset[str],
    ) -> None:
        self.stored = value  # the store's answer, before any pending change
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
    return int(all(same_json(project.data.get(k), v) for k, v in data_equals.items()))


def _state_at(chain: list[AuditEntry], when: datetime) -> str | None:
    state = None
    for entry in chain:
        if entry.accepted and entry.at <= when and entry.to_state is not None:
            state = entry.to_state
    return state
