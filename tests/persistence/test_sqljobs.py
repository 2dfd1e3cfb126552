"""Tests for grantflow.persistence._sqljobs: bulk jobs on SQLite and PostgreSQL.

Includes the reliability cases of the bulk issue: a bulk process killed with SIGKILL
part-way and resumed with the same key, and several processes sharing one job.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy

import grantflow
from grantflow import Actor, ConcurrencyError, Engine, IdempotencyKeyInUse, IdempotencyKeyMismatch
from grantflow.bulk import Worker
from grantflow.persistence import ChunkProgress
from grantflow.persistence.sql import SqlStore
from grantflow.rules import RuleBook
from grantflow.testing.store_contract import T0, submission, transition

from .conftest import StoreFactory

APPLICANT = Actor(id="org-1", roles=frozenset({"applicant"}))
PURCHASER = Actor(id="staff-1", roles=frozenset({"purchaser"}))


def _engine(store: SqlStore) -> Engine:
    return grantflow.open(store, rules=RuleBook(), discover_rules=False)


def _seed(engine: Engine, n: int) -> list[str]:
    return [engine.submit(actor=APPLICANT, project_id=f"p{i:05d}").project_id for i in range(n)]


def test_fire_many_on_sql_applies_reports_and_replays(make_store: StoreFactory) -> None:
    """A bulk run commits per chunk, reports each item, replays, and the chain verifies."""
    engine = _engine(make_store(synchronous="NORMAL"))
    ids = _seed(engine, 40)
    engine.fire(ids[0], "reject", actor=PURCHASER)
    items: list[Any] = [*ids, "ghost", (ids[1], {"bad": 1.5})]
    first = engine.fire_many("approve", items, actor=PURCHASER, idempotency_key="k", chunk_size=15)
    assert first.counts == {"applied": 39, "refused": 1, "not_found": 1, "invalid": 1}
    assert engine.get(ids[5]).state == "reviewed"
    again = engine.fire_many("approve", items, actor=PURCHASER, idempotency_key="k", chunk_size=15)
    assert again.replayed
    assert again.counts == first.counts
    assert [(r.index, r.status) for r in again.items] == [(r.index, r.status) for r in first.items]
    with pytest.raises(IdempotencyKeyMismatch):
        engine.fire_many("approve", ids, actor=PURCHASER, idempotency_key="k", chunk_size=15)
    assert engine.verify().ok
    for pid in ids[1:4]:
        assert engine.replay(pid) == engine.get(pid)


def test_a_live_lease_refuses_a_second_run(make_store: StoreFactory) -> None:
    """While another run holds the key's lease, the key is in use."""
    store = make_store(synchronous="NORMAL")
    engine = _engine(store)
    ids = _seed(engine, 3)
    store.job_begin("busy", event="approve", digest="", run_id="other", now=time.time(), lease=60)
    with pytest.raises(IdempotencyKeyInUse):
        engine.fire_many("approve", ids, actor=PURCHASER, idempotency_key="busy")
    store.job_begin(
        "stale", event="approve", digest="", run_id="dead", now=time.time() - 120, lease=60
    )
    result = engine.fire_many("approve", ids, actor=PURCHASER, idempotency_key="stale")
    assert result.counts == {"applied": 3}


def test_a_taken_over_chunk_cannot_be_committed_by_its_old_owner(
    make_store: StoreFactory,
) -> None:
    """Fencing: once a lease expired and another worker claimed it, the old owner's commit fails."""
    store = make_store(synchronous="NORMAL")
    store.job_begin("job", event="approve", digest="", run_id="r", now=time.time(), lease=60)
    old = store.chunk_claim("job", 0, start=0, end=10, owner="a", now=time.time() - 100, lease=1)
    assert old is not None
    assert (
        store.chunk_claim("job", 0, start=0, end=10, owner="c", now=time.time() - 100, lease=1)
        is None
    )
    new = store.chunk_claim("job", 0, start=0, end=10, owner="b", now=time.time(), lease=60)
    assert new is not None
    progress = ChunkProgress(
        key="job",
        chunk=0,
        owner="a",
        next_index=10,
        done=True,
        counts={"applied": 10},
        items=(),
        digest="x",
    )
    with pytest.raises(ConcurrencyError) as caught:
        store.commit_chunk([], progress, now=time.time(), lease=60)
    assert caught.value.index is None
    stored = store.job_get("job")
    assert stored is not None
    assert stored.counts == {}


_KILL_SCRIPT = textwrap.dedent(
    """
    import sys, time, grantflow
    from grantflow import Actor
    from grantflow.rules import RuleBook
    store_url, prefix, schema = sys.argv[1], sys.argv[2], sys.argv[3] or None
    options = {"table_prefix": prefix}
    if schema:
        options["schema"] = schema
    else:
        options["synchronous"] = "NORMAL"
    # A listener that takes 1 ms an entry keeps the run going for over a second, so the
    # parent's kill lands part-way however fast the chunks commit.
    engine = grantflow.open(store_url, rules=RuleBook(), discover_rules=False,
                            listeners=[lambda entry: time.sleep(0.001)], **options)
    ids = [f"p{i:05d}" for i in range(int(sys.argv[4]))]
    staff = Actor(id="staff-1", roles=frozenset({"purchaser"}))
    engine.fire_many("approve", ids, actor=staff, idempotency_key="killed", chunk_size=25,
                     lease_seconds=1.0)
    print("finished")
    """
)


def _url_and_schema(store: SqlStore) -> tuple[str, str]:
    url = store.engine.url.render_as_string(hide_password=False)
    return url, store.tables.schema or ""


@pytest.mark.slow
def test_kill_9_mid_bulk_then_resume_transitions_each_project_once(
    make_store: StoreFactory, tmp_path: Path
) -> None:
    """SIGKILL a bulk process part-way; re-running the key finishes; each project moved once."""
    store = make_store(synchronous="NORMAL")
    engine = _engine(store)
    n = 1500
    ids = _seed(engine, n)
    url, schema = _url_and_schema(store)
    script = tmp_path / "bulk_child.py"
    script.write_text(_KILL_SCRIPT)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    errors = tmp_path / "child.err"
    with errors.open("wb") as err:
        child = subprocess.Popen(
            [sys.executable, str(script), url, store.tables.prefix, schema, str(n)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    chunks = store.tables.bulk_chunks
    deadline = time.monotonic() + 60
    done = 0
    while time.monotonic() < deadline:
        with store.engine.connect() as conn:
            done = conn.execute(
                sqlalchemy.select(sqlalchemy.func.count())
                .select_from(chunks)
                .where(chunks.c.done == True)  # noqa: E712
            ).scalar_one()
        if done >= 5 or child.poll() is not None:
            break
        time.sleep(0.005)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL, errors.read_text()
    moved = sum(engine.get(pid).state == "reviewed" for pid in ids)
    assert 0 < moved < n
    time.sleep(1.1)  # the dead run's lease expires
    result = engine.fire_many(
        "approve", ids, actor=PURCHASER, idempotency_key="killed", chunk_size=25, lease_seconds=1.0
    )
    assert result.counts == {"applied": n}
    for pid in ids:
        project = engine.get(pid)
        assert (project.state, project.version) == ("reviewed", 2)
    assert engine.verify().ok


def _worker(url: str, prefix: str, schema: str, n: int, owner: str) -> dict[str, int]:
    options: dict[str, Any] = {"table_prefix": prefix}
    if schema:
        options["schema"] = schema
    engine = grantflow.open(url, rules=RuleBook(), discover_rules=False, **options)
    ids = [f"p{i:05d}" for i in range(n)]
    result = engine.fire_many(
        "approve",
        ids,
        actor=PURCHASER,
        idempotency_key="shared",
        chunk_size=20,
        worker=Worker(run_id="run-1", owner=owner),
    )
    engine.close()
    return result.counts


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)])
def test_several_processes_share_one_job(make_store: StoreFactory) -> None:
    """Three processes racing through one job approve every project exactly once."""
    store = make_store()
    engine = _engine(store)
    n = 600
    ids = _seed(engine, n)
    url, schema = _url_and_schema(store)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(3) as pool:
        pool.starmap(_worker, [(url, store.tables.prefix, schema, n, f"w{i}") for i in range(3)])
    final = engine.fire_many(
        "approve",
        ids,
        actor=PURCHASER,
        idempotency_key="shared",
        chunk_size=20,
        worker=Worker(run_id="run-1", owner="final"),
    )
    assert final.counts == {"applied": n}
    with store.engine.connect() as conn:
        owners = (
            conn.execute(sqlalchemy.select(store.tables.bulk_chunks.c.owner).distinct())
            .scalars()
            .all()
        )
    # Which worker won which chunk depends on timing; every chunk belongs to one of them.
    assert set(owners) <= {"w0", "w1", "w2", "final"}, owners
    for pid in ids:
        assert engine.get(pid).version == 2
    assert engine.verify().ok


def test_load_many_equals_load(make_store: StoreFactory) -> None:
    """The bulk read returns exactly what load() returns, records and data included."""
    store = make_store(synchronous="NORMAL")
    engine = _engine(store)
    ids = _seed(engine, 5)
    engine.add_record(ids[1], "review", {"score": "81.50", "at": "x"}, actor=PURCHASER)
    engine.add_record(ids[1], "note", {"text": "中文"}, actor=PURCHASER)
    engine.fire(ids[2], "approve", actor=PURCHASER)
    loaded = store.load_many([*ids, "ghost", ids[1]])
    assert sorted(loaded) == ids
    for pid in ids:
        assert loaded[pid] == store.load(pid)


def test_load_many_gives_each_project_its_own_times(make_store: StoreFactory) -> None:
    """Times shared by several rows and times of one row each are all read as stored.

    The bulk read parses each distinct stored time once per batch; projects created
    together and changed apart (and the other way round) keep their own times.
    """
    store = make_store(synchronous="NORMAL")
    ids = [f"t-{n}" for n in range(6)]
    for n, pid in enumerate(ids):
        store.commit(submission(pid, at=T0 + timedelta(minutes=n % 2)))
    for n, pid in enumerate(ids[:4]):
        project = store.load(pid)
        assert project is not None
        store.commit(transition(project, "reviewed", at=T0 + timedelta(hours=1, seconds=n)))
    loaded = store.load_many(ids)
    for n, pid in enumerate(ids):
        assert loaded[pid] == store.load(pid)
        assert loaded[pid].created_at == T0 + timedelta(minutes=n % 2)
        expected = T0 + timedelta(hours=1, seconds=n) if n < 4 else T0 + timedelta(minutes=n % 2)
        assert loaded[pid].updated_at == expected


def test_chain_tips_equal_chain_tip(make_store: StoreFactory) -> None:
    """The batch read of chain tips equals chain_tip() for every id that has a chain.

    A refused submission's chain (no project row) is read too; ids without a chain are
    left out. Regression: a bulk submission queried each item's chain on its own, which
    made bulk submit several times slower than bulk approve.
    """
    store = make_store(synchronous="NORMAL")
    engine = _engine(store)
    ids = _seed(engine, 3)
    engine.fire(ids[0], "approve", actor=PURCHASER)
    refused = engine.submit(actor=PURCHASER, project_id="refused")  # not an applicant
    assert not refused.accepted
    tips = store.chain_tips([*ids, "refused", "ghost", ids[0]])
    assert tips == {pid: store.chain_tip(pid) for pid in [*ids, "refused"]}
    assert tips[ids[0]][0] == 2


def test_bulk_records_on_sql_equal_single_records(make_store: StoreFactory) -> None:
    """Records added in bulk on SQL read back exactly like records added one by one."""
    store = make_store(synchronous="NORMAL")
    engine = _engine(store)
    ids = _seed(engine, 3)
    result = engine.fire_many(
        "record.service",
        [(pid, {"activities": 2, "domain": "legal_aid"}) for pid in ids],
        actor=APPLICANT,
        chunk_size=2,
    )
    assert result.counts == {"applied": 3}
    engine.add_record(ids[0], "service", {"activities": 1}, actor=APPLICANT)
    project = engine.get(ids[0])
    assert [r.data for r in project.records] == [
        {"activities": 2, "domain": "legal_aid"},
        {"activities": 1},
    ]
    assert project == engine.replay(ids[0])
    assert engine.verify().ok


def test_bulk_submissions_on_sql(make_store: StoreFactory) -> None:
    """Submissions in bulk create projects and chains on SQL exactly like single ones."""
    store = make_store(synchronous="NORMAL")
    engine = _engine(store)
    engine.submit(actor=APPLICANT, project_id="taken")
    items = [(f"n{i}", {"title": f"T{i}"}) for i in range(30)] + [("taken", {"title": "x"})]
    result = engine.fire_many("submit", items, actor=APPLICANT, chunk_size=12)
    assert result.counts == {"applied": 30, "invalid": 1}
    assert engine.get("n7").data["title"] == "T7"
    assert engine.replay("n7") == engine.get("n7")
    assert engine.verify().ok
