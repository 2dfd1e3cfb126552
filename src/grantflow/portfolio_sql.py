"""Portfolio totals computed in SQL (SQLAlchemy Core), for SQL stores.

`grantflow.portfolio.Portfolio` calls these with a SQL store's connection and tables, so
that it aggregates in the database instead of loading projects.
They need three tables shaped like the store's: ``projects(id, state, data JSON)``,
``records(project_id, kind, id, data JSON)`` and ``entities(kind, id, parent, data)``.
Money is summed as integer fen, so totals are exact on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from grantflow.persistence.sql import hub_subtree_cte
from grantflow.portfolio import DIMENSIONS, SERVICE_DIMENSIONS, ServiceTotals, Totals, _check

__all__ = ["sql_services", "sql_totals"]

_FEN = Decimal("0.01")


def _text(table: sa.Table, key: str) -> Any:
    return sa.func.coalesce(table.c.data[key].as_string(), "")


def _fen(table: sa.Table, key: str) -> Any:
    amount = sa.cast(table.c.data[key].as_string(), sa.Numeric(18, 2))
    return sa.func.coalesce(sa.cast(sa.func.round(amount * 100), sa.BigInteger), 0)


def sql_totals(
    conn: sa.Connection,
    projects: sa.Table,
    entities: sa.Table,
    by: str,
    within: str | None = None,
) -> list[Totals]:
    """Return `Totals` grouped by `by`, computed with one GROUP BY query."""
    _check(by, DIMENSIONS)
    key = projects.c.state if by == "state" else _text(projects, by)
    query = (
        sa.select(
            key.label("key"),
            sa.func.count().label("n"),
            sa.func.sum(_fen(projects, "amount_awarded")).label("awarded"),
            sa.func.sum(_fen(projects, "amount_disbursed")).label("disbursed"),
            sa.func.sum(_fen(projects, "refund_demanded")).label("refunds"),
        )
        .group_by(key)
        .order_by(key)
    )
    if within is not None:
        tree = hub_subtree_cte(entities, within, postgres=conn.dialect.name == "postgresql")
        query = query.where(_text(projects, "hub").in_(sa.select(tree.c.id)))
    return [
        Totals(
            key=str(row.key),
            projects=int(row.n),
            awarded=(Decimal(int(row.awarded or 0)) * _FEN),
            disbursed=(Decimal(int(row.disbursed or 0)) * _FEN),
            refunds=(Decimal(int(row.refunds or 0)) * _FEN),
        )
        for row in conn.execute(query)
    ]


def sql_services(
    conn: sa.Connection,
    projects: sa.Table,
    records: sa.Table,
    entities: sa.Table,
    by: str,
    within: str | None = None,
) -> list[ServiceTotals]:
    """Return `ServiceTotals` from the ``service`` records, grouped by domain or hub."""
    _check(by, SERVICE_DIMENSIONS)
    key = _text(records, "domain") if by == "domain" else _text(projects, "hub")
    count = sa.func.coalesce(sa.cast(records.c.data["activities"].as_string(), sa.BigInteger), 0)
    people = sa.func.coalesce(sa.cast(records.c.data["person_times"].as_string(), sa.BigInteger), 0)
    query = (
        sa.select(key.label("key"), sa.func.sum(count).label("a"), sa.func.sum(people).label("p"))
        .select_from(records.join(projects, projects.c.id == records.c.project_id))
        .where(records.c.kind == "service")
        .group_by(key)
        .order_by(key)
    )
    if within is not None:
        tree = hub_subtree_cte(entities, within, postgres=conn.dialect.name == "postgresql")
        query = query.where(_text(projects, "hub").in_(sa.select(tree.c.id)))
    return [
        ServiceTotals(key=str(row.key), activities=int(row.a or 0), person_times=int(row.p or 0))
        for row in conn.execute(query)
    ]
