"""Tests for grantflow._machine: the transitions-backed edge table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from grantflow._machine import TransitionTable
from grantflow.states import PURCHASED_SERVICE


def test_targets_follow_the_lifecycle_edges() -> None:
    """Every (event, source) edge of the lifecycle resolves to its target; others to None."""
    table = TransitionTable(PURCHASED_SERVICE)
    for event in PURCHASED_SERVICE.events:
        for state in PURCHASED_SERVICE.states:
            expected = event.target if state.name in event.sources else None
            assert table.target(event.name, state.name) == expected
    assert table.target("no-such-event", "applied") is None


def test_events_from_lists_outgoing_events() -> None:
    """events_from gives the events leaving a state, and none for a terminal state."""
    table = TransitionTable(PURCHASED_SERVICE)
    assert table.events_from("contracted") == ["pass_midterm", "order_rectification", "terminate"]
    assert table.events_from("closed") == []


def test_only_one_module_imports_transitions() -> None:
    """Exactly one source file imports the transitions package."""
    src = Path(__file__).resolve().parents[1] / "src"
    out = subprocess.run(
        ["grep", "-rlE", r"^(import|from) transitions", str(src)],
        capture_output=True,
        text=True,
        check=False,
    )
    files = out.stdout.split()
    assert [Path(f).name for f in files] == ["_machine.py"]


def test_importing_grantflow_attaches_nothing_to_objects() -> None:
    """The table adds no model: trigger methods are never attached to anybody's objects."""
    table = TransitionTable(PURCHASED_SERVICE)
    assert table._machine.models == []
    code = "import grantflow, structlog; print(structlog.is_configured())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
