"""The outbox contract on every backend: memory, SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from grantflow.persistence import MemoryStore
from grantflow.persistence.sql import SqlStore
from grantflow.testing.outbox_contract import OutboxContract

from .conftest import OnPostgres, OnSqlite


class TestMemoryOutbox(OutboxContract):
    """The outbox contract on the in-memory store."""

    @pytest.fixture
    def store(self) -> MemoryStore:
        return MemoryStore()


class TestSqliteOutbox(OnSqlite, OutboxContract):
    """The outbox contract on a SQLite file."""


@pytest.mark.postgres
class TestPostgresOutbox(OnPostgres, OutboxContract):
    """The outbox contract on PostgreSQL, each test in its own tables."""


def test_a_version_4_database_upgrades_to_an_outbox(tmp_path: Path) -> None:
    """Migration 5 adds the outbox to an older database; new commits queue messages."""
    from datetime import UTC, datetime

    import sqlalchemy

    from grantflow.errors import SchemaVersionError
    from grantflow.persistence.sql import MIGRATIONS, SCHEMA_VERSION, build_tables, upgrade
    from grantflow.testing.store_contract import submission

    url = f"sqlite:///{tmp_path / 'old.db'}"
    tables = build_tables()
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as conn:
        tables.metadata.create_all(conn, tables=[tables.schema_version])
        for migration in MIGRATIONS[:4]:
            migration.apply(conn, tables)
            conn.execute(
                tables.schema_version.insert().values(
                    version=migration.version, description="", applied_at=datetime.now(UTC)
                )
            )
    engine.dispose()
    with pytest.raises(SchemaVersionError):
        SqlStore.open(url, create=False)
    assert upgrade(url) == SCHEMA_VERSION
    store = SqlStore.open(url)
    try:
        change = submission("p-1")
        store.commit(change)
        assert [m.id for m in store.outbox_messages()] == [change.entry.hash]
    finally:
        store.close()
