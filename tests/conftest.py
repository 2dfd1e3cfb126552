"""Hooks for the whole suite: under pytest-xdist the slow tests are handed out first."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, Phase, settings

# `pytest --hypothesis-profile=mutation`, used by the mutation run (pyproject.toml,
# [tool.mutmut]): a killed mutant needs one failing example, not the shrunk smallest
# one, and a slower mutant must not be "killed" by a deadline or a health check.
settings.register_profile(
    "mutation",
    deadline=None,
    phases=(Phase.explicit, Phase.reuse, Phase.generate),
    suppress_health_check=(HealthCheck.too_slow,),
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On a pytest-xdist worker, put the tests marked ``slow`` first (in file order).

    Workers receive tests in collection order; a slow test handed out last keeps one
    worker busy while the others have finished. Longest first is the better balance.
    A run in one process keeps the file order.
    """
    if hasattr(config, "workerinput"):  # set on xdist workers only
        items.sort(key=lambda item: item.get_closest_marker("slow") is None)
