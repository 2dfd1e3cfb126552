"""The default regime: its bulk cost against a bare rule book, and duplicate-invoice growth.

* ``regime_bulk_ratio``: ``fire_many("approve", ...)`` under `default_rules()` (quorum,
  score, amount, call budget, conflicts; the people, call and reserved-budget facts)
  against the same event on the same projects and evidence with a bare rule book, on
  copies of one SQLite database of reviewed applications.
* ``invoice_check_growth``: the per-item cost of adding expenditures (every expenditure
  rule, the duplicate-invoice check across all projects included) when the store holds
  10x more expenditures, on otherwise equal databases.
* ``record_growth``: the cost of one ``add_record`` of an expenditure (every rule) on a
  project holding 10x more records of its own (300 expenditures against 30), one call
  after another on one engine, as a service keeps a long project open.
* ``regime_same_call_two_workers``: the wall time of two processes approving half of
  one call's applications each, at the same time, over one process approving them all
  (every approval reads and guards the call's reserved total, so they are serialised:
  about 1 is the best there is), and ``regime_same_call_conflicts``, the items the two
  left unapplied.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from _common import fresh_copy, interleave, median, paired_ratio, run_workers, say

import grantflow
from grantflow import Actor
from grantflow.bulk import BulkItem
from grantflow.demo import DemoClock
from grantflow.records import Call, Directory, Hub, Person, Provider, credit_code_check
from grantflow.rubrics import APPROVAL_REVIEW
from grantflow.rules import RuleBook

APPROVER = Actor(id="staff-1", roles=frozenset({"purchaser"}), organisation="city")
TREASURER = Actor(id="staff-2", roles=frozenset({"purchaser", "finance"}), organisation="city")
REVIEWERS = [
    Actor(id=f"r{n}", roles=frozenset({"reviewer"}), organisation="pool") for n in (1, 2, 3)
]
EVIDENCE = {"recommended_amount": "100000.00"}
BUDGET = {
    "personnel": "40000.00",
    "activities": "35000.00",
    "experts": "5000.00",
    "training": "5000.00",
    "publicity": "5000.00",
    "administration": "5000.00",
    "evaluation": "5000.00",
}


def _provider(n: int) -> str:
    return f"org-{n:06d}"


def _applicant(n: int) -> Actor:
    org = _provider(n)
    return Actor(id=f"u-{org}", roles=frozenset({"applicant"}), organisation=org)


def _code(n: int) -> str:
    body = f"5231{n:013d}"
    return body + credit_code_check(body)


def _pid(n: int) -> str:
    return f"a{n:06d}"


def _engine(path: Path, clock: DemoClock, *, bare: bool = False) -> grantflow.Engine:
    options: dict[str, Any] = {"rules": RuleBook(), "discover_rules": False} if bare else {}
    return grantflow.open(f"sqlite:///{path}", clock=clock, **options)


def _check(result: grantflow.BulkResult, n: int, what: str) -> None:
    if result.count("applied") != n:
        raise RuntimeError(f"{what}: {result.counts} {result.items[:2]}")


def seed(path: Path, n: int) -> None:
    """`n` applications with three clean reviews each, ready for ``approve``."""
    clock = DemoClock()
    engine = _engine(path, clock)
    d = Directory(engine)
    d.add_hub(Hub(id="city", name="City federation", kind="city"))
    d.add_hub(Hub(id="d1", name="District 1", kind="district", parent="city"))
    d.add_call(
        Call(
            id="call-2025",
            hub="city",
            year=2025,
            opens=datetime(2025, 1, 1, tzinfo=UTC),
            closes=datetime(2025, 3, 31, tzinfo=UTC),
            budget=Decimal("900000000000.00"),
            rubric_versions={"approval": 1, "midterm": 1, "performance": 1},
        )
    )
    for reviewer in REVIEWERS:
        d.add_person(Person(id=reviewer.id, name=reviewer.id, organisation="pool"))
    for i in range(n):
        d.add_provider(Provider(id=_provider(i), name=f"Org {i}", credit_code=_code(i)))
    applications = (
        BulkItem(
            project_id=_pid(i),
            evidence={
                "title": f"Project {i}",
                "domain": "mental_health",
                "provider": _provider(i),
                "hub": "d1",
                "call": "call-2025",
                "amount_requested": "120000.00",
                "planned_start": "2025-03-15",
                "planned_end": "2026-03-14",
                "target_activities": 40,
                "target_person_times": 2000,
            },
            actor=_applicant(i),
        )
        for i in range(n)
    )
    _check(engine.fire_many("submit", applications, actor=APPROVER), n, "submit")
    scores = APPROVAL_REVIEW.proportional(80)
    for reviewer in REVIEWERS:
        reviews = (
            (
                _pid(i),
                {
                    "reviewer": reviewer.id,
                    "rubric": "approval",
                    "rubric_version": 1,
                    "scores": scores,
                    "conflict": {"declared": False},
                },
            )
            for i in range(n)
        )
        _check(engine.fire_many("record.review", reviews, actor=reviewer), n, "review")
    engine.close()


def approve_rate(path: Path, n: int, *, bare: bool) -> float:
    """Approvals per second of `n` projects, under the default regime or a bare book."""
    engine = _engine(path, DemoClock(), bare=bare)
    items = [(_pid(i), EVIDENCE) for i in range(n)]
    started = time.perf_counter()
    result = engine.fire_many("approve", items, actor=APPROVER)
    elapsed = time.perf_counter() - started
    engine.close()
    _check(result, n, "approve")
    return n / elapsed


def regime_bulk(folder: Path, n: int, rounds: int) -> dict[str, float]:
    """Default regime against the bare rule book on the same approvals."""
    seeded = folder / "regime-seed.db"
    seed(seeded, n)
    samples = interleave(
        {
            "bare": lambda: approve_rate(fresh_copy(seeded, "bare"), n, bare=True),
            "default": lambda: approve_rate(fresh_copy(seeded, "default"), n, bare=False),
        },
        rounds,
    )
    say(f"regime approve (per s): {samples}")
    return {
        "regime_bulk_per_s": median(samples["default"]),
        "regime_bare_per_s": median(samples["bare"]),
        "regime_bulk_ratio": paired_ratio(samples["default"], samples["bare"]),
    }


# -- duplicate invoices ----------------------------------------------------------------------


def _contract(kind: str) -> dict[str, Any]:
    return {
        "kind": kind,
        "number": f"{kind}-001",
        "signed_on": "2025-03-11",
        "amount": "100000.00",
        "start": "2025-03-15",
        "end": "2026-03-14",
        "counterparty": "audit-co" if kind == "supervision" else None,
    }


_SIGN = {
    "contracts": [_contract("purchase"), _contract("supervision")],
    "budget": [{"line": k, "amount": v} for k, v in BUDGET.items()],
}


def contracted(path: Path, n: int) -> None:
    """`n` contracted projects (approved, publicity over, both contracts signed)."""
    seed(path, n)
    clock = DemoClock()
    engine = _engine(path, clock)
    _check(
        engine.fire_many("approve", [(_pid(i), EVIDENCE) for i in range(n)], actor=APPROVER),
        n,
        "approve",
    )
    clock.advance(9)
    _check(
        engine.fire_many("sign", [(_pid(i), _SIGN) for i in range(n)], actor=TREASURER), n, "sign"
    )
    engine.close()


def _expenditure(invoice: str) -> dict[str, Any]:
    return {
        "date": "2025-05-01",
        "line": "activities",
        "amount": "10.00",
        "invoice_number": invoice,
        "voucher": f"V-{invoice}",
    }


def fill(path: Path, count: int) -> None:
    """Store `count` expenditures with distinct invoice numbers, on projects of their own."""
    engine = _engine(path, DemoClock(), bare=True)
    owner = Actor(id="filler", roles=frozenset({"applicant"}), organisation="filler")
    per = 10
    projects = (count + per - 1) // per
    filler = [f"f{i:07d}" for i in range(projects)]
    _check(
        engine.fire_many(
            "submit", ((p, {"title": "f"}) for p in filler), actor=owner, chunk_size=1000
        ),
        projects,
        "filler",
    )
    items = ((filler[i // per], _expenditure(f"FILL-{i:08d}")) for i in range(count))
    _check(
        engine.fire_many("record.expenditure", items, actor=owner, chunk_size=1000), count, "fill"
    )
    engine.close()


def spend_cost(path: Path, m: int) -> float:
    """Seconds per expenditure added to each of `m` contracted projects (default rules)."""
    clock = DemoClock()
    clock.advance(30)
    engine = _engine(path, clock)
    items = [
        BulkItem(project_id=_pid(i), evidence=_expenditure(f"INV-{i:06d}"), actor=_applicant(i))
        for i in range(m)
    ]
    started = time.perf_counter()
    result = engine.fire_many("record.expenditure", items, actor=_applicant(0))
    elapsed = time.perf_counter() - started
    engine.close()
    _check(result, m, "expenditure")
    return elapsed / m


def _tenfold(
    base: Path,
    fill_with: Callable[[Path, int], None],
    cost: Callable[[Path], float],
    stored: int,
    rounds: int,
    what: str,
) -> dict[str, list[float]]:
    """Samples of `cost` on copies of `base` filled by `fill_with` with `stored` and 10x."""
    small, large = fresh_copy(base, f"{base.stem}-small"), fresh_copy(base, f"{base.stem}-large")
    fill_with(small, stored)
    fill_with(large, stored * 10)
    samples = interleave(
        {
            "small": lambda: cost(fresh_copy(small, f"{base.stem}-small-run")),
            "large": lambda: cost(fresh_copy(large, f"{base.stem}-large-run")),
        },
        rounds,
    )
    say(f"{what} (s/item) with {stored} and {stored * 10}: {samples}")
    return samples


def invoice_growth(folder: Path, m: int, stored: int, rounds: int) -> dict[str, float]:
    """Per-item expenditure cost with `stored` and ``10 * stored`` expenditures stored."""
    base = folder / "invoice-base.db"
    contracted(base, m)
    samples = _tenfold(base, fill, lambda p: spend_cost(p, m), stored, rounds, "expenditure")
    return {
        "invoice_item_us": median(samples["small"]) * 1e6,
        "invoice_item_us_10x": median(samples["large"]) * 1e6,
        "invoice_check_growth": paired_ratio(samples["large"], samples["small"]),
    }


def _own_expenditures(path: Path, stored: int) -> None:
    """Add `stored` expenditures to the first project of a `contracted` database (bulk)."""
    clock = DemoClock()
    clock.advance(30)
    engine = _engine(path, clock)
    actor = _applicant(0)
    items = [(_pid(0), _expenditure(f"OWN-{i:06d}")) for i in range(stored)]
    _check(engine.fire_many("record.expenditure", items, actor=actor), stored, "own spending")
    engine.close()


def own_spend_cost(path: Path, count: int) -> float:
    """Seconds per expenditure added to the first project, one `add_record` at a time."""
    clock = DemoClock()
    clock.advance(30)
    engine = _engine(path, clock)
    actor = _applicant(0)
    started = time.perf_counter()
    for i in range(count):
        data = _expenditure(f"NEW-{i:06d}")
        engine.add_record(_pid(0), "expenditure", data, actor=actor).raise_for_refusal()
    elapsed = time.perf_counter() - started
    engine.close()
    return elapsed / count


def record_growth(folder: Path, stored: int, count: int, rounds: int) -> dict[str, float]:
    """Per-call cost of an expenditure on a project holding `stored` and 10x as many."""
    base = folder / "own-base.db"
    contracted(base, 1)
    samples = _tenfold(
        base,
        _own_expenditures,
        lambda p: own_spend_cost(p, count),
        stored,
        rounds,
        "an expenditure on a project holding its own",
    )
    return {
        "record_item_us": median(samples["small"]) * 1e6,
        "record_item_us_10x": median(samples["large"]) * 1e6,
        "record_growth": paired_ratio(samples["large"], samples["small"]),
    }


def _same_call_worker(path: Path, start: int, stop: int) -> dict[str, Any]:
    """Approve applications `start` to `stop` once told to go; report when and how."""
    engine = _engine(path, DemoClock(), bare=False)
    items = [(_pid(i), EVIDENCE) for i in range(start, stop)]
    print("ready", flush=True)
    sys.stdin.readline()
    started = time.time()
    result = engine.fire_many("approve", items, actor=APPROVER)
    ended = time.time()
    engine.close()
    return {"start": started, "end": ended, "counts": result.counts}


def same_call_seconds(path: Path, n: int, count: int) -> tuple[float, int]:
    """Wall time of `count` processes approving a share of `n` each, and the items not applied."""
    bounds = [(n * k // count, n * (k + 1) // count) for k in range(count)]
    reports = run_workers(
        [
            [sys.executable, str(Path(__file__)), "worker", str(path), str(lo), str(hi)]
            for lo, hi in bounds
        ]
    )
    applied = sum(r["counts"].get("applied", 0) for r in reports)
    return max(r["end"] for r in reports) - min(r["start"] for r in reports), n - applied


def same_call_workers(seeded: Path, n: int, rounds: int) -> dict[str, float]:
    """Two processes approving from one call at once, against one process doing it all."""
    left: list[int] = []

    def timed(count: int) -> float:
        seconds, unapplied = same_call_seconds(fresh_copy(seeded, f"same-{count}"), n, count)
        left.append(unapplied)
        return seconds

    samples = interleave({"one": lambda: timed(1), "two": lambda: timed(2)}, rounds)
    say(f"same call, one and two workers (s): {samples}; items not applied: {left}")
    return {
        "regime_same_call_one_s": median(samples["one"]),
        "regime_same_call_two_s": median(samples["two"]),
        "regime_same_call_two_workers": paired_ratio(samples["two"], samples["one"]),
        "regime_same_call_conflicts": float(max(left)),
    }


def run(quick: bool, rounds: int) -> dict[str, float]:
    """Both regime measurements; `quick` shrinks the sizes."""
    with tempfile.TemporaryDirectory(prefix="grantflow-bench-") as tmp:
        folder = Path(tmp)
        results = regime_bulk(folder, 30 if quick else 2_000, rounds)
        # 1,000 expenditures a sample: with 200 (0.1 s), a pause of some 40 ms in one
        # sample of three moved the ratio by a third (1.36 in one run, 1.01 in the next).
        spends = 10 if quick else 1_000
        results.update(invoice_growth(folder, spends, 50 if quick else 2_000, rounds))
        results.update(record_growth(folder, 3 if quick else 30, 5 if quick else 100, rounds))
        results.update(same_call_workers(folder / "regime-seed.db", 30 if quick else 2_000, rounds))
    return results


if __name__ == "__main__" and sys.argv[1:2] == ["worker"]:
    path, start, stop = sys.argv[2:5]
    print(json.dumps(_same_call_worker(Path(path), int(start), int(stop))), flush=True)
