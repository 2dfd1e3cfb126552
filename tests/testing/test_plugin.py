"""The pytest plugin's fixtures, as a test suite using grantflow sees them."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from grantflow import Actor, AuditEntry, Engine, Lifecycle
from grantflow.states import EventDef, StateDef
from grantflow.testing import FrozenClock
from grantflow.testing._clock import DEFAULT_START


def test_the_engine_fixture_runs_on_the_clock_fixture(
    grantflow_engine: Engine,
    grantflow_clock: FrozenClock,
    grantflow_actor: Callable[..., Actor],
) -> None:
    """`grantflow_engine` is an in-memory engine stamping entries with `grantflow_clock`."""
    grantflow_clock.advance(days=1)
    outcome = grantflow_engine.submit(actor=grantflow_actor("applicant"))
    assert outcome.entry is not None
    assert outcome.entry.at == DEFAULT_START.replace(day=DEFAULT_START.day + 1)
    assert grantflow_engine.lifecycle.name == "purchased-service"


@pytest.mark.grantflow_clock("2025-06-30T17:00:00+08:00")
def test_the_clock_marker_sets_the_start(grantflow_clock: FrozenClock) -> None:
    """`@pytest.mark.grantflow_clock(iso)` starts the clock there (read back in UTC)."""
    assert grantflow_clock() == datetime(2025, 6, 30, 9, 0, tzinfo=UTC)


@pytest.mark.grantflow_clock(datetime(2024, 1, 2, tzinfo=UTC))
def test_the_clock_marker_takes_a_datetime(grantflow_clock: FrozenClock) -> None:
    """The marker also accepts an aware `datetime`."""
    assert grantflow_clock() == datetime(2024, 1, 2, tzinfo=UTC)


def test_the_actor_factory_numbers_ids_and_sets_roles(
    grantflow_actor: Callable[..., Actor],
) -> None:
    """Actors get ``<role>-<n>`` ids unless given one, and exactly the roles asked for."""
    first = grantflow_actor("reviewer")
    second = grantflow_actor("reviewer", "evaluator", organisation="expert-pool")
    named = grantflow_actor(id="someone")
    assert (first.id, second.id, named.id) == ("reviewer-1", "reviewer-2", "someone")
    assert second.roles == {"reviewer", "evaluator"}
    assert second.organisation == "expert-pool"
    assert named.roles == frozenset()


def test_the_audit_fixture_collects_the_engine_s_entries(
    grantflow_engine: Engine,
    grantflow_audit: list[AuditEntry],
    grantflow_actor: Callable[..., Actor],
) -> None:
    """`grantflow_audit` fills with the entries `grantflow_engine` commits in the test."""
    applicant = grantflow_actor("applicant")
    pid = grantflow_engine.submit(actor=applicant).project_id
    grantflow_engine.fire(pid, "approve", actor=applicant)  # wrong role: refused
    assert [(e.event, e.accepted) for e in grantflow_audit] == [
        ("submit", True),
        ("approve", False),
    ]


TWO_STEP = Lifecycle(
    name="two-step",
    version="1",
    states=(StateDef("open"), StateDef("done", terminal=True)),
    events=(EventDef("start", (), "open", creates=True), EventDef("finish", ("open",), "done")),
)


class TestOverridingTheLifecycle:
    """A test module (or conftest) overrides `grantflow_lifecycle` to test its own."""

    @pytest.fixture
    def grantflow_lifecycle(self) -> Lifecycle:
        """The lifecycle under test."""
        return TWO_STEP

    def test_the_engine_uses_the_overridden_lifecycle(
        self, grantflow_engine: Engine, grantflow_actor: Callable[..., Actor]
    ) -> None:
        """The engine fixture picks up the overriding lifecycle fixture."""
        anyone = grantflow_actor()
        pid = grantflow_engine.submit(actor=anyone).project_id
        assert grantflow_engine.fire(pid, "finish", actor=anyone).state == "done"


def test_loading_the_plugin_does_not_import_hypothesis() -> None:
    """The plugin loads in every pytest run; it must work where Hypothesis is not installed."""
    code = "import sys, grantflow.testing.plugin\nprint('hypothesis' in sys.modules)\n"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
