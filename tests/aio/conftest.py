"""Fixtures for the async API tests: the throwaway PostgreSQL server and a schema per module."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy


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
    schema = f"gf_aio_{uuid.uuid4().hex[:12]}"
    yield schema
    engine = sqlalchemy.create_engine(pg_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    engine.dispose()
