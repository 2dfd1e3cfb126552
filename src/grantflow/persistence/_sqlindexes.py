"""The indexes project queries use (migration 8), and the column names they rely on.

* PostgreSQL: expression indexes on ``(data -> 'hub')`` etc.; a query spells the
  filter with the key as a SQL literal, the same text, so the planner matches it.
* SQLite: a virtual generated column per field (``q_hub`` holds ``data.hub`` when it
  is text, else NULL; ``q_year`` the year when it is an integer) with an ordinary
  index. Expression indexes would do as well for the planner, but SQLAlchemy cannot
  reflect them and warns, which would break a host's Alembic autogenerate; generated
  columns it reflects silently.
"""

from __future__ import annotations

import sqlalchemy as sa

from grantflow.persistence._schema import Tables

__all__ = ["QUERY_INDEXES", "create_query_indexes"]

#: The indexed data fields: text (hub, call, brand, provider) and the year (an integer).
QUERY_INDEXES = ("hub", "call", "brand", "provider", "year")


def create_query_indexes(conn: sa.Connection, tables: Tables) -> None:
    """Indexes for `Engine.projects` (migration 8); each created only if missing."""
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
