"""`count_projects` / `sum_projects` on SQL: indexed where they can be, always the memory answer.

The default regime counts a provider's applications in a call and sums a call's reserved
budget for every submission and approval. On the indexed fields (`QUERY_INDEXES`) the
filters are spelled so that the query indexes serve them; they must still count exactly
what the memory store counts, whatever JSON type a stored value has.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event

from grantflow.persistence import MemoryStore
from grantflow.persistence.sql import SqlStore
from grantflow.testing.store_contract import submission

from .conftest import StoreFactory

#: Values of every JSON type a host may have stored under an indexed key.
_VALUES = st.sampled_from(
    ["org-a", "org-b", "2025", "", 2025, 2026, 0, True, False, None, ["org-a"], {"a": 1}]
)
_KEYS = st.sampled_from(["provider", "call", "year", "hub"])


@st.composite
def _portfolio(draw: st.DrawFn) -> list[dict[str, Any]]:
    rows = draw(st.lists(st.dictionaries(_KEYS, _VALUES, max_size=4), min_size=1, max_size=8))
    return [{**row, "held": draw(st.sampled_from(["10.00", "0.50", 3, "x"]))} for row in rows]


def _fill(store: MemoryStore | SqlStore, rows: list[dict[str, Any]], prefix: str) -> None:
    for number, data in enumerate(rows):
        store.commit(submission(f"{prefix}{number}", data=data))


@pytest.mark.slow
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rows=_portfolio(), key=_KEYS, value=_VALUES)
def test_indexed_counts_and_sums_equal_the_memory_store(
    make_store: StoreFactory, rows: list[dict[str, Any]], key: str, value: Any
) -> None:
    """On any mix of JSON types, the SQL count and sum of `key == value` are memory's."""
    memory = MemoryStore()
    sql = make_store()
    _fill(memory, rows, "p")
    _fill(sql, rows, "p")
    wanted = {key: value}
    assert sql.count_projects(wanted) == memory.count_projects(wanted)
    assert sql.sum_projects("held", wanted) == memory.sum_projects("held", wanted)
    both = {"provider": "org-a", key: value}
    assert sql.count_projects(both) == memory.count_projects(both)


def test_a_provider_count_on_sqlite_uses_the_query_index(make_store: StoreFactory) -> None:
    """The count behind ``eligibility.application`` reads an index, not every project."""
    store = make_store()
    if store.engine.dialect.name != "sqlite":
        pytest.skip("SQLite's query plan")
    _fill(store, [{"provider": "org-a", "call": "c1"}, {"provider": "org-b"}], "p")
    plans: list[str] = []

    def explain(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "count(" in statement.lower():
            rows = cursor.connection.execute("EXPLAIN QUERY PLAN " + statement, parameters)
            plans.extend(str(row[-1]) for row in rows)

    event.listen(store.engine, "before_cursor_execute", explain)
    try:
        assert store.count_projects({"provider": "org-a", "call": "c1"}) == 1
    finally:
        event.remove(store.engine, "before_cursor_execute", explain)
    assert any("USING INDEX" in plan and "ix_projects_" in plan for plan in plans), plans
