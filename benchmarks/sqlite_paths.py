"""SQLite: bulk `fire_many` and single `fire` against raw ``sqlite3`` doing the same writes.

Both sides start from copies of one database (N projects in ``applied``, made by
grantflow) in WAL mode with ``synchronous=FULL`` and move projects to ``reviewed``:

* ``raw`` (the floor) reads the rows, builds each audit entry (JSON + sha256 hash link)
  and runs the compare-and-set ``UPDATE`` and audit ``INSERT``, each chunk (bulk) or
  each transition (single) in one ``BEGIN IMMEDIATE`` transaction;
* ``grantflow`` is ``engine.fire_many("approve", ids, ...)`` or ``engine.fire`` with a
  bare rule book (the lifecycle's role check only), job bookkeeping included.

The same module measures the cost of grantflow's per-entry audit logging (enabled with a
real handler, and disabled as by default) and `verify` against re-reading and re-hashing
the same audit rows with plain ``sqlite3``, ``json`` and ``hashlib``.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _common import (
    APPLICANT,
    PREFIX,
    STAFF,
    STAFF_JSON,
    floor_digest,
    fresh_copy,
    ids,
    interleave,
    median,
    paired_ratio,
    raw_entry,
    say,
    timed_verify,
)

import grantflow
from grantflow import audit
from grantflow.persistence.sql import SqlStore
from grantflow.rules import RuleBook

_UPDATE = (
    f"UPDATE {PREFIX}projects SET state=?, version=?, head=?, updated_at=? "
    "WHERE id=? AND state=? AND version=?"
)
_INSERT = (
    f"INSERT INTO {PREFIX}audit (project_id, seq, kind, event, from_state, to_state, accepted, "
    "actor, at, evidence, refusals, records, data, prev_hash, hash) "
    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)


def open_bare(path: Path, **options: Any) -> grantflow.Engine:
    """A grantflow engine with a bare rule book on a SQLite file."""
    return grantflow.open(f"sqlite:///{path}", rules=RuleBook(), discover_rules=False, **options)


def seed(path: Path, n: int) -> None:
    """Create a database holding `n` projects in ``applied`` (bulk submissions)."""
    engine = open_bare(path, synchronous="NORMAL")
    items = ((pid, {"title": "t", "amount": "1000.00"}) for pid in ids(n))
    result = engine.fire_many("submit", items, actor=APPLICANT, chunk_size=1000)
    engine.close()
    if result.count("applied") != n:
        raise RuntimeError(f"seeding failed: {result.counts}")


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    return conn


def _now() -> str:
    return datetime.now(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _raw_transaction(conn: sqlite3.Connection, batch: list[str]) -> None:
    at = _now()
    conn.execute("BEGIN IMMEDIATE")
    marks = ",".join("?" * len(batch))
    rows = conn.execute(
        f"SELECT id, state, version, head FROM {PREFIX}projects WHERE id IN ({marks})", batch
    ).fetchall()
    updates, inserts = [], []
    for row in rows:
        if row[1] != "applied":
            continue
        update, insert, _ = raw_entry(row, STAFF_JSON, at, "approve", "reviewed")
        updates.append(update)
        inserts.append(insert)
    cur = conn.executemany(_UPDATE, updates)
    if cur.rowcount != len(updates):
        raise RuntimeError("lost a compare-and-set")
    conn.executemany(_INSERT, inserts)
    conn.execute("COMMIT")


def raw_bulk(path: Path, pids: list[str], chunk: int) -> float:
    """The floor: each chunk read, hash-linked and written in one transaction; items/s."""
    conn = _connect(path)
    started = time.perf_counter()
    for start in range(0, len(pids), chunk):
        _raw_transaction(conn, pids[start : start + chunk])
    elapsed = time.perf_counter() - started
    conn.close()
    return len(pids) / elapsed


def grantflow_bulk(path: Path, pids: list[str], chunk: int) -> float:
    """The same transitions through `Engine.fire_many`; items/s."""
    engine = open_bare(path)
    started = time.perf_counter()
    result = engine.fire_many("approve", pids, actor=STAFF, chunk_size=chunk)
    elapsed = time.perf_counter() - started
    engine.close()
    if result.count("applied") != len(pids):
        raise RuntimeError(f"bulk did not apply everything: {result.counts}")
    return len(pids) / elapsed


def bulk(folder: Path, n: int, chunk: int, rounds: int) -> dict[str, float]:
    """SQLite bulk: grantflow and the raw floor, interleaved on fresh copies."""
    seeded = folder / "bulk-seed.db"
    seed(seeded, n)
    pids = ids(n)
    samples = interleave(
        {
            "raw": lambda: raw_bulk(fresh_copy(seeded, "raw"), pids, chunk),
            "grantflow": lambda: grantflow_bulk(fresh_copy(seeded, "gf"), pids, chunk),
        },
        rounds,
    )
    say(f"sqlite bulk: {samples}")
    return {
        "sqlite_bulk_per_s": median(samples["grantflow"]),
        "sqlite_bulk_raw_per_s": median(samples["raw"]),
        "sqlite_bulk_ratio": paired_ratio(samples["grantflow"], samples["raw"]),
    }


def single(folder: Path, n: int, rounds: int) -> dict[str, float]:
    """One transition per transaction: median latency of grantflow's `fire` and raw sqlite3.

    Each round fires a block of projects on each side in turn, on its own copy.
    """
    seeded = folder / "single-seed.db"
    seed(seeded, n * rounds)
    pids = ids(n * rounds)
    raw_conn = _connect(fresh_copy(seeded, "single-raw"))
    engine = open_bare(fresh_copy(seeded, "single-gf"))
    blocks = iter(range(rounds * 2))

    def raw_block() -> float:
        block = pids[next(blocks) // 2 * n :][:n]
        started = time.perf_counter()
        for pid in block:
            _raw_transaction(raw_conn, [pid])
        return (time.perf_counter() - started) / n

    def grantflow_block() -> float:
        block = pids[next(blocks) // 2 * n :][:n]
        started = time.perf_counter()
        for pid in block:
            engine.fire(pid, "approve", actor=STAFF)
        return (time.perf_counter() - started) / n

    samples = interleave({"raw": raw_block, "grantflow": grantflow_block}, rounds)
    raw_conn.close()
    engine.close()
    say(f"sqlite single (s): {samples}")
    return {
        "sqlite_single_latency_us": median(samples["grantflow"]) * 1e6,
        "sqlite_single_raw_latency_us": median(samples["raw"]) * 1e6,
        "sqlite_single_latency_ratio": paired_ratio(samples["grantflow"], samples["raw"]),
    }


def logging_cost(folder: Path, n: int, chunk: int, rounds: int) -> dict[str, float]:
    """Bulk with grantflow's audit log enabled (a file handler at INFO) and disabled.

    ``log_on_overhead``: extra time with a handler writing every entry to a file, over
    the default (no handler configured, the logger silent). ``log_off_overhead``: the
    default against a run whose logger calls are replaced by no-ops, i.e. what the
    disabled calls themselves cost.
    """
    seeded = folder / "log-seed.db"
    seed(seeded, n)
    pids = ids(n)
    logger = logging.getLogger("grantflow")
    sink = folder / "audit.log"

    def enabled() -> float:
        handler = logging.FileHandler(sink, mode="w")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        try:
            return grantflow_bulk(fresh_copy(seeded, "log-on"), pids, chunk)
        finally:
            logger.removeHandler(handler)
            logger.setLevel(logging.NOTSET)
            handler.close()

    def disabled() -> float:
        return grantflow_bulk(fresh_copy(seeded, "log-off"), pids, chunk)

    def stripped() -> float:
        from grantflow import _engine

        kept = _engine._log
        _engine._log = _Silent()  # type: ignore[assignment]
        try:
            return grantflow_bulk(fresh_copy(seeded, "log-none"), pids, chunk)
        finally:
            _engine._log = kept

    samples = interleave({"on": enabled, "off": disabled, "none": stripped}, rounds)
    lines = sum(1 for _ in sink.open()) if sink.exists() else 0
    say(f"logging (items/s): {samples}; {lines} lines logged in the last enabled run")
    if lines < n:
        raise RuntimeError(f"the enabled run logged {lines} lines for {n} entries")
    return {
        "log_on_overhead": paired_ratio(samples["off"], samples["on"]) - 1,
        "log_off_overhead": paired_ratio(samples["none"], samples["off"]) - 1,
    }


class _Silent:
    """A logger whose calls do nothing at all (not even a level check)."""

    def bind(self, **_values: Any) -> _Silent:
        return self

    def __getattr__(self, _name: str) -> Any:
        return lambda *_a, **_k: None


# -- verify ----------------------------------------------------------------------------------


def raw_verify(path: Path) -> tuple[int, float]:
    """The floor: read every audit row in chain order, re-hash it, check every link."""
    conn = sqlite3.connect(path)
    started = time.perf_counter()
    cursor = conn.execute(
        "SELECT project_id, seq, kind, event, from_state, to_state, accepted, actor, at, "
        f"evidence, refusals, records, data, prev_hash, hash, decided_under, clamped_from "
        f"FROM {PREFIX}audit "
        "ORDER BY project_id, seq"
    )
    loads = json.loads
    count, last_pid, prev = 0, None, ""
    while rows := cursor.fetchmany(10_000):
        for row in rows:
            pid, link, digest, basis, clamped = row[0], row[13], row[14], row[15], row[16]
            if pid != last_pid:
                last_pid, prev = pid, "0" * 64
            decoded = (
                *row[:7],
                loads(row[7]),
                None,
                loads(row[9]),
                loads(row[10]),
                loads(row[11]),
                loads(row[12]),
                link,
                digest,
                None if basis is None else loads(basis),
            )
            at = row[8].replace(" ", "T") + "Z"
            iso_clamped = None if clamped is None else clamped.replace(" ", "T") + "Z"
            if link != prev or floor_digest(decoded, at, iso_clamped) != digest:
                raise RuntimeError(f"the floor found a bad entry {pid}/{row[1]}")
            prev = digest
            count += 1
    elapsed = time.perf_counter() - started
    conn.close()
    return count, count / elapsed


def grantflow_verify(path: Path) -> tuple[int, float]:
    """`grantflow.audit.verify` over the same store."""
    return timed_verify(f"sqlite:///{path}")


def _verify_peak(path: Path) -> float:
    store = SqlStore.open(f"sqlite:///{path}")
    tracemalloc.start()
    try:
        audit.verify(store)
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()
        store.close()


def _two_entry_db(folder: Path, name: str, n: int) -> Path:
    path = folder / f"{name}.db"
    seed(path, n)
    engine = open_bare(path, synchronous="NORMAL")
    engine.fire_many("approve", ids(n), actor=STAFF, chunk_size=1000)
    engine.close()
    return path


def verify(folder: Path, n: int, rounds: int) -> dict[str, float]:
    """`verify` on 2n entries against the re-hash floor; peak memory at n/2 and n projects."""
    path = _two_entry_db(folder, "verify", n)
    samples = interleave(
        {"raw": lambda: raw_verify(path)[1], "grantflow": lambda: grantflow_verify(path)[1]},
        rounds,
    )
    say(f"verify (entries/s): {samples}")
    small = _two_entry_db(folder, "verify-small", max(n // 4, 1))
    peak_small, peak_large = _verify_peak(small), _verify_peak(path)
    say(f"verify peak traced memory: {peak_small:.1f} MB ({n // 4}), {peak_large:.1f} MB ({n})")
    return {
        "verify_entries": float(2 * n),
        "verify_entries_per_s": median(samples["grantflow"]),
        "verify_floor_entries_per_s": median(samples["raw"]),
        "verify_floor_ratio": paired_ratio(samples["grantflow"], samples["raw"]),
        "verify_peak_mb": peak_large,
        "verify_memory_growth": peak_large / peak_small,
    }


def run(quick: bool, rounds: int) -> dict[str, float]:
    """Every SQLite measurement; `quick` shrinks the sizes for a smoke test."""
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="grantflow-bench-") as tmp:
        folder = Path(tmp)
        n = 300 if quick else 20_000
        results.update(bulk(folder, n, 500, rounds))
        results.update(single(folder, 10 if quick else 200, rounds))
        results.update(logging_cost(folder, n, 500, rounds))
        results.update(verify(folder, n, rounds))
    return results
