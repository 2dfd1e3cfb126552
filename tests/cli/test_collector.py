"""The command tunes CPython's garbage collector for its own process; the library never does.

The interpreter belongs to the host: importing grantflow, opening an engine and running a
bulk job or the demo through the API leave the collector's thresholds and frozen objects
as they were. The ``grantflow`` command is its own process and tunes them (`tune_collector`).
"""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
from pathlib import Path

import grantflow
from grantflow.cli._app import COLLECT_EVERY
from grantflow.demo import DemoClock, run_demo
from grantflow.rules import RuleBook

APPLICANT = grantflow.Actor(id="org-1", roles=frozenset({"applicant"}))
STAFF = grantflow.Actor(id="staff-1", roles=frozenset({"purchaser"}))


def test_the_library_leaves_the_collector_as_the_host_set_it(tmp_path: Path) -> None:
    """Bulk runs, single fires and the demo through the API change no collector setting."""
    before = (gc.get_threshold(), gc.get_freeze_count(), gc.isenabled())
    with grantflow.open(
        f"sqlite:///{tmp_path / 'g.db'}", rules=RuleBook(), discover_rules=False
    ) as engine:
        items = [(f"p-{n}", {"title": "t"}) for n in range(50)]
        assert engine.fire_many("submit", items, actor=APPLICANT).count("applied") == 50
        engine.fire("p-1", "approve", actor=STAFF).raise_for_refusal()
    clock = DemoClock()
    with grantflow.open(f"sqlite:///{tmp_path / 'demo.db'}", clock=clock) as engine:
        run_demo(engine, clock=clock, projects=5)
    assert (gc.get_threshold(), gc.get_freeze_count(), gc.isenabled()) == before


def test_the_command_freezes_what_it_imported_and_collects_less_often() -> None:
    """``main`` moves the imported objects out of the collector's sight and raises gen 0."""
    script = textwrap.dedent(
        """
        import gc, sys
        from grantflow.cli import _app
        seen = {}
        def command(**kwargs):
            seen["threshold"] = gc.get_threshold()[0]
            seen["frozen"] = gc.get_freeze_count()
        _app.app = command
        sys.argv = ["grantflow", "version"]
        _app.main()
        print(seen["threshold"], seen["frozen"])
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    threshold, frozen = map(int, done.stdout.split())
    assert threshold == COLLECT_EVERY
    assert frozen > 10_000  # the modules, classes and functions imported by then
