"""Instructions a workload executes, counted under valgrind: a comparison noise cannot blur.

Timings on a shared 2-core VM move by 10-30 % from one run to the next; the number of
instructions a workload executes (valgrind's callgrind, ``Ir``) moves by well under
1 %. This script runs one workload twice in fresh processes under callgrind, once up to
the point where the work starts (imports, seeding, opening the engine) and once to the
end, and prints the difference in millions of instructions. ``--src`` points at another
checkout's ``src`` directory (a ``git worktree`` of an older commit), so two commits
compare with the same seeds:

    git worktree add /tmp/base <commit> --detach     # .venv: made by tasks.py
    .venv/bin/python benchmarks/instructions.py bare --src /tmp/base/src
    .venv/bin/python benchmarks/instructions.py bare

Workloads: ``bare`` (bulk approve of 2,000 projects, bare rule book, chunks of 500),
``default`` (bulk approve of 2,000 reviewed applications under the default rules) and
``demo`` (the whole demo, 500 projects; about ten minutes under callgrind). Instructions
are not time (no cache misses, no waits for the disk), but a change that runs fewer of
them for the same work does less.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
N = 2_000


def _workload(name: str, folder: Path, go: bool) -> None:
    """Prepare `name` in `folder` (seeds are cached there), and run it when `go`."""
    sys.path.insert(0, str(HERE))
    if name == "demo":
        import grantflow
        from grantflow.demo import DemoClock, run_demo

        clock = DemoClock()
        engine = grantflow.open(
            f"sqlite:///{folder / 'demo.db'}", clock=clock, synchronous="NORMAL"
        )
        if go and not run_demo(engine, clock=clock, projects=500).verified:
            raise RuntimeError("the demo did not verify")
        engine.close()
        return
    if name == "bare":
        import sqlite_paths

        seed, seeding = folder / "bare-seed.db", sqlite_paths.seed
    else:
        import regime

        seed, seeding = folder / "regime-seed.db", regime.seed
    if not seed.exists():
        seeding(seed, N)
    path = folder / f"{name}-run.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    shutil.copy(seed, path)
    if not go:
        return
    if name == "bare":
        sqlite_paths.grantflow_bulk(path, sqlite_paths.ids(N), 500)
    else:
        regime.approve_rate(path, N, bare=False)


def _count(name: str, folder: Path, src: str | None, go: bool) -> float:
    """Millions of instructions of one run of this script's `_workload` under callgrind."""
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    if src:
        env["PYTHONPATH"] = src
    args = [sys.executable, __file__, name, "--folder", str(folder), "--inner"]
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *args]
        + (["--go"] if go else []),
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise RuntimeError(done.stderr[-2000:])
    return int(found.group(1)) / 1e6


def main() -> int:
    """Count the workload named on the command line; print the difference."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workload", choices=["bare", "default", "demo"])
    parser.add_argument("--src", help="another checkout's src directory (PYTHONPATH)")
    parser.add_argument("--folder", help="where seeds are kept (default: a temporary one)")
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--go", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inner:
        _workload(args.workload, Path(args.folder), args.go)
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not installed", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="grantflow-ir-") as tmp:
        folder = Path(args.folder or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        _workload(args.workload, folder, go=False)  # seed outside valgrind
        setup = _count(args.workload, folder, args.src, go=False)
        total = _count(args.workload, folder, args.src, go=True)
    print(f"{args.workload}: {total - setup:,.1f} million instructions ({args.src or 'src'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
