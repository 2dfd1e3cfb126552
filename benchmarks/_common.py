"""Helpers the benchmark sections share: timing, interleaving, fresh copies, raw entries."""

from __future__ import annotations

import gc
import hashlib
import json
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grantflow

APPLICANT = grantflow.Actor(id="org-1", roles=frozenset({"applicant"}))
STAFF = grantflow.Actor(id="staff-1", roles=frozenset({"purchaser"}))
PREFIX = "grantflow_"
STAFF_JSON = json.dumps(
    {"id": STAFF.id, "organisation": None, "roles": ["purchaser"]},
    sort_keys=True,
    separators=(",", ":"),
)


def say(message: str) -> None:
    """Progress for the person running the suite: on stderr, so stdout ends with the JSON."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def ids(n: int, prefix: str = "p") -> list[str]:
    """Project ids ``p0000000``, ... in sorted order."""
    return [f"{prefix}{i:07d}" for i in range(n)]


def fresh_copy(seeded: Path, name: str) -> Path:
    """Copy a seeded SQLite file (without WAL leftovers) to a new file beside it."""
    work = seeded.parent / f"{name}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{work}{suffix}").unlink(missing_ok=True)
    shutil.copy(seeded, work)
    return work


def interleave(
    contenders: Mapping[str, Callable[[], float]], rounds: int
) -> dict[str, list[float]]:
    """Run each contender once per round, in turn (A B A B ...): load hits them alike.

    Each contender returns its own measurement (a rate or a duration); the samples are
    returned per contender, in round order. Every sample starts after a full garbage
    collection: the bare `transitions` floor leaves about 90 objects in reference
    cycles per model (its machine and models refer to each other), 1.8 million for
    20,000 models, and left in the heap they made the next contender's own full
    collections walk them (the in-memory figure fell from 27,000 to 10,000 fires/s in
    the rounds after the first).
    """
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, run in contenders.items():
            gc.collect()
            samples[name].append(run())
    return samples


def median(values: list[float]) -> float:
    """The median of `values`."""
    return float(statistics.median(values))


def paired_ratio(top: list[float], bottom: list[float]) -> float:
    """The median over rounds of ``top[i] / bottom[i]``: ratios of runs made side by side."""
    return median([t / b for t, b in zip(top, bottom, strict=True)])


@contextmanager
def stopwatch() -> Iterator[list[float]]:
    """Time a block; after it, the yielded list holds the seconds it took."""
    box: list[float] = []
    started = time.perf_counter()
    try:
        yield box
    finally:
        box.append(time.perf_counter() - started)


def raw_entry(
    row: tuple[str, str, int, str], actor_json: str, at: str, event: str, target: str
) -> tuple[list[Any], list[Any], str]:
    """What a hand-written script builds for one transition: CAS values, audit row, hash.

    The audit entry's JSON body is hashed with sha256 and linked to the project's head,
    the least a tamper-evident log needs.
    """
    pid, state, version, head = row
    body = {
        "project_id": pid,
        "seq": version + 1,
        "kind": "fire",
        "event": event,
        "from_state": state,
        "to_state": target,
        "accepted": True,
        "actor": actor_json,
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
    update = [target, version + 1, digest, at, pid, state, version]
    audit = [
        pid,
        version + 1,
        "fire",
        event,
        state,
        target,
        True,
        actor_json,
        at,
        "{}",
        "[]",
        "[]",
        "{}",
        head,
        digest,
    ]
    return update, audit, digest


def floor_digest(row: tuple[Any, ...], at: str, clamped: str | None) -> str:
    """The sha256 a hand-written check recomputes for one audit row, from decoded values.

    `row` is (project id, seq, kind, event, from, to, accepted, actor, at, evidence,
    refusals, records, data, prev hash, hash, decided under, clamped from) with the JSON
    columns decoded; `at` and `clamped` are the times as grantflow spells them.
    """
    pid, seq, kind, event, src, dst, accepted, actor, _, evidence, refusals, records = row[:12]
    body = {
        "accepted": bool(accepted),
        "actor": actor,
        "at": at,
        "data": row[12],
        "event": event,
        "evidence": evidence,
        "from_state": src,
        "kind": kind,
        "prev_hash": row[13],
        "project_id": pid,
        "records": records,
        "refusals": refusals,
        "seq": seq,
        "to_state": dst,
    }
    # The two later fields are hashed only when set (as grantflow does).
    if row[15] is not None:
        body["decided_under"] = row[15]
    if clamped is not None:
        body["clamped_from"] = clamped
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def timed_verify(url: str, **options: Any) -> tuple[int, float]:
    """`audit.verify` of the SQL store at `url`: (entries, entries/s); raises on a problem."""
    from grantflow import audit
    from grantflow.persistence.sql import SqlStore

    store = SqlStore.open(url, **options)
    started = time.perf_counter()
    report = audit.verify(store)
    elapsed = time.perf_counter() - started
    store.close()
    if not report.ok:
        raise RuntimeError(f"verify found problems: {report.problems[:3]}")
    return report.entries, report.entries / elapsed


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MB (Linux reports KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_workers(commands: list[list[str]]) -> list[dict[str, Any]]:
    """Start a process per command, let them all go at once, and return their reports.

    Each worker prints ``ready``, waits for a line on its input, works, and prints its
    report as one JSON line last.
    """
    procs = [
        subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for command in commands
    ]
    for proc in procs:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError("a worker did not start")
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    reports = []
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"a worker failed with {proc.returncode}")
        reports.append(json.loads(out.strip().splitlines()[-1]))
    return reports
