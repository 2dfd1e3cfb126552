"""A tamper test: 1,000 random mutations of 28 kinds on SQLite, every one found by verify.

One portfolio is built once: projects in several states with award amounts, contract and
note records, refused attempts, a refused submission, a bulk job, and a signed checkpoint
of the audit log. Each mutation runs inside a transaction of its own that is rolled back
afterwards; verify reads the mutated database through a store bound to that transaction
(`SqlStore.bind`), with the engine's lifecycle, its decision bases as `expect`, and the
signed checkpoint with the purchaser's public key. Untouched, the same check is clean.

Kinds: audit rows (11), project rows (7), record rows (4), audit log rows (3), forged
entries through the public API (4: a submission straight into ``contracted``, a fire
skipping an edge, a decision by an empty rule book, a policy migration that changes the
award), and whole-chain rewrites or truncations with every hash recomputed, against the
signed checkpoint (2). Job rows are not evidence (see docs/evidence.md) and not mutated.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

import grantflow
from grantflow import Actor
from grantflow._decide import after
from grantflow.audit import EMPTY_RULES, GENESIS, VerifyReport, seal, verify
from grantflow.models import AuditEntry, DecisionBasis, Project, Record
from grantflow.persistence import Change
from grantflow.persistence.sql import SqlStore
from grantflow.rules import PASS, Effects, RuleBook, RuleContext, Verdict, refuse
from grantflow.signing import generate_key
from grantflow.states import PURCHASED_SERVICE
from grantflow.testing import FrozenClock

APPLICANT = Actor(id="org-1", roles=frozenset({"applicant"}))
PURCHASER = Actor(id="staff-1", roles=frozenset({"purchaser"}))
MUTATIONS = 1_000
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _award(ctx: RuleContext) -> Effects:
    amount = str(ctx.evidence.get("amount", "300000.00"))
    return Effects(
        records=(Record(kind="contract", id="c-1", data={"amount": amount}),),
        data={"amount_awarded": amount},
    )


def _eligible(ctx: RuleContext) -> Verdict:
    if ctx.project.data.get("ineligible"):
        return refuse("eligibility.test", "not eligible", "不符合条件")
    return PASS


def _book() -> RuleBook:
    return RuleBook().on("submit", _eligible).on("approve", lambda ctx: PASS).effect("sign", _award)


@dataclass
class Portfolio:
    """The database and what the check needs: a store, the checkpoint, the expected bases."""

    store: SqlStore
    note: str
    public: Ed25519PublicKey
    bases: frozenset[DecisionBasis]
    projects: list[str]

    def check(self, store: SqlStore) -> VerifyReport:
        return verify(
            store,
            checkpoint=self.note,
            public_key=self.public,
            lifecycle=PURCHASED_SERVICE,
            expect=self.bases,
        )


@pytest.fixture(scope="module")
def portfolio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Portfolio]:
    path: Path = tmp_path_factory.mktemp("tamper") / "grants.db"
    clock = FrozenClock(T0)
    engine = grantflow.open(f"sqlite:///{path}", rules=_book(), discover_rules=False, clock=clock)
    ids = [f"p-{i:02d}" for i in range(16)]
    for n, pid in enumerate(ids):
        clock.now = T0 + timedelta(minutes=n)
        engine.submit(actor=APPLICANT, project_id=pid, data={"title": pid, "n": n})
    engine.fire_many("approve", ids[:12], actor=PURCHASER, idempotency_key="bulk-approve")
    for n, pid in enumerate(ids[:8]):
        clock.now = T0 + timedelta(days=1, minutes=n)
        engine.fire(pid, "sign", actor=PURCHASER, evidence={"amount": f"{100000 + n}.00"})
        engine.add_record(pid, "note", {"text": f"visit {n}"}, actor=PURCHASER)
    for pid in ids[12:14]:
        engine.fire(pid, "pass_midterm", actor=PURCHASER)  # refused: no edge from applied
    engine.fire(ids[14], "withdraw", actor=APPLICANT, evidence={"reason": "moved"})
    refused = engine.submit(actor=APPLICANT, project_id="refused", data={"ineligible": True})
    assert not refused.accepted
    key = generate_key()
    note = engine.checkpoint(sign_with=key)
    store = engine.store
    assert isinstance(store, SqlStore)
    yield Portfolio(store, note, key.public_key(), engine.decision_bases, ids)
    engine.close()


# -- mutations --------------------------------------------------------------------------

Mutation = Callable[[random.Random, sqlalchemy.Connection, SqlStore, Portfolio], None]


def _rows(conn: sqlalchemy.Connection, table: sqlalchemy.Table, *where: Any) -> list[Any]:
    return list(conn.execute(sqlalchemy.select(table).where(*where)).mappings())


def _pick_entry(rng: random.Random, conn: sqlalchemy.Connection, store: SqlStore) -> Any:
    return rng.choice(_rows(conn, store.tables.audit))


def _set_audit(conn: sqlalchemy.Connection, store: SqlStore, row: Any, **values: Any) -> None:
    a = store.tables.audit
    conn.execute(
        sqlalchemy.update(a)
        .where(a.c.project_id == row["project_id"], a.c.seq == row["seq"])
        .values(**values)
    )


def _other(rng: random.Random, choices: list[Any], current: Any) -> Any:
    return rng.choice([c for c in choices if c != current])


def _audit_field(name: str, make: Callable[[random.Random, Any], Any]) -> Mutation:
    def mutate(rng: random.Random, conn: sqlalchemy.Connection, store: SqlStore, _p: Any) -> None:
        row = _pick_entry(rng, conn, store)
        _set_audit(conn, store, row, **{name: make(rng, row)})

    mutate.__name__ = f"audit.{name}"
    return mutate


STATES = [s.name for s in PURCHASED_SERVICE.states]


def _audit_delete(rng: random.Random, conn: Any, store: SqlStore, _p: Any) -> None:
    row = _pick_entry(rng, conn, store)
    a = store.tables.audit
    conn.execute(
        sqlalchemy.delete(a).where(a.c.project_id == row["project_id"], a.c.seq == row["seq"])
    )


def _audit_swap(rng: random.Random, conn: Any, store: SqlStore, _p: Any) -> None:
    a = store.tables.audit
    longer = _rows(conn, a, a.c.seq == 2)
    row = rng.choice(longer)
    pid = row["project_id"]
    for old, new in ((1, 1001), (2, 1), (1001, 2)):
        conn.execute(
            sqlalchemy.update(a).where(a.c.project_id == pid, a.c.seq == old).values(seq=new)
        )


def _project_field(name: str, make: Callable[[random.Random, Any], Any]) -> Mutation:
    def mutate(rng: random.Random, conn: Any, store: SqlStore, _p: Any) -> None:
        p = store.tables.projects
        row = rng.choice(_rows(conn, p))
        conn.execute(
            sqlalchemy.update(p).where(p.c.id == row["id"]).values(**{name: make(rng, row)})
        )

    mutate.__name__ = f"projects.{name}"
    return mutate


def _data_with(key: str, make: Callable[[random.Random, Any], Any]) -> Callable[..., Any]:
    def value(rng: random.Random, row: Any) -> Any:
        return {**row["data"], key: make(rng, row["data"].get(key))}

    return value


def _project_delete(rng: random.Random, conn: Any, store: SqlStore, _p: Any) -> None:
    p, r = store.tables.projects, store.tables.records
    pid = rng.choice(_rows(conn, p))["id"]
    conn.execute(sqlalchemy.delete(r).where(r.c.project_id == pid))
    conn.execute(sqlalchemy.delete(p).where(p.c.id == pid))


def _record_field(name: str, make: Callable[[random.Random, Any], Any]) -> Mutation:
    def mutate(rng: random.Random, conn: Any, store: SqlStore, _p: Any) -> None:
        r = store.tables.records
        row = rng.choice(_rows(conn, r))
        where = (r.c.project_id == row["project_id"]) & (r.c.kind == row["kind"])
        conn.execute(
            sqlalchemy.update(r).where(where, r.c.id == row["id"]).values(**{name: make(rng, row)})
        )

    mutate.__name__ = f"records.{name}"
    return mutate


def _record_delete(rng: random.Random, conn: Any, store: SqlStore, _p: Any) -> None:
    r = store.tables.records
    row = rng.choice(_rows(conn, r))
    where = (r.c.project_id == row["project_id"]) & (r.c.kind == row["kind"])
    conn.execute(sqlalchemy.delete(r).where(where, r.c.id == row["id"]))


def _record_insert(rng: random.Random, conn: Any, store: SqlStore, p: Portfolio) -> None:
    pid = rng.choice(p.projects)
    kind = rng.choice(["approval", "disbursement", "contract"])
    conn.execute(
        store.tables.records.insert().values(
            project_id=pid,
            kind=kind,
            id=f"forged-{rng.randrange(10**6)}",
            seq=1,
            pos=7,
            data={"amount": str(rng.randrange(1, 10**7))},
        )
    )


def _log_delete(rng: random.Random, conn: Any, store: SqlStore, _p: Any) -> None:
    log = store.tables.audit_log
    position = rng.choice(_rows(conn, log))["position"]
    conn.execute(sqlalchemy.delete(log).where(log.c.position == position))


def _log_swap(rng: random.Random, conn: Any, store: SqlStore, _p: Any) -> None:
    log = store.tables.audit_log
    a, b = rng.sample(_rows(conn, log), 2)
    for position, row in ((a["position"], b), (b["position"], a)):
        conn.execute(
            sqlalchemy.update(log)
            .where(log.c.position == position)
            .values(project_id=row["project_id"], seq=row["seq"] + 1000)
        )
    conn.execute(sqlalchemy.update(log).where(log.c.seq > 1000).values(seq=log.c.seq - 1000))


def _log_repoint(rng: random.Random, conn: Any, store: SqlStore, _p: Any) -> None:
    log = store.tables.audit_log
    rows = _rows(conn, log)
    row = rng.choice(rows)
    other = _other(
        rng, [(r["project_id"], r["seq"]) for r in rows], (row["project_id"], row["seq"])
    )
    conn.execute(
        sqlalchemy.update(log)
        .where(log.c.position == row["position"])
        .values(project_id=other[0], seq=other[1] + 500)
    )


# -- forgeries through the public API --------------------------------------------------------


def _commit(store: SqlStore, entry: AuditEntry, project: Project | None, state: str | None) -> None:
    expected = 0 if project is None else project.version
    moved = after(project, entry) if project is not None else None
    if project is None:
        moved = Project(
            id=entry.project_id,
            state=entry.to_state or "",
            version=1,
            head=entry.hash,
            data=entry.data,
            created_at=entry.at,
            updated_at=entry.at,
        )
    store.commit(Change(entry, state, expected, moved))


def _forge_submit(rng: random.Random, _c: Any, store: SqlStore, p: Portfolio) -> None:
    entry = seal(
        project_id=f"forged-{rng.randrange(10**6)}",
        seq=1,
        kind="submit",
        event="submit",
        from_state=None,
        to_state=rng.choice(["contracted", "midterm", "closed"]),
        accepted=True,
        actor=APPLICANT,
        at=T0 + timedelta(days=3),
        evidence={},
        refusals=(),
        records=(),
        data={"amount_awarded": "5000000.00"},
        prev_hash=GENESIS,
        decided_under=next(iter(p.bases)),
    )
    _commit(store, entry, None, None)


def _forge_skip(rng: random.Random, _c: Any, store: SqlStore, p: Portfolio) -> None:
    project = store.load(rng.choice(p.projects[12:14]))  # still applied
    assert project is not None
    entry = seal(
        project_id=project.id,
        seq=project.version + 1,
        kind="fire",
        event=rng.choice(["sign", "close", "assess"]),
        from_state=project.state,
        to_state=rng.choice(["contracted", "closed", "assessed"]),
        accepted=True,
        actor=PURCHASER,
        at=project.updated_at + timedelta(hours=1),
        evidence={},
        refusals=(),
        records=(),
        data={},
        prev_hash=project.head,
        decided_under=next(iter(p.bases)),
    )
    _commit(store, entry, project, project.state)


def _forge_empty_book(rng: random.Random, _c: Any, store: SqlStore, p: Portfolio) -> None:
    pid = rng.choice(p.projects[:8])  # contracted
    with grantflow.open(store, rules=RuleBook(), discover_rules=False) as bare:
        assert next(iter(bare.decision_bases)).rules == EMPTY_RULES
        bare.fire(pid, "pass_midterm", actor=PURCHASER).raise_for_refusal()


def _forge_migration(rng: random.Random, _c: Any, store: SqlStore, p: Portfolio) -> None:
    project = store.load(rng.choice(p.projects[:8]))
    assert project is not None
    entry = seal(
        project_id=project.id,
        seq=project.version + 1,
        kind="migrate",
        event="migrate_policy",
        from_state=project.state,
        to_state=project.state,
        accepted=True,
        actor=PURCHASER,
        at=project.updated_at + timedelta(hours=1),
        evidence={"reason": "routine", "from_version": "default-1"},
        refusals=(),
        records=(),
        data={"policy_version": "default-1", "amount_awarded": "9000000.00"},
        prev_hash=project.head,
        decided_under=next(iter(p.bases)),
    )
    _commit(store, entry, project, project.state)


# -- whole-chain rewrites against the signed checkpoint -------------------------------------


def _rewrite(
    conn: Any, store: SqlStore, pid: str, entries: list[AuditEntry], edit: dict[str, Any]
) -> None:
    a, p = store.tables.audit, store.tables.projects
    conn.execute(sqlalchemy.delete(a).where(a.c.project_id == pid))
    prev = GENESIS
    for index, old in enumerate(entries):
        body = old.model_dump(exclude={"hash"})
        body.update(prev_hash=prev, **(edit if index == 0 else {}))
        body["actor"], body["refusals"], body["records"] = old.actor, old.refusals, old.records
        body["decided_under"] = old.decided_under
        new = seal(**body)
        row = dict(new)
        for name in ("actor", "refusals", "records", "decided_under", "evidence", "data"):
            row[name] = json.loads(json.dumps(_plain(row[name])))
        conn.execute(a.insert().values(row))
        prev = new.hash
    conn.execute(sqlalchemy.update(p).where(p.c.id == pid).values(head=prev))


def _plain(value: Any) -> Any:
    from grantflow._canonical import plain

    return plain(value)


def _chain_rewrite(rng: random.Random, conn: Any, store: SqlStore, p: Portfolio) -> None:
    pid = rng.choice(p.projects)
    bound = store.bind(conn)
    entries = list(bound.entries(pid))
    _rewrite(conn, store, pid, entries, {"evidence": {"rewritten": rng.randrange(10**6)}})


def _chain_truncate(rng: random.Random, conn: Any, store: SqlStore, p: Portfolio) -> None:
    pid = rng.choice(p.projects[:8])  # at least four entries
    bound = store.bind(conn)
    entries = list(bound.entries(pid))
    keep = rng.randrange(2, len(entries))
    rebuilt = grantflow.audit.replay(entries[:keep])
    assert rebuilt is not None
    a, pr, r = store.tables.audit, store.tables.projects, store.tables.records
    conn.execute(sqlalchemy.delete(a).where(a.c.project_id == pid, a.c.seq > keep))
    conn.execute(sqlalchemy.delete(r).where(r.c.project_id == pid, r.c.seq > keep))
    conn.execute(
        sqlalchemy.update(pr)
        .where(pr.c.id == pid)
        .values(
            state=rebuilt.state,
            version=keep,
            head=rebuilt.head,
            data=dict(rebuilt.data),
            updated_at=rebuilt.updated_at,
        )
    )


def _hex(rng: random.Random, _row: Any) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(64))


def _shift(rng: random.Random, value: datetime) -> datetime:
    return value + timedelta(seconds=rng.choice([-1, 1]) * rng.randrange(1, 10**6))


MUTATIONS_BY_KIND: list[Mutation] = [
    _audit_field(
        "event", lambda rng, row: _other(rng, ["approve", "sign", "close", "forged"], row["event"])
    ),
    _audit_field("evidence", lambda rng, row: {**row["evidence"], "x": rng.randrange(10**6)}),
    _audit_field("at", lambda rng, row: _shift(rng, row["at"])),
    _audit_field("actor", lambda rng, row: {**row["actor"], "id": f"someone-{rng.randrange(99)}"}),
    _audit_field("accepted", lambda rng, row: not row["accepted"]),
    _audit_field("to_state", lambda rng, row: _other(rng, STATES, row["to_state"])),
    _audit_field(
        "data", lambda rng, row: {**row["data"], "amount_awarded": str(rng.randrange(10**7))}
    ),
    _audit_field("hash", _hex),
    _audit_field(
        "decided_under",
        lambda rng, row: {
            **row["decided_under"],
            "rules": rng.choice([EMPTY_RULES, _hex(rng, row)]),
        },
    ),
    _audit_delete,
    _audit_swap,
    _project_field("state", lambda rng, row: _other(rng, STATES, row["state"])),
    _project_field(
        "data",
        _data_with(
            "amount_awarded", lambda rng, old: str(Decimal(old or 0) + rng.randrange(1, 10**6))
        ),
    ),
    _project_field("data", _data_with("policy_version", lambda rng, old: f"v-{rng.randrange(99)}")),
    _project_field("version", lambda rng, row: row["version"] + rng.choice([-1, 1, 2])),
    _project_field("head", _hex),
    _project_field("updated_at", lambda rng, row: _shift(rng, row["updated_at"])),
    _project_delete,
    _record_field("data", lambda rng, row: {**row["data"], "amount": str(rng.randrange(10**7))}),
    _record_field("seq", lambda rng, row: row["seq"] + rng.choice([-1, 1])),
    _record_delete,
    _record_insert,
    _log_delete,
    _log_swap,
    _log_repoint,
    _forge_submit,
    _forge_skip,
    _forge_empty_book,
    _forge_migration,
    _chain_rewrite,
    _chain_truncate,
]


def _in_rollback(store: SqlStore, work: Callable[[sqlalchemy.Connection, SqlStore], Any]) -> Any:
    with store.engine.connect() as conn:
        transaction = conn.begin()
        try:
            return work(conn, store.bind(conn))
        finally:
            transaction.rollback()


@pytest.mark.slow
def test_random_mutations_are_all_found_and_untouched_data_is_clean(portfolio: Portfolio) -> None:
    """1,000 random mutations across 31 kinds: 100 % found; 0 false alarms untouched."""
    rng = random.Random(20260302)  # noqa: S311 - reproducible test data, not secrets
    assert len(MUTATIONS_BY_KIND) >= 20
    missed: list[str] = []
    found: dict[str, int] = {}
    clean = 0
    for i in range(MUTATIONS):
        mutate = MUTATIONS_BY_KIND[i % len(MUTATIONS_BY_KIND)]

        def run(conn: sqlalchemy.Connection, bound: SqlStore) -> VerifyReport:
            mutate(rng, conn, bound, portfolio)  # noqa: B023 - called at once, in the loop
            return portfolio.check(bound)

        report = _in_rollback(portfolio.store, run)
        if report.ok:
            missed.append(mutate.__name__)
        found[mutate.__name__] = found.get(mutate.__name__, 0) + 1
        if i % 50 == 0:
            untouched = _in_rollback(portfolio.store, lambda _c, bound: portfolio.check(bound))
            assert untouched.ok, untouched.problems
            clean += 1
    assert missed == []
    assert sum(found.values()) == MUTATIONS
    assert clean == MUTATIONS // 50
    assert portfolio.check(portfolio.store).ok
