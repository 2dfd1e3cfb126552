"""Fixtures for the SQL store tests: SQLite files and a throwaway PostgreSQL schema.

PostgreSQL tests need ``GRANTFLOW_TEST_PG_URL`` (``python3 tasks.py test`` sets it). Without
it they are skipped, except under ``CI=true``, where a missing server is a failure.
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy

from grantflow.persistence.sql import SqlStore

StoreFactory = Callable[..., SqlStore]


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture(scope="session")
def pg_url() -> str:
    """The throwaway PostgreSQL server's URL; skip (or fail in CI) without one."""
    url = os.environ.get("GRANTFLOW_TEST_PG_URL")
    if not url:
        if _in_ci():
            pytest.fail("CI=true but GRANTFLOW_TEST_PG_URL is not set: PostgreSQL did not start")
        pytest.skip("GRANTFLOW_TEST_PG_URL is not set; run the tests through tasks.py")
    return url


@pytest.fixture(scope="module")
def pg_schema(pg_url: str) -> Iterator[str]:
    """A fresh PostgreSQL schema for one test module, dropped afterwards."""
    schema = f"gf_test_{uuid.uuid4().hex[:12]}"
    yield schema
    engine = sqlalchemy.create_engine(pg_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    engine.dispose()


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
