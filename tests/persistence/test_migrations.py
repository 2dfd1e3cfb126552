"""Tests for grantflow.persistence._migrations: schema versions, the check, upgrade."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy
from sqlalchemy import insert

from grantflow.errors import SchemaVersionError
from grantflow.persistence.sql import MIGRATIONS, SCHEMA_VERSION, SqlStore, build_tables, upgrade


def _database_at(url: str, version: int) -> None:
    """Create grantflow's schema as an older release left it: migrations 1..version."""
    tables = build_tables()
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as conn:
        tables.metadata.create_all(conn, tables=[tables.schema_version])
        for migration in MIGRATIONS[:version]:
            migration.apply(conn, tables)
            conn.execute(
                insert(tables.schema_version).values(
                    version=migration.version,
                    description=migration.description,
                    applied_at=datetime.now(UTC),
                )
            )
    engine.dispose()


def test_fresh_database_is_created_at_the_current_version(tmp_path: Path) -> None:
    """create=True (the default) sets a new database up at SCHEMA_VERSION."""
    url = f"sqlite:///{tmp_path / 'new.db'}"
    SqlStore.open(url).close()
    assert upgrade(url) == SCHEMA_VERSION


def test_missing_schema_without_create_is_refused(tmp_path: Path) -> None:
    """create=False on an empty database raises SchemaVersionError(found=None)."""
    with pytest.raises(SchemaVersionError) as caught:
        SqlStore.open(f"sqlite:///{tmp_path / 'empty.db'}", create=False)
    assert caught.value.found is None
    assert "create=True" in caught.value.message


def test_older_schema_asks_for_an_upgrade_then_opens(tmp_path: Path) -> None:
    """A version-1 database is refused with `grantflow db upgrade`; after upgrade it opens."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    _database_at(url, 1)
    with pytest.raises(SchemaVersionError) as caught:
        SqlStore.open(url)
    assert (caught.value.found, caught.value.expected) == (1, SCHEMA_VERSION)
    assert "grantflow db upgrade" in caught.value.message
    assert upgrade(url) == SCHEMA_VERSION
    store = SqlStore.open(url, create=False)
    with store.engine.connect() as conn:
        versions = conn.execute(sqlalchemy.select(store.tables.schema_version.c.version))
        assert sorted(v for (v,) in versions) == [m.version for m in MIGRATIONS]
        assert sqlalchemy.inspect(conn).has_table(store.tables.bulk_jobs.name)
        assert sqlalchemy.inspect(conn).has_table(store.tables.bulk_chunks.name)
    store.close()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    """A database from a newer grantflow is refused on open and by upgrade."""
    url = f"sqlite:///{tmp_path / 'new.db'}"
    store = SqlStore.open(url)
    with store.engine.begin() as conn:
        conn.execute(
            insert(store.tables.schema_version).values(
                version=SCHEMA_VERSION + 1, description="future", applied_at=datetime.now(UTC)
            )
        )
    store.close()
    with pytest.raises(SchemaVersionError, match="newer"):
        SqlStore.open(url)
    with pytest.raises(SchemaVersionError, match="newer"):
        upgrade(url)


def test_migrations_are_ordered_and_consecutive() -> None:
    """Migration versions run 1, 2, ... with no gap, ending at SCHEMA_VERSION."""
    assert [m.version for m in MIGRATIONS] == list(range(1, SCHEMA_VERSION + 1))


@pytest.mark.postgres
def test_upgrade_on_postgresql_creates_the_schema(pg_url: str, pg_schema: str) -> None:
    """upgrade() creates the PostgreSQL schema and tables; a second run changes nothing."""
    assert upgrade(pg_url, schema=pg_schema, table_prefix="up_") == SCHEMA_VERSION
    assert upgrade(pg_url, schema=pg_schema, table_prefix="up_") == SCHEMA_VERSION
    store = SqlStore.open(pg_url, schema=pg_schema, table_prefix="up_", create=False)
    assert list(store.chain_ids()) == []
    store.close()


def test_upgrade_to_record_keys_indexes_the_records_already_stored(tmp_path: Path) -> None:
    """Migration 5 gives every stored record its keys, so find_records finds old records.

    Text and integer fields are indexed (as their text), booleans and nested values not.
    """
    url = f"sqlite:///{tmp_path / 'v4.db'}"
    _database_at(url, 4)
    engine = sqlalchemy.create_engine(url)
    t = build_tables()
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            insert(t.projects).values(
                id="p-1",
                state="applied",
                version=1,
                head="0" * 64,
                data={},
                created_at=now,
                updated_at=now,
            )
        )
        conn.execute(
            insert(t.records).values(
                project_id="p-1",
                kind="expenditure",
                id="e-1",
                seq=1,
                pos=0,
                data={"invoice_number": "INV-7", "n": 80, "ok": True, "nested": {"a": "b"}},
            )
        )
    engine.dispose()
    upgrade(url)
    store = SqlStore.open(url, create=False)
    with store.engine.connect() as conn:
        keys = conn.execute(sqlalchemy.select(t.record_keys.c.field, t.record_keys.c.value))
        assert sorted(keys) == [("invoice_number", "INV-7"), ("n", "80")]
    assert [pid for pid, _r in store.find_records("expenditure", "invoice_number", ["INV-7"])] == [
        "p-1"
    ]
    assert len(store.find_records("expenditure", "n", ["80"])) == 1
    store.close()
