"""Fixtures for the SQL store tests: SQLite files and PostgreSQL tables.

The PostgreSQL server and the module's schema are the suite's (`pg_url`, `pg_schema` in
tests/conftest.py).
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from grantflow.persistence.sql import SqlStore

StoreFactory = Callable[..., SqlStore]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    """Run a test once on a SQLite file and once on PostgreSQL."""
    return str(request.param)


@pytest.fixture
def make_store(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[StoreFactory]:
    """Return a factory of fresh, empty SQL stores on the test's backend; closes them after."""
    opened: list[SqlStore] = []
    counter = itertools.count()
    if backend == "postgres":
        url = request.getfixturevalue("pg_url")
        schema = request.getfixturevalue("pg_schema")

        def make(**options: Any) -> SqlStore:
            prefix = f"t{uuid.uuid4().hex[:8]}_"
            store = SqlStore.open(url, schema=schema, table_prefix=prefix, **options)
            opened.append(store)
            return store

    else:

        def make(**options: Any) -> SqlStore:
            store = SqlStore.open(f"sqlite:///{tmp_path / f'db{next(counter)}.sqlite'}", **options)
            opened.append(store)
            return store

    yield make
    for store in opened:
        store.close()


def url_of(store: SqlStore) -> str:
    """Return the URL (password included) another process can open the store with."""
    return store.engine.url.render_as_string(hide_password=False)


class OnSqlite:
    """Mixin for a store contract class: its `store` is a SqlStore on a fresh SQLite file."""

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[SqlStore]:
        """A SqlStore on a new SQLite file, closed afterwards."""
        store = SqlStore.open(f"sqlite:///{tmp_path / 'contract.db'}")
        yield store
        store.close()


class OnPostgres:
    """Mixin for a store contract class: its `store` is a SqlStore in its own PostgreSQL tables."""

    @pytest.fixture
    def store(self, pg_url: str, pg_schema: str) -> Iterator[SqlStore]:
        """A SqlStore under a fresh table prefix in the module's schema, closed afterwards."""
        store = SqlStore.open(pg_url, schema=pg_schema, table_prefix=f"t{uuid.uuid4().hex[:8]}_")
        yield store
        store.close()
