"""A realistic demo portfolio: a union hub tree buying services, driven through the rules.

`seed_portfolio` writes the reference data of a purchaser shaped like DOMAIN.md: a city
federation with district and street unions, industry unions and directly managed
associations; providers with valid unified social credit codes (two of them
ineligible); expert reviewers, three of them conflicted with a provider; third-party
evaluation firms (one evaluator with ties to a provider); calls for 2024, 2025 and 2026;
three brands. Every actor acts for an organisation of that world: providers' staff, the
city federation's and the districts' staff (approvers, and finance staff who release
payments), experts, and the evaluation firm contracted at signing for each project.
`run_demo` then moves the projects through the whole lifecycle with bulk
transitions: reviews, approval (and refusals), objections in publicity, rejections and
withdrawals, contracts after the publicity period, spending and services, the mid-term
(with rectification, re-checks, terminations with clawback and a sanction), the final
assessment and settlement, and a second call still under review. The portfolio it
leaves behind has projects in every state of the lifecycle. Deterministic for a seed;
the clock is simulated.

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

from grantflow._clock import FrozenClock
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

__all__ = [
    "DemoClock",
    "DemoReport",
    "DemoWorld",
    "START",
    "render_report",
    "run_demo",
    "seed_portfolio",
]

#: Monday 3 March 2025, 09:00 UTC: the 2025 call is open, reviews start.
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
_BRANDS = (
    Brand(id="heart", name="Heart station", name_zh="心灵驿站", domain="mental_health"),
    Brand(id="skills", name="Skills upgrade", name_zh="技能提升", domain="skills_training"),
    Brand(id="safe", name="Safe at work", name_zh="安全守护", domain="occupational_safety"),
)
#: Administrative division codes (GB/T 2260) the demo's beneficiaries live in.
_DISTRICTS = ("440303", "440304", "440305", "440306", "440307", "440308")
_TERMS = {"call-2025": ("2025-03-20", "2026-03-19"), "call-2026": ("2026-06-01", "2027-05-31")}


#: The demo's simulated time: a `FrozenClock` starting on `START`, moved only when told.
DemoClock = FrozenClock


@dataclass(frozen=True)
class DemoWorld:
    """The reference data `seed_portfolio` wrote: who buys, who provides, who judges."""

    seed: int
    hubs: tuple[Hub, ...]
    providers: tuple[str, ...]
    #: Providers the eligibility rules refuse: (provider, rule code).
    ineligible: tuple[tuple[str, str], ...]
    reviewers: tuple[str, ...]
    #: Reviewers with a conflict of interest: (reviewer, provider, why).
    conflicts: tuple[tuple[str, str, str], ...]
    #: Third-party evaluators: (person, firm).
    evaluators: tuple[tuple[str, str], ...]
    #: An evaluator who worked for a provider: (person, firm, provider).
    tied_evaluator: tuple[str, str, str]
    calls: tuple[Call, ...]
    brands: tuple[Brand, ...]

    def hubs_of(self, kind: str) -> tuple[str, ...]:
        """Return the ids of the hubs of one kind (``district``, ``association``, ...)."""
        return tuple(h.id for h in self.hubs if h.kind == kind)

    @property
    def eligible(self) -> tuple[str, ...]:
        """Providers that may apply."""
        bad = {p for p, _code in self.ineligible}
        return tuple(p for p in self.providers if p not in bad)


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
    by_brand: list[tuple[str, int, Decimal]] = field(default_factory=list)
    #: Refund demands (overpayments at settlement, clawbacks): total, repaid, how many.
    refunds: Decimal = Decimal("0.00")
    refunds_repaid: Decimal = Decimal("0.00")
    refund_demands: int = 0
    reviewers: int = 0
    evaluators: int = 0
    calls: int = 0

    @property
    def total_projects(self) -> int:
        """How many projects exist."""
        return sum(self.states.values())

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON-ready data (money as text, to the fen)."""
        return {
            "seed": self.seed,
            "projects": self.total_projects,
            "states": dict(sorted(self.states.items())),
            "funds": {
                "awarded": str(self.awarded),
                "disbursed": str(self.disbursed),
                "refunds": str(self.refunds),
                "refunds_repaid": str(self.refunds_repaid),
                "refund_demands": self.refund_demands,
            },
            "services_by_domain": [
                {"domain": k, "activities": a, "person_times": p} for k, a, p in self.by_domain
            ],
            "services_by_hub": [
                {"hub": k, "activities": a, "person_times": p} for k, a, p in self.by_hub
            ],
            "brands": [{"brand": k, "projects": n, "awarded": str(a)} for k, n, a in self.by_brand],
            "refusals": dict(sorted(self.refusals.items())),
            "bulk": [{"event": e, "counts": dict(sorted(c.items()))} for e, c in self.bulk],
            "audit": {"verified": self.verified, "entries": self.audit_entries},
            "directory": {
                "hubs": self.hubs,
                "associations": self.associations,
                "providers": self.providers,
                "reviewers": self.reviewers,
                "evaluators": self.evaluators,
                "calls": self.calls,
            },
        }


# -- seeding ---------------------------------------------------------------------------


def seed_portfolio(engine: Engine, *, seed: int, projects: int = 500) -> DemoWorld:
    """Write the demo's hub tree, providers, people, calls and brands; return who is who.

    Enough providers are seeded for `projects` applications at two per provider and
    call. Deterministic: the same `seed` writes the same reference data.
    """
    rng = random.Random(seed)
    directory = Directory(engine)
    hubs = _seed_hubs(directory)
    providers = _seed_providers(directory, projects // 2 + 12)
    ineligible = (
        (providers[1], "eligibility.annual_report"),
        (providers[2], "eligibility.penalty"),
    )
    # Four providers with ties to the judges, chosen among those who may apply.
    tied = rng.sample(providers[3:], 4)
    reviewers, conflicts = _seed_reviewers(directory, tied[:3])
    evaluators, tied_evaluator = _seed_evaluators(directory, tied[3])
    calls = _seed_calls(directory)
    for brand in _BRANDS:
        directory.add_brand(brand)
    return DemoWorld(
        seed=seed,
        hubs=hubs,
        providers=providers,
        ineligible=ineligible,
        reviewers=reviewers,
        conflicts=conflicts,
        evaluators=evaluators,
        tied_evaluator=tied_evaluator,
        calls=calls,
        brands=_BRANDS,
    )


def _seed_hubs(directory: Directory) -> tuple[Hub, ...]:
    hubs = [Hub(id="city", name="City Federation of Trade Unions 市总工会", kind="city")]
    for n in range(1, 5):
        district = f"district-{n}"
        hubs.append(
            Hub(id=district, name=f"District {n} union 区总工会", kind="district", parent="city")
        )
        hubs.extend(
            Hub(id=f"street-{n}-{m}", name=f"Street {n}-{m} union 街道工会", kind="street",
                parent=district)
            for m in range(1, 4)
        )  # fmt: skip
    hubs.extend(
        Hub(id=f"industry-{name}", name=f"{name.title()} industry union 产业工会",
            kind="industry_union", parent="city")
        for name in ("transport", "construction", "health")
    )  # fmt: skip
    hubs.extend(
        Hub(id=f"association-{n}", name=f"Directly managed association {n} 直管协会",
            kind="association", parent="city")
        for n in range(1, 10)
    )  # fmt: skip
    for hub in hubs:
        directory.add_hub(hub)
    return tuple(hubs)


def _seed_providers(directory: Directory, count: int) -> tuple[str, ...]:
    ids = []
    for n in range(count):
        pid = f"org-{n:03d}"
        body = f"5231{(n % 9000) + 1000:04d}MJ{n:07d}"  # registered social organisations
        directory.add_provider(
            Provider(
                id=pid,
                name=f"Social organisation {n} 社会组织",
                credit_code=body + credit_code_check(body),
                annual_report_passed=n != 1,
                penalties=(date(2024, 6, 1),) if n == 2 else (),
            )
        )
        ids.append(pid)
    return tuple(ids)


def _seed_reviewers(
    directory: Directory, tied: Sequence[str]
) -> tuple[tuple[str, ...], tuple[tuple[str, str, str], ...]]:
    reviewers = tuple(f"reviewer-{n:02d}" for n in range(1, 16))
    # Three ways to be conflicted: worked there lately, close family there, declared.
    conflicts = (
        (reviewers[6], tied[0], "worked_there"),
        (reviewers[7], tied[1], "close_family"),
        (reviewers[8], tied[2], "declared"),
    )
    for rid in reviewers:
        affiliations: tuple[Affiliation, ...] = ()
        relatives: tuple[str, ...] = ()
        if rid == conflicts[0][0]:
            affiliations = (Affiliation(organisation=tied[0], until=date(2024, 6, 30)),)
        if rid == conflicts[1][0]:
            relatives = (tied[1],)
        directory.add_person(
            Person(
                id=rid,
                name=f"Expert {rid[-2:]}",
                organisation="expert-pool",
                affiliations=affiliations,
                relatives_at=relatives,
            )
        )
    return reviewers, conflicts


def _seed_evaluators(
    directory: Directory, tied: str
) -> tuple[tuple[tuple[str, str], ...], tuple[str, str, str]]:
    evaluators = tuple((f"ev-{n}", f"eval-firm-{n}") for n in range(1, 4))
    for person, firm in evaluators:
        directory.add_person(Person(id=person, name=f"Evaluator of {firm}", organisation=firm))
    # A new hire at firm 3 who directed one provider until last year.
    tied_evaluator = ("ev-9", "eval-firm-3", tied)
    directory.add_person(
        Person(
            id="ev-9",
            name="Evaluator (new hire)",
            organisation="eval-firm-3",
            affiliations=(
                Affiliation(organisation=tied, until=date(2024, 12, 31), role="director"),
            ),
        )
    )
    return evaluators, tied_evaluator


def _seed_calls(directory: Directory) -> tuple[Call, ...]:
    calls = tuple(
        Call(
            id=f"call-{year}",
            hub="city",
            year=year,
            opens=datetime(year, month, 1, tzinfo=UTC),
            closes=datetime(year, month + 2, 31 if month + 2 in (3, 5) else 30, tzinfo=UTC),
            budget=Decimal(budget),
            rubric_versions={"approval": 1, "midterm": 1, "performance": 1},
        )
        for year, month, budget in ((2024, 1, "60000000.00"), (2025, 1, "120000000.00"),
                                    (2026, 4, "90000000.00"))
    )  # fmt: skip
    for call in calls:
        directory.add_call(call)
    return calls


# -- the run ---------------------------------------------------------------------------


def _staff(actor_id: str, role: str, organisation: str) -> Actor:
    return Actor(id=actor_id, roles=frozenset({role}), organisation=organisation)


_APPROVER = _staff("staff-approve", "purchaser", "city")
#: The city federation's finance staff: they release payments (`Policy.release_roles`).
_TREASURER = Actor(id="staff-pay", roles=frozenset({"purchaser", "finance"}), organisation="city")
_SUPERVISOR = _staff("staff-supervise", "purchaser", "city")


def _approver_of(hub: str) -> Actor:
    """The approving officer of a purchasing hub (the city's, or a district's)."""
    return _APPROVER if hub == "city" else _staff(f"{hub}-approve", "purchaser", hub)


def _applicant(provider: str) -> Actor:
    return _staff(f"{provider}-staff", "applicant", provider)


def _reviewer(reviewer: str) -> Actor:
    return _staff(reviewer, "reviewer", "expert-pool")


def _money(value: Decimal) -> str:
    return str(value.quantize(_CENT, rounding=ROUND_DOWN))


def _pick(rng: random.Random, items: Sequence[str], share: float, least: int = 1) -> list[str]:
    """A deterministic sample of `share` of `items` (at least `least`), in input order."""
    k = min(len(items), max(least, round(len(items) * share)))
    chosen = set(rng.sample(list(items), k))
    return [i for i in items if i in chosen]


class _Run:
    """One demo run: the engine, the world, and the tally of bulk results and refusals."""

    def __init__(
        self,
        engine: Engine,
        clock: DemoClock,
        world: DemoWorld,
        rng: random.Random,
        progress: Callable[[str], None] | None,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.world = world
        self.rng = rng
        self.progress = progress
        self.bulk: dict[str, Counter[str]] = {}
        self.refusals: Counter[str] = Counter()
        self.provider_of: dict[str, str] = {}
        self.domain_of: dict[str, str] = {}
        self.amount: dict[str, Decimal] = {}
        self.term: dict[str, tuple[str, str]] = {}
        self.purchaser_of: dict[str, str] = {}

    def step(self, label: str) -> None:
        if self.progress is not None:
            self.progress(label)

    def fire_many(
        self, label: str, event: str, items: Sequence[Any], actor: Actor = _SUPERVISOR
    ) -> BulkResult:
        """Fire in bulk; tally refusals, and the counts of every run under `label`."""
        if not items:
            return BulkResult(event=event)
        self.step(label)
        result = self.engine.fire_many(event, items, actor=actor)
        for item in result.items:
            self.refusals.update(r.code for r in item.refusals)
        tally = self.bulk.setdefault(label, Counter())
        tally["runs"] += 1
        tally.update(result.counts)
        return result

    def by_provider(self, label: str, event: str, items: Iterable[tuple[str, Any]]) -> BulkResult:
        """Fire with each item's provider as its actor (one run for all providers)."""
        bulk = [
            BulkItem(pid, evidence, actor=_applicant(self.provider_of[pid]))
            for pid, evidence in items
        ]
        return self.fire_many(label, event, bulk)

    def evaluator_of(self, pid: str) -> tuple[str, str]:
        return self.world.evaluators[int(pid[-4:]) % len(self.world.evaluators)]

    def submit(self, pid: str | None, data: Mapping[str, Any]) -> bool:
        provider = str(data["provider"])
        out = self.engine.submit(actor=_applicant(provider), project_id=pid, data=data)
        self.refusals.update(r.code for r in out.refusals)
        if out.accepted and pid is not None:
            self.accepted(pid, data)
        return out.accepted

    def accepted(self, pid: str, data: Mapping[str, Any]) -> None:
        """Remember what the demo needs of an accepted application."""
        self.provider_of[pid] = str(data["provider"])
        self.domain_of[pid] = str(data["domain"])
        self.amount[pid] = Decimal(str(data["amount_requested"]))
        self.term[pid] = (str(data["planned_start"]), str(data["planned_end"]))
        self.purchaser_of[pid] = str(data.get("purchaser") or "city")


def run_demo(
    engine: Engine,
    *,
    clock: DemoClock,
    seed: int = 7,
    projects: int = 500,
    progress: Callable[[str], None] | None = None,
) -> DemoReport:
    """Seed a portfolio on `engine` and drive it through the lifecycle; report on it.

    `engine` must be fresh, use the default rules and `clock`
    (``grantflow.open(url, clock=clock)``). `progress` is called with the name of each
    step as it starts.
    """
    world = seed_portfolio(engine, seed=seed, projects=projects)
    run = _Run(engine, clock, world, random.Random(f"grantflow-demo-{seed}"), progress)
    later = max(2, projects // 25)  # applications to the 2026 call, still under review
    pids = _submit(run, projects - later)
    reviewed = _review_and_approve(run, pids, _quality(run, pids))
    contracted = _publicity_and_sign(run, reviewed)
    _implement(run, contracted)
    _second_call(run, later)
    run.step("report")
    return _report(run)


def _application(run: _Run, n: int, provider: str, call: str) -> dict[str, Any]:
    rng = run.rng
    domain = SERVICE_DOMAINS[n % len(SERVICE_DOMAINS)]
    hubs = [h.id for h in run.world.hubs if h.kind != "city"]
    start, end = _TERMS.get(call, ("2024-03-20", "2025-03-19"))
    data: dict[str, Any] = {
        "title": f"{domain.replace('_', ' ').capitalize()} services #{n + 1}",
        "domain": domain,
        "provider": provider,
        "hub": hubs[rng.randrange(len(hubs))],
        "call": call,
        "amount_requested": _money(Decimal(rng.randrange(60, 400) * 1000)),
        "planned_start": start,
        "planned_end": end,
        "target_activities": rng.randrange(8, 40),
        "target_person_times": rng.randrange(300, 4000),
        "summary": f"{domain.replace('_', ' ').capitalize()} services for union members, "
        f"delivered by {provider} under {call}.",
        "beneficiary_location": _DISTRICTS[n % len(_DISTRICTS)],
    }
    if data["hub"].startswith("street-"):  # a street's district buys what it endorses
        data["purchaser"] = "district-" + data["hub"].split("-")[1]
    brands = [b.id for b in run.world.brands if b.domain == domain]
    if brands and rng.random() < 0.6:
        data["brand"] = brands[0]
    return data


def _submit(run: _Run, count: int) -> list[str]:
    world = run.world
    run.step("submit")
    ties = [p for _r, p, _w in world.conflicts] + [world.tied_evaluator[2]]
    rest = [p for p in world.eligible if p not in ties and p != world.providers[0]]
    slots = [p for p in rest for _ in range(2)]  # at most 2 per provider per call
    run.rng.shuffle(slots)
    slots = [p for p in ties for _ in range(2)] + slots  # the tied providers surely apply
    applications = {
        f"P-2025-{n + 1:04d}": _application(run, n, slots[n], "call-2025") for n in range(count)
    }
    items = [
        BulkItem(pid, data, actor=_applicant(str(data["provider"])))
        for pid, data in applications.items()
    ]
    refused = {r.project_id for r in run.fire_many("submit", "submit", items).items}
    pids = [pid for pid in applications if pid not in refused]
    for pid in pids:
        run.accepted(pid, applications[pid])
    # Refused on purpose: ineligible providers, a third application, a closed call.
    for provider, _code in world.ineligible:
        run.submit(None, _application(run, 0, provider, "call-2025"))
    run.submit(None, _application(run, 1, slots[0], "call-2025"))
    run.submit(None, _application(run, 2, world.providers[0], "call-2024"))
    return pids


def _quality(run: _Run, pids: Sequence[str]) -> dict[str, int]:
    """Each application's true quality: what its reviews will score, give or take."""
    rng = run.rng
    quality = {pid: max(35, min(98, int(rng.gauss(78, 11)))) for pid in pids}
    for pid in pids[:4]:  # the tied providers' projects are strong: they reach contracts
        quality[pid] = max(quality[pid], 82)
    quality[pids[-1]] = 48  # at least one weak application, whatever the size
    return quality


def _review_data(reviewer: str, percent: int, declared: bool = False) -> dict[str, Any]:
    conflict: dict[str, Any] = {"declared": declared}
    if declared:
        conflict["note"] = "I advised the applicant last year"
    return {
        "reviewer": reviewer,
        "rubric": "approval",
        "rubric_version": 1,
        "scores": APPROVAL_REVIEW.proportional(max(0, min(100, percent))),
        "conflict": conflict,
    }


def _panels(run: _Run, pids: Sequence[str]) -> dict[str, list[str]]:
    """Panels of 3 or 5 experts; a conflicted expert sits on their provider's 3-panel."""
    world, rng = run.world, run.rng
    conflicted = {provider: reviewer for reviewer, provider, _why in world.conflicts}
    pool = [r for r in world.reviewers if r not in conflicted.values()]
    panels = {}
    for pid in pids:
        odd = conflicted.get(run.provider_of[pid])
        size = 3 if odd or rng.random() < 0.7 else 5
        panel = rng.sample(pool, size)
        if odd:
            panel[0] = odd  # this review must not count toward the quorum
        panels[pid] = panel
    return panels


def _review_and_approve(run: _Run, pids: list[str], quality: Mapping[str, int]) -> list[str]:
    world, rng = run.world, run.rng
    run.clock.advance(1)
    declared = {(r, p) for r, p, why in world.conflicts if why == "declared"}
    panels = _panels(run, pids)
    reviews = [
        BulkItem(
            pid,
            _review_data(
                reviewer,
                quality[pid] + rng.randint(-6, 6),
                (reviewer, run.provider_of[pid]) in declared,
            ),
            actor=_reviewer(reviewer),
        )
        for pid, panel in panels.items()
        for reviewer in panel
    ]
    run.fire_many("review", "record.review", reviews)
    run.clock.advance(3)
    offers = {pid: {"recommended_amount": _money(run.amount[pid] * Decimal("0.9"))} for pid in pids}
    _out_of_bounds(run, pids, offers)

    def approvals(which: Iterable[str]) -> list[BulkItem]:
        return [BulkItem(p, offers[p], actor=_approver_of(run.purchaser_of[p])) for p in which]

    result = run.fire_many("approve", "approve", approvals(pids))
    refused = {r.project_id: {c.code for c in r.refusals} for r in result.items}
    short = [pid for pid, codes in refused.items() if codes == {"review.quorum"}]
    if short:  # a panel lost its conflicted member: another expert completes it
        extra = []
        for pid in short:
            spare = next(r for r in world.reviewers[::-1] if r not in panels[pid])
            extra.append(BulkItem(pid, _review_data(spare, quality[pid]), actor=_reviewer(spare)))
        run.fire_many("review", "record.review", extra)
        again = run.fire_many("approve", "approve", approvals(short))
        still = {i.project_id for i in again.items}
        for pid in short:
            if pid not in still:
                del refused[pid]
    reasons = {
        pid: "the call's budget is spent" if "budget.call" in codes else "approval review failed"
        for pid, codes in refused.items()
    }
    run.fire_many(
        "reject",
        "reject",
        [
            BulkItem(pid, {"reason": why}, actor=_approver_of(run.purchaser_of[pid]))
            for pid, why in reasons.items()
        ],
    )
    for pid in pids:
        run.amount[pid] = (run.amount[pid] * Decimal("0.9")).quantize(_CENT, rounding=ROUND_DOWN)
    return [pid for pid in pids if pid not in refused]


def _out_of_bounds(run: _Run, pids: Sequence[str], offers: Mapping[str, Any]) -> None:
    """Attempts beyond one's authority, each refused and audited, once per run.

    Another district's approver, a forged approval record, a reviewer trying to approve.
    """
    ours = [p for p in pids if run.purchaser_of[p] == "district-1"][:1]
    if not ours or run.refusals["authority.relation"]:
        return  # once per run
    pid, engine = ours[0], run.engine
    outsider = _staff("district-2-approve", "purchaser", "district-2")
    forged = {"approver": "staff-approve", "score": "95", "recommended_amount": "1.00",
              "reviews_counted": [], "approved_at": "2025-01-01T00:00:00+00:00"}  # fmt: skip
    for outcome in (
        engine.fire(pid, "approve", actor=outsider, evidence=offers[pid]),
        engine.add_record(pid, "approval", forged, actor=_APPROVER),
        engine.fire(pid, "approve", actor=_reviewer("reviewer-01"), evidence=offers[pid]),
    ):
        run.refusals.update(r.code for r in outcome.refusals)


def _sign_evidence(run: _Run, pid: str) -> dict[str, Any]:
    amount = run.amount[pid]
    lines = {
        line: (amount * share).quantize(_CENT, rounding=ROUND_DOWN)
        for line, share in _SHARES.items()
    }
    lines["activities"] += amount - sum(lines.values())
    start, end = run.term[pid]

    # The supervision contract is with the project's third-party firm, who also evaluates.
    counterparty = {"purchase": run.provider_of[pid], "supervision": run.evaluator_of(pid)[1]}

    def contract(kind: str) -> dict[str, Any]:
        return {
            "kind": kind,
            "number": f"{kind}-{pid}",
            "signed_on": run.clock.today(),
            "amount": _money(amount),
            "start": start,
            "end": end,
            "counterparty": counterparty[kind],
        }

    return {
        "contracts": [contract("purchase"), contract("supervision")],
        "budget": [{"line": k, "amount": _money(v)} for k, v in lines.items()],
    }


def _objections(run: _Run, reviewed: Sequence[str]) -> str | None:
    """Two objections in publicity: one dismissed, one upheld; return the upheld project."""
    if len(reviewed) < 4:
        return None
    run.step("objections")
    upheld, dismissed = reviewed[-1], reviewed[-2]
    for pid, grounds, holds in (
        (upheld, "the applicant's named trainers work for another provider", True),
        (dismissed, "the budget seems high for the target group", False),
    ):
        # A competing provider objects; the applicant itself may not.
        rival = next(p for p in run.world.eligible if p != run.provider_of[pid])
        raised = run.engine.add_record(
            pid,
            "objection",
            {"raised_by": rival, "grounds": grounds},
            actor=_applicant(rival),
        )
        record_id = raised.entry.records[0].id if raised.entry else ""
        run.engine.add_record(
            pid,
            "objection_ruling",
            {"objection": record_id, "upheld": holds, "note": "checked with the applicant"},
            actor=_APPROVER,
        )
    return upheld


def _publicity_and_sign(run: _Run, reviewed: list[str]) -> list[str]:
    upheld = _objections(run, reviewed)
    keep = set(reviewed[:4]) | ({upheld} if upheld else set())
    withdrawn = set(_pick(run.rng, [p for p in reviewed if p not in keep], 0.03))
    run.by_provider(
        "withdraw",
        "withdraw",
        [(pid, {"reason": "key staff left the organisation"}) for pid in sorted(withdrawn)],
    )
    candidates = [pid for pid in reviewed if pid not in withdrawn]
    early = candidates[4:9]  # signing inside the publicity period is refused
    run.fire_many("sign", "sign", [(pid, _sign_evidence(run, pid)) for pid in early], _TREASURER)
    run.clock.advance(9)
    result = run.fire_many(
        "sign", "sign", [(pid, _sign_evidence(run, pid)) for pid in candidates], _TREASURER
    )
    failed = [r.project_id for r in result.items]
    run.fire_many(
        "reject",
        "reject",
        [(pid, {"reason": "objection upheld during publicity"}) for pid in failed],
        _APPROVER,
    )
    return [pid for pid in candidates if pid not in set(failed)]


def _spend(pid: str, n: int, line: str, amount: Decimal, day: str) -> dict[str, Any]:
    return {
        "date": day,
        "line": line,
        "amount": _money(amount),
        "invoice_number": f"INV-{pid}-{n}",
        "voucher": f"V-{pid}-{n}",
    }


def _spending(run: _Run, pids: Sequence[str], plan: Sequence[tuple[int, str, str, str]]) -> None:
    """Every project books the expenditures of `plan`: (number, line, share, date)."""
    items = [
        (pid, _spend(pid, n, line, run.amount[pid] * Decimal(share), day))
        for pid in pids
        for n, line, share, day in plan
    ]
    if len(pids) > 1 and plan[0][0] == 1:
        # A provider books another project's invoice: refused as a duplicate.
        dup = _spend(pids[1], 9, "experts", Decimal("100.00"), plan[0][3])
        dup["invoice_number"] = f"INV-{pids[0]}-1"
        items.append((pids[1], dup))
    run.by_provider("expenditure", "record.expenditure", items)


def _serve(run: _Run, pids: Sequence[str], day: str) -> None:
    """Each project logs a period of activities; the flagship EAP project serves thousands."""
    rng = run.rng
    flagship = next((p for p in pids if run.domain_of[p] == "mental_health"), None)
    items = []
    for pid in pids:
        activities, people = rng.randrange(2, 15), rng.randrange(100, 1400)
        if pid == flagship:
            activities, people = 160, 12939  # half of the 25,878 person-times in DOMAIN.md
        record = {"date": day, "domain": run.domain_of[pid], "activities": activities}
        items.append((pid, {**record, "person_times": people}))
    run.by_provider("service", "record.service", items)


def _evaluation(
    stage: str, percent: int, progress: int, evaluator: tuple[str, str]
) -> dict[str, Any]:
    rubric = PERFORMANCE_ASSESSMENT if stage == "final" else MIDTERM_EVALUATION
    return {
        "stage": stage,
        "evaluator": evaluator[0],
        "organisation": evaluator[1],
        "rubric": rubric.id,
        "rubric_version": 1,
        "scores": rubric.proportional(max(0, min(100, percent))),
        "progress_percent": progress,
    }


def _evaluate(run: _Run, stage: str, scores: Mapping[str, int], progress: int) -> None:
    """Each project's own third-party firm records an evaluation, in one bulk run."""
    items = []
    for pid, score in scores.items():
        person, firm = run.evaluator_of(pid)
        items.append(
            BulkItem(
                pid,
                _evaluation(stage, score, progress, (person, firm)),
                actor=_staff(person, "evaluator", firm),
            )
        )
    run.fire_many("evaluation", "record.evaluation", items)


def _tied_attempt(run: _Run, pids: Sequence[str]) -> None:
    """The evaluator who directed a provider tries to evaluate its projects: refused."""
    person, firm, provider = run.world.tied_evaluator
    theirs = [p for p in pids if run.provider_of[p] == provider]
    actor = _staff(person, "evaluator", firm)
    items = [(pid, _evaluation("midterm", 90, 50, (person, firm))) for pid in theirs]
    run.fire_many("evaluation", "record.evaluation", items, actor)


def _midterm_scores(run: _Run, pids: Sequence[str], weak: int) -> dict[str, int]:
    """Mid-term scores; the `weak` lowest are made failing so every path is taken."""
    scores = {pid: max(30, min(97, int(run.rng.gauss(76, 13)))) for pid in pids}
    for pid in sorted(pids, key=lambda p: (scores[p], p))[:weak]:
        scores[pid] = min(scores[pid], 50)
    return scores


def _midterm(run: _Run, pids: Sequence[str], deadline_days: int) -> list[str]:
    """Evaluate, pass the passing, order the failing to rectify; return the failing."""
    scores = _midterm_scores(run, pids, weak=min(len(pids), 3))
    _evaluate(run, "midterm", scores, 45)
    passed = run.fire_many("pass_midterm", "pass_midterm", [(p, {}) for p in pids], _TREASURER)
    failing = [r.project_id for r in passed.items]
    deadline = (run.clock.now + timedelta(days=deadline_days)).date().isoformat()
    order = {
        "order": {"issues": ["ledgers incomplete", "activities behind plan"], "deadline": deadline}
    }
    run.fire_many("order_rectification", "order_rectification", [(p, order) for p in failing])
    return failing


def _implement(run: _Run, contracted: list[str]) -> None:
    run.clock.advance(60)
    _spending(
        run,
        contracted,
        [(1, "activities", "0.15", "2025-05-10")],
    )
    _serve(run, contracted, run.clock.today())
    run.clock.advance(120)
    late = set(_pick(run.rng, contracted[4:], 0.06, least=2))  # mid-term not yet due
    on_time = [p for p in contracted if p not in late]
    _tied_attempt(run, on_time)
    failing = _midterm(run, on_time, deadline_days=60)
    run.clock.advance(45)
    rechecks = {pid: 72 if i % 5 in (0, 2, 4) else 45 for i, pid in enumerate(failing)}
    _evaluate(run, "recheck", rechecks, 55)
    recovered = [pid for pid, s in rechecks.items() if s >= 60]
    run.fire_many("pass_midterm", "pass_midterm", [(p, {}) for p in recovered], _TREASURER)
    doomed = [pid for pid, s in rechecks.items() if s < 60]
    run.fire_many(
        "terminate",
        "terminate",
        [(pid, {"reason": "failed the rectification re-check"}) for pid in doomed],
        _APPROVER,
    )
    _sanction(run, doomed[:1])
    at_midterm = [pid for pid in on_time if pid not in failing or pid in recovered]
    _finish(run, at_midterm, sorted(late))


def _sanction(run: _Run, terminated: Sequence[str]) -> None:
    """The purchaser sanctions a terminated provider: its next application is refused."""
    items = [
        (
            pid,
            {
                "provider": run.provider_of[pid],
                "kind": "penalty",
                "on": run.clock.today(),
                "reason": "contract terminated after a failed re-check",
            },
        )
        for pid in terminated
    ]
    run.fire_many("sanction", "record.sanction", items, _APPROVER)


def _finish(run: _Run, at_midterm: list[str], late: list[str]) -> None:
    run.clock.advance(30)
    _spending(
        run,
        at_midterm,
        [(2, "activities", "0.18", "2025-11-15"), (3, "personnel", "0.37", "2025-12-15")],
    )
    _serve(run, at_midterm, run.clock.today())
    run.clock.advance(140)
    running = set(_pick(run.rng, at_midterm, 0.08))
    final = [pid for pid in at_midterm if pid not in running]
    scores = {pid: max(40, min(98, int(run.rng.gauss(82, 9)))) for pid in final}
    _evaluate(run, "final", scores, 100)
    closeout = {"closeout": {"report": "final report, ledgers and service records"}}
    assessed = run.fire_many("assess", "assess", [(pid, closeout) for pid in final])
    graded = [pid for pid in final if pid not in {r.project_id for r in assessed.items}]
    # Late mid-terms: half are still waiting; of the rest, the weak are under rectification.
    _midterm(run, late[: max(1, len(late) // 2)], deadline_days=45)
    run.clock.advance(20)
    pending = set(graded[-max(1, len(graded) // 50) :])  # settlement still being reconciled
    run.fire_many("close", "close", [(pid, {}) for pid in graded if pid not in pending], _TREASURER)
    run.clock.advance(10)
    _repay(run)


def _repay(run: _Run) -> None:
    """Providers pay back half of the refund demands; the treasurer books the repayments."""
    owing = [
        p.id
        for state in ("closed", "terminated")
        for p in run.engine.store.projects(state=state)
        if p.data.get("refund_status") == "open"
    ]
    items = [
        (
            pid,
            {
                "demand": "refund",
                "amount": str(run.engine.get(pid).data["refund_demanded"]),
                "paid_on": run.clock.today(),
                "reference": f"BANK-{pid}",
            },
        )
        for pid in sorted(owing)[::2]
    ]
    run.fire_many("refund payment", "record.refund_payment", items, _TREASURER)


def _second_call(run: _Run, count: int) -> None:
    """The 2026 call: new applications, half of them reviewed and in publicity."""
    run.step("2026 call")
    sanctioned = {
        str(r.data["provider"])
        for p in run.engine.store.projects(state="terminated")
        for r in run.engine.get(p.id).records_of("sanction")
    }
    free = [p for p in run.world.eligible if p not in sanctioned and p != run.world.providers[0]]
    providers = run.rng.sample(free, count)
    pids = []
    for n, provider in enumerate(providers):
        pid = f"P-2026-{n + 1:04d}"
        if run.submit(pid, _application(run, n, provider, "call-2026")):
            pids.append(pid)
    for provider in sorted(sanctioned):  # within the look-back: refused
        run.submit(None, _application(run, 0, provider, "call-2026"))
    first = pids[: max(1, len(pids) // 2)]
    quality = {pid: max(82, int(run.rng.gauss(84, 5))) for pid in first}
    _review_and_approve(run, first, quality)


# -- the report ------------------------------------------------------------------------


def _report(run: _Run) -> DemoReport:
    engine, world = run.engine, run.world
    portfolio = Portfolio(engine)
    by_state = portfolio.totals("state")
    roots = [h.id for h in world.hubs if h.parent == "city"]
    by_hub = []
    for root in roots:  # each branch of the tree, with the hubs below it
        rows = portfolio.services("hub", within=root)
        by_hub.append((root, sum(r.activities for r in rows), sum(r.person_times for r in rows)))
    verification = engine.verify()
    owing = [p for p in engine.store.projects() if p.data.get("refund_status")]
    return DemoReport(
        seed=world.seed,
        states={t.key: t.projects for t in by_state},
        awarded=sum((t.awarded for t in by_state), Decimal("0.00")),
        disbursed=sum((t.disbursed for t in by_state), Decimal("0.00")),
        by_domain=[(t.key, t.activities, t.person_times) for t in portfolio.services("domain")],
        by_hub=by_hub,
        refusals=dict(run.refusals),
        bulk=[(label, dict(counts)) for label, counts in run.bulk.items()],
        verified=verification.ok,
        audit_entries=verification.entries,
        hubs=len(world.hubs),
        associations=len(world.hubs_of("association")),
        providers=len(world.providers),
        by_brand=[(t.key, t.projects, t.awarded) for t in portfolio.totals("brand") if t.key],
        reviewers=len(world.reviewers),
        evaluators=len(world.evaluators) + 1,
        calls=len(world.calls),
        refunds=sum((t.refunds for t in by_state), Decimal("0.00")),
        refunds_repaid=sum(
            (Decimal(str(p.data.get("refund_settled") or "0.00")) for p in owing),
            Decimal("0.00"),
        ),
        refund_demands=len(owing),
    )


def render_report(report: DemoReport, console: Any) -> None:
    """Print the report as rich tables on `console` (a `rich.console.Console`)."""
    from rich.table import Table

    console.print(
        f"[bold]grantflow demo[/bold] (seed {report.seed}): {report.total_projects} projects, "
        f"{report.hubs} hubs ({report.associations} directly managed associations), "
        f"{report.providers} providers, {report.reviewers} reviewers, "
        f"{report.evaluators} evaluators, {report.calls} calls"
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
    console.print(
        f"Refunds demanded 应退款: {report.refunds:,} CNY from {report.refund_demands} "
        f"projects; repaid 已退回: {report.refunds_repaid:,} CNY"
    )
    for title, rows, label in (
        ("Services by domain 服务领域", report.by_domain, "domain"),
        ("Services by hub, with the hubs below it 枢纽（含下级）", report.by_hub, "hub"),
    ):
        table = Table(title=title)
        table.add_column(label)
        table.add_column("activities", justify="right")
        table.add_column("person-times", justify="right")
        for key, activities, people in rows:
            table.add_row(key, f"{activities:,}", f"{people:,}")
        console.print(table)
    if report.by_brand:
        brands = Table(title="Brand projects 品牌项目")
        brands.add_column("brand")
        brands.add_column("projects", justify="right")
        brands.add_column("awarded (CNY)", justify="right")
        for brand, projects, awarded in report.by_brand:
            brands.add_row(brand, str(projects), f"{awarded:,}")
        console.print(brands)
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
