"""`grantflow.aio.AsyncEngine`: the sync engine's decisions, awaited on asyncio drivers."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import grantflow
from grantflow import aio
from grantflow.errors import InvalidInput, ProjectNotFound
from grantflow.portfolio import Portfolio
from grantflow.rules import RuleBook

APPLICANT = grantflow.Actor(id="org-1", roles=frozenset({"applicant"}))
STAFF = grantflow.Actor(id="staff-1", roles=frozenset({"purchaser", "evaluator"}))
EVENTS = [e.name for e in grantflow.PURCHASED_SERVICE.events if not e.creates]

Step = tuple[str, str, str]  # (operation, project id, event or record kind)


def outcome_view(outcome: grantflow.Outcome) -> tuple[Any, ...]:
    """What a caller sees of an outcome (not the entry's time or hash)."""
    return (
        outcome.project_id,
        outcome.accepted,
        outcome.from_state,
        outcome.state,
        tuple(r.code for r in outcome.refusals),
    )


def run_sync(steps: list[Step]) -> list[tuple[Any, ...]]:
    """Play `steps` on a sync engine over the memory store."""
    engine = grantflow.open(rules=RuleBook(), discover_rules=False)
    seen: list[tuple[Any, ...]] = []
    for op, pid, what in steps:
        actor = APPLICANT if op == "submit" else STAFF
        try:
            if op == "submit":
                result = engine.submit(actor=actor, project_id=pid, data={"hub": "h1"})
            elif op == "fire":
                result = engine.fire(pid, what, actor=actor, evidence={"reason": "r"})
            elif op == "can_fire":
                result = engine.can_fire(pid, what, actor=actor)
            else:
                result = engine.add_record(pid, what, {"n": 1}, actor=actor)
            seen.append(outcome_view(result))
        except grantflow.GrantflowError as exc:
            seen.append((type(exc).__name__,))
    seen.append(tuple(p.id for p in engine.projects(order="-updated_at")))
    return seen


async def run_async(engine: aio.AsyncEngine, steps: list[Step]) -> list[tuple[Any, ...]]:
    """Play `steps` on an async engine."""
    seen: list[tuple[Any, ...]] = []
    for op, pid, what in steps:
        actor = APPLICANT if op == "submit" else STAFF
        try:
            if op == "submit":
                result = await engine.submit(actor=actor, project_id=pid, data={"hub": "h1"})
            elif op == "fire":
                result = await engine.fire(pid, what, actor=actor, evidence={"reason": "r"})
            elif op == "can_fire":
                result = await engine.can_fire(pid, what, actor=actor)
            else:
                result = await engine.add_record(pid, what, {"n": 1}, actor=actor)
            seen.append(outcome_view(result))
        except grantflow.GrantflowError as exc:
            seen.append((type(exc).__name__,))
    seen.append(tuple(p.id for p in await engine.projects(order="-updated_at")))
    return seen


steps = st.lists(
    st.tuples(
        st.sampled_from(["submit", "fire", "fire", "can_fire", "record"]),
        st.sampled_from(["p-1", "p-2", "p-3"]),
        st.sampled_from([*EVENTS, "review"]),
    ),
    max_size=12,
)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(script=steps)
def test_async_engine_decides_exactly_as_the_sync_engine(
    tmp_path: Path, script: list[Step]
) -> None:
    """Random scripts of submit, fire, can_fire and add_record: the same outcomes, in order."""
    expected = run_sync(script)
    url = f"sqlite:///{tmp_path / f'{uuid.uuid4().hex}.db'}"

    async def main() -> list[tuple[Any, ...]]:
        async with await aio.open(url, rules=RuleBook(), discover_rules=False) as engine:
            seen = await run_async(engine, script)
            assert (await engine.verify()).ok
            return seen

    assert asyncio.run(main()) == expected


async def _race(engine: aio.AsyncEngine) -> None:
    """Concurrent tasks: one of ten approvals of a project wins; twenty submits all land."""
    await engine.submit(actor=APPLICANT, project_id="race")
    fires = await asyncio.gather(*[engine.fire("race", "approve", actor=STAFF) for _ in range(10)])
    assert sorted(o.accepted for o in fires) == [False] * 9 + [True]
    submits = await asyncio.gather(
        *[engine.submit(actor=APPLICANT, project_id=f"s-{i}") for i in range(20)]
    )
    assert all(o.accepted for o in submits)
    assert len(await engine.history("race")) == 11
    assert (await engine.verify()).ok


def test_concurrent_tasks_on_aiosqlite_keep_compare_and_set(tmp_path: Path) -> None:
    """On aiosqlite, racing tasks: exactly one approval accepted, every submit stored."""

    async def main() -> None:
        async with await aio.open(
            f"sqlite:///{tmp_path / 'race.db'}", rules=RuleBook(), discover_rules=False, retries=50
        ) as engine:
            await _race(engine)

    asyncio.run(main())


@pytest.mark.postgres
def test_concurrent_tasks_on_postgres_keep_compare_and_set(pg_url: str, pg_schema: str) -> None:
    """On psycopg's async mode, the same race: one approval, every submit, chains intact."""

    async def main() -> None:
        async with await aio.open(
            pg_url,
            schema=pg_schema,
            table_prefix=f"r{uuid.uuid4().hex[:8]}_",
            rules=RuleBook(),
            discover_rules=False,
            retries=50,  # ten racers: each refusal is audited too, and moves the version
        ) as engine:
            await _race(engine)
            result = await engine.fire_many(
                "approve", [f"s-{i}" for i in range(20)], actor=STAFF, chunk_size=6
            )
            assert result.counts == {"applied": 20}
            page = await engine.projects(state="reviewed", limit=50)
            assert len(page) == 21

    asyncio.run(main())


def test_the_event_loop_runs_other_tasks_during_database_calls(tmp_path: Path) -> None:
    """While fire_many runs on aiosqlite, a ticking task keeps getting turns."""

    async def main() -> int:
        ticks = 0
        done = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                await asyncio.sleep(0)

        async with await aio.open(
            f"sqlite:///{tmp_path / 'loop.db'}", rules=RuleBook(), discover_rules=False
        ) as engine:
            for i in range(60):
                await engine.submit(actor=APPLICANT, project_id=f"p-{i}")
            task = asyncio.create_task(ticker())
            before = ticks
            result = await engine.fire_many(
                "approve", [f"p-{i}" for i in range(60)], actor=STAFF, chunk_size=10
            )
            during = ticks - before
            done.set()
            await task
            assert result.counts == {"applied": 60}
            return during

    assert asyncio.run(main()) > 20  # several database round trips per chunk, six chunks


def test_memory_engine_reads_errors_run_and_listeners() -> None:
    """In memory: errors come out as in the sync engine; run() and listeners work."""

    async def main() -> None:
        seen: list[str] = []
        async with await aio.open(rules=RuleBook(), discover_rules=False) as engine:
            engine.subscribe(lambda entry: seen.append(entry.event))
            await engine.submit(actor=APPLICANT, project_id="p-1", data={"hub": "h1"})
            assert (await engine.events("p-1", actor=STAFF))[:1] == ["approve"]
            with pytest.raises(ProjectNotFound):
                await engine.get("nope")
            totals = await engine.run(lambda e: Portfolio(e).totals("hub"))
            assert [(t.key, t.projects) for t in totals] == [("h1", 1)]
            assert (await engine.replay("p-1")) == (await engine.get("p-1"))
            assert (await engine.checkpoint()).size == 1
            assert await engine.store.count_projects({}) == 1
        assert seen == ["submit"]

    asyncio.run(main())


def test_store_options_do_not_apply_to_memory() -> None:
    """Like grantflow.open: a table prefix for the memory store is an error."""
    with pytest.raises(InvalidInput):
        asyncio.run(aio.open(table_prefix="x_"))


def test_the_async_engine_offers_every_engine_operation_with_the_same_parameters() -> None:
    """A public Engine member missing from AsyncEngine, or with other parameters, fails here.

    Members that touch the store are coroutines; `subscribe` and `policy_for` (no database
    call) and the properties stay plain.
    """
    import inspect

    plain = {"subscribe", "policy_for"}
    for name, member in inspect.getmembers(grantflow.Engine):
        if name.startswith("_"):
            continue
        mirror = getattr(aio.AsyncEngine, name, None)
        assert mirror is not None, f"AsyncEngine has no {name}"
        if isinstance(member, property):
            assert isinstance(mirror, property), name
            continue
        if name in {"close"}:
            continue
        wanted = list(inspect.signature(member).parameters)
        assert list(inspect.signature(mirror).parameters) == wanted, name
        assert asyncio.iscoroutinefunction(mirror) == (name not in plain), name
