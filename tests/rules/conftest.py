"""Fixtures for the default-rule tests: a small world of hubs, providers, a call, people.

`World` drives projects through the public API only (``grantflow.open``, `Directory`,
`Engine.fire` / `add_record`), with a clock the tests move forward.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar

import pytest

import grantflow
from grantflow import Actor, Engine, Outcome, Policy
from grantflow.demo import DemoClock as Clock
from grantflow.records import (
    Brand,
    Call,
    Directory,
    Hub,
    Person,
    Provider,
    credit_code_check,
)
from grantflow.rubrics import APPROVAL_REVIEW, MIDTERM_EVALUATION, PERFORMANCE_ASSESSMENT


def code(body: str) -> str:
    """Return a valid credit code from its first 17 characters."""
    return body + credit_code_check(body)


BUDGET = {
    "personnel": "40000.00",
    "activities": "35000.00",
    "experts": "5000.00",
    "training": "5000.00",
    "publicity": "5000.00",
    "administration": "5000.00",
    "evaluation": "5000.00",
}


def actor(aid: str, role: str, organisation: str | None, *more: str) -> Actor:
    return Actor(id=aid, roles=frozenset({role, *more}), organisation=organisation)


def _call(call_id: str, budget: str, rubric_versions: dict[str, int] | None = None) -> Call:
    """A call of the city's for 2025, open in the first quarter."""
    return Call(
        id=call_id,
        hub="city",
        year=2025,
        opens=datetime(2025, 1, 1, tzinfo=UTC),
        closes=datetime(2025, 3, 31, tzinfo=UTC),
        budget=Decimal(budget),
        rubric_versions=rubric_versions or {},
    )


@dataclass
class World:
    engine: Engine
    clock: Clock
    applicant: Actor = field(default_factory=lambda: actor("u-a", "applicant", "org-a"))
    other_applicant: Actor = field(default_factory=lambda: actor("u-b", "applicant", "org-b"))
    approver: Actor = field(default_factory=lambda: actor("staff-1", "purchaser", "city"))
    treasurer: Actor = field(
        default_factory=lambda: actor("staff-2", "purchaser", "city", "finance")
    )
    evaluator: Actor = field(default_factory=lambda: actor("ev-1", "evaluator", "audit-co"))
    BUDGET: ClassVar[dict[str, str]] = BUDGET

    @staticmethod
    def code(body: str) -> str:
        """Return a valid credit code from its first 17 characters."""
        return code(body)

    @staticmethod
    def codes(outcome: Outcome) -> set[str]:
        """Return the refusal codes of an outcome."""
        return codes(outcome)

    @property
    def directory(self) -> Directory:
        return Directory(self.engine)

    def reviewer(self, n: int) -> Actor:
        return actor(f"r{n}", "reviewer", "expert-pool")

    def seed(self) -> World:
        d = self.directory
        d.add_hub(Hub(id="city", name="City federation", kind="city"))
        d.add_hub(Hub(id="d1", name="District 1", kind="district", parent="city"))
        d.add_hub(Hub(id="s1", name="Street 1", kind="street", parent="d1"))
        d.add_hub(Hub(id="assoc-1", name="Couriers association", kind="association", parent="city"))
        d.add_provider(Provider(id="org-a", name="Org A", credit_code=code("52310000MJ0000001")))
        d.add_provider(Provider(id="org-b", name="Org B", credit_code=code("52310000MJ0000002")))
        d.add_call(
            _call("call-2025", "5000000.00", {"approval": 1, "midterm": 1, "performance": 1})
        )
        d.add_brand(Brand(id="heart", name="Heart station", name_zh="心灵驿站"))
        for n in range(1, 7):
            d.add_person(Person(id=f"r{n}", name=f"Reviewer {n}", organisation="expert-pool"))
        d.add_person(Person(id="ev-1", name="Evaluator", organisation="audit-co"))
        return self

    # -- application and review ------------------------------------------------------------

    def application(self, **overrides: Any) -> dict[str, Any]:
        data: dict[str, Any] = {
            "title": "EAP for couriers",
            "domain": "mental_health",
            "provider": "org-a",
            "hub": "s1",
            "call": "call-2025",
            "brand": "heart",
            "amount_requested": "120000.00",
            "planned_start": "2025-03-15",
            "planned_end": "2026-03-14",
            "target_activities": 40,
            "target_person_times": 2000,
        }
        data.update(overrides)
        return data

    def submit(self, by: Actor | None = None, **overrides: Any) -> Outcome:
        return self.engine.submit(actor=by or self.applicant, data=self.application(**overrides))

    def review(
        self, pid: str, n: int, percent: int = 80, *, declared: bool = False, **extra: Any
    ) -> Outcome:
        data = {
            "reviewer": f"r{n}",
            "rubric": "approval",
            "rubric_version": 1,
            "scores": APPROVAL_REVIEW.proportional(percent),
            "conflict": {"declared": declared},
            **extra,
        }
        return self.engine.add_record(pid, "review", data, actor=self.reviewer(n))

    def small_call(self, budget: str = "1000000.00") -> None:
        """Add ``call-small`` (the city's, 2025) with `budget`."""
        self.directory.add_call(_call("call-small", budget))

    def applications(self, *percents: int, amount: str = "500000.00") -> list[str]:
        """Applications to ``call-small``, reviewed at `percents`, a minute apart."""
        pids = []
        for n, percent in enumerate(percents):
            by = self.applicant if n % 2 == 0 else self.other_applicant
            provider = "org-a" if n % 2 == 0 else "org-b"
            out = self.submit(by, call="call-small", provider=provider, amount_requested=amount)
            pid = out.raise_for_refusal().project_id
            for r in (1, 2, 3):
                self.review(pid, r, percent).raise_for_refusal()
            pids.append(pid)
            self.clock.now += timedelta(minutes=1)  # ties go to the earlier submission
        return pids

    def approve(self, pid: str, amount: str = "100000.00", by: Actor | None = None) -> Outcome:
        return self.engine.fire(
            pid, "approve", actor=by or self.approver, evidence={"recommended_amount": amount}
        )

    def reviewed(self) -> str:
        pid = self.submit().raise_for_refusal().project_id
        for n in (1, 2, 3):
            self.review(pid, n).raise_for_refusal()
        self.approve(pid).raise_for_refusal()
        return pid

    # -- contracts -------------------------------------------------------------------------

    def sign_evidence(
        self,
        amount: str = "100000.00",
        start: str = "2025-03-15",
        end: str = "2026-03-14",
        budget: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        def contract(kind: str) -> dict[str, Any]:
            return {
                "kind": kind,
                "number": f"{kind}-001",
                "signed_on": "2025-03-11",
                "amount": amount,
                "start": start,
                "end": end,
                "counterparty": "audit-co" if kind == "supervision" else None,
            }

        lines = budget if budget is not None else BUDGET
        return {
            "contracts": [contract("purchase"), contract("supervision")],
            "budget": [{"line": k, "amount": v} for k, v in lines.items()],
        }

    def sign(self, pid: str, by: Actor | None = None, **kwargs: Any) -> Outcome:
        return self.engine.fire(
            pid, "sign", actor=by or self.treasurer, evidence=self.sign_evidence(**kwargs)
        )

    def contracted(self) -> str:
        pid = self.reviewed()
        self.clock.advance(8)
        self.sign(pid).raise_for_refusal()
        return pid

    # -- implementation --------------------------------------------------------------------

    def spend(
        self, pid: str, amount: str, invoice: str, *, line: str = "activities", **extra: Any
    ) -> Outcome:
        data = {
            "date": "2025-05-01",
            "line": line,
            "amount": amount,
            "invoice_number": invoice,
            "voucher": f"V-{invoice}",
            **extra,
        }
        return self.engine.add_record(pid, "expenditure", data, actor=self.applicant)

    def serve(self, pid: str, activities: int, person_times: int, **extra: Any) -> Outcome:
        """Log a service record dated today (move the clock into the term first)."""
        data = {
            "date": self.clock.today(),
            "domain": "mental_health",
            "activities": activities,
            "person_times": person_times,
            **extra,
        }
        return self.engine.add_record(pid, "service", data, actor=self.applicant)

    def evaluate(self, pid: str, stage: str, percent: int, **extra: Any) -> Outcome:
        rubric = PERFORMANCE_ASSESSMENT if stage == "final" else MIDTERM_EVALUATION
        data = {
            "stage": stage,
            "evaluator": "ev-1",
            "organisation": "audit-co",
            "rubric": rubric.id,
            "rubric_version": 1,
            "scores": rubric.proportional(percent),
            **extra,
        }
        return self.engine.add_record(pid, "evaluation", data, actor=self.evaluator)

    def midterm(self, pid: str) -> None:
        self.evaluate(pid, "midterm", 85).raise_for_refusal()
        self.engine.fire(pid, "pass_midterm", actor=self.treasurer).raise_for_refusal()

    def main_line(self) -> str:
        """Submit, review, approve, sign, spend 95,000, pass the mid-term, assess, close."""
        engine = self.engine
        pid = self.submit().raise_for_refusal().project_id
        for n in (1, 2, 3, 4, 5):
            self.review(pid, n, 70 + 4 * n).raise_for_refusal()
        self.approve(pid, "100000.00").raise_for_refusal()
        self.clock.advance(8)
        self.sign(pid).raise_for_refusal()
        self.clock.advance(30)  # into the contract term
        self.spend(pid, "30000.00", "INV-001").raise_for_refusal()
        self.spend(pid, "38000.00", "INV-002", line="personnel").raise_for_refusal()
        self.serve(pid, 12, 800).raise_for_refusal()
        self.midterm(pid)
        later = {"activities": "8000.00", "experts": "5000.00", "training": "5000.00"}
        later |= {"publicity": "5000.00", "administration": "4000.00"}
        for n, (line, amount) in enumerate(later.items(), start=3):
            self.spend(pid, amount, f"INV-00{n}", line=line).raise_for_refusal()
        self.serve(pid, 20, 1500).raise_for_refusal()
        self.evaluate(pid, "final", 86).raise_for_refusal()
        closeout = {"closeout": {"report": "final report and ledgers"}}
        engine.fire(pid, "assess", actor=self.evaluator, evidence=closeout).raise_for_refusal()
        engine.fire(pid, "close", actor=self.treasurer).raise_for_refusal()
        return pid

    def rectify_then_terminate(self, pid: str) -> None:
        """Order rectification, fail the re-check (40 %), terminate ("failed re-check")."""
        order = {"order": {"issues": ["ledgers missing"], "deadline": "2025-06-30"}}
        self.engine.fire(
            pid, "order_rectification", actor=self.evaluator, evidence=order
        ).raise_for_refusal()
        self.evaluate(pid, "recheck", 40).raise_for_refusal()
        reason = {"reason": "failed re-check"}
        self.engine.fire(pid, "terminate", actor=self.approver, evidence=reason).raise_for_refusal()

    def assessed(self, percent: int = 85) -> str:
        pid = self.contracted()
        self.spend(pid, "30000.00", "INV-1").raise_for_refusal()
        self.midterm(pid)
        self.evaluate(pid, "final", percent).raise_for_refusal()
        closeout = {"closeout": {"report": "final report"}}
        self.engine.fire(pid, "assess", actor=self.evaluator, evidence=closeout).raise_for_refusal()
        return pid


def codes(outcome: Outcome) -> set[str]:
    """Return the refusal codes of an outcome."""
    return {r.code for r in outcome.refusals}


@pytest.fixture
def world() -> Iterator[World]:
    clock = Clock()
    with grantflow.open(clock=clock) as engine:
        yield World(engine, clock).seed()


def new_world(
    policy: Policy | None = None, url: str | None = None, *, seed: bool = True, **options: Any
) -> World:
    """Return a seeded world on a fresh engine (in memory unless `url` names a database).

    With ``seed=False`` the reference data is not written (a database that has it);
    `options` go to the store (``synchronous="NORMAL"`` for speed where a crash is moot).
    """
    clock = Clock()
    world = World(grantflow.open(url, clock=clock, policy=policy, **options), clock)
    return world.seed() if seed else world


@pytest.fixture
def make_world() -> Callable[..., World]:
    """Return a factory of fresh seeded worlds, for tests that need a custom policy."""
    return new_world


@pytest.fixture(scope="module")
def module_world_factory() -> Callable[..., World]:
    """Return the factory of seeded worlds, for module-scoped fixtures (built once)."""
    return new_world
