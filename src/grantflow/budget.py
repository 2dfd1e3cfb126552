"""A call's budget: the ledger of what its projects hold, and deciding a call as a ranked batch.

Approvals reserve from the call's budget and are refused beyond it (rule ``budget.call``);
signing holds the contract amount, settlement and termination release what is not due
(refunds and clawbacks), rejection and withdrawal release everything. `call_ledger` reads
the ledger; `decide_call` approves a call's applications in order of panel score until
the budget is spent.

Ranking: the panel score as ``approve`` computes it (priority bonus included), highest
first; equal scores go to the application submitted first, then to the lower project id.
The batch stops at the first application that does not fit in what is left: a cheaper
application ranked lower never overtakes it.

>>> import grantflow
>>> call_ledger(grantflow.open(), "call-2025")
CallLedger(call='call-2025', budget=Decimal('0.00'), reserved=Decimal('0.00'), projects=())
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from grantflow._values import decimal_or_zero, local_date, text
from grantflow.models import Actor, Project
from grantflow.records import money
from grantflow.rubrics import DEFAULT_RUBRICS, Rubric
from grantflow.rules import FactRequest
from grantflow.rules.conflict import PEOPLE_FACT, people
from grantflow.rules.review import panel_score

if TYPE_CHECKING:
    from grantflow._engine import Engine

__all__ = ["CallDecision", "CallLedger", "Ranked", "call_ledger", "decide_call", "rank_call"]

_ZERO = Decimal("0.00")


@dataclass(frozen=True, slots=True)
class CallLedger:
    """What a call's projects hold of its budget: (project id, state, amount) each."""

    call: str
    budget: Decimal
    reserved: Decimal
    projects: tuple[tuple[str, str, Decimal], ...]

    @property
    def available(self) -> Decimal:
        """What is left to approve."""
        return self.budget - self.reserved


@dataclass(frozen=True, slots=True)
class Ranked:
    """An application of the call in rank order: its panel score and when it was submitted."""

    project_id: str
    score: Decimal
    submitted: str
    requested: Decimal


@dataclass(frozen=True, slots=True)
class CallDecision:
    """The outcome of `decide_call`: approved, refused by a rule, or not reached by the budget."""

    ranking: tuple[Ranked, ...]
    approved: tuple[str, ...] = ()
    refused: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    unfunded: tuple[str, ...] = ()


def call_ledger(engine: Engine, call_id: str) -> CallLedger:
    """Return the budget ledger of a call (an unknown call has a budget of 0)."""
    store = engine.store
    entity = store.get_entity("call", call_id)
    budget = decimal_or_zero(entity.data.get("budget")) if entity is not None else _ZERO
    rows = tuple(
        (p.id, p.state, decimal_or_zero(p.data.get("budget_reserved")))
        for p in store.projects()
        if text(p.data, "call") == call_id
    )
    held = sum((amount for _pid, _state, amount in rows), _ZERO)
    return CallLedger(call_id, budget.quantize(_ZERO), held.quantize(_ZERO), rows)


def rank_call(
    engine: Engine,
    call_id: str,
    *,
    actor: Actor,
    now: datetime | None = None,
    rubrics: Sequence[Rubric] = DEFAULT_RUBRICS,
) -> list[Ranked]:
    """Rank the call's ``applied`` projects that have a panel score (ties: see the module).

    `now` is the time conflicts of interest are judged at (the engine's clock when it
    fires; pass it when the engine runs on a clock of its own, default: the real time).
    """
    moment = now or datetime.now(UTC)
    found = []
    for summary in engine.store.projects(state="applied"):
        if text(summary.data, "call") != call_id:
            continue
        project = engine.get(summary.id)
        score = _score(engine, project, actor, moment, rubrics)
        if score is not None:
            requested = decimal_or_zero(project.data.get("amount_requested"))
            found.append(Ranked(project.id, score, project.created_at.isoformat(), requested))
    return sorted(found, key=lambda r: (-r.score, r.submitted, r.project_id))


def _score(
    engine: Engine, project: Project, actor: Actor, now: datetime, rubrics: Sequence[Rubric]
) -> Decimal | None:
    policy = engine.policy_for(project)
    request = FactRequest(
        reader=engine.store,
        project=project,
        event="approve",
        actor=actor,
        evidence={},
        policy=policy,
    )
    facts = {PEOPLE_FACT: people(request)}
    return panel_score(project, facts, rubrics, policy, local_date(now, policy.timezone))


def decide_call(
    engine: Engine,
    call_id: str,
    *,
    actor: Actor,
    amounts: Mapping[str, Decimal | str] | None = None,
    now: datetime | None = None,
    rubrics: Sequence[Rubric] = DEFAULT_RUBRICS,
) -> CallDecision:
    """Approve the call's applications in rank order while the budget lasts, in one bulk run.

    Each is approved for ``amounts[project_id]`` (default: the amount requested). An
    application its other rules refuse (quorum, pass mark, ...) is skipped and reported;
    the batch stops at the first one that does not fit in what is left of the budget.
    """
    ranking = tuple(rank_call(engine, call_id, actor=actor, now=now, rubrics=rubrics))
    ledger = call_ledger(engine, call_id)
    left = ledger.available
    chosen: list[tuple[str, dict[str, str]]] = []
    refused: dict[str, tuple[str, ...]] = {}
    unfunded: list[str] = []
    for ranked in ranking:
        amount = money((amounts or {}).get(ranked.project_id, ranked.requested))
        if unfunded or amount > left:
            unfunded.append(ranked.project_id)
            continue
        evidence = {"recommended_amount": str(amount)}
        check = engine.can_fire(ranked.project_id, "approve", actor=actor, evidence=evidence)
        if not check.accepted:
            refused[ranked.project_id] = tuple(r.code for r in check.refusals)
            continue
        chosen.append((ranked.project_id, evidence))
        left -= amount
    result = engine.fire_many("approve", chosen, actor=actor)
    for item in result.items:
        refused[item.project_id] = tuple(r.code for r in item.refusals) or (item.status,)
    approved = tuple(pid for pid, _e in chosen if pid not in refused)
    return CallDecision(ranking, approved, refused, tuple(unfunded))
