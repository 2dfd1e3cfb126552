"""Scale: bulk submit then bulk approve of N projects on SQLite, in a fresh subprocess.

``python benchmarks/scale.py --projects N`` prints one JSON line: seconds and the
subprocess's peak RSS. `run` compares 100,000 and 1,000,000 projects (300 and
3,000 with ``--quick``): time should grow linearly, memory not at all.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def _work(path: Path, n: int) -> dict[str, float]:
    sys.path.insert(0, str(HERE))
    from _common import APPLICANT, STAFF, peak_rss_mb

    import grantflow
    from grantflow.rules import RuleBook

    engine = grantflow.open(f"sqlite:///{path}", rules=RuleBook(), discover_rules=False)
    started = time.perf_counter()
    # Lazy input: ids are made as the run reads them, so nothing grows with N here.
    submitted = engine.fire_many(
        "submit", ((f"p{i:08d}", {"title": "t"}) for i in range(n)), actor=APPLICANT
    )
    middle = time.perf_counter()
    approved = engine.fire_many("approve", (f"p{i:08d}" for i in range(n)), actor=STAFF)
    ended = time.perf_counter()
    engine.close()
    if submitted.count("applied") != n or approved.count("applied") != n:
        raise RuntimeError(f"scale run incomplete: {submitted.counts} {approved.counts}")
    return {
        "seconds": ended - started,
        "submit_seconds": middle - started,
        "approve_seconds": ended - middle,
        "peak_rss_mb": peak_rss_mb(),
    }


def measure(n: int) -> dict[str, Any]:
    """Run `n` projects in a subprocess (so its peak RSS is its own); return its figures."""
    with tempfile.TemporaryDirectory(prefix="grantflow-scale-") as tmp:
        out = subprocess.run(
            [sys.executable, str(Path(__file__)), "--projects", str(n), "--db", f"{tmp}/s.db"],
            capture_output=True,
            text=True,
            check=True,
        )
    figures: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return figures


def run(quick: bool) -> dict[str, float]:
    """Time and memory at 100,000 and 1,000,000 projects (2,000 and 20,000 if `quick`)."""
    from _common import say

    small, large = (300, 3_000) if quick else (100_000, 1_000_000)
    low = measure(small)
    say(f"scale {small}: {low}")
    high = measure(large)
    say(f"scale {large}: {high}")
    return {
        "scale_small_projects": float(small),
        "scale_large_projects": float(large),
        "scale_small_seconds": low["seconds"],
        "scale_large_seconds": high["seconds"],
        "scale_large_per_s": 2 * large / high["seconds"],
        "scale_1m_over_100k": high["seconds"] / low["seconds"],
        "peak_rss_mb_small": low["peak_rss_mb"],
        "peak_rss_mb_1m": high["peak_rss_mb"],
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, required=True)
    parser.add_argument("--db", type=Path, required=True)
    args = parser.parse_args()
    print(json.dumps(_work(args.db, args.projects)))
