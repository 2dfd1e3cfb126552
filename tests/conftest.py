"""Hooks and shared fixtures for the whole suite.

Under pytest-xdist the slow tests are handed out first; under the mutation profile every
property test runs a bounded number of examples. PostgreSQL tests need
``GRANTFLOW_TEST_PG_URL`` (``python3 tasks.py test`` sets it); without it they are
skipped, except under ``CI=true``, where a missing server is a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy
from hypothesis import HealthCheck, Phase, settings

# Examples per property test under the mutation profile, whatever the test asks for.
MUTATION_EXAMPLES = 25

# `pytest --hypothesis-profile=mutation`, used by the mutation run (pyproject.toml,
# [tool.mutmut]): a killed mutant needs one failing example, not the shrunk smallest
# one, and a slower mutant must not be "killed" by a deadline or a health check. The
# run tests each of some 3,000 mutants, so each property runs at most
# MUTATION_EXAMPLES examples (the boundary strategies put the thresholds in the first
# ones, and the reuse phase replays every failing example the run has already found).
settings.register_profile(
    "mutation",
    max_examples=MUTATION_EXAMPLES,
    deadline=None,
    phases=(Phase.explicit, Phase.reuse, Phase.generate),
    suppress_health_check=(HealthCheck.too_slow,),
)


def _cap_examples(items: list[pytest.Item], cap: int) -> None:
    """Lower every property test's explicit ``max_examples`` to at most ``cap``.

    An explicit ``@settings(max_examples=...)`` outranks the profile; Hypothesis reads
    the settings it stored on the test function when the test runs, so replacing them
    after collection caps the explicit counts too.
    """
    for item in items:
        test = getattr(item, "obj", None)
        current = getattr(test, "_hypothesis_internal_use_settings", None)
        if isinstance(current, settings) and current.max_examples > cap:
            test._hypothesis_internal_use_settings = settings(current, max_examples=cap)  # type: ignore[union-attr]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On a pytest-xdist worker, put the tests marked ``slow`` first (in file order).

    Workers receive tests in collection order; a slow test handed out last keeps one
    worker busy while the others have finished. Longest first is the better balance.
    A run in one process keeps the file order. Under the mutation profile, cap the
    examples of every property test (see ``MUTATION_EXAMPLES``).
    """
    if settings.get_current_profile_name() == "mutation":
        _cap_examples(items, MUTATION_EXAMPLES)
    if hasattr(config, "workerinput"):  # set on xdist workers only
        items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="session")
def pg_url() -> str:
    """The throwaway PostgreSQL server's URL; skip (or fail in CI) without one."""
    url = os.environ.get("GRANTFLOW_TEST_PG_URL")
    if not url:
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail("CI=true but GRANTFLOW_TEST_PG_URL is not set: PostgreSQL did not start")
        pytest.skip("GRANTFLOW_TEST_PG_URL is not set; run the tests through tasks.py")
    return url


@pytest.fixture(scope="module")
def pg_schema(pg_url: str) -> Iterator[str]:
    """A fresh PostgreSQL schema for one test module, dropped afterwards."""
    schema = f"gf_test_{uuid.uuid4().hex[:12]}"
    yield schema
    engine = sqlalchemy.create_engine(pg_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    engine.dispose()
