"""Conflict of interest: who may not review, approve, evaluate or pay for a project.

- An applicant never reviews, approves or evaluates its own project (`conflict.own_project`).
- A reviewer with a declared or detectable conflict (same organisation, worked there
  within the look-back, close family there) does not count toward the quorum
  (`review_conflict`, used by `review.quorum`).
- A review counts only with an explicit declaration (`Policy.declaration_required`).
- Whoever approved an award cannot release its payments (`conflict.approver_pays`,
  unless `Policy.approver_may_release`).
- Evaluators must be third parties: neither the provider, the endorsing hub nor the
  purchaser (nor a hub above it), by organisation, employment or close family
  (`conflict.third_party`).

The parties a reviewer or evaluator must be independent of come from the ``parties``
fact (`grantflow.rules.authority.interested`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import date
from typing import Any

from grantflow.messages import refusal
from grantflow.models import Verdict
from grantflow.policy import Policy
from grantflow.records import ConflictDeclaration, Evaluation, Person
from grantflow.rules._base import PASS, Parsed, RuleContext, rule
from grantflow.rules._book import FactRequest
from grantflow.rules._regime import (
    add_months,
    approval,
    is_own,
    load,
    local_date,
    provider_of,
    record_data,
    text,
)
from grantflow.rules.authority import interested

__all__ = [
    "PEOPLE_FACT",
    "approver_pays",
    "own_project",
    "people",
    "person_fact",
    "review_conflict",
    "third_party",
    "ties",
]

#: Fact name: the person entities of everyone who reviewed or evaluated the project.
PEOPLE_FACT = "people"


def people(request: FactRequest) -> dict[str, Any]:
    """Fact provider: person entities (JSON) of the project's reviewers and evaluators."""
    ids = {text(r.data, "reviewer") for r in request.project.records_of("review")}
    ids |= {text(r.data, "evaluator") for r in request.project.records_of("evaluation")}
    record = request.evidence.get("record") or {}
    data = record.get("data") or {}
    ids |= {text(data, "reviewer"), text(data, "evaluator"), request.actor.id}
    found: dict[str, Any] = {}
    for pid in sorted(i for i in ids if i):
        entity = request.reader.get_entity("person", pid)
        if entity is not None:
            found[pid] = dict(entity.data)
    return found


def review_conflict(
    declaration: ConflictDeclaration | None,
    person: Person | None,
    provider: str,
    today: date,
    policy: Policy,
    parties: Collection[str] = (),
) -> str | None:
    """Return why a reviewer is conflicted ('declared', 'same_organisation', ...), or ``None``.

    `parties` are the other organisations the reviewer must be independent of (the
    endorsing hub, the purchaser and the hubs above it); the provider always counts.
    No declaration at all is ``undeclared`` when the policy requires one.
    """
    if declaration is None and policy.declaration_required:
        return "undeclared"
    if declaration is not None and declaration.declared:
        return "declared"
    orgs = {o for o in (provider, *parties) if o}
    if person is None or not orgs:
        return None
    return ties(person, orgs, today, policy)


def ties(person: Person, orgs: Collection[str], today: date, policy: Policy) -> str | None:
    """Return how `person` is tied to one of `orgs` (employment, past work, family), or None."""
    if person.organisation in orgs:
        return "same_organisation"
    if person.affiliations:  # the look-back horizon only when there is a past to look at
        horizon = add_months(today, -12 * policy.conflict_lookback_years)
        for past in person.affiliations:
            if past.organisation in orgs and (past.until is None or past.until >= horizon):
                return "worked_there"
    if person.relatives_at and not set(orgs).isdisjoint(person.relatives_at):
        return "close_family"
    return None


def person_fact(
    facts: Mapping[str, Any], person_id: str, memo: Parsed | None = None
) -> Person | None:
    """Return a person from the `people` fact, or ``None``."""
    return load(Person, (facts.get(PEOPLE_FACT) or {}).get(person_id), memo)


@rule(name="conflict.own_project")
def own_project(ctx: RuleContext) -> Verdict:
    """An applicant never reviews, approves or evaluates its own project."""
    if not is_own(ctx.actor, ctx.project):
        return PASS
    return refusal(
        "conflict.own_project",
        event=ctx.event,
        actor=ctx.actor.id,
        provider=provider_of(ctx.project),
    )


@rule(name="conflict.approver_pays")
def approver_pays(ctx: RuleContext) -> Verdict:
    """Whoever approved the award cannot release its payments (`Policy.approver_may_release`)."""
    approved = approval(ctx.project, ctx.parsed)
    if ctx.policy.approver_may_release or approved is None or approved.approver != ctx.actor.id:
        return PASS
    return refusal("conflict.approver_pays", actor=ctx.actor.id, approver=approved.approver)


@rule(name="conflict.third_party")
def third_party(ctx: RuleContext) -> Verdict:
    """Evaluators are third parties: not the provider, endorsing hub or purchaser, no ties."""
    evaluation = load(Evaluation, record_data(ctx), ctx.parsed)
    if evaluation is None:
        return PASS  # evaluation.record reports the malformed record
    provider = provider_of(ctx.project)
    parties = interested(ctx.project, ctx.facts, ctx.policy)
    person = person_fact(ctx.facts, evaluation.evaluator, ctx.parsed)
    today = local_date(ctx.now, ctx.policy)
    reason = None
    if evaluation.organisation in {provider, *parties} or is_own(ctx.actor, ctx.project):
        reason = "not_third_party"
    elif ctx.actor.organisation not in {None, evaluation.organisation}:
        reason = "organisation_mismatch"
    else:
        reason = review_conflict(evaluation.conflict, person, provider, today, ctx.policy, parties)
    if reason is None:
        return PASS
    return refusal(
        "conflict.third_party",
        evaluator=evaluation.evaluator,
        organisation=evaluation.organisation,
        reason=reason,
    )
