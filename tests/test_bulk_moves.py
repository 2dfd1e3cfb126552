"""Tests for the bulk runner's moves: a bare event's plain moves written as `Move`s.

On the SQL stores, `fire_many` of an event the rule book gives nothing writes each plain
move (an allowed edge, the right role, the clock not behind, no due date moved, a
project named once in its chunk) straight from its values, without the `AuditEntry`,
row and `Change` the general path builds. Everything it writes must be what the general
path writes: the differential property below runs the same input both ways on copies
of one SQLite file and compares every row.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import grantflow
from grantflow import Actor, Engine
from grantflow._bulk import BulkRunner
from grantflow.bulk import BulkItem
from grantflow.models import AuditEntry
from grantflow.rules import RuleBook
from grantflow.testing import FrozenClock

APPLICANT = Actor(id="org-1", roles=frozenset({"applicant"}))
STAFF = Actor(id="staff-1", roles=frozenset({"purchaser"}), organisation="city")
CONTRACT = {
    "kind": "purchase",
    "number": "purchase-001",
    "signed_on": "2025-03-11",
    "amount": "100000.00",
    "start": "2025-03-15",
    "end": "2026-03-14",
    "counterparty": None,
}
# Rows compared between the two runs: everything a transition writes, and the chunks'
# progress (not their leases, owners or times, which differ run to run).
TABLES = {
    "grantflow_projects": "SELECT * FROM grantflow_projects ORDER BY id",
    "grantflow_audit": "SELECT * FROM grantflow_audit ORDER BY project_id, seq",
    "grantflow_outbox": "SELECT position, id, topic, project_id, seq, payload, created_at, "
    "status FROM grantflow_outbox ORDER BY position",
    "grantflow_obligations": "SELECT * FROM grantflow_obligations ORDER BY project_id, key",
    "grantflow_bulk_chunks": "SELECT key, chunk, start, stop, next_index, done, digest, "
    "counts, items FROM grantflow_bulk_chunks ORDER BY key, chunk",
}


def _open(path: Path, clock: FrozenClock) -> Engine:
    return grantflow.open(f"sqlite:///{path}", rules=RuleBook(), discover_rules=False, clock=clock)


def _seed(path: Path, setup: list[tuple[str, bool]], clock: FrozenClock) -> list[str]:
    """Projects moved to a start state each (by its events), some holding a contract."""
    engine = _open(path, clock)
    pids = []
    for number, (events, contract) in enumerate(setup):
        pid = f"p{number}"
        engine.submit(actor=APPLICANT, project_id=pid, data={"title": pid}).raise_for_refusal()
        if contract:
            engine.add_record(pid, "contract", CONTRACT, actor=STAFF)
        for event in events.split():
            engine.fire(pid, event, actor=STAFF)
        pids.append(pid)
    engine.close()
    return pids


def _rows(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    conn = sqlite3.connect(path)
    try:
        return {name: conn.execute(sql).fetchall() for name, sql in TABLES.items()}
    finally:
        conn.close()


def _run(
    path: Path, clock: FrozenClock, event: str, items: list[Any], chunk: int, keep: Any
) -> tuple[dict[str, Any], list[AuditEntry]]:
    engine = _open(path, clock)
    heard: list[AuditEntry] = []
    engine.subscribe(heard.append)
    result = engine.fire_many(
        event, items, actor=STAFF, chunk_size=chunk, keep=keep, idempotency_key="the-job"
    )
    engine.close()
    return result.to_dict(), heard


_SETUP = st.lists(
    st.tuples(
        st.sampled_from(["", "approve", "approve sign", "reject", "approve sign pass_midterm"]),
        st.booleans(),
    ),
    min_size=1,
    max_size=6,
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    setup=_SETUP,
    event=st.sampled_from(["approve", "sign", "pass_midterm", "terminate", "close", "reject"]),
    picks=st.lists(st.tuples(st.integers(0, 6), st.integers(0, 3)), min_size=1, max_size=12),
    chunk=st.integers(1, 5),
    keep=st.sampled_from(["failures", "all"]),
    behind=st.booleans(),
)
def test_moves_write_what_the_general_path_writes(
    monkeypatch: pytest.MonkeyPatch,
    setup: list[tuple[str, bool]],
    event: str,
    picks: list[tuple[int, int]],
    chunk: int,
    keep: Any,
    behind: bool,
) -> None:
    """Same rows, results and heard entries with and without moves, whatever the input.

    Items name projects once or twice in a chunk, unknown projects, an actor without the
    role, evidence; projects hold contracts (a signature moves due dates) or not, and
    the bulk clock may read behind the projects' last changes (clamped times).
    """
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        clock = FrozenClock(tick=timedelta(seconds=1))
        seeded = folder / "seed.db"
        pids = _seed(seeded, setup, clock)
        start = clock() - timedelta(hours=2) if behind else clock() + timedelta(days=9)
        items: list[Any] = []
        for index, variant in picks:
            pid = pids[index] if index < len(pids) else f"ghost-{index}"
            if variant == 1:
                items.append((pid, {"note": f"n{index}", "amount": "12.50"}))
            elif variant == 2:
                items.append(BulkItem(project_id=pid, actor=APPLICANT))
            else:
                items.append(pid)
        runs = []
        for name, moves in (("moves", True), ("general", False)):
            path = folder / f"{name}.db"
            shutil.copy(seeded, path)
            with monkeypatch.context() as patch:
                if not moves:
                    patch.setattr(BulkRunner, "_move", lambda self, work, now: None)
                result, heard = _run(path, FrozenClock(start), event, items, chunk, keep)
            runs.append((_rows(path), result, heard))
        (rows, result, heard), (rows_general, result_general, heard_general) = runs
        assert rows == rows_general
        assert result == result_general
        assert heard == heard_general


def test_a_bare_bulk_run_on_sqlite_writes_moves(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast path is taken: plain moves of unique projects go to the store as moves."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "moves.db"
        clock = FrozenClock()
        pids = _seed(path, [("", False)] * 4, clock)
        taken: list[int] = []
        real = BulkRunner._move

        def counting(self: BulkRunner, work: Any, now: Any) -> Any:
            move = real(self, work, now)
            taken.append(move is not None)
            return move

        monkeypatch.setattr(BulkRunner, "_move", counting)
        engine = _open(path, clock)
        result = engine.fire_many("approve", [*pids, pids[0]], actor=STAFF, chunk_size=10)
        assert result.counts == {"applied": 4, "refused": 1}
        assert taken == [True, True, True]  # p0, named twice, goes the general way
        assert engine.verify().ok
        assert all(engine.get(pid).state == "reviewed" for pid in pids)
        engine.close()


def test_the_audit_log_reads_the_same_with_and_without_moves(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A batch record's lines and per-entry fields are those of the entries moves stand for."""
    import logging

    class Keep(logging.Handler):
        def __init__(self) -> None:
            super().__init__()
            self.seen: list[tuple[str, list[Any]]] = []

        def emit(self, record: logging.LogRecord) -> None:
            if getattr(record, "event", "") == "grantflow.audit_batch":
                entries = record.entries  # type: ignore[attr-defined]
                self.seen.append((record.getMessage(), list(entries)))

    logger = logging.getLogger("grantflow")
    logs = []
    with tempfile.TemporaryDirectory() as tmp:
        seeded = Path(tmp) / "seed.db"
        pids = _seed(seeded, [("", False)] * 5, FrozenClock())
        for moves in (True, False):
            path = Path(tmp) / f"{moves}.db"
            shutil.copy(seeded, path)
            handler = Keep()
            logger.addHandler(handler)
            logger.setLevel(logging.INFO)
            try:
                with monkeypatch.context() as patch:
                    if not moves:
                        patch.setattr(BulkRunner, "_move", lambda self, work, now: None)
                    engine = _open(path, FrozenClock())
                    engine.fire_many("approve", pids, actor=STAFF, chunk_size=2)
                    engine.close()
            finally:
                logger.removeHandler(handler)
                logger.setLevel(logging.NOTSET)
            logs.append(handler.seen)
    assert len(logs[0]) == 3
    assert logs[0] == logs[1]
    assert "seq=2 applied->reviewed accepted=True actor=staff-1" in logs[0][0][0]
