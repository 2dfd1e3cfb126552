"""`GuardingReader`: the reader a decision's facts read through, noting what may go stale.

A fact about other projects (a call's reserved budget, a provider's open applications,
the expenditures already using an invoice number) is true when read and may be false by
the time the decision commits: another process approves a project of the same call in
between. The decision core hands fact providers a `GuardingReader`, which notes every
aggregate they read as a `Guard` and every record look-up as a `RecordGuard`; an accepted
change carries its guards, and the store re-reads them inside the commit's transaction
(`grantflow.persistence` `check_guards`), so a stale total makes the commit fail with
`ConcurrencyError` and the engine decides again.

Every `StoreReader` method is written out (no attribute pass-through), as in
`PendingReader`: a new reader method cannot bypass the watch unnoticed.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from datetime import datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from grantflow._canonical import freeze
from grantflow._overlay import PendingReader
from grantflow.models import AuditEntry, Entity, Project, Record
from grantflow.persistence import Guard, RecordGuard, StoreReader

__all__ = ["GuardingReader"]


class GuardingReader:
    """A `StoreReader` over `reader` that notes the aggregates read through it.

    Over a `PendingReader` (a bulk batch), a guard holds the store's own answer, the
    batch's pending changes left out: they commit in the same transaction.
    """

    __slots__ = ("_guards", "_reader")

    def __init__(self, reader: StoreReader) -> None:
        self._reader = reader
        self._guards: list[Guard | RecordGuard] = []

    def __repr__(self) -> str:
        return f"GuardingReader({self._reader!r})"

    def guards(self) -> tuple[Guard | RecordGuard, ...]:
        """The totals and look-ups read so far, each once (the first read's answer)."""
        if not self._guards:
            return ()
        found: dict[str, Guard | RecordGuard] = {}
        for guard in self._guards:
            found.setdefault(guard.key, guard)
        return tuple(found.values())

    def _note(
        self,
        field: str | None,
        data_equals: Mapping[str, Any],
        exclude_states: Collection[str],
        value: Decimal | int,
    ) -> None:
        reader = self._reader
        if isinstance(reader, PendingReader):
            value = reader.stored_aggregate(field, data_equals, exclude_states=exclude_states)
        frozen: Mapping[str, Any] = MappingProxyType({k: freeze(v) for k, v in data_equals.items()})
        self._guards.append(Guard(field, frozen, frozenset(exclude_states), value))

    # -- the aggregates, noted -------------------------------------------------------------

    def count_projects(
        self, data_equals: Mapping[str, Any], *, exclude_states: Collection[str] = ()
    ) -> int:
        """`StoreReader.count_projects`, noted as a guard."""
        value = self._reader.count_projects(data_equals, exclude_states=exclude_states)
        self._note(None, data_equals, exclude_states, value)
        return value

    def sum_projects(
        self, field: str, data_equals: Mapping[str, Any], *, exclude_states: Collection[str] = ()
    ) -> Decimal:
        """`StoreReader.sum_projects`, noted as a guard."""
        value = self._reader.sum_projects(field, data_equals, exclude_states=exclude_states)
        self._note(field, data_equals, exclude_states, value)
        return value

    # -- everything else, as the reader underneath answers ---------------------------------

    def load(self, project_id: str) -> Project | None:
        """`StoreReader.load`."""
        return self._reader.load(project_id)

    def chain_tip(self, project_id: str) -> tuple[int, str]:
        """`StoreReader.chain_tip`."""
        return self._reader.chain_tip(project_id)

    def entries(self, project_id: str) -> Iterator[AuditEntry]:
        """`StoreReader.entries`."""
        return self._reader.entries(project_id)

    def chain_ids(self) -> Iterator[str]:
        """`StoreReader.chain_ids`."""
        return self._reader.chain_ids()

    def all_entries(self) -> Iterator[AuditEntry]:
        """`StoreReader.all_entries`."""
        return self._reader.all_entries()

    def projects(self, *, state: str | None = None) -> Iterator[Project]:
        """`StoreReader.projects`."""
        return self._reader.projects(state=state)

    def find_records(
        self, kind: str, field: str, values: Collection[str]
    ) -> list[tuple[str, Record]]:
        """`StoreReader.find_records`, noted as a `RecordGuard`."""
        found = self._reader.find_records(kind, field, values)
        reader = self._reader
        stored = (
            reader.stored_records(kind, field, values)
            if isinstance(reader, PendingReader)
            else found
        )
        guard = RecordGuard.of(kind, field, values, stored)
        if guard.values:  # looking for nothing finds nothing, whoever commits
            self._guards.append(guard)
        return found

    def counts_at(self, when: datetime) -> dict[str, int]:
        """`StoreReader.counts_at`."""
        return self._reader.counts_at(when)

    def get_entity(self, kind: str, entity_id: str) -> Entity | None:
        """`StoreReader.get_entity`."""
        return self._reader.get_entity(kind, entity_id)

    def entities(self, kind: str, *, parent: str | None = None) -> Iterator[Entity]:
        """`StoreReader.entities`."""
        return self._reader.entities(kind, parent=parent)
