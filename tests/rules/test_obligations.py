"""Obligations under the default regime: dates, statuses, and the paths that must agree.

Three ways to know a project's due dates must always give the same answer: derived from
the stored project (`Engine.obligations`), derived from the project rebuilt from its
audit chain (`Engine.replay`), and the SQL store's index, written in the transaction of
each entry (single fires, bulk runs and sweeps alike). A Hypothesis property drives
projects through random steps and holds the three equal.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import grantflow
from grantflow import Engine
from grantflow.errors import InvalidInput
from grantflow.obligations import Obligation, Schedule
from grantflow.persistence.sql import SqlStore
from grantflow.testing import FrozenClock

if TYPE_CHECKING:
    from conftest import World


def _at(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(hour=1, tzinfo=UTC)


@pytest.fixture
def world_type(world: World) -> type[World]:
    """The conftest's World class (built on engines of our own below)."""
    return type(world)


def _signed(world: World, clock: FrozenClock, pid: str | None = None) -> str:
    pid = pid or world.reviewed()
    clock.advance(days=8)
    world.sign(pid).raise_for_refusal()
    return pid


def test_the_default_dates_of_a_signed_project(world_type: type[World]) -> None:
    """Each default obligation falls on the day the regime says, on the working-day calendar."""
    clock = FrozenClock()
    with grantflow.open(clock=clock) as engine:
        world = world_type(engine, clock).seed()  # type: ignore[arg-type]
        pid = _signed(world, clock)
        dates = {o.key: (o.due_on, o.status) for o in engine.obligations(pid)}
    assert dates == {
        "publicity_end:approval": (date(2025, 3, 10), "met"),
        "midterm_due": (date(2025, 9, 13), "open"),  # the middle of the term
        "progress_report:1": (date(2025, 6, 27), "open"),
        # 2025-09-28 is a Sunday worked in exchange for the National Day holiday (调休)
        "progress_report:2": (date(2025, 9, 28), "open"),
        "progress_report:3": (date(2025, 12, 29), "open"),
        "final_report_due": (date(2026, 4, 13), "open"),
        "contract_end": (date(2026, 3, 14), "open"),
    }


def test_derived_obligations_are_valid_models_and_their_rows_their_json(
    world_type: type[World],
) -> None:
    """Obligations built without validation equal validated ones; a row's data is the JSON."""
    clock = FrozenClock()
    with grantflow.open(clock=clock) as engine:
        world = world_type(engine, clock).seed()  # type: ignore[arg-type]
        pid = _signed(world, clock)
        found = engine.obligations(pid)
    assert len(found) == 7
    for obligation in found:
        assert Obligation.model_validate(obligation.model_dump()) == obligation
        row = obligation.to_row()
        assert dict(row.data) == obligation.model_dump(mode="json")
        assert list(row.data) == list(obligation.model_dump(mode="json"))
        assert Obligation.from_row(row) == obligation


def test_an_amended_term_moves_the_end_dates(world_type: type[World]) -> None:
    """An approved extension (a change of the term) moves contract end and final report."""
    clock = FrozenClock()
    with grantflow.open(clock=clock) as engine:
        world = world_type(engine, clock).seed()  # type: ignore[arg-type]
        pid = _signed(world, clock)
        ask = {"kind": "extension", "reason": "venue closed", "new_end": "2026-06-30"}
        req = engine.add_record(pid, "amendment_request", ask, actor=world.applicant)
        request_id = req.raise_for_refusal().entry.records[0].id  # type: ignore[union-attr]
        decision = {"request": request_id, "approved": True}
        engine.add_record(
            pid, "amendment_decision", decision, actor=world.approver
        ).raise_for_refusal()
        ends = {o.key: o.due_on for o in engine.obligations(pid)}
    assert ends["contract_end"] == date(2026, 6, 30)
    assert ends["progress_report:4"] == date(2026, 3, 27)  # a 4th period now ends in term


def test_refund_due_is_met_when_the_refund_is_paid(world_type: type[World]) -> None:
    """Termination with money to give back opens 退款 due; repayments in full meet it."""
    clock = FrozenClock()
    with grantflow.open(clock=clock) as engine:
        world = world_type(engine, clock).seed()  # type: ignore[arg-type]
        pid = _signed(world, clock)
        engine.fire(pid, "terminate", actor=world.approver, evidence={"reason": "fraud"})
        (refund,) = [o for o in engine.obligations(pid) if o.kind == "refund_due"]
        assert refund.status == "open"
        owed = engine.get(pid).records_of("refund_demand")[0].data["amount"]
        paid = {
            "demand": "refund",
            "amount": owed,
            "paid_on": str(clock.now.date()),
            "reference": "r",
        }
        engine.add_record(pid, "refund_payment", paid, actor=world.approver).raise_for_refusal()
        (refund,) = [o for o in engine.obligations(pid) if o.kind == "refund_due"]
        others = {o.kind: o.status for o in engine.obligations(pid) if o.kind != "refund_due"}
    assert (refund.status, refund.met_by) == ("met", "data:refund_status")
    assert set(others.values()) <= {"met", "waived"}
    assert others["progress_report"] == "waived"


def test_due_filters_and_refuses_bad_input(world_type: type[World]) -> None:
    """due(): before is exclusive, kind and hub filter, bad names are InvalidInput."""
    clock = FrozenClock()
    with grantflow.open(clock=clock) as engine:
        world = world_type(engine, clock).seed()  # type: ignore[arg-type]
        pid = _signed(world, clock)
        assert [o.key for o in engine.due(before=date(2025, 6, 27))] == []
        assert [o.key for o in engine.due(before=date(2025, 6, 28))] == ["progress_report:1"]
        assert {o.kind for o in engine.due(kind=["contract_end", "midterm_due"])} == {
            "contract_end",
            "midterm_due",
        }
        assert engine.due(hub="d1") == []
        assert len(engine.due(hub="d1", subtree=True)) == len(engine.due()) == 6
        assert all(o.project_id == pid for o in engine.due(hub="s1"))
        with pytest.raises(InvalidInput) as bad:
            engine.due(kind="progress")
        assert bad.value.field == "kind"
        with pytest.raises(InvalidInput):
            engine.due(subtree=True)
        with pytest.raises(InvalidInput):
            engine.due(before=datetime(2025, 6, 1))  # naive


# -- the differential property ---------------------------------------------------------------

_STEPS = (
    "sign",
    "report",
    "midterm_pass",
    "midterm_fail",
    "terminate",
    "withdraw_bulk",
    "sweep",
    "extend",
)


def _step(world: World, clock: FrozenClock, name: str, pids: list[str], n: int) -> None:
    """Try one step on one project; a refusal is a fine outcome (it is audited too)."""
    engine = world.engine
    pid = pids[n % len(pids)]
    state = engine.get(pid).state
    actions: dict[str, Callable[[], Any]] = {
        "sign": lambda: world.sign(pid),
        "report": lambda: engine.add_record(
            pid, "progress_report", {"period": 1 + n % 3, "summary": "s"}, actor=world.applicant
        ),
        "midterm_pass": lambda: state == "contracted" and world.midterm(pid),
        "midterm_fail": lambda: (
            state == "contracted"
            and world.evaluate(pid, "midterm", 50).accepted
            and engine.fire(
                pid,
                "order_rectification",
                actor=world.evaluator,
                evidence={
                    "order": {
                        "issues": ["i"],
                        "deadline": str(clock.now.date() + timedelta(days=20)),
                    }
                },
            )
        ),
        "terminate": lambda: engine.fire(
            pid, "terminate", actor=world.approver, evidence={"reason": "r"}
        ),
        "withdraw_bulk": lambda: engine.fire_many(
            "withdraw", [(p, {"reason": "r"}) for p in pids], actor=world.applicant
        ),
        "sweep": lambda: engine.sweep(chunk_size=1 + n % 2),
        "extend": lambda: engine.add_record(
            pid,
            "amendment_request",
            {"kind": "extension", "reason": "r", "new_end": "2026-05-31"},
            actor=world.applicant,
        ),
    }
    actions[name]()


def _check_agreement(engine: Engine, pids: list[str]) -> None:
    schedule = Schedule(engine.lifecycle)
    store = engine.store
    assert isinstance(store, SqlStore)
    indexed: list[Obligation] = [Obligation.from_row(r) for r in store.obligation_rows(status=None)]
    derived: list[Obligation] = []
    for pid in pids:
        stored = engine.obligations(pid)
        rebuilt = engine.replay(pid)
        from_chain = schedule.derive(rebuilt, engine.policy_for(rebuilt))
        assert list(from_chain) == stored
        derived.extend(stored)
    key = lambda o: (o.project_id, o.key)  # noqa: E731
    assert sorted(indexed, key=key) == sorted(derived, key=key)
    open_ = sorted(
        (o for o in derived if o.status == "open"), key=lambda o: (o.due_on, o.project_id, o.key)
    )
    assert engine.due() == open_
    # engine.projects(due_before=) reads the same index in SQL: the projects `due` lists.
    for cut in [*sorted({o.due_on for o in open_})[:3], date(2100, 1, 1)]:
        listed = [p.id for p in engine.projects(due_before=cut, limit=1000)]
        assert listed == sorted({o.project_id for o in open_ if o.due_on < cut})


@pytest.fixture
def world_factory(world_type: type[World]) -> Iterator[Callable[[str], tuple[World, FrozenClock]]]:
    """Make Worlds on SQLite files, closed at the end."""
    opened: list[Engine] = []

    def make(url: str) -> tuple[World, FrozenClock]:
        clock = FrozenClock()
        engine = grantflow.open(url, clock=clock)
        opened.append(engine)
        return world_type(engine, clock).seed(), clock  # type: ignore[arg-type]

    yield make
    for engine in opened:
        engine.close()


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    steps=st.lists(
        st.tuples(st.sampled_from(_STEPS), st.integers(0, 5), st.integers(0, 40)),
        min_size=1,
        max_size=10,
    )
)
def test_index_replay_and_stored_project_agree(
    world_factory: Callable[[str], tuple[World, FrozenClock]],
    steps: list[tuple[str, int, int]],
) -> None:
    """Obligations from the SQL index == from the stored projects == from replayed chains."""
    with tempfile.TemporaryDirectory() as folder:
        world, clock = world_factory(f"sqlite:///{Path(folder) / 'g.db'}")
        pids = [world.reviewed(), world.reviewed()]
        _check_agreement(world.engine, pids)
        for name, n, days in steps:
            clock.advance(days=days)
            _step(world, clock, name, pids, n)
            _check_agreement(world.engine, pids)
        world.engine.close()


def test_projects_due_before_lists_the_projects_with_an_open_obligation_before_that_day(
    world_type: type[World],
) -> None:
    """On any store, projects(due_before=d) are the projects of due(before=d), in id order."""
    clock = FrozenClock()
    with grantflow.open(clock=clock) as engine:
        world = world_type(engine, clock).seed()  # type: ignore[arg-type]
        signed = _signed(world, clock)
        reviewed = world.reviewed()
        first = {o.project_id: o.due_on for o in reversed(engine.due())}
        assert set(first) == {signed, reviewed}
        for cut in (*first.values(), date(2100, 1, 1), date(2000, 1, 1)):
            listed = [p.id for p in engine.projects(due_before=cut)]
            assert listed == sorted({o.project_id for o in engine.due(before=cut)})
        assert [p.id for p in engine.projects(due_before=date(2000, 1, 1))] == []
        with pytest.raises(InvalidInput, match="due_before"):
            engine.projects(due_before=datetime(2025, 1, 1, tzinfo=UTC))  # type: ignore[arg-type]
        # A cursor is bound to its filters, due_before included.
        page = engine.projects(due_before=date(2100, 1, 1), limit=1)
        assert page.cursor is not None
        with pytest.raises(InvalidInput, match="cursor"):
            engine.projects(due_before=date(2099, 1, 1), limit=1, cursor=page.cursor)


def test_reindex_rebuilds_a_lost_index(world_type: type[World], tmp_path: Path) -> None:
    """reindex_obligations() rebuilds the rows of a database whose index was emptied."""
    clock = FrozenClock()
    with grantflow.open(f"sqlite:///{tmp_path / 'g.db'}", clock=clock) as engine:
        world = world_type(engine, clock).seed()  # type: ignore[arg-type]
        _signed(world, clock)
        before = engine.due()
        store = engine.store
        assert isinstance(store, SqlStore)
        with store.engine.begin() as conn:
            conn.execute(store.tables.obligations.delete())
        assert engine.due() == []
        assert engine.reindex_obligations() == 7
        assert engine.due() == before
    with grantflow.open(clock=clock) as memory:
        assert memory.reindex_obligations() == 0


def _reference_derive(schedule: Schedule, project: Any, policy: Any) -> tuple[Obligation, ...]:
    """`Schedule.derive` spelt out the straightforward way, as it was before.

    Every definition, its records looked up with `records_of` each time, none skipped.
    """
    from grantflow import obligations as ob

    found: list[Obligation] = []
    term = ob.contract_term(project)
    for definition in schedule.obligations:
        by_kind = {k: project.records_of(k) for k in {r.kind for r in project.records}}
        source = definition.anchor_record
        starts: list[tuple[str, date, int, int | None]] = []
        if source is not None:
            for record in project.records_of(source[0]):
                day = ob._as_date(record.data.get(source[1]), policy)
                if day is not None:
                    starts.append((f"{definition.name}:{record.id}", day, record.seq, None))
        else:
            contracts = project.records_of("contract")
            contract = next((r for r in contracts if r.data.get("kind") == "purchase"), None)
            if term is not None and contract is not None:
                starts.extend(ob._anchors(definition, None, policy, term, by_kind))
        for key, anchor, seq, period in starts:
            due, provisional = ob._add_working_days(
                anchor, ob._amount(definition.offset, policy), policy
            )
            status, met_by = ob._status(definition, project, seq, period, by_kind)
            hub = project.data.get("hub")
            found.append(
                Obligation(
                    project_id=project.id,
                    kind=definition.name,
                    key=key,
                    due_on=due,
                    status=status,
                    started_seq=seq,
                    met_by=met_by,
                    hub=str(hub) if hub is not None else None,
                    label=definition.label,
                    label_zh=definition.label_zh,
                    provisional=provisional,
                )
            )
    return tuple(found)


def test_derive_equals_the_straightforward_derivation_on_every_demo_project() -> None:
    """Grouping records by kind and skipping unanchored definitions changes no due date.

    The demo's projects cover every obligation of the default lifecycle: applications,
    signed, amended, reporting, rectified, terminated, refunded and closed projects.
    """
    from grantflow.demo import DemoClock, run_demo

    clock = DemoClock()
    engine = grantflow.open(clock=clock)
    run_demo(engine, clock=clock, projects=60)
    schedule = Schedule(engine.lifecycle)
    derived = 0
    for listed in engine.projects(limit=1000).projects:
        project = engine.get(listed.id)
        policy = engine._core.policy_for(project)
        expected = _reference_derive(schedule, project, policy)
        assert schedule.derive(project, policy) == expected
        assert schedule.derive(project, policy) == expected  # from the kept contract parses
        derived += len(expected)
    assert derived > 300  # the demo's projects do have due dates to compare


def test_a_projects_contracts_are_parsed_once_for_all_its_due_dates(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A signed project's contracts are parsed once per schedule, however often it derives.

    Every change that moves the project's dates derives them again; its stored records
    stay the same objects, so their parses are kept.
    """
    from grantflow import obligations as ob
    from grantflow.records import Contract

    pid = world.contracted()
    schedule = Schedule(world.engine.lifecycle)
    parsed: list[object] = []
    real = ob._load

    def counted(model: Any, data: Any) -> Any:
        if model is Contract:
            parsed.append(data)
        return real(model, data)

    monkeypatch.setattr(ob, "_load", counted)
    project = world.engine.get(pid)
    policy = world.engine.policy_for(project)
    first = schedule.derive(project, policy)
    moved = project.model_copy(update={"state": "midterm", "version": project.version + 1})
    for again in (project, world.engine.get(pid), moved):
        schedule.derive(again, policy)
    assert len(parsed) == len(project.records_of("contract")) == 2
    assert schedule.derive(project, policy) == first
    assert Schedule(world.engine.lifecycle).derive(project, policy) == first  # a fresh parse
