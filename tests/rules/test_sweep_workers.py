"""The sweep under stress: killed mid-run (SIGKILL, a real process) and run by several workers.

Every timer occurrence must fire exactly once: a sweep killed between two chunks leaves
its committed chunks, and the next sweep fires the rest and nothing twice; workers
sweeping the same database at once (SQLite file, PostgreSQL) never fire one occurrence
twice, nor write a refused attempt for one another's work.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import sqlalchemy

import grantflow
from grantflow import Engine, Policy
from grantflow.testing import FrozenClock
from grantflow.timers import TIMER_ACTOR

if TYPE_CHECKING:
    from conftest import World

REMINDERS_DUE = datetime(2025, 6, 20, 1, tzinfo=UTC)  # progress report 1 due 06-27
#: The default policy, but one provider may apply many times (one provider, many projects).
POLICY = Policy(applications_per_provider_per_call=100)


def _signed_portfolio(world: World, clock: FrozenClock, count: int) -> list[str]:
    pids = [world.reviewed() for _ in range(count)]
    clock.set(datetime(2025, 3, 11, 1, tzinfo=UTC))
    for pid in pids:
        world.sign(pid).raise_for_refusal()
    return pids


def _timer_firings(engine: Engine, pids: list[str]) -> tuple[Counter[str], int]:
    """(occurrences the timer fired, counted; how many timer attempts were refused)."""
    fired: Counter[str] = Counter()
    refused = 0
    for pid in pids:
        for entry in engine.history(pid):
            if entry.actor.id != TIMER_ACTOR.id:
                continue
            if not entry.accepted:
                refused += 1
                continue
            (record,) = entry.records
            fired[f"{pid}/{record.data['occurrence']}"] += 1
    return fired, refused


_CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from datetime import datetime
    import grantflow
    from grantflow.testing import FrozenClock

    engine = grantflow.open(sys.argv[1], clock=FrozenClock(datetime.fromisoformat(sys.argv[2])))
    chunks = 0

    def progress(done):
        global chunks
        chunks += 1
        if chunks == 2:  # two chunks are committed: die without any clean-up
            os.kill(os.getpid(), signal.SIGKILL)

    engine.sweep(chunk_size=2, progress=progress)
    sys.exit(3)  # not reached
    """
)


@pytest.mark.slow
def test_a_sweep_killed_mid_run_is_finished_by_the_next_one_each_timer_once(
    world: World, tmp_path: Path
) -> None:
    """SIGKILL after two committed chunks; the next sweep fires the rest, none twice."""
    url = f"sqlite:///{tmp_path / 'g.db'}"
    clock = FrozenClock()
    with grantflow.open(url, clock=clock, policy=POLICY) as engine:
        pids = _signed_portfolio(type(world)(engine, clock).seed(), clock, 7)  # type: ignore[arg-type]
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, url, REMINDERS_DUE.isoformat()],
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()
    clock.set(REMINDERS_DUE)
    with grantflow.open(url, clock=clock) as engine:
        fired, refused = _timer_firings(engine, pids)
        assert sum(fired.values()) == 4  # two chunks of two
        finished = engine.sweep(chunk_size=2)
        assert finished.fired == 3
        assert engine.sweep().fired == 0
        fired, refused = _timer_firings(engine, pids)
        assert engine.verify().ok
    assert len(fired) == 7
    assert set(fired.values()) == {1}
    assert refused == 0


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """Where the workers meet: a SQLite file, or a fresh schema of the test PostgreSQL."""
    if request.param == "sqlite":
        yield {"url": f"sqlite:///{tmp_path / 'g.db'}"}
        return
    url = os.environ.get("GRANTFLOW_TEST_PG_URL")
    if not url:
        pytest.skip("GRANTFLOW_TEST_PG_URL is not set; run the tests through tasks.py")
    schema = f"gf_sweep_{uuid.uuid4().hex[:10]}"
    yield {"url": url, "schema": schema}
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    engine.dispose()


def test_several_workers_sweeping_at_once_fire_each_timer_once(
    world: World, database: dict[str, str]
) -> None:
    """Three engines sweep one database at the same time: every occurrence fires once."""
    url = database.pop("url")
    clock = FrozenClock()
    with grantflow.open(url, clock=clock, policy=POLICY, **database) as engine:  # type: ignore[arg-type]
        pids = _signed_portfolio(type(world)(engine, clock).seed(), clock, 6)  # type: ignore[arg-type]
    clock.set(REMINDERS_DUE)
    engines = [grantflow.open(url, clock=clock, **database) for _ in range(3)]  # type: ignore[arg-type]
    assert len({e.sweep(dry_run=True).due[0].occurrence for e in engines}) == 1
    start = threading.Barrier(len(engines))
    errors: list[BaseException] = []
    fired_by: list[int] = []

    def work(engine: Engine) -> None:
        try:
            start.wait()
            fired_by.append(engine.sweep(chunk_size=1).fired)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(e,)) for e in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    try:
        assert errors == []
        # Workers listing the same occurrences share one job: each reports its tally.
        assert max(fired_by) == 6
        fired, refused = _timer_firings(engines[0], pids)
        assert len(fired) == 6
        assert set(fired.values()) == {1}
        assert refused == 0
        assert engines[0].sweep().fired == 0
    finally:
        for engine in engines:
            engine.close()
