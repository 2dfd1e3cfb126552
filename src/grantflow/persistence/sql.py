"""The SQL store: SQLite by default, PostgreSQL at scale; schema versions and upgrades.

>>> import tempfile, pathlib
>>> from grantflow.persistence.sql import SqlStore
>>> folder = tempfile.mkdtemp()
>>> store = SqlStore.open(f"sqlite:///{pathlib.Path(folder) / 'grants.db'}")
>>> store.load("nothing") is None
True
>>> store.close()
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy

from grantflow.persistence._migrations import MIGRATIONS, SCHEMA_VERSION, Migration, apply_pending
from grantflow.persistence._schema import Tables, build_tables
from grantflow.persistence._sql import SqlStore, connector_for
from grantflow.persistence._sqlconn import NETWORK_FILESYSTEMS, PG_RETRIES, StorageWarning

__all__ = [
    "MIGRATIONS",
    "NETWORK_FILESYSTEMS",
    "PG_RETRIES",
    "SCHEMA_VERSION",
    "Migration",
    "SqlStore",
    "StorageWarning",
    "Tables",
    "build_tables",
    "upgrade",
]


def upgrade(
    url_or_engine: str | sqlalchemy.Engine,
    *,
    table_prefix: str = "grantflow_",
    schema: str | None = None,
    engine_options: Mapping[str, Any] | None = None,
    **options: Any,
) -> int:
    """Bring a database's grantflow schema to `SCHEMA_VERSION`; return that version.

    Applies each missing migration in order, in one transaction, and records it in the
    ``schema_version`` table; a database already current is left as it is. Back the
    database up first. ``grantflow db upgrade`` calls this.

    Raises:
        SchemaVersionError: the database is newer than this grantflow.
    """
    connector = connector_for(url_or_engine, engine_options=engine_options, **options)
    try:
        tables = build_tables(table_prefix, schema)
        return connector.write(lambda conn: apply_pending(conn, tables))
    finally:
        connector.dispose()
