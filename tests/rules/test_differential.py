"""Single calls, bulk runs and dry runs decide alike under the default regime.

The three drivers of the decision core must agree item for item: `fire_many` gives the
same outcomes, the same audit entries and the same projects as firing one by one, and a
dry run reports exactly what the real run then does. Hypothesis draws sequences of
submissions, records and events (refusals, unknown ids and repeated items included) and
runs them on twin worlds, on memory and on SQLite.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grantflow import Actor, ProjectNotFound
from grantflow.bulk import BulkItem
from grantflow.errors import InvalidInput, ProjectExists

if TYPE_CHECKING:
    from conftest import World

#: Projects the steps act on: three seeded ones (applied with two reviews, reviewed,
#: contracted with one expenditure), ids the steps may submit, and one never used.
POOL = ("s1", "s2", "s3", "p1", "p2", "p3", "p9")
NEW = ("p1", "p2", "p3")
#: The seeded project where each event most often has a chance, drawn more often.
LIKELY = {
    "record.review": "s1",
    "approve": "s1",
    "sign": "s2",
    "record.expenditure": "s3",
    "record.service": "s3",
}
EVENTS = (
    "submit",
    "record.review",
    "approve",
    "sign",
    "record.expenditure",
    "record.service",
    "reject",
    "withdraw",
)

Result = tuple[str, str | None, tuple[str, ...]]
#: How far the seeding moves the clock (publicity before signing).
SEEDED_DAYS = 9


@dataclass(frozen=True)
class Item:
    project_id: str
    evidence: dict[str, Any]
    actor: str  # a name resolved against the world's actors


@dataclass(frozen=True)
class Step:
    event: str
    items: tuple[Item, ...]
    days: int
    chunk_size: int


def _actor(world: World, name: str) -> Actor:
    if name.startswith("r"):
        return world.reviewer(int(name[1:]))
    actor: Actor = getattr(world, name)
    return actor


@st.composite
def _item(draw: st.DrawFn, event: str) -> Item:  # noqa: PLR0911
    if event == "submit":
        pid = draw(st.sampled_from(NEW))
    elif event in LIKELY and draw(st.booleans()):
        pid = LIKELY[event]
    else:
        pid = draw(st.sampled_from(POOL))
    if event == "submit":
        data: dict[str, Any] = {
            "provider": draw(st.sampled_from(["org-a", "org-b"])),
            "amount_requested": draw(st.sampled_from(["120000.00", "90000.00"])),
        }
        who = draw(st.sampled_from(["applicant", "applicant", "other_applicant", "approver"]))
        return Item(pid, data, who)
    if event == "record.review":
        n = draw(st.integers(1, 4))
        evidence = {
            "n": n,
            "percent": draw(st.sampled_from([40, 80, 95])),
            "declared": draw(st.booleans()),
        }
        return Item(pid, evidence, draw(st.sampled_from([f"r{n}", f"r{n}", "applicant"])))
    if event == "approve":
        amount = draw(st.sampled_from(["100000.00", "130000.00"]))
        who = draw(st.sampled_from(["approver", "approver", "applicant"]))
        return Item(pid, {"recommended_amount": amount}, who)
    if event == "sign":
        amount = draw(st.sampled_from(["100000.00", "150000.00"]))
        return Item(pid, {"amount": amount}, draw(st.sampled_from(["treasurer", "approver"])))
    if event == "record.expenditure":
        invoice = draw(st.sampled_from(["INV-1", "INV-2", "INV-3"]))
        amount = draw(st.sampled_from(["3000.00", "45000.00"]))
        return Item(pid, {"invoice": invoice, "amount": amount}, "applicant")
    if event == "record.service":
        activities = draw(st.integers(0, 3))
        return Item(pid, {"activities": activities, "person_times": 10 * activities}, "applicant")
    who = "approver" if event == "reject" else draw(st.sampled_from(["applicant", "approver"]))
    return Item(pid, {"reason": draw(st.sampled_from(["", "duplicate of another"]))}, who)


@st.composite
def _steps(draw: st.DrawFn) -> list[Step]:
    steps = []
    for _ in range(draw(st.integers(1, 7))):
        event = draw(st.sampled_from(EVENTS))
        items = tuple(draw(st.lists(_item(event), min_size=1, max_size=5)))
        days = draw(st.sampled_from([0, 0, 1, 9]))
        steps.append(Step(event, items, days, draw(st.integers(1, 4))))
    return steps


def _payload(world: World, event: str, item: Item) -> dict[str, Any]:
    """The evidence (or data) the item sends, built from the drawn parameters."""
    e = item.evidence
    if event == "submit":
        return world.application(**e)
    if event == "record.review":
        return {
            "reviewer": f"r{e['n']}",
            "rubric": "approval",
            "rubric_version": 1,
            "scores": _scores(e["percent"]),
            "conflict": {"declared": e["declared"]},
        }
    if event == "sign":
        return world.sign_evidence(amount=e["amount"])
    if event == "record.expenditure":
        return {
            "date": "2025-05-01",
            "line": "activities",
            "amount": e["amount"],
            "invoice_number": e["invoice"],
            "voucher": f"V-{e['invoice']}",
        }
    if event == "record.service":
        return {"date": "2025-05-02", "domain": "mental_health", **e}
    return dict(e)


def _scores(percent: int) -> dict[str, Any]:
    from grantflow.rubrics import APPROVAL_REVIEW

    return APPROVAL_REVIEW.proportional(percent)


def _single(world: World, event: str, item: Item) -> Result:
    """Apply one item through submit / fire / add_record and describe the outcome."""
    engine, actor = world.engine, _actor(world, item.actor)
    payload = _payload(world, event, item)
    try:
        if event == "submit":
            out = engine.submit(actor=actor, data=payload, project_id=item.project_id)
        elif event.startswith("record."):
            out = engine.add_record(
                item.project_id, event.removeprefix("record."), payload, actor=actor
            )
        else:
            out = engine.fire(item.project_id, event, actor=actor, evidence=payload)
    except ProjectNotFound:
        return "not_found", None, ()
    except (ProjectExists, InvalidInput):
        return "invalid", None, ()
    status = "applied" if out.accepted else "refused"
    return status, out.state, tuple(r.code for r in out.refusals)


def _bulk(world: World, step: Step, *, dry_run: bool) -> list[Result]:
    items = [
        BulkItem(i.project_id, _payload(world, step.event, i), n + 1, _actor(world, i.actor))
        for n, i in enumerate(step.items)
    ]
    result = world.engine.fire_many(
        step.event,
        items,
        actor=world.approver,
        chunk_size=step.chunk_size,
        keep="all",
        dry_run=dry_run,
    )
    assert [r.index for r in result.items] == list(range(len(items)))
    return [
        (
            r.status,
            None if r.status == "invalid" else r.state,
            tuple(x.code for x in r.refusals),
        )
        for r in result.items
    ]


def _snapshot(world: World) -> dict[str, Any]:
    engine = world.engine
    seen: dict[str, Any] = {}
    for pid in POOL:
        entries = list(engine.store.entries(pid))
        project = engine.store.load(pid)
        seen[pid] = (entries, project)
    return seen


def _seeded(world: World) -> World:
    """The same three projects in every world, through single calls with fixed ids."""
    engine = world.engine
    engine.submit(actor=world.applicant, data=world.application(), project_id="s1")
    engine.submit(
        actor=world.other_applicant, data=world.application(provider="org-b"), project_id="s2"
    )
    engine.submit(actor=world.applicant, data=world.application(), project_id="s3")
    for pid in ("s2", "s3"):
        for n in (1, 2, 3):
            world.review(pid, n).raise_for_refusal()
        world.approve(pid).raise_for_refusal()
    world.review("s1", 1).raise_for_refusal()
    world.review("s1", 2).raise_for_refusal()
    world.clock.advance(SEEDED_DAYS)
    world.sign("s3").raise_for_refusal()
    world.spend("s3", "2000.00", "INV-1").raise_for_refusal()
    return world


def _check_equal(one: World, many: World, steps: list[Step]) -> None:
    """`one` takes each item as a single call, `many` as a dry run then a real bulk run."""
    for step in steps:
        one.clock.advance(step.days)
        many.clock.advance(step.days)
        expected = [_single(one, step.event, item) for item in step.items]
        dry = _bulk(many, step, dry_run=True)
        real = _bulk(many, step, dry_run=False)
        assert dry == real, f"dry run differs from the real run of {step.event}"
        assert real == expected, f"bulk {step.event} differs from single calls"
    assert _snapshot(many) == _snapshot(one)
    assert many.engine.verify().ok


@pytest.fixture
def sqlite_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="grantflow-diff-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


DIFF = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.mark.slow
@DIFF
@given(steps=_steps())
def test_bulk_and_dry_run_equal_single_calls_in_memory(
    make_world: Callable[..., World], steps: list[Step]
) -> None:
    """On memory: fire_many = one call per item = dry run, under the default regime."""
    _check_equal(_seeded(make_world()), _seeded(make_world()), steps)


@pytest.mark.slow
@DIFF
@given(steps=_steps())
def test_bulk_and_dry_run_equal_single_calls_on_sqlite(
    make_world: Callable[..., World], sqlite_dir: Path, steps: list[Step]
) -> None:
    """On SQLite: fire_many = dry run = one call per item (in memory), default regime.

    The single calls run on the memory store: the decision cannot depend on the store
    (the memory property above holds single = bulk there), and comparing the entries and
    projects read back from SQLite with memory's also holds the two stores equal.
    """
    template = sqlite_dir / "template.db"
    if not template.exists():  # the seeded database, built once and copied for each run
        world = _seeded(make_world(url=f"sqlite:///{template}", synchronous="NORMAL"))
        world.engine.close()
    copy = sqlite_dir / f"{uuid.uuid4().hex}.db"
    shutil.copyfile(template, copy)
    # No fsync per commit: this test is about decisions, not durability.
    many = make_world(url=f"sqlite:///{copy}", seed=False, synchronous="NORMAL")
    many.clock.advance(SEEDED_DAYS)
    try:
        _check_equal(_seeded(make_world()), many, steps)
    finally:
        many.engine.close()


# -- the regressions these properties first caught --------------------------------------


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
def test_bulk_submissions_respect_the_application_limit(
    make_world: Callable[..., World], tmp_path: Path, backend: str
) -> None:
    """Three submissions of one provider in one call: the third is refused, in bulk too."""
    url = None if backend == "memory" else f"sqlite:///{tmp_path / 'limit.db'}"
    single, bulk = make_world(url=url), make_world(url=f"{url}-bulk" if url else None)
    outcomes = [single.submit().accepted for _ in range(3)]
    assert outcomes == [True, True, False]
    items = [BulkItem(f"n{n}", bulk.application(), n + 1) for n in range(3)]
    result = bulk.engine.fire_many("submit", items, actor=bulk.applicant, keep="all")
    assert [r.status for r in result.items] == ["applied", "applied", "refused"]
    assert [r.code for r in result.items[2].refusals] == ["eligibility.limit"]


def test_dry_run_of_records_equals_the_real_run(make_world: Callable[..., World]) -> None:
    """A bulk record.service dry run sees the record as add_record does (not raw evidence)."""
    world = make_world()
    pid = world.contracted()
    world.clock.advance(60)  # service records are dated in the term, never in the future
    data = {"date": "2025-05-02", "domain": "mental_health", "activities": 2, "person_times": 30}
    dry = world.engine.fire_many(
        "record.service", [(pid, data)], actor=world.applicant, dry_run=True, keep="all"
    )
    real = world.engine.fire_many(
        "record.service", [(pid, data)], actor=world.applicant, keep="all"
    )
    assert [(r.status, r.refusals) for r in dry.items] == [("applied", ())]
    assert [(r.status, r.refusals) for r in real.items] == [("applied", ())]
