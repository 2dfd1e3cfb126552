"""`Engine.projects` in SQL: filters, order and keyset pagination in one ``SELECT``.

The data filters compare JSON values by type and value, exactly as the Python path
(`grantflow._query.matches`) does, and use the indexes of migration 6 (`QUERY_INDEXES`):

* PostgreSQL: expression indexes on ``(data -> 'hub')`` etc.; the filters are spelled
  with the key as a SQL literal, the same text, so the planner matches them.
* SQLite: a virtual generated column per field (``q_hub`` holds ``data.hub`` when it
  is text, else NULL; ``q_year`` the year when it is an integer) with an ordinary
  index. Expression indexes would do as well for the planner, but SQLAlchemy cannot
  reflect them and warns, which would break a host's Alembic autogenerate; generated
  columns it reflects silently.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from grantflow._query import DATA_FILTERS, ProjectQuery
from grantflow.persistence._schema import Tables
from grantflow.persistence._sqltree import hub_subtree_cte

__all__ = ["QUERY_INDEXES", "create_query_indexes", "query_rows"]

#: The indexed data fields (text filters and the year).
QUERY_INDEXES = (*DATA_FILTERS, "year")


def _path(key: str) -> Any:
    return sa.literal_column(f"""'$."{key}"'""")


def _field(data: Any, key: str, postgres: bool) -> Any:
    """The JSON value at `key`, spelled as its expression index is."""
    if postgres:
        return data.op("->")(sa.literal_column(f"'{key}'"))
    return sa.func.json_extract(data, _path(key))


def _sqlite_field(table: sa.Table, key: str, conn: sa.Connection) -> Any:
    name = conn.dialect.identifier_preparer.format_table(table)
    return sa.literal_column(f"{name}.q_{key}")


def _equals(
    conn: sa.Connection, table: sa.Table, key: str, value: str | int, postgres: bool
) -> Any:
    if postgres:
        encoded = json.dumps(value, ensure_ascii=False)
        return _field(table.c.data, key, True) == sa.cast(sa.literal(encoded), postgresql.JSONB)
    return _sqlite_field(table, key, conn) == value


def _hub_in(conn: sa.Connection, table: sa.Table, tree: Any, postgres: bool) -> Any:
    if postgres:
        data = table.c.data
        text = data.op("->>")(sa.literal_column("'hub'"))
        kind = sa.func.jsonb_typeof(_field(data, "hub", True)) == "string"
        return sa.and_(kind, text.in_(sa.select(tree.c.id)))
    return _sqlite_field(table, "hub", conn).in_(sa.select(tree.c.id))


def query_rows(conn: sa.Connection, tables: Tables, query: ProjectQuery) -> list[Any]:
    """Rows of the page of `query` (one more than the limit if there is more)."""
    p = tables.projects
    postgres = conn.dialect.name == "postgresql"
    conditions: list[Any] = []
    if query.state is not None:
        conditions.append(p.c.state == query.state)
    for key, value in query.data_filters().items():
        conditions.append(_equals(conn, p, key, value, postgres))
    if query.subtree is not None:
        tree = hub_subtree_cte(tables.entities, query.subtree, postgres=postgres)
        conditions.append(_hub_in(conn, p, tree, postgres))
    if query.updated_since is not None:
        conditions.append(p.c.updated_at >= query.updated_since)
    column = p.c[query.column]
    if query.after is not None:
        key, last_id = query.after
        if query.column == "id":
            conditions.append(p.c.id < last_id if query.descending else p.c.id > last_id)
        elif query.descending:
            conditions.append(sa.or_(column < key, sa.and_(column == key, p.c.id < last_id)))
        else:
            conditions.append(sa.or_(column > key, sa.and_(column == key, p.c.id > last_id)))
    order = [column.desc(), p.c.id.desc()] if query.descending else [column, p.c.id]
    if query.column == "id":
        order = order[:1]
    stmt = sa.select(p).where(sa.and_(sa.true(), *conditions)).order_by(*order)
    return list(conn.execute(stmt.limit(query.limit + 1)).all())


def create_query_indexes(conn: sa.Connection, tables: Tables) -> None:
    """Indexes for `Engine.projects` (migration 6); each created only if missing."""
    prefix = tables.prefix
    postgres = conn.dialect.name == "postgresql"
    preparer = conn.dialect.identifier_preparer
    table = preparer.format_table(tables.projects)
    expressions = {"state": "state, id", "updated": "updated_at, id"}
    if postgres:
        expressions |= {key: f"(data -> '{key}')" for key in QUERY_INDEXES}
    else:
        present = {row[1] for row in conn.exec_driver_sql(f"PRAGMA table_xinfo({table})")}
        for key in QUERY_INDEXES:
            kind = "integer" if key == "year" else "text"
            path = f"""'$."{key}"'"""
            if f"q_{key}" not in present:
                conn.exec_driver_sql(
                    f"ALTER TABLE {table} ADD COLUMN q_{key} GENERATED ALWAYS AS "
                    f"(CASE WHEN json_type(data, {path}) = '{kind}' "
                    f"THEN json_extract(data, {path}) END) VIRTUAL"
                )
            expressions[key] = f"q_{key}"
    for name, expression in expressions.items():
        index = preparer.quote(f"{prefix}ix_projects_{name}")
        conn.exec_driver_sql(f"CREATE INDEX IF NOT EXISTS {index} ON {table} ({expression})")
