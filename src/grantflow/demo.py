"""A realistic demo portfolio: a union hub tree buying services, driven through the rules.

`run_demo` seeds a purchaser tree shaped like DOMAIN.md (a city federation, district and
street unions, industry unions, directly managed associations), a few hundred providers,
expert reviewers (one with a conflict of interest the rules must catch) and third-party
evaluators, then moves 500 projects through the whole lifecycle with bulk transitions:
reviews, approval (and refusals), rejections and withdrawals, contracts after the
publicity period, spending and services, the mid-term (with rectification, re-checks
and terminations with clawback), the final assessment and closing with settlement.
Deterministic for a given seed; the clock is simulated.

>>> import grantflow
>>> from grantflow.demo import DemoClock, run_demo
>>> clock = DemoClock()
>>> report = run_demo(grantflow.open(clock=clock), clock=clock, seed=1, projects=40)
>>> report.verified, report.total_projects
(True, 40)
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from typing import Any

from grantflow._engine import Engine
from grantflow.bulk import BulkItem, BulkResult
from grantflow.models import Actor
from grantflow.portfolio import Portfolio
from grantflow.records import (
    SERVICE_DOMAINS,
    Affiliation,
    Brand,
    Call,
    Directory,
    Hub,
    Person,
    Provider,
    credit_code_check,
)
from grantflow.rubrics import APPROVAL_REVIEW, MIDTERM_EVALUATION, PERFORMANCE_ASSESSMENT

__all__ = ["DemoClock", "DemoReport", "render_report", "run_demo"]

#: Monday 3 March 2025, 09:00 UTC: the call is open, reviews start.
START = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
_CENT = Decimal("0.01")
_SHARES = {  # default budget split; personnel 40 % and administration 5 % stay under caps
    "personnel": Decimal("0.40"),
    "activities": Decimal("0.35"),
    "experts": Decimal("0.05"),
    "training": Decimal("0.05"),
    "publicity": Decimal("0.05"),
    "administration": Decimal("0.05"),
    "evaluation": Decimal("0.05"),
}
_BRANDS = {"mental_health": "heart", "skills_training": "skills", "occupational_safety": "safe"}


@dataclass
class DemoClock:
    """The demo's simulated time: starts on `START` and moves only when told."""

    now: datetime = START

    def __call__(self) -> datetime:
        """Return the simulated time."""
        return self.now

    def advance(self, days: int) -> None:
        """Move the clock forward by `days` days."""
        self.now += timedelta(days=days)


@dataclass
class DemoReport:
    """What the demo did and where the portfolio stands."""

    seed: int
    states: dict[str, int]
    awarded: Decimal
    disbursed: Decimal
    by_domain: list[tuple[str, int, int]]
    by_hub: list[tuple[str, int, int]]
    refusals: dict[str, int]
    bulk: list[tuple[str, dict[str, int]]]
    verified: bool
    audit_entries: int
    hubs: int
    associations: int
    providers: int

    @property
    def total_projects(self) -> int:
        """How many projects exist."""
        return sum(self.states.values())

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON-ready data."""
        return {
            "seed": self.seed,
            "projects": self.total_projects,
            "states": dict(sorted(self.states.items())),
            "funds": {"awarded": str(self.awarded), "disbursed": str(self.disbursed)},
            "services_by_domain": [
                {"domain": k, "activities": a, "person_times": p} for k, a, p in self.by_domain
            ],
            "services_by_hub": [
                {"hub": k, "activities": a, "person_times": p} for k, a, p in self.by_hub
            ],
            "refusals": dict(sorted(self.refusals.items())),
            "bulk": [{"event": e, "counts": c} for e, c in self.bulk],
            "audit": {"verified": self.verified, "entries": self.audit_entries},
            "directory": {
                "hubs": self.hubs,
                "associations": self.associations,
                "providers": self.providers,
            },
        }


def _staff(actor_id: str, role: str, organisation: str) -> Actor:
    return Actor(id=actor_id, roles=frozenset({role}), organisation=organisation)


@dataclass
class _World:
    """The seeded reference data and the people who act in the demo."""

    rng: random.Random
    hubs: list[str] = field(default_factory=list)
    associations: list[str] = field(default_factory=list)
    providers: list[str] = field(default_factory=list)
    reviewers: list[str] = field(default_factory=list)
    conflicted: tuple[str, str] = ("", "")
    approver: Actor = field(default_factory=lambda: _staff("staff-approve", "purchaser", "city"))
    treasurer: Actor = field(default_factory=lambda: _staff("staff-pay", "purchaser", "city"))
    evaluator: Actor = field(default_factory=lambda: _staff("ev-1", "evaluator", "audit-co"))


def _money(value: Decimal) -> str:
    return str(value.quantize(_CENT, rounding=ROUND_DOWN))


def _seed_directory(engine: Engine, rng: random.Random, providers: int) -> _World:
    world = _World(rng)
    d = Directory(engine)
    d.add_hub(Hub(id="city", name="City Federation of Trade Unions 市总工会", kind="city"))
    world.hubs.append("city")
    for n in range(1, 5):
        district = f"district-{n}"
        d.add_hub(
            Hub(id=district, name=f"District {n} union 区总工会", kind="district", parent="city")
        )
        world.hubs.append(district)
        for m in range(1, 4):
            street = f"street-{n}-{m}"
            d.add_hub(
                Hub(
                    id=street, name=f"Street {n}-{m} union 街道工会", kind="street", parent=district
                )
            )
            world.hubs.append(street)
    for name in ("transport", "construction"):
        d.add_hub(
            Hub(
                id=f"industry-{name}",
                name=f"{name.title()} industry union 产业工会",
                kind="industry_union",
                parent="city",
            )
        )
        world.hubs.append(f"industry-{name}")
    for n in range(1, 10):
        assoc = f"association-{n}"
        d.add_hub(
            Hub(
                id=assoc,
                name=f"Directly managed association {n} 直管协会",
                kind="association",
                parent="city",
            )
        )
        world.hubs.append(assoc)
        world.associations.append(assoc)
    for n in range(providers):
        pid = f"org-{n:03d}"
        body = f"5231{(n % 9000) + 1000:04d}MJ{n:07d}"
        d.add_provider(
            Provider(
                id=pid,
                name=f"Social organisation {n} 社会组织",
                credit_code=body + credit_code_check(body),
                # Two providers fail eligibility: no annual report, a recent penalty.
                annual_report_passed=n != 1,
                penalties=(date(2024, 6, 1),) if n == 2 else (),
            )
        )
        world.providers.append(pid)
    for n in range(1, 13):
        rid = f"reviewer-{n:02d}"
        affiliations: tuple[Affiliation, ...] = ()
        if n == 7:  # worked for org-010 until last year: must not count for its projects
            affiliations = (Affiliation(organisation="org-010", until=date(2024, 6, 30)),)
            world.conflicted = (rid, "org-010")
        d.add_person(
            Person(
                id=rid, name=f"Expert {n}", organisation="expert-pool", affiliations=affiliations
            )
        )
        world.reviewers.append(rid)
    d.add_person(Person(id="ev-1", name="Third-party evaluator", organisation="audit-co"))
    d.add_call(
        Call(
            id="call-2025",
            hub="city",
            year=2025,
            opens=datetime(2025, 1, 1, tzinfo=UTC),
            closes=datetime(2025, 3, 31, tzinfo=UTC),
            budget=Decimal("80000000.00"),
            rubric_versions={"approval": 1, "midterm": 1, "performance": 1},
        )
    )
    d.add_brand(Brand(id="heart", name="Heart station", name_zh="心灵驿站", domain="mental_health"))
    d.add_brand(
        Brand(id="skills", name="Skills upgrade", name_zh="技能提升", domain="skills_training")
    )
    d.add_brand(
        Brand(id="safe", name="Safe at work", name_zh="安全守护", domain="occupational_safety")
    )
    return world


def _applicant(provider: str) -> Actor:
    return Actor(id=f"{provider}-staff", roles=frozenset({"applicant"}), organisation=provider)


def _application(world: _World, n: int, provider: str) -> dict[str, Any]:
    rng = world.rng
    domain = SERVICE_DOMAINS[n % len(SERVICE_DOMAINS)]
    hub = world.hubs[1 + rng.randrange(len(world.hubs) - 1)]
    amount = Decimal(rng.randrange(60, 400) * 1000)
    data: dict[str, Any] = {
        "title": f"{domain.replace('_', ' ').title()} services #{n}",
        "domain": domain,
        "provider": provider,
        "hub": hub,
        "call": "call-2025",
        "amount_requested": _money(amount),
        "planned_start": "2025-03-20",
        "planned_end": "2026-03-19",
        "target_activities": rng.randrange(10, 80),
        "target_person_times": rng.randrange(500, 30000),
    }
    if domain in _BRANDS and rng.random() < 0.6:
        data["brand"] = _BRANDS[domain]
    return data


def _grouped(pairs: Iterable[tuple[str, str, Any]]) -> dict[str, list[tuple[str, Any]]]:
    groups: dict[str, list[tuple[str, Any]]] = {}
    for key, pid, evidence in pairs:
        groups.setdefault(key, []).append((pid, evidence))
    return groups


class _Run:
    """One demo run: the engine, the world, and the tally of bulk results and refusals."""

    def __init__(
        self,
        engine: Engine,
        clock: DemoClock,
        world: _World,
        progress: Callable[[str], None] | None,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.world = world
        self.progress = progress
        self.bulk: list[tuple[str, dict[str, int]]] = []
        self.refusals: Counter[str] = Counter()
        self.provider_of: dict[str, str] = {}
        self.amount: dict[str, Decimal] = {}

    def fire_many(self, label: str, event: str, items: Sequence[Any], actor: Actor) -> BulkResult:
        if self.progress is not None:
            self.progress(label)
        result = self.engine.fire_many(event, items, actor=actor)
        for item in result.items:
            self.refusals.update(r.code for r in item.refusals)
        merged = dict(self.bulk[-1][1]) if self.bulk and self.bulk[-1][0] == label else {}
        for status, count in result.counts.items():
            merged[status] = merged.get(status, 0) + count
        if self.bulk and self.bulk[-1][0] == label:
            self.bulk[-1] = (label, merged)
        else:
            self.bulk.append((label, merged))
        return result

    def by_provider(self, label: str, event: str, items: Iterable[tuple[str, Any]]) -> BulkResult:
        """Fire with each item's provider as its actor (one run for all providers)."""
        bulk = [
            BulkItem(pid, evidence, actor=_applicant(self.provider_of[pid]))
            for pid, evidence in items
        ]
        return self.fire_many(label, event, bulk, self.world.treasurer)

    def single(self, pid: str, event: str, actor: Actor, evidence: Mapping[str, Any]) -> bool:
        outcome = self.engine.fire(pid, event, actor=actor, evidence=evidence)
        self.refusals.update(r.code for r in outcome.refusals)
        return outcome.accepted


def _review_data(reviewer: str, percent: int) -> dict[str, Any]:
    return {
        "reviewer": reviewer,
        "rubric": "approval",
        "rubric_version": 1,
        "scores": {k: str(v) for k, v in APPROVAL_REVIEW.proportional(percent).items()},
        "conflict": {"declared": False},
    }


def _evaluation(stage: str, percent: int, progress: int) -> dict[str, Any]:
    rubric = PERFORMANCE_ASSESSMENT if stage == "final" else MIDTERM_EVALUATION
    return {
        "stage": stage,
        "evaluator": "ev-1",
        "organisation": "audit-co",
        "rubric": rubric.id,
        "rubric_version": 1,
        "scores": {k: str(v) for k, v in rubric.proportional(percent).items()},
        "progress_percent": progress,
    }


def _sign_evidence(pid: str, amount: Decimal) -> dict[str, Any]:
    lines = {
        line: (amount * share).quantize(_CENT, rounding=ROUND_DOWN)
        for line, share in _SHARES.items()
    }
    lines["activities"] += amount - sum(lines.values())

    def contract(kind: str) -> dict[str, Any]:
        return {
            "kind": kind,
            "number": f"{kind}-{pid}",
            "signed_on": "2025-03-13",
            "amount": _money(amount),
            "start": "2025-03-20",
            "end": "2026-03-19",
        }

    return {
        "contracts": [contract("purchase"), contract("supervision")],
        "budget": [{"line": k, "amount": _money(v)} for k, v in lines.items()],
    }


def _spend(pid: str, n: int, line: str, amount: Decimal, day: str) -> dict[str, Any]:
    return {
        "date": day,
        "line": line,
        "amount": _money(amount),
        "invoice_number": f"INV-{pid}-{n}",
        "voucher": f"V-{pid}-{n}",
    }


def run_demo(
    engine: Engine,
    *,
    clock: DemoClock,
    seed: int = 7,
    projects: int = 500,
    progress: Callable[[str], None] | None = None,
) -> DemoReport:
    """Seed a portfolio on `engine` and drive it through the lifecycle; report on it.

    `engine` must use the default rules and `clock` (``grantflow.open(url, clock=clock)``).
    `progress` is called with the name of each step as it starts.
    """
    rng = random.Random(seed)
    world = _seed_directory(engine, rng, providers=projects // 2 + 12)
    run = _Run(engine, clock, world, progress)
    pids = _submit(run, projects)
    reviewed = _review_and_approve(run, pids)
    contracted = _withdraw_and_sign(run, reviewed)
    _implement(run, contracted)
    return _report(run, seed)


def _submit(run: _Run, projects: int) -> list[str]:
    world, rng = run.world, run.world.rng
    if run.progress is not None:
        run.progress("submit")
    eligible = world.providers[3:]
    slots = [p for p in eligible for _ in range(2)]  # at most 2 per provider per call
    rng.shuffle(slots)
    pids: list[str] = []
    # Three applications that the eligibility rules refuse, on purpose.
    for provider in (world.providers[1], world.providers[2]):
        out = run.engine.submit(actor=_applicant(provider), data=_application(world, 0, provider))
        run.refusals.update(r.code for r in out.refusals)
    for n in range(projects):
        provider = slots[n]
        pid = f"P-2025-{n + 1:04d}"
        out = run.engine.submit(
            actor=_applicant(provider), project_id=pid, data=_application(world, n, provider)
        )
        run.refusals.update(r.code for r in out.refusals)
        if out.accepted:
            pids.append(pid)
            run.provider_of[pid] = provider
            run.amount[pid] = Decimal(out.entry.data["amount_requested"]) if out.entry else _CENT
    counts = Counter(run.provider_of.values())
    full = [p for p, c in sorted(counts.items()) if c >= 2]
    if full:  # a third application from one provider: over the per-call cap
        out = run.engine.submit(actor=_applicant(full[0]), data=_application(world, 1, full[0]))
        run.refusals.update(r.code for r in out.refusals)
    return pids


def _review_and_approve(run: _Run, pids: list[str]) -> list[str]:
    world, rng = run.world, run.world.rng
    run.clock.advance(1)
    quality = {pid: max(35, min(98, int(rng.gauss(78, 11)))) for pid in pids}
    panels: dict[str, list[str]] = {}
    for pid in pids:
        size = 3 if rng.random() < 0.7 else 5
        panel = rng.sample([r for r in world.reviewers if r != world.conflicted[0]], size)
        if run.provider_of[pid] == world.conflicted[1]:
            panel[0] = world.conflicted[0]  # the conflicted expert reviews: must not count
        panels[pid] = panel
    reviews = [
        (reviewer, pid, _review_data(reviewer, max(0, min(100, quality[pid] + rng.randint(-6, 6)))))
        for pid, panel in panels.items()
        for reviewer in panel
    ]
    for reviewer, items in sorted(_grouped(reviews).items()):
        actor = Actor(id=reviewer, roles=frozenset({"reviewer"}), organisation="expert-pool")
        run.fire_many("review", "record.review", items, actor)
    run.clock.advance(3)
    offers = [
        (pid, {"recommended_amount": _money(run.amount[pid] * Decimal("0.9"))}) for pid in pids
    ]
    result = run.fire_many("approve", "approve", offers, world.approver)
    refused = {r.project_id: {c.code for c in r.refusals} for r in result.items}
    short = [pid for pid, codes in refused.items() if "review.quorum" in codes]
    if short:  # the panel lost its conflicted member: one more expert reviews, then approve
        extra = [(pid, _review_data("reviewer-12", quality[pid])) for pid in short]
        actor = Actor(id="reviewer-12", roles=frozenset({"reviewer"}), organisation="expert-pool")
        run.fire_many("review", "record.review", extra, actor)
        again = run.fire_many(
            "approve", "approve", [o for o in offers if o[0] in set(short)], world.approver
        )
        for item in again.items:
            refused[item.project_id] = {c.code for c in item.refusals}
        for pid in short:
            if pid not in {i.project_id for i in again.items}:
                refused.pop(pid, None)
    rejects = [
        (pid, {"reason": "approval review score below the pass mark"})
        for pid in pids
        if pid in refused
    ]
    run.fire_many("reject", "reject", rejects, world.approver)
    return [pid for pid in pids if pid not in refused]


def _withdraw_and_sign(run: _Run, reviewed: list[str]) -> list[str]:
    world, rng = run.world, run.world.rng
    withdrawn = {pid for pid in reviewed if rng.random() < 0.03}
    run.by_provider(
        "withdraw",
        "withdraw",
        [(pid, {"reason": "key staff left the organisation"}) for pid in withdrawn],
    )
    candidates = [pid for pid in reviewed if pid not in withdrawn]
    early = candidates[:5]  # signing before the publicity period ends is refused
    run.fire_many(
        "sign (too early)",
        "sign",
        [(pid, _sign_evidence(pid, run.amount[pid] * Decimal("0.9"))) for pid in early],
        world.treasurer,
    )
    run.clock.advance(9)
    signs = [(pid, _sign_evidence(pid, run.amount[pid] * Decimal("0.9"))) for pid in candidates]
    result = run.fire_many("sign", "sign", signs, world.treasurer)
    failed = {r.project_id for r in result.items}
    for pid in candidates:
        run.amount[pid] = (run.amount[pid] * Decimal("0.9")).quantize(_CENT, rounding=ROUND_DOWN)
    return [pid for pid in candidates if pid not in failed]


def _implement(run: _Run, contracted: list[str]) -> None:
    world, rng = run.world, run.world.rng
    run.clock.advance(60)
    spend = []
    for pid in contracted:
        award = run.amount[pid]
        spend.append((pid, _spend(pid, 1, "activities", award * Decimal("0.15"), "2025-04-20")))
        spend.append((pid, _spend(pid, 2, "personnel", award * Decimal("0.12"), "2025-05-10")))
    # One provider tries to book another project's invoice: refused as a duplicate.
    if len(contracted) > 1:
        dup = _spend(contracted[1], 9, "experts", Decimal("100.00"), "2025-05-11")
        dup["invoice_number"] = f"INV-{contracted[0]}-1"
        spend.append((contracted[1], dup))
    run.by_provider("expenditure", "record.expenditure", spend)
    _serve(run, contracted, "2025-05-20")
    run.clock.advance(120)
    scores = {pid: max(30, min(97, int(rng.gauss(76, 13)))) for pid in contracted}
    ongoing = {pid for pid in contracted if rng.random() < 0.06}
    evaluated = [pid for pid in contracted if pid not in ongoing]
    run.fire_many(
        "evaluation",
        "record.evaluation",
        [(pid, _evaluation("midterm", scores[pid], 45)) for pid in evaluated],
        world.evaluator,
    )
    passed = run.fire_many(
        "pass_midterm", "pass_midterm", [(p, {}) for p in evaluated], world.treasurer
    )
    failing = [r.project_id for r in passed.items]
    order = {
        "order": {
            "issues": ["ledgers incomplete", "activities behind plan"],
            "deadline": "2025-12-31",
        }
    }
    run.fire_many(
        "order_rectification",
        "order_rectification",
        [(pid, order) for pid in failing],
        world.evaluator,
    )
    run.clock.advance(45)
    rechecks = {pid: (72 if rng.random() < 0.6 else 45) for pid in failing}
    run.fire_many(
        "evaluation",
        "record.evaluation",
        [(pid, _evaluation("recheck", s, 55)) for pid, s in rechecks.items()],
        world.evaluator,
    )
    recovered = [pid for pid, s in rechecks.items() if s >= 60]
    run.fire_many("pass_midterm", "pass_midterm", [(p, {}) for p in recovered], world.treasurer)
    doomed = [
        (pid, {"reason": "failed the rectification re-check"})
        for pid, s in rechecks.items()
        if s < 60
    ]
    run.fire_many("terminate", "terminate", doomed, world.approver)
    at_midterm = [pid for pid in evaluated if pid not in failing or pid in recovered]
    _finish(run, at_midterm)


def _serve(run: _Run, pids: Sequence[str], day: str) -> None:
    rng = run.world.rng
    items = []
    for pid in pids:
        domain = SERVICE_DOMAINS[int(pid[-4:]) - 1 and (int(pid[-4:]) - 1) % len(SERVICE_DOMAINS)]
        items.append(
            (
                pid,
                {
                    "date": day,
                    "domain": domain,
                    "activities": rng.randrange(3, 30),
                    "person_times": rng.randrange(100, 4000),
                },
            )
        )
    run.by_provider("service", "record.service", items)


def _finish(run: _Run, at_midterm: list[str]) -> None:
    world, rng = run.world, run.world.rng
    run.clock.advance(30)
    spend = []
    for pid in at_midterm:
        award = run.amount[pid]
        spend.append((pid, _spend(pid, 3, "activities", award * Decimal("0.18"), "2025-11-15")))
        spend.append((pid, _spend(pid, 4, "personnel", award * Decimal("0.25"), "2025-12-15")))
        spend.append((pid, _spend(pid, 5, "training", award * Decimal("0.04"), "2026-01-10")))
    run.by_provider("expenditure", "record.expenditure", spend)
    _serve(run, at_midterm, "2026-01-20")
    run.clock.advance(140)
    running = {pid for pid in at_midterm if rng.random() < 0.08}
    final = [pid for pid in at_midterm if pid not in running]
    run.fire_many(
        "evaluation",
        "record.evaluation",
        [
            (pid, _evaluation("final", max(40, min(98, int(rng.gauss(82, 9)))), 100))
            for pid in final
        ],
        world.evaluator,
    )
    closeout = {"closeout": {"report": "final report, ledgers and service records"}}
    assessed = run.fire_many(
        "assess", "assess", [(pid, closeout) for pid in final], world.evaluator
    )
    failed = {r.project_id for r in assessed.items}
    run.clock.advance(20)
    run.fire_many(
        "close", "close", [(pid, {}) for pid in final if pid not in failed], world.treasurer
    )


def _report(run: _Run, seed: int) -> DemoReport:
    engine = run.engine
    portfolio = Portfolio(engine)
    states = {t.key: t.projects for t in portfolio.totals("state")}
    funds = portfolio.totals("state")
    verification = engine.verify()
    return DemoReport(
        seed=seed,
        states=states,
        awarded=sum((t.awarded for t in funds), Decimal(0)),
        disbursed=sum((t.disbursed for t in funds), Decimal(0)),
        by_domain=[(t.key, t.activities, t.person_times) for t in portfolio.services("domain")],
        by_hub=[(t.key, t.activities, t.person_times) for t in portfolio.services("hub")],
        refusals=dict(run.refusals),
        bulk=run.bulk,
        verified=verification.ok,
        audit_entries=verification.entries,
        hubs=len(run.world.hubs),
        associations=len(run.world.associations),
        providers=len(run.world.providers),
    )


def render_report(report: DemoReport, console: Any) -> None:
    """Print the report as rich tables on `console` (a `rich.console.Console`)."""
    from rich.table import Table

    console.print(
        f"[bold]grantflow demo[/bold] (seed {report.seed}): {report.total_projects} projects, "
        f"{report.hubs} hubs ({report.associations} directly managed associations), "
        f"{report.providers} providers"
    )
    states = Table(title="Projects by state 项目状态")
    states.add_column("state")
    states.add_column("projects", justify="right")
    for state, count in sorted(report.states.items(), key=lambda kv: -kv[1]):
        states.add_row(state, str(count))
    console.print(states)
    console.print(
        f"Funds awarded 立项金额: {report.awarded:,} CNY; "
        f"disbursed 已拨付: {report.disbursed:,} CNY"
    )
    for title, rows, label in (
        ("Services by domain 服务领域", report.by_domain, "domain"),
        ("Services by hub 枢纽", report.by_hub, "hub"),
    ):
        table = Table(title=title)
        table.add_column(label)
        table.add_column("activities", justify="right")
        table.add_column("person-times", justify="right")
        for key, activities, people in rows:
            table.add_row(key, f"{activities:,}", f"{people:,}")
        console.print(table)
    bulk = Table(title="Bulk transitions 批量操作")
    bulk.add_column("step")
    bulk.add_column("result")
    for event, counts in report.bulk:
        bulk.add_row(event, ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    console.print(bulk)
    refusals = Table(title="Refusals by rule 规则拒绝")
    refusals.add_column("code")
    refusals.add_column("times", justify="right")
    for code, count in sorted(report.refusals.items(), key=lambda kv: -kv[1]):
        refusals.add_row(code, str(count))
    console.print(refusals)
    status = "[green]verified[/green]" if report.verified else "[red]BROKEN[/red]"
    console.print(f"Audit chain 审计链: {status} ({report.audit_entries:,} entries)")
