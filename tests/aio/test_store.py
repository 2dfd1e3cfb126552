"""The store contract on the asyncio SQL store (aiosqlite, psycopg async) via `AsyncStore`.

`BlockingStore` turns the coroutines of an `AsyncStore` back into the `Store` protocol by
running each on a private event loop, so the shipped `StoreContract` runs unchanged
against the async store: every read and write goes through the asyncio driver.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Collection, Coroutine, Iterator, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import pytest

from grantflow.aio import AsyncStore
from grantflow.audit import Checkpoint
from grantflow.errors import InvalidInput, StoreError
from grantflow.models import AuditEntry, Entity, Project, Record
from grantflow.persistence import Change, Leaf, LogLeaf, Store
from grantflow.persistence.sql import open_async
from grantflow.testing.store_contract import StoreContract

T = TypeVar("T")


class BlockingStore:
    """The `Store` protocol over an `AsyncStore`, one private event loop per store."""

    def __init__(self, store: AsyncStore, loop: asyncio.AbstractEventLoop) -> None:
        self._store = store
        self._loop = loop

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self._loop.run_until_complete(coroutine)

    def load(self, project_id: str) -> Project | None:
        return self._run(self._store.load(project_id))

    def chain_tip(self, project_id: str) -> tuple[int, str]:
        return self._run(self._store.chain_tip(project_id))

    def entries(self, project_id: str) -> Iterator[AuditEntry]:
        return iter(self._run(self._store.entries(project_id)))

    def chain_ids(self) -> Iterator[str]:
        return iter(self._run(self._store.chain_ids()))

    def all_entries(self) -> Iterator[AuditEntry]:
        return iter(self._run(self._store.all_entries()))

    def projects(self, *, state: str | None = None) -> Iterator[Project]:
        return iter(self._run(self._store.projects(state=state)))

    def find_records(
        self, kind: str, field: str, values: Collection[str]
    ) -> list[tuple[str, Record]]:
        return self._run(self._store.find_records(kind, field, values))

    def count_projects(
        self, data_equals: Mapping[str, Any], *, exclude_states: Collection[str] = ()
    ) -> int:
        return self._run(self._store.count_projects(data_equals, exclude_states=exclude_states))

    def sum_projects(
        self, field: str, data_equals: Mapping[str, Any], *, exclude_states: Collection[str] = ()
    ) -> Decimal:
        return self._run(
            self._store.sum_projects(field, data_equals, exclude_states=exclude_states)
        )

    def counts_at(self, when: datetime) -> dict[str, int]:
        return self._run(self._store.counts_at(when))

    def get_entity(self, kind: str, entity_id: str) -> Entity | None:
        return self._run(self._store.get_entity(kind, entity_id))

    def entities(self, kind: str, *, parent: str | None = None) -> Iterator[Entity]:
        return iter(self._run(self._store.entities(kind, parent=parent)))

    def commit(self, change: Change) -> None:
        self._run(self._store.commit(change))

    def put_entity(self, entity: Entity) -> None:
        self._run(self._store.put_entity(entity))

    def save_checkpoint(self, checkpoint: Checkpoint, leaves: Sequence[Leaf]) -> None:
        self._run(self._store.save_checkpoint(checkpoint, leaves))

    def checkpoint_leaves(self, checkpoint_id: str) -> list[Leaf] | None:
        return self._run(self._store.checkpoint_leaves(checkpoint_id))

    def all_records(self) -> Iterator[tuple[str, Record]]:
        return iter(self._run(self._store.all_records()))

    def entry_hash_at(self, project_id: str, seq: int) -> str | None:
        return self._run(self._store.entry_hash_at(project_id, seq))

    def sequence_log(self) -> int:
        return self._run(self._store.sequence_log())

    def log_size(self) -> int:
        return self._run(self._store.log_size())

    def log_leaves(self, start: int, stop: int) -> list[LogLeaf]:
        return self._run(self._store.log_leaves(start, stop))

    def log_position(self, project_id: str, seq: int) -> int | None:
        return self._run(self._store.log_position(project_id, seq))

    def close(self) -> None:
        self._run(self._store.close())


def blocking(url: str, **options: Any) -> Iterator[Store]:
    """Open the asyncio SQL store on `url` and yield it as a blocking `Store`."""
    loop = asyncio.new_event_loop()
    store = BlockingStore(AsyncStore(loop.run_until_complete(open_async(url, **options))), loop)
    assert isinstance(store, Store)
    try:
        yield store
    finally:
        store.close()
        loop.close()


class TestAiosqliteStoreContract(StoreContract):
    """The store contract through aiosqlite."""

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[Store]:
        yield from blocking(f"sqlite:///{tmp_path / 'contract.db'}")


@pytest.mark.postgres
class TestAsyncPostgresStoreContract(StoreContract):
    """The store contract through psycopg's async mode, each test in its own tables."""

    @pytest.fixture
    def store(self, pg_url: str, pg_schema: str) -> Iterator[Store]:
        yield from blocking(pg_url, schema=pg_schema, table_prefix=f"a{uuid.uuid4().hex[:8]}_")


def test_open_async_refuses_other_databases_and_non_urls() -> None:
    """Only SQLite and PostgreSQL URLs; the driver is chosen (aiosqlite, psycopg async)."""
    from grantflow.persistence.sql import async_url

    assert async_url("sqlite:///a.db").drivername == "sqlite+aiosqlite"
    assert async_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    with pytest.raises(StoreError):
        async_url("mysql://u@h/db")
    with pytest.raises(InvalidInput):
        asyncio.run(open_async(object()))  # type: ignore[arg-type]


def test_the_async_store_has_a_coroutine_for_every_store_method() -> None:
    """A method added to the `Store` protocol fails here until `AsyncStore` bridges it."""
    from grantflow.persistence import Store

    wanted = {n for n in dir(Store) if not n.startswith("_") and callable(getattr(Store, n))}
    missing = sorted(
        n for n in wanted if not asyncio.iscoroutinefunction(getattr(AsyncStore, n, None))
    )
    assert missing == []


def test_a_locked_database_inside_the_work_is_retried_on_the_event_loop(tmp_path: Path) -> None:
    """A write whose work meets "database is locked" is retried, as the sync store does."""
    import sqlalchemy.exc
    from sqlalchemy.util import greenlet_spawn

    async def main() -> int:
        store = await open_async(f"sqlite:///{tmp_path / 'g.db'}")
        attempts: list[int] = []

        def work(conn: Any) -> int:
            attempts.append(1)
            if len(attempts) < 3:
                raise sqlalchemy.exc.OperationalError("BEGIN", {}, Exception("database is locked"))
            return len(attempts)

        try:
            return await greenlet_spawn(store._db.write, work)
        finally:
            await greenlet_spawn(store.close)

    assert asyncio.run(main()) == 3
