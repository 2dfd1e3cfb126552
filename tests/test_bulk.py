"""Tests for grantflow.bulk and grantflow._bulk: Engine.fire_many on the memory store."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal

import pytest

import grantflow
from grantflow import Actor, Engine, IdempotencyKeyInUse, IdempotencyKeyMismatch
from grantflow.bulk import BulkItem, BulkResult, Worker
from grantflow.models import Verdict
from grantflow.persistence import Change, ChunkProgress, MemoryStore
from grantflow.rules import PASS, FactRequest, RuleBook, RuleContext, refuse

APPLICANT = Actor(id="org-1", roles=frozenset({"applicant"}))
PURCHASER = Actor(id="staff-1", roles=frozenset({"purchaser"}))


def _engine(store: MemoryStore | None = None, rules: RuleBook | None = None) -> Engine:
    return grantflow.open(store or MemoryStore(), rules=rules or RuleBook(), discover_rules=False)


def _seed(engine: Engine, n: int) -> list[str]:
    return [engine.submit(actor=APPLICANT, project_id=f"p{i:05d}").project_id for i in range(n)]


def test_every_item_gets_a_result_and_failures_do_not_stop_the_run() -> None:
    """Applied, refused, not found and invalid items are all counted; the rest go on."""
    engine = _engine()
    ids = _seed(engine, 20)
    engine.fire(ids[3], "reject", actor=PURCHASER)
    items: list[object] = [*ids, "ghost", ("p00001", {"x": 0.5}), 42]
    result = engine.fire_many("approve", items, actor=PURCHASER, chunk_size=7)  # type: ignore[arg-type]
    assert result.counts == {"applied": 19, "refused": 1, "not_found": 1, "invalid": 2}
    assert not result.ok
    by_index = {r.index: r for r in result.items}
    assert by_index[3].status == "refused"
    assert [r.code for r in by_index[3].refusals] == ["lifecycle.no_edge"]
    assert by_index[20].status == "not_found"
    assert "floats" in by_index[21].error
    assert by_index[22].status == "invalid"
    assert all(engine.get(pid).state == "reviewed" for i, pid in enumerate(ids) if i != 3)
    assert engine.verify().ok


def test_bulk_behaves_exactly_like_single_fires() -> None:
    """The audit entries and states a bulk run writes match firing one by one."""
    single, bulk = _engine(), _engine()
    ids = _seed(single, 10)
    _seed(bulk, 10)
    for pid in ids:
        single.fire(pid, "approve", actor=PURCHASER, evidence={"note": "ok"})
    bulk.fire_many("approve", [(pid, {"note": "ok"}) for pid in ids], actor=PURCHASER)
    for pid in ids:
        a, b = single.history(pid)[-1], bulk.history(pid)[-1]
        assert (a.event, a.accepted, a.to_state, a.evidence, a.seq) == (
            b.event,
            b.accepted,
            b.to_state,
            b.evidence,
            b.seq,
        )
        assert single.get(pid).state == bulk.get(pid).state


def test_same_key_same_input_replays_without_writing() -> None:
    """A second run with the same key and input returns the stored result, writes nothing."""
    engine = _engine()
    ids = _seed(engine, 12)
    first = engine.fire_many("approve", ids, actor=PURCHASER, idempotency_key="job-1")
    versions = {pid: engine.get(pid).version for pid in ids}
    again = engine.fire_many("approve", ids, actor=PURCHASER, idempotency_key="job-1")
    assert again.replayed
    assert again.counts == first.counts == {"applied": 12}
    assert {pid: engine.get(pid).version for pid in ids} == versions


def test_same_key_other_input_raises_mismatch() -> None:
    """Reusing a key for different items, event or actor raises IdempotencyKeyMismatch."""
    engine = _engine()
    ids = _seed(engine, 5)
    engine.fire_many("approve", ids, actor=PURCHASER, idempotency_key="job-1")
    with pytest.raises(IdempotencyKeyMismatch):
        engine.fire_many("approve", ids[:4], actor=PURCHASER, idempotency_key="job-1")
    with pytest.raises(IdempotencyKeyMismatch):
        engine.fire_many("reject", ids, actor=PURCHASER, idempotency_key="job-1")
    other = Actor(id="staff-2", roles=frozenset({"purchaser"}))
    with pytest.raises(IdempotencyKeyMismatch):
        engine.fire_many("approve", ids, actor=other, idempotency_key="job-1")


def test_streamed_input_is_checked_chunk_by_chunk() -> None:
    """A one-shot iterator with changed content under a used key is caught at its chunk."""
    engine = _engine()
    ids = _seed(engine, 10)
    engine.fire_many("approve", iter(ids), actor=PURCHASER, idempotency_key="s", chunk_size=4)
    with pytest.raises(IdempotencyKeyMismatch, match="chunk 1"):
        engine.fire_many(
            "approve",
            iter([*ids[:4], "x", *ids[5:]]),
            actor=PURCHASER,
            idempotency_key="s",
            chunk_size=4,
        )


class CrashingStore(MemoryStore):
    """Dies (raises) on the n-th chunk commit, as a killed process would, mid-run."""

    def __init__(self, crash_at: int) -> None:
        super().__init__()
        self.commits = 0
        self.crash_at = crash_at

    def commit_chunk(
        self, changes: Sequence[Change], progress: ChunkProgress, *, now: float, lease: float
    ) -> None:
        self.commits += 1
        if self.commits == self.crash_at:
            raise KeyboardInterrupt("killed")
        super().commit_chunk(changes, progress, now=now, lease=lease)


def test_crashed_run_resumes_and_transitions_each_project_once() -> None:
    """After a crash, the same key finishes what is left; no project is fired twice."""
    store = CrashingStore(crash_at=3)
    engine = _engine(store)
    ids = _seed(engine, 50)
    with pytest.raises(KeyboardInterrupt):
        engine.fire_many(
            "approve", ids, actor=PURCHASER, idempotency_key="k", chunk_size=10, lease_seconds=0.0
        )
    done_before = sum(engine.get(pid).state == "reviewed" for pid in ids)
    assert done_before == 20
    result = engine.fire_many("approve", ids, actor=PURCHASER, idempotency_key="k", chunk_size=10)
    assert result.counts == {"applied": 50}
    for pid in ids:
        assert [e.event for e in engine.history(pid)] == ["submit", "approve"]
    assert engine.verify().ok


def test_a_live_run_holds_its_key() -> None:
    """While another run's lease is alive, the same key raises IdempotencyKeyInUse."""
    store = CrashingStore(crash_at=1)
    engine = _engine(store)
    ids = _seed(engine, 5)
    with pytest.raises(KeyboardInterrupt):
        engine.fire_many("approve", ids, actor=PURCHASER, idempotency_key="k", lease_seconds=60)
    with pytest.raises(IdempotencyKeyInUse):
        engine.fire_many("approve", ids, actor=PURCHASER, idempotency_key="k")


def test_workers_of_one_run_share_a_key() -> None:
    """Two workers with the same run id cooperate; their chunks add up to one job."""
    engine = _engine()
    ids = _seed(engine, 30)
    a = engine.fire_many(
        "approve",
        ids,
        actor=PURCHASER,
        idempotency_key="w",
        chunk_size=10,
        worker=Worker(run_id="run-1", owner="a"),
        stop_on_error=False,
    )
    b = engine.fire_many(
        "approve",
        ids,
        actor=PURCHASER,
        idempotency_key="w",
        chunk_size=10,
        worker=Worker(run_id="run-1", owner="b"),
    )
    assert a.counts == b.counts == {"applied": 30}
    assert b.replayed


def test_duplicate_ids_in_one_chunk_are_applied_in_order() -> None:
    """The same project twice in a chunk: the first applies, the second is refused."""
    engine = _engine()
    ids = _seed(engine, 3)
    result = engine.fire_many("approve", [ids[0], ids[1], ids[0]], actor=PURCHASER)
    assert result.counts == {"applied": 2, "refused": 1}
    assert result.items[0].index == 2
    assert engine.get(ids[0]).version == 3


def test_stop_on_error_stops_after_the_failing_chunk() -> None:
    """With stop_on_error, chunks after the first failure are left for a later run."""
    engine = _engine()
    ids = _seed(engine, 30)
    result = engine.fire_many(
        "approve",
        ["ghost", *ids],
        actor=PURCHASER,
        chunk_size=10,
        stop_on_error=True,
        idempotency_key="stop",
    )
    assert result.counts == {"not_found": 1, "applied": 9}
    assert sum(engine.get(pid).state == "reviewed" for pid in ids) == 9


def test_dry_run_decides_and_writes_nothing() -> None:
    """dry_run reports what would happen and leaves every project untouched."""
    engine = _engine(rules=RuleBook().on("approve", _odd_refused))
    ids = _seed(engine, 6)
    result = engine.fire_many("approve", ids, actor=PURCHASER, dry_run=True, keep="all")
    assert result.dry_run
    assert result.counts == {"applied": 3, "refused": 3}
    assert len(result.items) == 6
    assert all(engine.get(pid).version == 1 for pid in ids)


def _odd_refused(ctx: RuleContext) -> Verdict:
    if int(ctx.project.id[1:]) % 2:
        return refuse("t.odd", "odd ids wait", "单号等待")
    return PASS


@pytest.mark.parametrize("dry_run", [False, True])
@pytest.mark.parametrize("keep", ["failures", "all"])
def test_counts_are_the_same_whatever_is_kept(
    keep: Literal["failures", "all"], dry_run: bool
) -> None:
    """Applied items are counted whether or not their results are kept, in runs and dry runs.

    With ``keep="failures"`` no result is built for an applied item; the counts and the
    kept refusals are those of ``keep="all"``.
    """
    engine = _engine(rules=RuleBook().on("approve", _odd_refused))
    ids = _seed(engine, 9)
    result = engine.fire_many(
        "approve", [*ids, "ghost"], actor=PURCHASER, chunk_size=4, keep=keep, dry_run=dry_run
    )
    assert result.counts == {"applied": 5, "refused": 4, "not_found": 1}
    kept = {r.index: r.status for r in result.items}
    failures = {1: "refused", 3: "refused", 5: "refused", 7: "refused", 9: "not_found"}
    if keep == "all":
        assert kept == {**dict.fromkeys(range(0, 9, 2), "applied"), **failures}
        assert all(r.state == "reviewed" for r in result.items if r.status == "applied")
    else:
        assert kept == failures


def test_progress_and_keep_all() -> None:
    """Progress is told how many items finished; keep='all' keeps applied results too."""
    engine = _engine()
    ids = _seed(engine, 25)
    seen: list[int] = []
    result = engine.fire_many(
        "approve", ids, actor=PURCHASER, chunk_size=10, keep="all", progress=seen.append
    )
    assert sum(seen) == 25
    assert [r.index for r in result.items] == list(range(25))
    assert isinstance(result, BulkResult)
    assert result.to_dict()["counts"] == {"applied": 25}


def test_items_stream_lazily() -> None:
    """Items are pulled a chunk at a time, never all at once."""
    engine = _engine()
    ids = _seed(engine, 30)
    pulled: list[int] = []

    def gen() -> Iterator[BulkItem]:
        for i, pid in enumerate(ids):
            pulled.append(i)
            yield BulkItem(pid, {}, row=i + 2)

    first_chunk_seen: list[int] = []
    engine.fire_many(
        "approve",
        gen(),
        actor=PURCHASER,
        chunk_size=10,
        progress=lambda n: first_chunk_seen.append(len(pulled)),
    )
    assert first_chunk_seen[0] == 10


def test_records_can_be_added_in_bulk_through_their_rules() -> None:
    """fire_many('record.<kind>') adds one audited record per item, gated by its rules."""

    def needs_invoice(ctx: RuleContext) -> Verdict:
        if ctx.evidence["record"]["data"].get("invoice"):
            return PASS
        return refuse("funds.invoice", "invoice missing", "缺少发票")

    engine = _engine(rules=RuleBook().on("record.expenditure", needs_invoice))
    ids = _seed(engine, 4)
    items = [(pid, {"invoice": f"F-{n}", "amount": "10.00"}) for n, pid in enumerate(ids)]
    items.append((ids[0], {"amount": "5.00"}))
    result = engine.fire_many("record.expenditure", items, actor=APPLICANT)
    assert result.counts == {"applied": 4, "refused": 1}
    assert [r.code for r in result.items[0].refusals] == ["funds.invoice"]
    first = engine.get(ids[0])
    assert [r.data["invoice"] for r in first.records_of("expenditure")] == ["F-0"]
    assert first.state == "applied"
    assert engine.replay(ids[0]) == first
    assert engine.verify().ok


def test_facts_see_earlier_items_of_the_same_chunk() -> None:
    """A duplicate inside one chunk is caught, as it would be by firing one by one."""

    def uses(request: FactRequest) -> int:
        number = request.evidence["record"]["data"]["invoice"]
        return len(request.reader.find_records("expenditure", "invoice", [number]))

    def unique(ctx: RuleContext) -> Verdict:
        if ctx.facts["uses"]:
            return refuse("funds.duplicate_invoice", "invoice used before", "发票重复")
        return PASS

    book = RuleBook().provide("uses", uses, events=["record.expenditure"])
    engine = _engine(rules=book.on("record.expenditure", unique))
    ids = _seed(engine, 3)
    items = [(ids[0], {"invoice": "A"}), (ids[1], {"invoice": "B"}), (ids[2], {"invoice": "A"})]
    result = engine.fire_many("record.expenditure", items, actor=APPLICANT, chunk_size=10)
    assert result.counts == {"applied": 2, "refused": 1}
    assert result.items[0].project_id == ids[2]


def test_submissions_in_bulk_behave_like_submit() -> None:
    """fire_many('submit') creates projects from item data; refusals and taken ids reported."""

    def needs_title(ctx: RuleContext) -> Verdict:
        return PASS if ctx.project.data.get("title") else refuse("t.title", "no title", "无标题")

    engine = _engine(rules=RuleBook().on("submit", needs_title))
    engine.submit(actor=APPLICANT, project_id="taken", data={"title": "old"})
    items = [
        ("n1", {"title": "Skills"}),
        ("n2", {}),
        ("taken", {"title": "again"}),
        ("n2", {"title": "second try"}),
    ]
    result = engine.fire_many("submit", items, actor=APPLICANT, idempotency_key="intake")
    assert result.counts == {"applied": 2, "refused": 1, "invalid": 1}
    assert engine.get("n1").data["title"] == "Skills"
    assert engine.get("n1").data["policy_version"] == engine.policy.version
    assert [(e.seq, e.accepted) for e in engine.history("n2")] == [(1, False), (2, True)]
    assert engine.get("n2").version == 2
    single = _engine(rules=RuleBook().on("submit", needs_title))
    single.submit(actor=APPLICANT, project_id="n1", data={"title": "Skills"})
    a, b = single.history("n1")[0], engine.history("n1")[0]
    assert (a.kind, a.to_state, a.data, a.evidence) == (b.kind, b.to_state, b.data, b.evidence)
    assert engine.verify().ok


# -- hostile input (issue 10) --------------------------------------------------------------


def test_fire_many_without_items_is_invalid_input() -> None:
    """fire_many(event, None) raises InvalidInput naming items, not a TypeError."""
    engine = _engine()
    with pytest.raises(grantflow.InvalidInput) as info:
        engine.fire_many("approve", None, actor=PURCHASER)  # type: ignore[arg-type]
    assert info.value.field == "items"
    with pytest.raises(grantflow.InvalidInput):
        engine.fire_many("approve", "p00001", actor=PURCHASER)


def _deep(depth: int) -> dict[str, object]:
    root: dict[str, object] = {}
    cursor = root
    for _ in range(depth):
        child: dict[str, object] = {}
        cursor["a"] = child
        cursor = child
    return root


def test_hostile_evidence_is_invalid_per_item_and_the_rest_apply() -> None:
    """Deep nesting, lone surrogates and huge integers fail their own item only."""
    engine = _engine()
    ids = _seed(engine, 5)
    items = [
        (ids[0], _deep(10_000)),
        (ids[1], {"note": "\ud800"}),
        (ids[2], {"n": 10**5000}),
        ids[3],
        BulkItem(ids[4], {"k\ud800": 1}),
    ]
    result = engine.fire_many("approve", items, actor=PURCHASER)
    assert result.counts == {"invalid": 4, "applied": 1}
    assert {r.index for r in result.items if r.status == "invalid"} == {0, 1, 2, 4}
    assert engine.get(ids[3]).state == "reviewed"
    assert {engine.get(pid).version for pid in (ids[0], ids[1], ids[2], ids[4])} == {1}
    again = engine.fire_many("approve", items, actor=PURCHASER, idempotency_key=result.key)
    assert again.counts == result.counts  # the digest of hostile input is stable


def test_bulk_file_with_bad_row_applies_the_good_rows(tmp_path: Path) -> None:
    """A JSONL file with a lone-surrogate row: that row is reported, the others applied."""
    from grantflow.inputs import RowError, read_items

    engine = _engine()
    ids = _seed(engine, 3)
    path = tmp_path / "in.jsonl"
    path.write_text(
        f'{{"id":"{ids[0]}"}}\n{{"id":"{ids[1]}","note":"\\ud800"}}\n{{"id":"{ids[2]}"}}\n',
        encoding="utf-8",
    )
    rows = list(read_items(path))
    bad = [r for r in rows if isinstance(r, RowError)]
    assert [r.row for r in bad] == [2]
    result = engine.fire_many(
        "approve", [r for r in rows if isinstance(r, BulkItem)], actor=PURCHASER
    )
    assert result.counts == {"applied": 2}
    assert [engine.get(pid).state for pid in ids] == ["reviewed", "applied", "reviewed"]


def test_items_that_are_not_ids_never_crash_the_run() -> None:
    """A deeply nested list or a 5,000-digit integer as an item is one invalid result."""
    engine = _engine()
    ids = _seed(engine, 1)
    deep: object = []
    for _ in range(5000):
        deep = [deep]
    result = engine.fire_many("approve", [deep, 10**5000, (deep, None), ids[0]], actor=PURCHASER)
    assert result.counts == {"invalid": 3, "applied": 1}
    assert all(len(r.project_id) <= 128 for r in result.items)
