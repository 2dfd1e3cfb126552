"""Portfolio totals: counts and money by state, hub, brand, service domain and year.

`Portfolio` reads through the `StoreReader` protocol. On a SQL store the totals are
computed in the database (`grantflow.portfolio_sql`, on the store's tables); any other
store is totalled in Python, one project at a time.

>>> import grantflow
>>> Portfolio(grantflow.open()).totals("state")
[]
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict

from grantflow._values import money
from grantflow.errors import InvalidInput
from grantflow.models import Project
from grantflow.records import hub_subtree

if TYPE_CHECKING:
    from grantflow._engine import Engine
    from grantflow.persistence import StoreReader
    from grantflow.persistence.sql import SqlStore

__all__ = [
    "DIMENSIONS",
    "Dimension",
    "Portfolio",
    "SERVICE_DIMENSIONS",
    "ServiceDimension",
    "ServiceTotals",
    "Totals",
]

Dimension = Literal["state", "hub", "brand", "domain", "year"]
ServiceDimension = Literal["domain", "hub"]
#: What `Portfolio.totals` can group by.
DIMENSIONS: tuple[str, ...] = ("state", "hub", "brand", "domain", "year")
#: What `Portfolio.services` can group by.
SERVICE_DIMENSIONS: tuple[str, ...] = ("domain", "hub")
_ZERO = Decimal("0.00")


class Totals(BaseModel):
    """Projects and money for one group: awarded, disbursed and demanded back, in yuan."""

    model_config = ConfigDict(frozen=True)

    key: str
    projects: int
    awarded: Decimal
    disbursed: Decimal
    #: Refund demands of settlements and terminations (overpayments and clawbacks).
    refunds: Decimal = _ZERO


class ServiceTotals(BaseModel):
    """Activities held and person-times served for one group."""

    model_config = ConfigDict(frozen=True)

    key: str
    activities: int
    person_times: int


class Portfolio:
    """Portfolio reports over a store (or an engine's store)."""

    def __init__(self, source: Engine | StoreReader) -> None:
        from grantflow._engine import Engine

        self._reader: StoreReader = source.store if isinstance(source, Engine) else source

    def totals(self, by: Dimension, *, within: str | None = None) -> list[Totals]:
        """Return project counts, awarded and disbursed money per `by` value, sorted by key.

        Args:
            by: ``state``, ``hub``, ``brand``, ``domain`` or ``year``.
            within: only projects whose hub is this hub or below it in the tree.
        """
        _check(by, DIMENSIONS)
        store = _sql_store(self._reader)
        if store is not None:
            from grantflow.portfolio_sql import sql_totals

            t = store.tables
            with store.connect() as conn:
                return sql_totals(conn, t.projects, t.entities, by, within)
        hubs = self.subtree(within) if within is not None else None
        groups: dict[str, list[Decimal | int]] = {}
        for project in self._reader.projects():
            if hubs is not None and _value(project, "hub") not in hubs:
                continue
            group = groups.setdefault(_value(project, by), [0, _ZERO, _ZERO, _ZERO])
            group[0] = int(group[0]) + 1
            group[1] = Decimal(group[1]) + _amount(project.data.get("amount_awarded"))
            group[2] = Decimal(group[2]) + _amount(project.data.get("amount_disbursed"))
            group[3] = Decimal(group[3]) + _amount(project.data.get("refund_demanded"))
        return [
            Totals(
                key=k,
                projects=int(n),
                awarded=Decimal(a),
                disbursed=Decimal(d),
                refunds=Decimal(r),
            )
            for k, (n, a, d, r) in sorted(groups.items())
        ]

    def services(self, by: ServiceDimension, *, within: str | None = None) -> list[ServiceTotals]:
        """Return activities and person-times from service records per domain or hub."""
        _check(by, SERVICE_DIMENSIONS)
        store = _sql_store(self._reader)
        if store is not None:
            from grantflow.portfolio_sql import sql_services

            t = store.tables
            with store.connect() as conn:
                return sql_services(conn, t.projects, t.records, t.entities, by, within)
        hubs = self.subtree(within) if within is not None else None
        groups: dict[str, list[int]] = {}
        for summary in self._reader.projects():
            if hubs is not None and _value(summary, "hub") not in hubs:
                continue
            project = self._reader.load(summary.id)
            for record in project.records_of("service") if project else ():
                key = _value(summary, "hub") if by == "hub" else str(record.data.get("domain"))
                group = groups.setdefault(key, [0, 0])
                group[0] += _int(record.data.get("activities"))
                group[1] += _int(record.data.get("person_times"))
        return [
            ServiceTotals(key=k, activities=a, person_times=p)
            for k, (a, p) in sorted(groups.items())
        ]

    def subtree(self, root: str) -> set[str]:
        """Return `root` and the ids of every hub below it."""
        return set(hub_subtree(self._reader, root))


def _sql_store(reader: StoreReader) -> SqlStore | None:
    """The SQL store behind `reader`, whose totals are computed in the database."""
    sql = sys.modules.get("grantflow.persistence.sql")  # loaded by whoever made one
    if sql is not None and isinstance(reader, sql.SqlStore):
        store: SqlStore = reader
        return store
    return None


def _check(by: str, allowed: Iterable[str]) -> None:
    if by not in allowed:
        raise InvalidInput(f"cannot group by {by!r}; choose from {sorted(allowed)}", field="by")


def _value(project: Project, by: str) -> str:
    if by == "state":
        return project.state
    value = project.data.get(by)
    return "" if value is None else str(value)


def _amount(value: Any) -> Decimal:
    return money(value) or _ZERO


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
