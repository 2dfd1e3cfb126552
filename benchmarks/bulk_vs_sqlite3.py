"""Benchmark: `Engine.fire_many` on SQLite against raw ``sqlite3`` doing the same writes.

Both sides start from the same database (N projects in ``applied``, made by grantflow)
and move every project to ``reviewed`` in chunks of the same size, each chunk one
``BEGIN IMMEDIATE`` transaction, in WAL mode with ``synchronous=FULL``:

* ``raw`` reads the chunk's rows, builds each audit entry (JSON + sha256 hash link) and
  runs the same compare-and-set ``UPDATE`` and audit ``INSERT`` statements with
  ``executemany``: the least a hand-written script does for the same outcome;
* ``raw-writes`` only runs the ``UPDATE``/``INSERT`` statements with values computed
  beforehand (the floor: database cost alone);
* ``grantflow`` is ``engine.fire_many("approve", ids, actor=...)`` with a bare rule book
  (the lifecycle's role check only), including its idempotent-job bookkeeping.

Run: ``python3 tasks.py bench`` (or ``.venv/bin/python benchmarks/bulk_vs_sqlite3.py
--projects 20000``). Prints items per second for each and the ratios.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import structlog

import grantflow
from grantflow.rules import RuleBook

APPLICANT = grantflow.Actor(id="org-1", roles=frozenset({"applicant"}))
STAFF = grantflow.Actor(id="staff-1", roles=frozenset({"purchaser"}))
PREFIX = "grantflow_"


def seed(path: Path, n: int) -> None:
    """Create a database holding `n` projects in ``applied`` (through grantflow)."""
    engine = grantflow.open(
        f"sqlite:///{path}", rules=RuleBook(), discover_rules=False, synchronous="NORMAL"
    )
    ids = [f"p{i:07d}" for i in range(n)]
    for pid in ids:
        engine.submit(actor=APPLICANT, project_id=pid, data={"title": "t", "amount": "1000.00"})
    engine.close()


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    return conn


_UPDATE = (
    f"UPDATE {PREFIX}projects SET state=?, version=?, head=?, data=?, updated_at=? "
    "WHERE id=? AND state=? AND version=?"
)
_INSERT = (
    f"INSERT INTO {PREFIX}audit (project_id, seq, kind, event, from_state, to_state, accepted, "
    "actor, at, evidence, refusals, records, data, prev_hash, hash) "
    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)


def _entry(row: tuple[str, str, int, str, str], actor: str, at: str) -> tuple[list, list]:
    pid, state, version, head, data = row
    body = {
        "project_id": pid,
        "seq": version + 1,
        "kind": "fire",
        "event": "approve",
        "from_state": state,
        "to_state": "reviewed",
        "accepted": True,
        "actor": actor,
        "at": at,
        "evidence": {},
        "refusals": [],
        "records": [],
        "data": {},
        "prev_hash": head,
    }
    digest = hashlib.sha256(
        json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    ).hexdigest()
    update = ["reviewed", version + 1, digest, data, at, pid, state, version]
    insert = [
        pid,
        version + 1,
        "fire",
        "approve",
        state,
        "reviewed",
        1,
        actor,
        at,
        "{}",
        "[]",
        "[]",
        "{}",
        head,
        digest,
    ]
    return update, insert


def run_raw(path: Path, ids: list[str], chunk: int) -> None:
    """Read, hash-link and write each chunk in one transaction with plain sqlite3."""
    conn = _connect(path)
    actor = json.dumps({"id": STAFF.id, "organisation": None, "roles": ["purchaser"]})
    for start in range(0, len(ids), chunk):
        batch = ids[start : start + chunk]
        at = datetime.now(UTC).isoformat()
        conn.execute("BEGIN IMMEDIATE")
        marks = ",".join("?" * len(batch))
        rows = conn.execute(
            f"SELECT id, state, version, head, data FROM {PREFIX}projects WHERE id IN ({marks})",
            batch,
        ).fetchall()
        updates, inserts = [], []
        for row in rows:
            if row[1] != "applied":
                continue
            u, i = _entry(row, actor, at)
            updates.append(u)
            inserts.append(i)
        cur = conn.executemany(_UPDATE, updates)
        if cur.rowcount != len(updates):
            raise RuntimeError("lost a compare-and-set")
        conn.executemany(_INSERT, inserts)
        conn.execute("COMMIT")
    conn.close()


def run_raw_writes(path: Path, ids: list[str], chunk: int) -> Callable[[], None]:
    """Precompute every row, then return the timed part: the writes alone."""
    conn = _connect(path)
    actor = json.dumps({"id": STAFF.id, "organisation": None, "roles": ["purchaser"]})
    at = datetime.now(UTC).isoformat()
    rows = conn.execute(f"SELECT id, state, version, head, data FROM {PREFIX}projects").fetchall()
    prepared = [_entry(row, actor, at) for row in rows]

    def timed() -> None:
        for start in range(0, len(prepared), chunk):
            part = prepared[start : start + chunk]
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(_UPDATE, [u for u, _ in part])
            conn.executemany(_INSERT, [i for _, i in part])
            conn.execute("COMMIT")
        conn.close()

    return timed


def run_grantflow(path: Path, ids: list[str], chunk: int) -> None:
    """The same transitions through the public bulk API."""
    engine = grantflow.open(f"sqlite:///{path}", rules=RuleBook(), discover_rules=False)
    result = engine.fire_many("approve", ids, actor=STAFF, chunk_size=chunk)
    engine.close()
    if result.count("applied") != len(ids):
        raise RuntimeError(f"bulk did not apply everything: {result.counts}")


def measure(seeded: Path, n: int, chunk: int, rounds: int) -> dict[str, float]:
    """Return the median items per second of each contender over `rounds` fresh copies."""
    ids = [f"p{i:07d}" for i in range(n)]
    rates: dict[str, list[float]] = {"raw-writes": [], "raw": [], "grantflow": []}
    for _ in range(rounds):
        for name, samples in rates.items():
            work = seeded.parent / f"{name}.db"
            for suffix in ("", "-wal", "-shm"):
                Path(f"{work}{suffix}").unlink(missing_ok=True)
            shutil.copy(seeded, work)
            if name == "raw-writes":
                timed = run_raw_writes(work, ids, chunk)
                started = time.perf_counter()
                timed()
            else:
                runner = run_raw if name == "raw" else run_grantflow
                started = time.perf_counter()
                runner(work, ids, chunk)
            samples.append(n / (time.perf_counter() - started))
    return {name: statistics.median(values) for name, values in rates.items()}


def main(argv: list[str] | None = None) -> int:
    """Seed, measure, print; exit 1 if grantflow is below `--min-ratio` of raw."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=20_000)
    parser.add_argument("--chunk", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--min-ratio", type=float, default=0.0)
    args = parser.parse_args(argv)
    # A host application decides what is logged; a benchmark logs warnings only.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    folder = Path(tempfile.mkdtemp(prefix="grantflow-bench-"))
    try:
        seeded = folder / "seed.db"
        seed(seeded, args.projects)
        rates = measure(seeded, args.projects, args.chunk, args.rounds)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    for name, rate in rates.items():
        print(f"{name:>11}: {rate:10.0f} transitions/s")
    ratio = rates["grantflow"] / rates["raw"]
    print(f"grantflow / raw        = {ratio:.2f}x")
    print(f"grantflow / raw-writes = {rates['grantflow'] / rates['raw-writes']:.2f}x")
    return 0 if ratio >= args.min_ratio else 1


if __name__ == "__main__":
    sys.exit(main())
