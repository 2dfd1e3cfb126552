"""verify() checks every stored fact against the chains, the lifecycle and the rule book.

Regressions of issue 10 ("Evidence"): edited project and record rows, a forged entry
that skips the lifecycle, entries decided by an empty or unknown rule book, and a clock
running backwards.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import update

import grantflow
from grantflow import Actor, Engine
from grantflow._decide import after
from grantflow.audit import EMPTY_RULES, GENESIS, replay, seal, verify
from grantflow.errors import EvidenceError
from grantflow.models import Project, Record
from grantflow.persistence import Change, MemoryStore
from grantflow.persistence.sql import SqlStore
from grantflow.rules import PASS, Effects, RuleBook, RuleContext
from grantflow.states import PURCHASED_SERVICE

APPLICANT = Actor(id="org-1", roles=frozenset({"applicant"}))
PURCHASER = Actor(id="staff-1", roles=frozenset({"purchaser"}))
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _award(ctx: RuleContext) -> Effects:
    amount = Decimal(str(ctx.evidence.get("amount", "300000.00")))
    contract = Record(kind="contract", id="c-1", data={"amount": str(amount)})
    return Effects(records=(contract,), data={"amount_awarded": str(amount)})


def _book() -> RuleBook:
    return RuleBook().on("approve", lambda ctx: PASS).effect("sign", _award)


class _Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def _contracted(engine: Engine, pid: str, amount: str = "300000.00") -> None:
    engine.submit(actor=APPLICANT, project_id=pid, data={"title": pid}).raise_for_refusal()
    engine.fire(pid, "approve", actor=PURCHASER).raise_for_refusal()
    engine.fire(pid, "sign", actor=PURCHASER, evidence={"amount": amount}).raise_for_refusal()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'grants.db'}"


@pytest.fixture
def engine(sqlite_url: str) -> Iterator[Engine]:
    with grantflow.open(sqlite_url, rules=_book(), discover_rules=False) as eng:
        yield eng


def _sql_update(store: SqlStore, table: sqlalchemy.Table, where: object, **values: object) -> None:
    with store.engine.begin() as conn:
        conn.execute(update(table).where(where).values(**values))  # type: ignore[arg-type]


# -- 1. every stored fact ------------------------------------------------------------------


def test_edited_award_amounts_in_sqlite_are_all_found(engine: Engine) -> None:
    """60 direct edits (30 project rows' amount_awarded, 30 contract records) are all found.

    Each problem names the project, the field and both values; untouched projects
    report nothing. Before the fix, verify() saw 0 of the 60.
    """
    store = engine.store
    assert isinstance(store, SqlStore)
    ids = [f"p-{i:02d}" for i in range(60)]
    for pid in ids:
        _contracted(engine, pid)
    assert engine.verify().ok
    t = store.tables
    for pid in ids[:30]:
        project = engine.get(pid)
        data = {**project.data, "amount_awarded": "9999999.00"}
        _sql_update(store, t.projects, t.projects.c.id == pid, data=data)
    for pid in ids[30:]:
        where = (t.records.c.project_id == pid) & (t.records.c.kind == "contract")
        _sql_update(store, t.records, where, data={"amount": "9999999.00"})
    problems = {p.project_id: p for p in engine.verify().problems}
    assert sorted(problems) == ids
    first, last = problems[ids[0]], problems[ids[-1]]
    assert (first.field, first.stored, first.replayed) == (
        "data.amount_awarded",
        '"9999999.00"',
        '"300000.00"',
    )
    assert (last.field, last.stored, last.replayed) == (
        "records.contract/c-1.data.amount",
        '"9999999.00"',
        '"300000.00"',
    )
    assert "9999999.00" in first.reason
    assert "300000.00" in first.reason


def test_cli_verify_reports_an_edited_row(engine: Engine, sqlite_url: str) -> None:
    """`grantflow verify` exits 1 and names the field when a project row was edited."""
    store = engine.store
    assert isinstance(store, SqlStore)
    _contracted(engine, "p-1")
    t = store.tables
    _sql_update(store, t.projects, t.projects.c.id == "p-1", state="closed")
    engine.close()
    done = subprocess.run(
        [sys.executable, "-m", "grantflow", "verify", "--db", sqlite_url, "--json"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert '"field": "state"' in done.stdout
    assert "Traceback" not in done.stderr


def test_record_rows_no_entry_added_are_found(engine: Engine) -> None:
    """A record row inserted beside the chain (records come only through entries) is found."""
    store = engine.store
    assert isinstance(store, SqlStore)
    _contracted(engine, "p-1")
    with store.engine.begin() as conn:
        conn.execute(
            store.tables.records.insert().values(
                project_id="p-1", kind="approval", id="forged", seq=2, pos=9, data={"by": "x"}
            )
        )
    (problem,) = engine.verify().problems
    assert (problem.project_id, problem.field) == ("p-1", "records.approval/forged")


def test_forged_submission_straight_to_contracted_fails_verify() -> None:
    """A forged `submit` straight into `contracted` fails verify and replay.

    Sealed with `grantflow.audit.seal`, with a 5,000,000 award, and committed through the
    public store API: it is not an edge of the lifecycle.
    """
    with grantflow.open(MemoryStore(), rules=_book(), discover_rules=False) as engine:
        entry = seal(
            project_id="forged",
            seq=1,
            kind="submit",
            event="submit",
            from_state=None,
            to_state="contracted",
            accepted=True,
            actor=APPLICANT,
            at=T0,
            evidence={},
            refusals=(),
            records=(),
            data={"amount_awarded": "5000000.00"},
            prev_hash=GENESIS,
        )
        after = Project(
            id="forged",
            state="contracted",
            version=1,
            head=entry.hash,
            data=entry.data,
            created_at=T0,
            updated_at=T0,
        )
        engine.store.commit(Change(entry, None, 0, after))
        (problem,) = engine.verify().problems
        assert (problem.project_id, problem.seq) == ("forged", 1)
        assert "contracted" in problem.reason
        assert "'submit'" in problem.reason
        with pytest.raises(EvidenceError) as caught:
            engine.replay("forged")
        assert (caught.value.project_id, caught.value.seq) == ("forged", 1)
        # The store alone cannot know the lifecycle; told it, it refuses the entry too.
        assert not verify(engine.store, lifecycle=PURCHASED_SERVICE).ok


def test_replay_refuses_a_fire_that_skips_an_edge() -> None:
    """An accepted `approve` from `applied` straight to `closed` is not an edge."""
    with grantflow.open(MemoryStore(), rules=_book(), discover_rules=False) as engine:
        engine.submit(actor=APPLICANT, project_id="p").raise_for_refusal()
        chain = engine.history("p")
        project = engine.get("p")
        skip = seal(
            project_id="p",
            seq=2,
            kind="fire",
            event="approve",
            from_state="applied",
            to_state="closed",
            accepted=True,
            actor=PURCHASER,
            at=project.updated_at + timedelta(days=1),
            evidence={},
            refusals=(),
            records=(),
            data={},
            prev_hash=chain[0].hash,
        )
        moved = after(project, skip)
        engine.store.commit(Change(skip, "applied", 1, moved))
        assert replay(engine.history("p")) is not None  # structurally fine without a lifecycle
        (problem,) = engine.verify().problems
        assert problem.seq == 2
        assert "not an edge" in problem.reason


# -- 2. what decided each entry ------------------------------------------------------------


def test_entries_name_the_rule_book_and_verify_expect_flags_an_empty_one(
    sqlite_url: str,
) -> None:
    """Entries of a second engine with `RuleBook()` on the same database are told apart.

    verify(expect=...) names each chain that engine touched.
    """
    with grantflow.open(sqlite_url, rules=_book(), discover_rules=False) as regime:
        _contracted(regime, "p-regime")
        with grantflow.open(sqlite_url, rules=RuleBook(), discover_rules=False) as bare:
            bare.submit(actor=APPLICANT, project_id="p-bare").raise_for_refusal()
            bare.fire("p-regime", "pass_midterm", actor=PURCHASER).raise_for_refusal()
            assert bare.decision_bases != regime.decision_bases
        ours = regime.history("p-regime")
        assert {e.decided_under for e in ours[:3]} <= regime.decision_bases
        assert ours[3].decided_under is not None
        assert ours[3].decided_under.rules == EMPTY_RULES
        assert regime.verify().ok
        report = regime.verify(expect=regime.decision_bases)
        found = {(p.project_id, p.seq): p.reason for p in report.problems}
        assert set(found) == {("p-bare", 1), ("p-regime", 4)}
        assert all("empty rule book" in reason for reason in found.values())


def test_an_unknown_rule_book_is_named_unknown() -> None:
    """Entries decided under a book that is not expected (and not empty) are reported."""
    store = MemoryStore()
    other = RuleBook().on("approve", lambda ctx: PASS)
    with grantflow.open(store, rules=other, discover_rules=False) as engine:
        engine.submit(actor=APPLICANT, project_id="p")
    with grantflow.open(store, rules=_book(), discover_rules=False) as regime:
        (problem,) = regime.verify(expect=regime.decision_bases).problems
        assert (problem.seq, problem.reason.startswith("decided under an unknown")) == (1, True)


def test_the_fingerprint_follows_rules_lifecycle_and_policy() -> None:
    """Adding a rule, another policy version or another policy value changes the basis."""
    from grantflow.policy import Policy

    def basis(**options: object) -> object:
        engine = grantflow.open(MemoryStore(), discover_rules=False, **options)  # type: ignore[arg-type]
        (only,) = engine.decision_bases
        return only

    plain = basis(rules=RuleBook())
    assert plain == basis(rules=RuleBook())
    assert plain.rules == EMPTY_RULES  # type: ignore[attr-defined]
    assert basis(rules=_book()) != plain
    assert basis(rules=RuleBook(), policy=Policy(version="v2")) != plain
    assert basis(rules=RuleBook(), policy=Policy(review_quorum=4)) != plain


# -- 4. time never runs backwards ----------------------------------------------------------


def test_a_clock_30_days_behind_never_dates_seq_2_before_seq_1() -> None:
    """The clock set back 30 days: the entry is dated at the previous change and marked."""
    clock = _Clock()
    with grantflow.open(MemoryStore(), rules=_book(), discover_rules=False, clock=clock) as eng:
        eng.submit(actor=APPLICANT, project_id="p").raise_for_refusal()
        clock.now = T0 - timedelta(days=30)
        eng.fire("p", "approve", actor=PURCHASER).raise_for_refusal()
        eng.fire("p", "pass_midterm", actor=PURCHASER)  # refused: no edge from reviewed
        first, second, third = eng.history("p")
        assert second.at == first.at == T0
        assert second.clamped_from == T0 - timedelta(days=30)
        assert third.at == T0
        assert not third.accepted
        assert first.clamped_from is None
        assert eng.state_at("p", T0) == "reviewed"
        assert eng.counts_at(T0) == {"reviewed": 1}
        assert eng.verify().ok


_STEPS = st.lists(
    st.tuples(
        st.integers(min_value=-40 * 24, max_value=40 * 24),  # clock moves, in hours
        st.sampled_from(["submit", "approve", "sign", "reject", "withdraw", "pass_midterm"]),
        st.integers(min_value=0, max_value=2),  # which project
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=_STEPS)
def test_state_at_and_counts_at_agree_for_every_instant(
    steps: list[tuple[int, str, int]],
) -> None:
    """Whatever the clock does, state_at and counts_at agree at every instant.

    Checked at and just before every entry's time; every chain's times never decrease.
    """
    clock = _Clock()
    with grantflow.open(MemoryStore(), rules=_book(), discover_rules=False, clock=clock) as eng:
        for hours, event, which in steps:
            clock.now = clock.now + timedelta(hours=hours)
            pid = f"p-{which}"
            if event == "submit":
                if eng.store.load(pid) is None:
                    eng.submit(actor=APPLICANT, project_id=pid)
            elif eng.store.load(pid) is not None:
                eng.fire(pid, event, actor=PURCHASER, evidence={"reason": "r"})
        ids = [pid for pid in (f"p-{i}" for i in range(3)) if eng.store.load(pid)]
        instants: set[datetime] = set()
        for pid in ids:
            times = [e.at for e in eng.history(pid)]
            assert times == sorted(times)
            instants.update(
                t + d for t in times for d in (timedelta(0), -timedelta(microseconds=1))
            )
        for when in sorted(instants):
            counts: dict[str, int] = {}
            for pid in ids:
                state = eng.state_at(pid, when)
                if state is not None:
                    counts[state] = counts.get(state, 0) + 1
            assert eng.counts_at(when) == counts, when
        assert eng.verify().ok
