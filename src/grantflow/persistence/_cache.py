"""A read-through view of a store that remembers reference data for one bulk run."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from typing import Any

from grantflow.models import AuditEntry, Entity, Project, Record
from grantflow.persistence._protocol import Change, StoreReader

__all__ = ["EntityCache"]


class EntityCache:
    """The store as a bulk batch sees it: reference data cached, pending changes overlaid.

    Fact providers of a bulk run ask for the same hubs, providers and people thousands of
    times; reference data is read once per run instead. A batch decides many items
    before it commits them; `pending` holds the changes decided so far, so that a later
    item sees an earlier one exactly as it would have after a single `fire` (a duplicate
    invoice inside one file is caught). Project reads are never cached.
    """

    def __init__(self, reader: StoreReader) -> None:
        self._reader = reader
        self._entities: dict[tuple[str, str], Entity | None] = {}
        self._lists: dict[tuple[str, str | None], list[Entity]] = {}
        self._pending: list[Change] = []

    def begin_batch(self) -> None:
        """Forget pending changes (the last batch committed or rolled back)."""
        self._pending.clear()

    def add_pending(self, change: Change) -> None:
        """Make a decided, not yet committed change visible to later decisions."""
        self._pending.append(change)

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

    def load(self, project_id: str) -> Project | None:
        """The project after the batch's pending changes, else as stored."""
        for change in reversed(self._pending):
            if change.entry.project_id == project_id and change.after is not None:
                return change.after
        return self._reader.load(project_id)

    def chain_tip(self, project_id: str) -> tuple[int, str]:
        """Pass through."""
        return self._reader.chain_tip(project_id)

    def entries(self, project_id: str) -> Iterator[AuditEntry]:
        """Pass through."""
        return self._reader.entries(project_id)

    def all_entries(self) -> Iterator[AuditEntry]:
        """Pass through."""
        return self._reader.all_entries()

    def chain_ids(self) -> Iterator[str]:
        """Pass through."""
        return self._reader.chain_ids()

    def projects(self, *, state: str | None = None) -> Iterator[Project]:
        """Pass through."""
        return self._reader.projects(state=state)

    def find_records(
        self, kind: str, field: str, values: Collection[str]
    ) -> list[tuple[str, Record]]:
        """Stored matches plus those among the batch's pending records."""
        found = self._reader.find_records(kind, field, values)
        wanted = set(values)
        for change in self._pending:
            for record in change.entry.records:
                if record.kind == kind and str(record.data.get(field)) in wanted:
                    found.append((change.entry.project_id, record))
        return found

    def count_projects(
        self, data_equals: Mapping[str, Any], *, exclude_states: Collection[str] = ()
    ) -> int:
        """Pass through."""
        return self._reader.count_projects(data_equals, exclude_states=exclude_states)

    def __getattr__(self, name: str) -> Any:
        # Anything else a store offers (counts_at, portfolio totals, ...) passes through.
        return getattr(self._reader, name)
