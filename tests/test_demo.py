"""Tests for grantflow.demo: a deterministic, realistic portfolio driven by the rules."""

from __future__ import annotations

import grantflow
from grantflow.demo import DemoClock, DemoReport, run_demo
from grantflow.records import SERVICE_DOMAINS, Directory


def _run(projects: int, seed: int = 3) -> tuple[grantflow.Engine, DemoReport]:
    clock = DemoClock()
    engine = grantflow.open(clock=clock)
    return engine, run_demo(engine, clock=clock, seed=seed, projects=projects)


def test_the_same_seed_gives_the_same_report() -> None:
    """Two runs with one seed report the same portfolio, to the fen."""
    first = _run(60, seed=11)[1].to_dict()
    second = _run(60, seed=11)[1].to_dict()
    assert first == second
    assert _run(60, seed=12)[1].to_dict() != first


def test_the_portfolio_has_the_shape_of_the_regime() -> None:
    """A city federation, districts with streets, industry unions, 8+ associations."""
    engine, report = _run(80)
    directory = Directory(engine)
    kinds = [hub.kind for hub in directory.hubs()]
    assert kinds.count("city") == 1
    assert kinds.count("district") >= 3
    assert kinds.count("street") >= 3
    assert kinds.count("industry_union") >= 1
    assert report.associations >= 8
    assert report.total_projects == 80
    assert {d for d, _, _ in report.by_domain} == set(SERVICE_DOMAINS)


def test_every_path_of_the_lifecycle_is_taken() -> None:
    """Closed, rejected, withdrawn, terminated and still-running projects all occur."""
    engine, report = _run(150)
    assert {"closed", "rejected", "withdrawn", "terminated", "midterm"} <= set(report.states)
    assert report.verified
    rectified = [
        p
        for p in engine.store.projects(state="midterm")
        if any(e.event == "order_rectification" and e.accepted for e in engine.history(p.id))
    ] + [
        p
        for p in engine.store.projects(state="closed")
        if any(e.event == "order_rectification" and e.accepted for e in engine.history(p.id))
    ]
    assert rectified, "some project went through rectification and back to midterm"
    terminated = next(iter(engine.store.projects(state="terminated")))
    assert engine.get(terminated.id).records_of("clawback")


def test_the_rules_refuse_on_purpose() -> None:
    """Eligibility, review, conflict, publicity and duplicate-invoice rules all fire."""
    report = _run(120)[1]
    for code in (
        "eligibility.annual_report",
        "eligibility.penalty",
        "eligibility.limit",
        "review.quorum",
        "publicity.period",
        "funds.duplicate_invoice",
        "evaluation.midterm_grade",
    ):
        assert report.refusals.get(code, 0) >= 1, code


def test_work_goes_through_bulk_runs_and_money_balances() -> None:
    """Bulk results are reported per step; disbursed never exceeds awarded; replay holds."""
    engine, report = _run(60)
    applied = {}
    for step, counts in report.bulk:
        applied[step] = applied.get(step, 0) + counts.get("applied", 0)
    assert applied["approve"] > 0
    assert applied["close"] > 0
    assert 0 < report.disbursed <= report.awarded
    for project in list(engine.store.projects())[:10]:
        assert engine.replay(project.id) == engine.get(project.id)
