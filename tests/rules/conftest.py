"""Fixtures for the default-rule tests: a seeded `World` on an in-memory engine."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest
from regime_world import Clock, World

import grantflow
from grantflow.records import Affiliation, Person


@pytest.fixture
def world() -> Iterator[World]:
    clock = Clock()
    with grantflow.open(clock=clock) as engine:
        yield World(engine, clock).seed()


@pytest.fixture
def person_ties() -> Person:
    """A reviewer who worked for the provider until two years before the review."""
    return Person(
        id="r9",
        name="Former staff",
        organisation="expert-pool",
        affiliations=(Affiliation(organisation="org-a", until=date(2023, 6, 30)),),
    )
