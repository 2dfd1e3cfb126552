"""The job-store contract: the tests a `JobStore` backend must pass to run bulk jobs.

`fire_many` relies on four promises of the store's bulk half: a job key binds one event
and one input; a live run holds its key and its chunks; a chunk's changes and its
progress commit together or not at all; and a run that died can be taken over.
Subclass `JobStoreContract` and provide a ``store`` fixture yielding an empty store that
is both a `Store` and a `JobStore`::

    import pytest
    from grantflow.persistence import MemoryStore
    from grantflow.testing.job_contract import JobStoreContract

    class TestMemoryJobs(JobStoreContract):
        @pytest.fixture
        def store(self):
            yield MemoryStore()

Times are passed in (``now``, ``lease`` in seconds), so the tests need no sleeping.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import pytest

from grantflow.errors import ConcurrencyError, IdempotencyKeyInUse, IdempotencyKeyMismatch
from grantflow.persistence import ChunkProgress, JobStore, Store
from grantflow.testing.store_contract import submission, transition

__all__ = ["DEAD_OWNER", "JobStoreContract", "progress"]

#: An owner id naming a process of this host that cannot exist (beyond Linux's pid_max).
DEAD_OWNER = f"{os.uname().nodename}:4194305:dead"
_NOW = 1_000_000.0  # a fixed "now" for leases, in seconds


def progress(
    key: str,
    chunk: int,
    owner: str,
    next_index: int,
    *,
    done: bool = False,
    counts: Mapping[str, int] | None = None,
    items: tuple[Mapping[str, Any], ...] = (),
    digest: str = "",
) -> ChunkProgress:
    """Return the progress a chunk commit records (a finished chunk carries a digest)."""
    return ChunkProgress(
        key=key,
        chunk=chunk,
        owner=owner,
        next_index=next_index,
        done=done,
        counts=dict(counts or {}),
        items=items,
        digest=digest or ("d" * 64 if done else ""),
    )


class JobStoreContract:
    """Contract tests for the `JobStore` half of a store; subclasses provide ``store``."""

    def test_is_a_job_store(self, store: Store) -> None:
        """The store implements the job-store protocol."""
        assert isinstance(store, JobStore)

    def test_a_new_job_is_running_and_empty(self, store: JobStore) -> None:
        """job_begin creates the job; job_get returns it as stored."""
        job = store.job_begin("k", event="approve", digest="x", run_id="r1", now=_NOW, lease=60)
        assert (job.key, job.event, job.status, job.run_id) == ("k", "approve", "running", "r1")
        assert (job.chunks_total, dict(job.counts), job.items) == (None, {}, ())
        assert store.job_get("k") == job
        assert store.job_get("other") is None

    def test_a_key_binds_its_event_and_input(self, store: JobStore) -> None:
        """The same key with another event or digest is a mismatch; an empty digest matches."""
        store.job_begin("k", event="approve", digest="x", run_id="r1", now=_NOW, lease=60)
        with pytest.raises(IdempotencyKeyMismatch):
            store.job_begin("k", event="sign", digest="x", run_id="r1", now=_NOW, lease=60)
        with pytest.raises(IdempotencyKeyMismatch):
            store.job_begin("k", event="approve", digest="y", run_id="r1", now=_NOW, lease=60)
        again = store.job_begin("k", event="approve", digest="", run_id="r1", now=_NOW, lease=60)
        assert again.digest == "x"

    def test_a_live_run_holds_its_key_until_its_lease_ends(self, store: JobStore) -> None:
        """Another run is refused while the lease lives, and takes over once it expired."""
        store.job_begin("k", event="approve", digest="x", run_id="r1", now=_NOW, lease=60)
        with pytest.raises(IdempotencyKeyInUse):
            store.job_begin("k", event="approve", digest="x", run_id="r2", now=_NOW + 1, lease=60)
        taken = store.job_begin(
            "k", event="approve", digest="x", run_id="r2", now=_NOW + 61, lease=60
        )
        assert taken.run_id == "r2"

    def test_workers_of_one_run_share_the_key(self, store: JobStore) -> None:
        """A second worker of the same run joins the job instead of being refused."""
        store.job_begin(
            "k", event="approve", digest="x", run_id="r1", now=_NOW, lease=60, owner="a"
        )
        joined = store.job_begin(
            "k", event="approve", digest="x", run_id="r1", now=_NOW + 1, lease=60, owner="b"
        )
        assert joined.run_id == "r1"

    def test_a_dead_holder_is_taken_over_at_once(self, store: JobStore) -> None:
        """A run whose holder is provably dead is taken over before its lease ends."""
        store.job_begin(
            "k", event="approve", digest="x", run_id="r1", now=_NOW, lease=600, owner=DEAD_OWNER
        )
        claim = store.chunk_claim("k", 0, start=0, end=2, owner=DEAD_OWNER, now=_NOW, lease=600)
        assert claim is not None
        alive = f"{os.uname().nodename}:{os.getpid()}:alive"
        taken = store.job_begin(
            "k", event="approve", digest="x", run_id="r2", now=_NOW + 1, lease=60, owner=alive
        )
        assert taken.run_id == "r2"
        reclaimed = store.chunk_claim("k", 0, start=0, end=2, owner=alive, now=_NOW + 1, lease=60)
        assert reclaimed is not None
        assert reclaimed.owner == alive

    def test_a_chunk_is_held_by_one_owner(self, store: JobStore) -> None:
        """A claimed chunk is refused to others while its lease lives, free after."""
        store.job_begin("k", event="approve", digest="x", run_id="r1", now=_NOW, lease=60)
        first = store.chunk_claim("k", 0, start=0, end=3, owner="a", now=_NOW, lease=60)
        assert first is not None
        assert (first.start, first.end, first.next_index) == (0, 3, 0)
        assert store.chunk_claim("k", 0, start=0, end=3, owner="b", now=_NOW + 1, lease=60) is None
        later = store.chunk_claim("k", 0, start=0, end=3, owner="b", now=_NOW + 61, lease=60)
        assert later is not None
        assert later.owner == "b"

    def test_changes_and_progress_commit_together(self, store: Store) -> None:
        """commit_chunk applies the changes and records progress; a resumed claim sees it."""
        jobs = _jobs(store)
        store.commit(submission("p1"))
        project = store.load("p1")
        assert project is not None
        jobs.job_begin("k", event="approve", digest="x", run_id="r1", now=_NOW, lease=60)
        assert jobs.chunk_claim("k", 0, start=0, end=2, owner="a", now=_NOW, lease=60) is not None
        kept = ({"index": 1, "project_id": "p9", "status": "not_found"},)
        jobs.commit_chunk(
            [transition(project, "reviewed")],
            progress("k", 0, "a", 2, counts={"applied": 1, "not_found": 1}, items=kept),
            now=_NOW,
            lease=60,
        )
        moved = store.load("p1")
        assert moved is not None
        assert moved.state == "reviewed"
        job = jobs.job_get("k")
        assert job is not None
        assert dict(job.counts) == {"applied": 1, "not_found": 1}
        assert [dict(i) for i in job.items] == [dict(kept[0])]

    def test_a_lost_compare_and_set_writes_nothing(self, store: Store) -> None:
        """If one change of a chunk loses its race, no change and no progress is written."""
        jobs = _jobs(store)
        store.commit(submission("p1"))
        store.commit(submission("p2"))
        p1, p2 = store.load("p1"), store.load("p2")
        assert p1 is not None
        assert p2 is not None
        store.commit(transition(p2, "reviewed"))  # p2 moves on behind the chunk's back
        jobs.job_begin("k", event="approve", digest="x", run_id="r1", now=_NOW, lease=60)
        jobs.chunk_claim("k", 0, start=0, end=2, owner="a", now=_NOW, lease=60)
        with pytest.raises(ConcurrencyError) as info:
            jobs.commit_chunk(
                [transition(p1, "reviewed"), transition(p2, "reviewed")],
                progress("k", 0, "a", 2, counts={"applied": 2}),
                now=_NOW,
                lease=60,
            )
        assert info.value.index in {0, 1}  # a position in the chunk (not a lease problem)
        unchanged = store.load("p1")
        assert unchanged is not None
        assert unchanged.state == "applied"
        job = jobs.job_get("k")
        assert job is not None
        assert dict(job.counts) == {}

    def test_a_taken_over_chunk_cannot_be_committed_by_its_old_owner(self, store: Store) -> None:
        """After another owner claims an expired chunk, the old owner's commit is refused."""
        jobs = _jobs(store)
        jobs.job_begin("k", event="approve", digest="x", run_id="r1", now=_NOW, lease=60)
        jobs.chunk_claim("k", 0, start=0, end=1, owner="a", now=_NOW, lease=60)
        jobs.chunk_claim("k", 0, start=0, end=1, owner="b", now=_NOW + 61, lease=60)
        with pytest.raises(ConcurrencyError) as info:
            jobs.commit_chunk([], progress("k", 0, "a", 1), now=_NOW + 62, lease=60)
        assert info.value.index is None

    def test_a_job_is_done_when_every_chunk_is(self, store: JobStore) -> None:
        """job_end marks the job done once all its chunks finished; done chunks stay done."""
        store.job_begin("k", event="approve", digest="x", run_id="r1", now=_NOW, lease=60)
        for chunk in (0, 1):
            store.chunk_claim("k", chunk, start=chunk, end=chunk + 1, owner="a", now=_NOW, lease=60)
        store.commit_chunk([], progress("k", 0, "a", 1, done=True), now=_NOW, lease=60)
        assert store.job_end("k", run_id="r1", chunks_total=2).status == "running"
        store.commit_chunk([], progress("k", 1, "a", 2, done=True), now=_NOW, lease=60)
        done = store.job_end("k", run_id="r1", chunks_total=2)
        assert (done.status, done.chunks_total) == ("done", 2)
        assert set(done.chunk_digests) == {0, 1}
        assert (
            store.chunk_claim("k", 0, start=0, end=1, owner="b", now=_NOW + 999, lease=60) is None
        )

    def test_load_many_returns_the_existing_projects_with_records(self, store: Store) -> None:
        """load_many equals load for every id that exists and omits the others."""
        jobs = _jobs(store)
        store.commit(submission("p1"))
        store.commit(submission("p2"))
        found = jobs.load_many(["p2", "nope", "p1"])
        assert set(found) == {"p1", "p2"}
        assert found["p1"] == store.load("p1")

    def test_chain_tips_read_every_chain_of_a_batch(self, store: Store) -> None:
        """chain_tips equals chain_tip for each id with a chain, refused submissions too."""
        jobs = _jobs(store)
        store.commit(submission("p1"))
        store.commit(transition(store.load("p1"), "reviewed"))  # type: ignore[arg-type]
        store.commit(submission("gone", accepted=False))
        tips = jobs.chain_tips(["p1", "nope", "gone", "p1"])
        assert tips == {"p1": store.chain_tip("p1"), "gone": store.chain_tip("gone")}
        assert tips["p1"][0] == 2


def _jobs(store: Store) -> JobStore:
    assert isinstance(store, JobStore)
    return store
