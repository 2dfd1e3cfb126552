"""The demo (default regime, 500 projects, every lifecycle step) on SQLite, as ``grantflow demo``.

A fresh database file with ``synchronous=NORMAL``, as the command uses for its throwaway
demo file; the time covers seeding the directory, every bulk run, the reports and
`verify`.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from _common import interleave, median, say

import grantflow
from grantflow.demo import DemoClock, run_demo


def demo_seconds(folder: Path, projects: int, number: int) -> float:
    """Seconds one demo run takes on a fresh SQLite file."""
    path = folder / f"demo-{number}.db"
    clock = DemoClock()
    engine = grantflow.open(f"sqlite:///{path}", clock=clock, synchronous="NORMAL")
    started = time.perf_counter()
    report = run_demo(engine, clock=clock, projects=projects)
    elapsed = time.perf_counter() - started
    engine.close()
    if not report.verified:
        raise RuntimeError("the demo's audit did not verify")
    return elapsed


def run(quick: bool, rounds: int) -> dict[str, float]:
    """Median demo time over `rounds` runs (20 projects when `quick`, else 500)."""
    projects = 20 if quick else 500
    runs = iter(range(rounds))
    with tempfile.TemporaryDirectory(prefix="grantflow-bench-") as tmp:
        samples = interleave(
            {"demo": lambda: demo_seconds(Path(tmp), projects, next(runs))}, rounds
        )
    say(f"demo ({projects} projects, s): {samples}")
    return {"demo_seconds": median(samples["demo"]), "demo_projects": float(projects)}
