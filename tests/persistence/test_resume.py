"""Immediate, complete resume of bulk jobs after the holder died (issue 13).

A run killed with SIGKILL leaves its job's lease alive (60 s by default). A rerun with
the same key must not wait for it when the holder is provably dead: on the same host
its process is gone; on PostgreSQL its session's advisory lock is freed. The resumed
run finishes the job, and with ``keep="all"`` its result covers every item of the job,
whichever run applied it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import sqlalchemy

import grantflow
from grantflow import Actor, Engine, IdempotencyKeyInUse
from grantflow.persistence.sql import SqlStore
from grantflow.rules import RuleBook

from .conftest import StoreFactory

APPLICANT = Actor(id="org-1", roles=frozenset({"applicant"}))
PURCHASER = Actor(id="staff-1", roles=frozenset({"purchaser"}))

_CHILD = textwrap.dedent(
    """
    import sys, grantflow
    from grantflow import Actor
    from grantflow.rules import RuleBook
    url, prefix, schema, n = sys.argv[1], sys.argv[2], sys.argv[3] or None, int(sys.argv[4])
    options = {"table_prefix": prefix}
    if schema:
        options["schema"] = schema
    engine = grantflow.open(url, rules=RuleBook(), discover_rules=False, **options)
    ids = [f"p{i:05d}" for i in range(n)]
    staff = Actor(id="staff-1", roles=frozenset({"purchaser"}))
    engine.fire_many("approve", ids, actor=staff, idempotency_key="killed", chunk_size=25,
                     keep="all")
    print("finished")
    """
)


def _engine(store: SqlStore) -> Engine:
    return grantflow.open(store, rules=RuleBook(), discover_rules=False)


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _done_chunks(store: SqlStore) -> int:
    chunks = store.tables.bulk_chunks
    with store.engine.connect() as conn:
        return int(
            conn.execute(
                sqlalchemy.select(sqlalchemy.func.count())
                .select_from(chunks)
                .where(chunks.c.done == True)  # noqa: E712
            ).scalar_one()
        )


@pytest.mark.slow
def test_a_sigkilled_run_resumes_at_once_and_reports_every_item(
    make_store: StoreFactory, tmp_path: Path
) -> None:
    """Kill -9 a bulk run mid-job; the rerun starts at once, finishes, reports all items."""
    store = make_store()
    engine = _engine(store)
    n = 1000
    ids = [f"p{i:05d}" for i in range(n)]
    engine.fire_many("submit", [(pid, {"n": 1}) for pid in ids], actor=APPLICANT)
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    url = store.engine.url.render_as_string(hide_password=False)
    errors = tmp_path / "child.err"
    with errors.open("wb") as err:
        child = subprocess.Popen(
            [
                sys.executable,
                str(script),
                url,
                store.tables.prefix,
                store.tables.schema or "",
                str(n),
            ],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    deadline = time.monotonic() + 120
    while _done_chunks(store) < 8 and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL, errors.read_text()
    moved_before = sum(p.state == "reviewed" for p in engine.store.projects())
    assert 0 < moved_before < n

    started = time.monotonic()
    result = engine.fire_many(
        "approve", ids, actor=PURCHASER, idempotency_key="killed", chunk_size=25, keep="all"
    )
    assert time.monotonic() - started < 30  # the dead run's 60 s lease was not waited for
    assert result.counts == {"applied": n}
    assert [r.index for r in result.items] == list(range(n))
    assert {(r.status, r.state) for r in result.items} == {("applied", "reviewed")}
    for pid in ids:
        project = engine.get(pid)
        assert (project.state, project.version) == ("reviewed", 2)
    assert engine.verify().ok
    replay = engine.fire_many(
        "approve", ids, actor=PURCHASER, idempotency_key="killed", chunk_size=25, keep="all"
    )
    assert (replay.replayed, len(replay.items)) == (True, n)


def test_a_dead_holder_on_this_host_is_taken_over_with_its_chunks(
    make_store: StoreFactory,
) -> None:
    """A holder whose process is gone loses job and chunk leases at once; a live one keeps them."""
    store = make_store()
    now = time.time()
    dead = f"{os.uname().nodename}:{_dead_pid()}:abcd1234"
    alive = f"{os.uname().nodename}:{os.getppid()}:abcd1234"
    for key, holder in (("dead", dead), ("alive", alive)):
        store.job_begin(
            key, event="approve", digest="", run_id="r1", now=now, lease=60, owner=holder
        )
        claim = store.chunk_claim(key, 0, start=0, end=10, owner=holder, now=now, lease=60)
        assert claim is not None
    with pytest.raises(IdempotencyKeyInUse):
        store.job_begin(
            "alive", event="approve", digest="", run_id="r2", now=now, lease=60, owner="me:1:x"
        )
    taken = store.job_begin(
        "dead", event="approve", digest="", run_id="r2", now=now, lease=60, owner="me:1:x"
    )
    assert taken.run_id == "r2"
    claim = store.chunk_claim("dead", 0, start=0, end=10, owner="me:1:x", now=now, lease=60)
    assert claim is not None
    assert claim.owner == "me:1:x"


@pytest.mark.postgres
def test_on_postgresql_a_dead_session_frees_the_job_whatever_the_host(
    pg_url: str, pg_schema: str
) -> None:
    """The holder's advisory lock lives with its session: once that ends, take over."""
    options = {"schema": pg_schema, "table_prefix": "resume_"}
    holder = SqlStore.open(pg_url, **options)
    other = SqlStore.open(pg_url, **options)
    now = time.time()
    elsewhere = "another-host:4242:abcd1234"  # no process check can tell about it
    holder.job_begin(
        "k", event="approve", digest="", run_id="r1", now=now, lease=60, owner=elsewhere
    )
    with pytest.raises(IdempotencyKeyInUse):
        other.job_begin(
            "k", event="approve", digest="", run_id="r2", now=now, lease=60, owner="me:1:x"
        )
    holder._job_locks["k"].invalidate()  # the holder's connection dies, as with kill -9
    # The server ends the dead session (and frees its lock) as soon as it notices the
    # socket closed; on a busy machine that takes a moment, never the 60 s lease.
    deadline = time.monotonic() + 20
    while True:
        try:
            taken = other.job_begin(
                "k", event="approve", digest="", run_id="r2", now=now, lease=60, owner="me:1:x"
            )
            break
        except IdempotencyKeyInUse:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    assert taken.run_id == "r2"
    holder._job_locks.clear()
    holder.close()
    other.close()
