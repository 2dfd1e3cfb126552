"""The benchmark suite runs end to end (quick mode) and reports every figure it promises."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SUITE = ROOT / "benchmarks" / "suite.py"

#: The keys docs/performance.md explains; the suite must report each one.
KEYS = {
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
}


@pytest.mark.slow
def test_quick_suite_reports_every_key() -> None:
    """``suite.py --quick`` ends with one JSON line holding a number for every key.

    PostgreSQL is the test server when there is one; without it that section is left
    out and its keys must still be present (as null).
    """
    url = os.environ.get("GRANTFLOW_TEST_PG_URL")
    args = [sys.executable, str(SUITE), "--quick"]
    if url:
        args += ["--pg-url", url]
    else:
        args += ["--only", "sqlite,memory,regime,scale,demo"]
    out = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, check=False, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(result) >= KEYS
    measured = KEYS if url else {k for k in KEYS if not k.startswith("pg_")}
    missing = {k for k in measured if not isinstance(result[k], int | float)}
    assert not missing, out.stderr[-3000:]
    assert result["quick"] is True
    assert "failed" not in result


@pytest.mark.slow
@pytest.mark.parametrize("workload", ["bare", "default"])
def test_the_instruction_count_workloads_run(workload: str, tmp_path: Path) -> None:
    """`instructions.py`'s workloads seed and run to the end (here without valgrind).

    The counting itself needs valgrind, which a test machine may not have; what it
    counts must still run, so a count is never taken of a workload that fails early.
    """
    script = ROOT / "benchmarks" / "instructions.py"
    for go in ([], ["--go"]):
        done = subprocess.run(
            [sys.executable, str(script), workload, "--folder", str(tmp_path), "--inner", *go],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / f"{workload}-run.db").exists()
