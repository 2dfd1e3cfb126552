"""`Engine.projects` in SQL: filters, order and keyset pagination in one ``SELECT``.

The data filters compare JSON values by type and value, exactly as the Python path
(`grantflow._query.matches`) does, spelled so that the indexes of schema migration 8
serve them: ``(data -> 'hub')`` with the key as a SQL literal on PostgreSQL (the text
of its expression index), the generated column ``q_hub`` on SQLite (see
`grantflow.persistence.sql.QUERY_INDEXES`). The hub subtree is the store's recursive
CTE (`grantflow.persistence.sql.hub_subtree_cte`), as the portfolio totals use it.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from grantflow._query import ProjectQuery
from grantflow.models import Project
from grantflow.persistence.sql import Tables, hub_subtree_cte

__all__ = ["query_projects", "query_rows"]


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
    if query.due_before is not None:
        # The obligation index (kept in each entry's transaction), as `Engine.due` reads it.
        o = tables.obligations
        due = sa.select(o.c.project_id).where(o.c.status == "open", o.c.due_on < query.due_before)
        conditions.append(p.c.id.in_(due))
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


def query_projects(conn: sa.Connection, tables: Tables, query: ProjectQuery) -> list[Project]:
    """The projects (without records) of the page of `query`, plus one if there is more."""
    return [
        Project(
            id=row.id,
            state=row.state,
            version=row.version,
            head=row.head,
            data=row.data,
            records=(),
            created_at=row.created_at,
            updated_at=row.updated_at,
        )
        for row in query_rows(conn, tables, query)
    ]
