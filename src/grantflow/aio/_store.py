"""`AsyncStore`: the store protocol as coroutines, over the store an `AsyncEngine` uses."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy.util import greenlet_spawn

from grantflow.audit import Checkpoint
from grantflow.models import AuditEntry, Entity, Project, Record
from grantflow.persistence import Change, Leaf, LogLeaf, Store

__all__ = ["AsyncStore", "bridge"]

T = TypeVar("T")


async def bridge(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run sync grantflow code whose database calls await the asyncio driver.

    ``sqlalchemy.util.greenlet_spawn``: the code runs in a greenlet on the event loop's
    thread; each database call inside it suspends the greenlet and awaits the driver,
    so other tasks run meanwhile. Pure Python work (rules, hashing) runs on the loop.
    """
    return await greenlet_spawn(fn, *args, **kwargs)


class AsyncStore:
    """Every method of the `Store` protocol as a coroutine; iterators come as lists.

    Wraps the store of an `AsyncEngine` (``engine.store``): a `SqlStore` on an asyncio
    engine, or a `MemoryStore`.
    """

    def __init__(self, store: Store) -> None:
        self._store = store

    def __repr__(self) -> str:
        return f"AsyncStore({self._store!r})"

    @property
    def sync(self) -> Store:
        """The wrapped store; call its methods only through `bridge` (SQL stores)."""
        return self._store

    # -- reads ---------------------------------------------------------------------------

    async def load(self, project_id: str) -> Project | None:
        """See `StoreReader.load`."""
        return await bridge(self._store.load, project_id)

    async def chain_tip(self, project_id: str) -> tuple[int, str]:
        """See `StoreReader.chain_tip`."""
        return await bridge(self._store.chain_tip, project_id)

    async def entries(self, project_id: str) -> list[AuditEntry]:
        """See `StoreReader.entries`."""
        return await bridge(lambda: list(self._store.entries(project_id)))

    async def chain_ids(self) -> list[str]:
        """See `StoreReader.chain_ids`."""
        return await bridge(lambda: list(self._store.chain_ids()))

    async def all_entries(self) -> list[AuditEntry]:
        """See `StoreReader.all_entries` (all of them, in memory)."""
        return await bridge(lambda: list(self._store.all_entries()))

    async def projects(self, *, state: str | None = None) -> list[Project]:
        """See `StoreReader.projects`."""
        return await bridge(lambda: list(self._store.projects(state=state)))

    async def find_records(
        self, kind: str, field: str, values: Collection[str]
    ) -> list[tuple[str, Record]]:
        """See `StoreReader.find_records`."""
        return await bridge(self._store.find_records, kind, field, values)

    async def count_projects(
        self, data_equals: Mapping[str, Any], *, exclude_states: Collection[str] = ()
    ) -> int:
        """See `StoreReader.count_projects`."""
        return await bridge(self._store.count_projects, data_equals, exclude_states=exclude_states)

    async def sum_projects(
        self, field: str, data_equals: Mapping[str, Any], *, exclude_states: Collection[str] = ()
    ) -> Decimal:
        """See `StoreReader.sum_projects`."""
        return await bridge(
            self._store.sum_projects, field, data_equals, exclude_states=exclude_states
        )

    async def counts_at(self, when: datetime) -> dict[str, int]:
        """See `StoreReader.counts_at`."""
        return await bridge(self._store.counts_at, when)

    async def get_entity(self, kind: str, entity_id: str) -> Entity | None:
        """See `StoreReader.get_entity`."""
        return await bridge(self._store.get_entity, kind, entity_id)

    async def entities(self, kind: str, *, parent: str | None = None) -> list[Entity]:
        """See `StoreReader.entities`."""
        return await bridge(lambda: list(self._store.entities(kind, parent=parent)))

    async def all_records(self) -> list[tuple[str, Record]]:
        """See `Store.all_records` (all of them, in memory)."""
        return await bridge(lambda: list(self._store.all_records()))

    async def entry_hash_at(self, project_id: str, seq: int) -> str | None:
        """See `Store.entry_hash_at`."""
        return await bridge(self._store.entry_hash_at, project_id, seq)

    async def checkpoint_leaves(self, checkpoint_id: str) -> list[Leaf] | None:
        """See `Store.checkpoint_leaves`."""
        return await bridge(self._store.checkpoint_leaves, checkpoint_id)

    async def log_size(self) -> int:
        """See `Store.log_size`."""
        return await bridge(self._store.log_size)

    async def log_leaves(self, start: int, stop: int) -> list[LogLeaf]:
        """See `Store.log_leaves`."""
        return await bridge(self._store.log_leaves, start, stop)

    async def log_position(self, project_id: str, seq: int) -> int | None:
        """See `Store.log_position`."""
        return await bridge(self._store.log_position, project_id, seq)

    # -- writes --------------------------------------------------------------------------

    async def commit(self, change: Change) -> None:
        """See `Store.commit`."""
        await bridge(self._store.commit, change)

    async def put_entity(self, entity: Entity) -> None:
        """See `Store.put_entity`."""
        await bridge(self._store.put_entity, entity)

    async def save_checkpoint(self, checkpoint: Checkpoint, leaves: Sequence[Leaf]) -> None:
        """See `Store.save_checkpoint`."""
        await bridge(self._store.save_checkpoint, checkpoint, leaves)

    async def sequence_log(self) -> int:
        """See `Store.sequence_log`."""
        return await bridge(self._store.sequence_log)

    async def close(self) -> None:
        """See `Store.close` (disposes of the asyncio engine)."""
        await bridge(self._store.close)
