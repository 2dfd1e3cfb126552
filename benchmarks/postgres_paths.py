"""PostgreSQL: bulk `fire_many` against raw psycopg, two workers sharing one job, `verify`.

Each contender gets its own fresh tables (a table prefix per run) holding N projects in
``applied``, filled with one ``INSERT ... SELECT generate_series``. The floor reads the
projects in batches of 1,000 paged by id (``FOR UPDATE``), builds each audit entry with
its sha256 hash link, and runs the compare-and-set ``UPDATE`` and audit ``INSERT`` with
``executemany`` (psycopg pipelines them), one transaction per batch. grantflow runs
``fire_many("approve", ids, chunk_size=1000)`` with a bare rule book.

Two workers: two processes run the same job (same idempotency key and run id, each its
own owner), claiming chunks with ``FOR UPDATE SKIP LOCKED``; against one such process.
`verify`: N projects submitted and approved through grantflow (2N entries), checked by
`audit.verify` against psycopg reading the same audit rows in chain order (``jsonb``
decoded by psycopg), re-hashing each and checking the links.

The server is the throwaway one ``tasks.py`` starts (initdb in a temporary directory,
``fsync=off``), unless ``--pg-url`` names one.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CHUNK = 1_000


def _raw_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def _ids(n: int) -> list[str]:
    return [f"p{i:07d}" for i in range(n)]


def prepare(url: str, prefix: str, n: int) -> None:
    """Create grantflow's tables under `prefix` and fill them with `n` applied projects."""
    import psycopg

    from grantflow.persistence.sql import SqlStore

    SqlStore.open(url, table_prefix=prefix).close()
    with psycopg.connect(_raw_url(url)) as conn:
        conn.execute(
            f"INSERT INTO {prefix}projects (id, state, version, head, data, created_at, "
            "updated_at) SELECT 'p' || lpad(i::text, 7, '0'), 'applied', 1, "
            "repeat('0', 64), '{\"title\": \"t\"}'::jsonb, now(), now() "
            "FROM generate_series(0, %s) AS i",
            (n - 1,),
        )
        conn.execute(f"ANALYZE {prefix}projects")


def drop(url: str, prefix: str) -> None:
    """Drop the tables of one run."""
    import psycopg

    with psycopg.connect(_raw_url(url), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE tablename LIKE %s", (prefix + "%",)
        ).fetchall()
        for (table,) in rows:
            conn.execute(f'DROP TABLE IF EXISTS "{table}" CASCADE')


def raw_rate(url: str, prefix: str, n: int) -> float:
    """The floor: batches of 1,000 paged by id, each read, hash-linked, written; items/s."""
    import psycopg
    from _common import STAFF_JSON, raw_entry

    update = (
        f"UPDATE {prefix}projects SET state=%s, version=%s, head=%s, updated_at=%s "
        "WHERE id=%s AND state=%s AND version=%s"
    )
    insert = (
        f"INSERT INTO {prefix}audit (project_id, seq, kind, event, from_state, to_state, "
        "accepted, actor, at, evidence, refusals, records, data, prev_hash, hash) VALUES "
        "(%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)"
    )
    done = 0
    with psycopg.connect(_raw_url(url)) as conn:
        started = time.perf_counter()
        after = ""
        while True:
            at = datetime.now(UTC)
            with conn.transaction(), conn.cursor() as cur:
                rows = cur.execute(
                    f"SELECT id, state, version, head FROM {prefix}projects "
                    "WHERE id > %s ORDER BY id LIMIT %s FOR UPDATE",
                    (after, CHUNK),
                ).fetchall()
                if not rows:
                    break
                updates, inserts = [], []
                for row in rows:
                    if row[1] != "applied":
                        continue
                    u, i, _ = raw_entry(row, STAFF_JSON, at.isoformat(), "approve", "reviewed")
                    u[3] = at
                    i[8] = at
                    updates.append(u)
                    inserts.append(i)
                cur.executemany(update, updates)
                cur.executemany(insert, inserts)
                done += len(updates)
                after = rows[-1][0]
        elapsed = time.perf_counter() - started
    if done != n:
        raise RuntimeError(f"raw moved {done} of {n}")
    return n / elapsed


def grantflow_rate(url: str, prefix: str, n: int) -> float:
    """`fire_many` on the same tables, in this process; items/s."""
    from _common import STAFF

    import grantflow
    from grantflow.rules import RuleBook

    engine = grantflow.open(url, table_prefix=prefix, rules=RuleBook(), discover_rules=False)
    started = time.perf_counter()
    result = engine.fire_many("approve", _ids(n), actor=STAFF, chunk_size=CHUNK)
    elapsed = time.perf_counter() - started
    engine.close()
    if result.count("applied") != n:
        raise RuntimeError(f"bulk did not apply everything: {result.counts}")
    return n / elapsed


def verify_seed(url: str, prefix: str, n: int) -> None:
    """`n` projects submitted and approved through grantflow (2n entries), for `verify`."""
    from _common import APPLICANT, STAFF

    import grantflow
    from grantflow.rules import RuleBook

    engine = grantflow.open(url, table_prefix=prefix, rules=RuleBook(), discover_rules=False)
    items = ((pid, {"title": "t", "amount": "1000.00"}) for pid in _ids(n))
    submitted = engine.fire_many("submit", items, actor=APPLICANT, chunk_size=CHUNK)
    approved = engine.fire_many("approve", _ids(n), actor=STAFF, chunk_size=CHUNK)
    engine.close()
    if submitted.count("applied") != n or approved.count("applied") != n:
        raise RuntimeError(f"verify seed: {submitted.counts} {approved.counts}")
    import psycopg

    # As autovacuum would before long, so that both sides read tables in their usual
    # state (grantflow's verify reads each through one cursor either way).
    with psycopg.connect(_raw_url(url), autocommit=True) as conn:
        for table in ("audit", "projects", "records"):
            conn.execute(f"ANALYZE {prefix}{table}")


def raw_verify_rate(url: str, prefix: str) -> float:
    """The floor: every audit row read in chain order, re-hashed, its link checked; entries/s.

    psycopg on a server-side cursor, ``jsonb`` decoded by psycopg.
    """
    import psycopg
    from _common import floor_digest

    def iso(moment: datetime) -> str:
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    count, last_pid, prev = 0, None, ""
    with psycopg.connect(_raw_url(url)) as conn:
        started = time.perf_counter()
        with conn.cursor(name="floor") as cursor:
            cursor.itersize = 10_000
            cursor.execute(
                "SELECT project_id, seq, kind, event, from_state, to_state, accepted, actor, "
                "at, evidence, refusals, records, data, prev_hash, hash, decided_under, "
                f"clamped_from FROM {prefix}audit ORDER BY project_id, seq"
            )
            for row in cursor:
                pid, link, digest, clamped = row[0], row[13], row[14], row[16]
                if pid != last_pid:
                    last_pid, prev = pid, "0" * 64
                at, when = iso(row[8]), None if clamped is None else iso(clamped)
                if link != prev or floor_digest(row, at, when) != digest:
                    raise RuntimeError(f"the floor found a bad entry {pid}/{row[1]}")
                prev = digest
                count += 1
        elapsed = time.perf_counter() - started
    return count / elapsed


def grantflow_verify_rate(url: str, prefix: str) -> float:
    """`audit.verify` over the same tables; entries/s."""
    from _common import timed_verify

    return timed_verify(url, table_prefix=prefix)[1]


def _worker(url: str, prefix: str, n: int, key: str, run_id: str) -> dict[str, Any]:
    """One worker process: wait for ``go`` on stdin, run the shared job, report its span."""
    sys.path.insert(0, str(HERE))
    from _common import STAFF

    import grantflow
    from grantflow.bulk import Worker
    from grantflow.persistence import owner_id
    from grantflow.rules import RuleBook

    engine = grantflow.open(url, table_prefix=prefix, rules=RuleBook(), discover_rules=False)
    pids = _ids(n)
    print("ready", flush=True)
    sys.stdin.readline()
    started = time.time()
    result = engine.fire_many(
        "approve",
        pids,
        actor=STAFF,
        chunk_size=CHUNK,
        idempotency_key=key,
        worker=Worker(run_id=run_id, owner=owner_id()),
    )
    ended = time.time()
    engine.close()
    return {"start": started, "end": ended, "counts": result.counts}


def workers_seconds(url: str, prefix: str, n: int, count: int) -> float:
    """Wall time of `count` worker processes sharing one job, from ``go`` to the last end."""
    from _common import run_workers

    key, run_id = f"bench-{uuid.uuid4().hex}", uuid.uuid4().hex
    command = [sys.executable, str(Path(__file__)), "worker", url, prefix, str(n), key, run_id]
    reports = run_workers([command] * count)
    applied = sum(r["counts"].get("applied", 0) for r in reports)
    # Each worker reports the whole job's tally; the last one to finish saw every item.
    if max(r["counts"].get("applied", 0) for r in reports) != n:
        raise RuntimeError(f"workers applied {applied} of {n}")
    return max(r["end"] for r in reports) - min(r["start"] for r in reports)


@contextlib.contextmanager
def server(url: str | None) -> Iterator[str | None]:
    """The given server, or a throwaway one started with tasks.py's helper."""
    if url:
        yield url
        return
    sys.path.insert(0, str(ROOT))
    import tasks

    with contextlib.redirect_stdout(sys.stderr), tasks.postgres() as started:
        yield started


def run(quick: bool, rounds: int, url: str | None) -> dict[str, float]:
    """PostgreSQL bulk against raw psycopg, and two workers against one, interleaved."""
    from _common import interleave, median, paired_ratio, say

    n = 300 if quick else 20_000
    with server(url) as pg:
        if pg is None:
            raise RuntimeError("no PostgreSQL server")
        tag = uuid.uuid4().hex[:6]
        counter = iter(range(10_000))

        def fresh(kind: str) -> str:
            prefix = f"b{tag}{kind}{next(counter)}_"
            prepare(pg, prefix, n)
            return prefix

        def timed(kind: str, measure: Any) -> float:
            prefix = fresh(kind)
            try:
                return float(measure(prefix))
            finally:
                drop(pg, prefix)

        samples = interleave(
            {
                "raw": lambda: timed("r", lambda p: raw_rate(pg, p, n)),
                "grantflow": lambda: timed("g", lambda p: grantflow_rate(pg, p, n)),
                "one": lambda: timed("o", lambda p: workers_seconds(pg, p, n, 1)),
                "two": lambda: timed("t", lambda p: workers_seconds(pg, p, n, 2)),
            },
            rounds,
        )
        verified = f"b{tag}v_"
        verify_seed(pg, verified, n)
        try:
            checks = interleave(
                {
                    "raw": lambda: raw_verify_rate(pg, verified),
                    "grantflow": lambda: grantflow_verify_rate(pg, verified),
                },
                rounds,
            )
        finally:
            drop(pg, verified)
    say(f"postgres: {samples}")
    say(f"postgres verify (entries/s): {checks}")
    return {
        "pg_verify_entries_per_s": median(checks["grantflow"]),
        "pg_verify_floor_entries_per_s": median(checks["raw"]),
        "pg_verify_floor_ratio": paired_ratio(checks["grantflow"], checks["raw"]),
        "pg_bulk_per_s": median(samples["grantflow"]),
        "pg_bulk_raw_per_s": median(samples["raw"]),
        "pg_bulk_ratio": paired_ratio(samples["grantflow"], samples["raw"]),
        "pg_one_worker_per_s": n / median(samples["one"]),
        "pg_two_worker_speedup": paired_ratio(samples["one"], samples["two"]),
    }


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        url, prefix, n, key, run_id = sys.argv[2:7]
        print(json.dumps(_worker(url, prefix, int(n), key, run_id)), flush=True)
    else:
        parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
        parser.add_argument("--quick", action="store_true")
        parser.add_argument("--rounds", type=int, default=1)
        parser.add_argument("--pg-url", default=None)
        args = parser.parse_args()
        print(json.dumps(run(args.quick, args.rounds, args.pg_url)))
