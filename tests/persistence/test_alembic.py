"""Alembic autogenerate on a database shared with grantflow proposes nothing for its tables."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from grantflow.persistence.sql import SqlStore, alembic_include_object


@pytest.fixture
def shared(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[sa.Engine, dict[str, Any]]]:
    """A host database holding grantflow's tables (under a prefix) beside the host's."""
    options: dict[str, Any] = {"table_prefix": f"g{uuid.uuid4().hex[:6]}_"}
    if backend == "postgres":
        engine = sa.create_engine(request.getfixturevalue("pg_url"))
        options["schema"] = f"gf_alembic_{uuid.uuid4().hex[:8]}"  # grantflow's alone
    else:
        engine = sa.create_engine(f"sqlite:///{tmp_path / 'app.db'}")
    SqlStore.open(engine, **options)
    yield engine, options
    if "schema" in options:
        with engine.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{options["schema"]}" CASCADE')
    engine.dispose()


def _host_metadata(name: str, *columns: sa.Column[Any]) -> sa.MetaData:
    metadata = sa.MetaData()
    sa.Table(name, metadata, sa.Column("id", sa.Integer, primary_key=True), *columns)
    return metadata


def _diff(engine: sa.Engine, metadata: sa.MetaData, **opts: Any) -> list[Any]:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, **opts})
        return list(compare_metadata(context, metadata))


def _touches(diff: list[Any], prefix: str) -> list[Any]:
    return [d for d in diff if prefix in repr(d)]


def test_autogenerate_would_drop_grantflow_tables_without_the_hook(
    shared: tuple[sa.Engine, dict[str, Any]],
) -> None:
    """The problem: the host's metadata lacks grantflow's tables, so Alembic drops them."""
    engine, options = shared
    if "schema" in options:
        pytest.skip("without include_schemas Alembic does not look into grantflow's schema")
    host = _host_metadata(f"orders_{uuid.uuid4().hex[:6]}")
    host.create_all(engine)
    removed = [d for d in _diff(engine, host) if d[0] == "remove_table"]
    assert {d[1].name for d in removed} >= {options["table_prefix"] + "projects"}
    host.drop_all(engine)


def test_autogenerate_with_the_hook_proposes_no_change_to_grantflow_tables(
    shared: tuple[sa.Engine, dict[str, Any]],
) -> None:
    """With `alembic_include_object`, only the host's own change is proposed."""
    engine, options = shared
    name = f"orders_{uuid.uuid4().hex[:6]}"
    _host_metadata(name).create_all(engine)
    host = _host_metadata(name, sa.Column("note", sa.String(40)))  # the host's new column
    hook = alembic_include_object(**options)
    if "schema" in options:
        # The host looks at its default schema and grantflow's (the server holds others).
        schemas = {None, "public", options["schema"]}
        diff = _diff(
            engine,
            host,
            include_object=hook,
            include_schemas=True,
            include_name=lambda n, type_, parents: type_ != "schema" or n in schemas,
        )
    else:
        diff = _diff(engine, host, include_object=hook)
    assert _touches(diff, options["table_prefix"]) == []
    # A shared PostgreSQL server may hold other tests' tables in its public schema,
    # which Alembic proposes to drop: only what concerns the host's table is checked.
    own = [d for d in diff if name in repr(d)]
    assert [(d[0], d[2], d[3].name) for d in own] == [("add_column", name, "note")]
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE {name}"))


def test_the_hook_defers_to_the_host_s_own_filter(tmp_path: Path) -> None:
    """The host's `include_object` still decides about every other object."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'app.db'}")
    SqlStore.open(engine)
    _host_metadata("audit_log").create_all(engine)
    asked: list[str] = []

    def host_hook(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        asked.append(f"{type_}:{name}")
        return name != "audit_log"

    hook = alembic_include_object(include_object=host_hook)
    assert _diff(engine, sa.MetaData(), include_object=hook) == []
    assert "table:audit_log" in asked
    assert not [a for a in asked if "grantflow_" in a]
    engine.dispose()
