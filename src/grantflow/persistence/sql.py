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

from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy

from grantflow.persistence._migrations import MIGRATIONS, SCHEMA_VERSION, Migration, apply_pending
from grantflow.persistence._schema import Tables, build_tables
from grantflow.persistence._sql import SqlStore, connector_for
from grantflow.persistence._sqlasync import async_url, open_async
from grantflow.persistence._sqlconn import NETWORK_FILESYSTEMS, PG_RETRIES, StorageWarning
from grantflow.persistence._sqlindexes import QUERY_INDEXES
from grantflow.persistence._sqltree import hub_subtree_cte

__all__ = [
    "IncludeObject",
    "MIGRATIONS",
    "Migration",
    "NETWORK_FILESYSTEMS",
    "PG_RETRIES",
    "QUERY_INDEXES",
    "SCHEMA_VERSION",
    "SqlStore",
    "StorageWarning",
    "Tables",
    "alembic_include_object",
    "async_url",
    "build_tables",
    "hub_subtree_cte",
    "open_async",
    "upgrade",
]

#: The signature of Alembic's ``include_object`` hook: (object, name, type_, reflected,
#: compare_to) -> bool.
IncludeObject = Callable[[Any, str | None, str, bool, Any], bool]


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


def alembic_include_object(
    *,
    table_prefix: str = "grantflow_",
    schema: str | None = None,
    include_object: IncludeObject | None = None,
) -> IncludeObject:
    """Return an Alembic ``include_object`` hook that leaves grantflow's tables alone.

    grantflow migrates its own tables (`upgrade`, ``grantflow db upgrade``). A host
    application that runs ``alembic revision --autogenerate`` on the same database
    passes this hook in its ``env.py``, so autogenerate neither drops grantflow's
    tables (they are not in the host's metadata) nor proposes changes to them. Their
    columns, indexes and constraints are left out too. `include_object`, if given, is
    the host's own hook, asked about everything else.

    ``context.configure(connection=..., target_metadata=Base.metadata,
    include_object=alembic_include_object(table_prefix="gf_"))``
    """
    names = {table.name for table in build_tables(table_prefix, schema).metadata.tables.values()}

    def hook(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        table = obj if type_ == "table" else getattr(obj, "table", None)
        if table is not None and table.name in names and table.schema == schema:
            return False
        if include_object is None:
            return True
        return include_object(obj, name, type_, reflected, compare_to)

    return hook
