"""Tests for grantflow.demo: a deterministic, realistic portfolio driven by the rules."""

from __future__ import annotations

import json

import pytest
from rich.console import Console

import grantflow
from grantflow.demo import DemoClock, DemoReport, render_report, run_demo, seed_portfolio
from grantflow.records import SERVICE_DOMAINS, Directory, is_credit_code
from grantflow.states import PURCHASED_SERVICE


def _run(projects: int, seed: int = 3) -> tuple[grantflow.Engine, DemoReport]:
    clock = DemoClock()
    engine = grantflow.open(clock=clock)
    return engine, run_demo(engine, clock=clock, seed=seed, projects=projects)


Shared = tuple[grantflow.Engine, DemoReport]


#: The tests reading the shared run sit on one pytest-xdist worker: it is built once.
ON_THE_SHARED_RUN = pytest.mark.xdist_group("demo-shared")


@pytest.fixture(scope="module")
def shared() -> Shared:
    """One 120-project run, read by the tests that only look at its results."""
    return _run(120)


def _accepted(engine: grantflow.Engine, project_id: str) -> list[str]:
    return [e.event for e in engine.history(project_id) if e.accepted]


def test_the_same_seed_gives_the_same_report() -> None:
    """Two runs with one seed report the same portfolio, to the fen; another seed differs."""
    first = _run(60, seed=11)[1].to_dict()
    second = _run(60, seed=11)[1].to_dict()
    assert first == second
    assert _run(60, seed=12)[1].to_dict() != first


def test_the_seeded_directory_has_the_shape_of_the_regime() -> None:
    """A city federation, districts with streets, industry unions, 8+ associations, valid codes."""
    engine = grantflow.open()
    world = seed_portfolio(engine, seed=5, projects=100)
    directory = Directory(engine)
    kinds = [hub.kind for hub in directory.hubs()]
    assert kinds.count("city") == 1
    assert kinds.count("district") >= 3
    assert kinds.count("industry_union") >= 1
    assert kinds.count("association") >= 8
    for district in world.hubs_of("district"):
        assert [h.kind for h in directory.hubs(parent=district)].count("street") >= 1
    assert len(world.providers) >= 100 // 2
    for provider_id in world.providers:
        provider = directory.provider(provider_id)
        assert provider is not None
        assert is_credit_code(provider.credit_code)
    assert {why for _r, _p, why in world.conflicts} == {
        "worked_there",
        "close_family",
        "declared",
    }
    assert {c.year for c in world.calls} >= {2025, 2026}
    assert directory.brand("heart") is not None
    assert seed_portfolio(grantflow.open(), seed=5, projects=100) == world


@ON_THE_SHARED_RUN
def test_the_final_portfolio_holds_every_state_of_the_lifecycle(shared: Shared) -> None:
    """Applied to closed, rejected, withdrawn and terminated: every state has projects."""
    _engine, report = shared
    assert set(report.states) == {s.name for s in PURCHASED_SERVICE.states}
    assert report.total_projects == 120
    assert report.verified


@ON_THE_SHARED_RUN
def test_rectification_leads_back_to_midterm_or_to_termination_with_clawback(
    shared: Shared,
) -> None:
    """Re-checked projects pass the mid-term again; the others end with a clawback record."""
    engine, _report = shared
    rectified = [
        p.id for p in engine.store.projects() if "order_rectification" in _accepted(engine, p.id)
    ]
    back = [p for p in rectified if _accepted(engine, p).count("pass_midterm") == 1]
    assert back, "a rectified project passed its re-check"
    terminated = list(engine.store.projects(state="terminated"))
    assert terminated
    for summary in terminated:
        project = engine.get(summary.id)
        assert "order_rectification" in _accepted(engine, project.id)
        assert project.records_of("clawback")


@ON_THE_SHARED_RUN
def test_the_rules_refuse_on_purpose(shared: Shared) -> None:
    """Eligibility, review, conflict, publicity and funds rules all fire, and are counted."""
    report = shared[1]
    for code in (
        "eligibility.annual_report",
        "eligibility.penalty",
        "eligibility.limit",
        "eligibility.call_window",
        "review.quorum",
        "review.score",
        "publicity.period",
        "publicity.objection",
        "funds.duplicate_invoice",
        "conflict.third_party",
        "evaluation.midterm_grade",
    ):
        assert report.refusals.get(code, 0) >= 1, code


@ON_THE_SHARED_RUN
def test_conflicted_reviews_do_not_count_toward_the_quorum(shared: Shared) -> None:
    """Each reviewed project of a conflicted expert's provider had that review excluded."""
    engine, _report = shared
    world = seed_portfolio(grantflow.open(), seed=3, projects=120)
    for reviewer, provider, why in world.conflicts:
        theirs = [
            p.id
            for p in engine.store.projects()
            if p.data.get("provider") == provider
            and any(e.event == "approve" for e in engine.history(p.id))
        ]
        assert theirs, provider
        for pid in theirs:
            refusals = [
                r
                for e in engine.history(pid)
                if e.event == "approve" and not e.accepted
                for r in e.refusals
            ]
            excluded = [x for r in refusals for x in r.details.get("excluded", [])]
            assert {"reviewer": reviewer, "reason": why} in excluded


@ON_THE_SHARED_RUN
def test_work_goes_through_bulk_runs_and_money_balances(shared: Shared) -> None:
    """Bulk counts are reported per step; disbursed never exceeds awarded."""
    _engine, report = shared
    bulk = dict(report.bulk)
    for step in ("review", "approve", "sign", "expenditure", "service", "evaluation", "close"):
        assert bulk[step].get("applied", 0) > 0, step
        assert bulk[step]["runs"] >= 1
    assert bulk["approve"].get("refused", 0) > 0
    assert 0 < report.disbursed <= report.awarded


@ON_THE_SHARED_RUN
def test_replay_of_a_sample_equals_the_stored_projects(shared: Shared) -> None:
    """Replaying the audit chain of sampled projects rebuilds them exactly."""
    engine, _report = shared
    projects = sorted(p.id for p in engine.store.projects())
    for pid in projects[::9]:
        assert engine.replay(pid) == engine.get(pid)


@ON_THE_SHARED_RUN
def test_services_add_up_by_domain_and_by_hub(shared: Shared) -> None:
    """Every service domain has activity; domain and hub totals agree."""
    report = shared[1]
    assert {d for d, _a, _p in report.by_domain} == set(SERVICE_DOMAINS)
    assert sum(a for _d, a, _p in report.by_domain) == sum(a for _h, a, _p in report.by_hub)
    assert sum(p for _d, _a, p in report.by_domain) == sum(p for _h, _a, p in report.by_hub)


@ON_THE_SHARED_RUN
def test_the_report_renders_and_serialises(shared: Shared) -> None:
    """`render_report` prints every table; `to_dict` is plain JSON."""
    report = shared[1]
    console = Console(record=True, width=120)
    render_report(report, console)
    text = console.export_text()
    for title in ("Projects by state", "Services by domain", "Bulk transitions", "verified"):
        assert title in text
    data = json.loads(json.dumps(report.to_dict()))
    assert data["projects"] == 120
    assert data["funds"]["awarded"] == str(report.awarded)


def test_the_smallest_demo_the_command_allows_still_verifies() -> None:
    """Ten projects: every step copes with tiny groups, and the chain verifies."""
    report = _run(10, seed=1)[1]
    assert report.total_projects == 10
    assert report.verified


@pytest.mark.slow
def test_the_full_demo_of_500_projects() -> None:
    """The README demo: 500 projects in every domain and state, verified."""
    _engine, report = _run(500, seed=7)
    assert report.total_projects == 500
    assert set(report.states) == {s.name for s in PURCHASED_SERVICE.states}
    assert {d for d, _a, _p in report.by_domain} == set(SERVICE_DOMAINS)
    assert report.associations >= 8
    assert report.verified
