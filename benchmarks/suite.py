"""grantflow's benchmark suite: every hot path next to the raw floor doing the same work.

Run ``python3 tasks.py bench`` (the whole suite, about 15 minutes on 2 cores) or
``python3 tasks.py bench --quick`` (small sizes, one round: a smoke test, not a
measurement). Progress goes to stderr; the last line on stdout is one JSON object with
every figure (see docs/performance.md for what each key means and the targets).

Each section measures grantflow and its floor in the same process, interleaved round by
round on fresh copies of the same data, and reports medians and the median of the
per-round ratios, so a noisy neighbour slows both sides alike.

Sections: ``sqlite`` (bulk, single fire latency, audit logging, verify), ``memory``,
``regime`` (default rules, duplicate invoices), ``postgres`` (bulk, two workers; starts
a throwaway server as ``tasks.py test`` does, or uses ``--pg-url``), ``scale`` (100,000
and 1,000,000 projects in subprocesses) and ``demo``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import demo_time  # noqa: E402
import memory_fire  # noqa: E402
import postgres_paths  # noqa: E402
import regime  # noqa: E402
import scale  # noqa: E402
import sqlite_paths  # noqa: E402
from _common import say  # noqa: E402

#: The keys the JSON line always holds (``null`` when a section was skipped or failed).
REQUIRED = (
    "sqlite_bulk_ratio",
    "sqlite_single_latency_ratio",
    "pg_bulk_ratio",
    "pg_two_worker_speedup",
    "pg_verify_entries_per_s",
    "pg_verify_floor_ratio",
    "memory_fire_ratio",
    "verify_entries_per_s",
    "verify_floor_ratio",
    "regime_bulk_ratio",
    "regime_same_call_two_workers",
    "regime_same_call_conflicts",
    "invoice_check_growth",
    "record_growth",
    "scale_1m_over_100k",
    "peak_rss_mb_1m",
    "demo_seconds",
    "log_on_overhead",
    "log_off_overhead",
)

SECTIONS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "sqlite": lambda a: sqlite_paths.run(a.quick, a.rounds),
    "memory": lambda a: memory_fire.run(a.quick, a.rounds),
    "regime": lambda a: regime.run(a.quick, a.rounds),
    "postgres": lambda a: postgres_paths.run(a.quick, a.rounds, a.pg_url),
    "scale": lambda a: scale.run(a.quick),
    "demo": lambda a: demo_time.run(a.quick, a.rounds),
}


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        model = platform.processor()
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {
        "cpus": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "load_before": [round(x, 2) for x in load],
    }


def main(argv: list[str] | None = None) -> int:
    """Run the chosen sections; print the JSON line; exit 1 if a section failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (3)")
    parser.add_argument(
        "--only", default="", help=f"comma-separated sections of: {', '.join(SECTIONS)}"
    )
    parser.add_argument("--pg-url", default=None, help="use this PostgreSQL instead of a new one")
    args = parser.parse_args(argv)
    if args.rounds is None:
        args.rounds = 1 if args.quick else 3
    chosen = [s for s in args.only.split(",") if s] or list(SECTIONS)
    unknown = set(chosen) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    results: dict[str, Any] = dict.fromkeys(REQUIRED)
    results["machine"] = machine()
    results["quick"] = args.quick
    failed = []
    for name in chosen:
        say(f"section {name}")
        started = time.perf_counter()
        try:
            results.update(SECTIONS[name](args))
        except Exception as exc:  # one broken section must not hide the others
            failed.append(name)
            say(f"section {name} FAILED: {exc!r}")
        say(f"section {name} took {time.perf_counter() - started:.1f} s")
    if failed:
        results["failed"] = failed
    results["machine"]["load_after"] = [round(x, 2) for x in os.getloadavg()]
    rounded = {k: round(v, 3) if isinstance(v, float) else v for k, v in results.items()}
    print(json.dumps(rounded, sort_keys=True), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
