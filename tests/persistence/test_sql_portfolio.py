"""Tests for portfolio totals computed in SQL on real stores (grantflow.portfolio_sql)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from grantflow.portfolio import Portfolio

from .conftest import StoreFactory


def _portfolio_tests() -> ModuleType:
    # The seeded portfolio of tests/test_portfolio.py, loaded by path (tests are not a package).
    path = Path(__file__).parents[1] / "test_portfolio.py"
    spec = importlib.util.spec_from_file_location("portfolio_fixture", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sql_store_totals_equal_the_memory_totals(make_store: StoreFactory) -> None:
    """A SQL store aggregates in the database and agrees with the memory store, to the fen."""
    fixture = _portfolio_tests()
    in_memory = Portfolio(fixture.seeded_engine())
    store = make_store(synchronous="NORMAL")
    in_sql = Portfolio(fixture.seeded_engine(store))

    def no_python_totals(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("totalled in Python, not in the database")

    store.projects = no_python_totals  # type: ignore[method-assign]
    for by in ("state", "hub", "brand", "domain", "year"):
        for within in (None, "city", "d1"):
            assert in_sql.totals(by, within=within) == in_memory.totals(by, within=within)
    for by in ("domain", "hub"):
        for within in (None, "d1"):
            assert in_sql.services(by, within=within) == in_memory.services(by, within=within)
