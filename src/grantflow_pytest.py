"""The grantflow pytest plugin: fixtures for an engine, its clock, actors and audit entries.

pytest loads this module in every run where grantflow is installed (entry point
``pytest11``), so it is a small top-level module that imports only pytest and the
standard library: grantflow itself is imported by a fixture when a test asks for it.
Loading it changes nothing global. Fixtures:

* ``grantflow_clock``: a `FrozenClock`; start it elsewhere with
  ``@pytest.mark.grantflow_clock("2025-06-30T09:00:00+08:00")``.
* ``grantflow_lifecycle`` and ``grantflow_rules``: what the engine enforces (the default
  lifecycle and an empty rule book); override them in your ``conftest.py``.
* ``grantflow_engine``: an in-memory engine on those, with entry-point rule plug-ins
  left out so tests do not depend on what else is installed.
* ``grantflow_actor``: a factory, ``grantflow_actor("purchaser")`` returns an `Actor`.
* ``grantflow_audit``: the list of audit entries the engine committed during the test.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from grantflow import Actor, Engine, Lifecycle, RuleBook
    from grantflow.models import AuditEntry
    from grantflow.testing._clock import FrozenClock

__all__ = [
    "grantflow_actor",
    "grantflow_audit",
    "grantflow_clock",
    "grantflow_engine",
    "grantflow_lifecycle",
    "grantflow_rules",
]

_MARKER = "grantflow_clock"


def pytest_configure(config: pytest.Config) -> None:
    """Declare the ``grantflow_clock`` marker (so ``--strict-markers`` accepts it)."""
    config.addinivalue_line(
        "markers",
        f"{_MARKER}(start): start the grantflow_clock fixture at `start` "
        "(an aware datetime or ISO-8601 text with an offset)",
    )


@pytest.fixture
def grantflow_clock(request: pytest.FixtureRequest) -> FrozenClock:
    """A frozen, timezone-aware UTC clock; move it with ``.advance(days=...)``."""
    from grantflow.testing._clock import FrozenClock

    marker = request.node.get_closest_marker(_MARKER)
    if marker is None or not marker.args:
        return FrozenClock()
    start = marker.args[0]
    return FrozenClock(datetime.fromisoformat(start) if isinstance(start, str) else start)


@pytest.fixture
def grantflow_lifecycle() -> Lifecycle:
    """The lifecycle `grantflow_engine` enforces; override to test your own."""
    from grantflow.states import PURCHASED_SERVICE

    return PURCHASED_SERVICE


@pytest.fixture
def grantflow_rules() -> RuleBook:
    """The rule book `grantflow_engine` uses (empty); override to test your rules."""
    from grantflow.rules import RuleBook

    return RuleBook()


@pytest.fixture
def grantflow_engine(
    grantflow_clock: FrozenClock, grantflow_lifecycle: Lifecycle, grantflow_rules: RuleBook
) -> Iterator[Engine]:
    """An in-memory engine on the clock, lifecycle and rules fixtures; closed afterwards."""
    import grantflow

    with grantflow.open(
        lifecycle=grantflow_lifecycle,
        rules=grantflow_rules,
        clock=grantflow_clock,
        discover_rules=False,
    ) as engine:
        yield engine


@pytest.fixture
def grantflow_actor() -> Callable[..., Actor]:
    """A factory of actors: ``grantflow_actor("reviewer", organisation="expert-pool")``.

    Ids are ``<first role>-<n>`` (``actor-<n>`` without roles), unique within the test,
    unless you pass ``id=``.
    """
    from grantflow.models import Actor

    counter = itertools.count(1)

    def make(*roles: str, id: str | None = None, organisation: str | None = None) -> Actor:
        name = id if id is not None else f"{roles[0] if roles else 'actor'}-{next(counter)}"
        return Actor(id=name, roles=frozenset(roles), organisation=organisation)

    return make


@pytest.fixture
def grantflow_audit(grantflow_engine: Engine) -> Iterator[list[AuditEntry]]:
    """The audit entries `grantflow_engine` commits during the test, in commit order."""
    from grantflow.testing._capture import capture_audit

    with capture_audit(grantflow_engine) as entries:
        yield entries
