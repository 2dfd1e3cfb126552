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


def test_a_provider_count_reads_the_query_index(make_store: StoreFactory) -> None:
    """The count behind ``eligibility.application`` reads an index, not every project."""
    store = make_store()
    _fill(store, [{"provider": "org-a", "call": "c1"}, {"provider": "org-b"}], "p")
    wanted = {"provider": "org-a", "call": "c1"}
    assert store.count_projects(wanted, exclude_states={"withdrawn"}) == 1
    sql, params = store._count_sql(wanted, {"withdrawn"})
    sqlite = store.engine.dialect.name == "sqlite"
    with store.connect() as conn:
        if not sqlite:  # a planner given a handful of rows rightly prefers a scan
            conn.exec_driver_sql("SET enable_seqscan = off")
        cursor = conn.connection.cursor()
        cursor.execute(("EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN ") + sql, params)
        plan = " ".join(str(row[-1] if sqlite else row[0]) for row in cursor.fetchall())
        cursor.close()
    assert "ix_projects_" in plan, plan
