"""Eligibility at ``submit``: a valid application from a known, eligible provider, in the window.

Facts read before the rules: the provider, call and hub entities, how many applications
the provider already has in the call, and the sanctions recorded against it.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from grantflow._canonical import thaw
from grantflow.messages import problem, refusal
from grantflow.models import Verdict
from grantflow.records import Application, Call, Hub, Provider
from grantflow.rules._base import PASS, RuleContext, rule
from grantflow.rules._book import Effects, FactRequest
from grantflow.rules._regime import add_months, as_date, load, local_date, text
from grantflow.rules.authority import PARTIES_FACT

__all__ = [
    "SUBMIT_FACTS",
    "annual_report",
    "applicant_is_provider",
    "application_limit",
    "application_valid",
    "applications_fact",
    "call_fact",
    "call_window",
    "grades_fact",
    "hub_endorsed",
    "hub_fact",
    "no_recent_fail",
    "no_recent_penalty",
    "priority",
    "provider_fact",
    "provider_registered",
    "purchaser_owns_call",
    "sanctions_fact",
    "submit_effect",
]

_CLOSED_STATES = ("withdrawn",)


def _entity(request: FactRequest, kind: str) -> dict[str, Any] | None:
    eid = text(request.project.data, kind)
    entity = request.reader.get_entity(kind, eid) if eid else None
    return dict(entity.data) if entity is not None else None


def provider_fact(request: FactRequest) -> dict[str, Any] | None:
    """Fact ``provider``: the provider entity named by the application."""
    return _entity(request, "provider")


def call_fact(request: FactRequest) -> dict[str, Any] | None:
    """Fact ``call``: the call entity named by the application."""
    return _entity(request, "call")


def hub_fact(request: FactRequest) -> dict[str, Any] | None:
    """Fact ``hub``: the endorsing hub entity named by the application."""
    return _entity(request, "hub")


def applications_fact(request: FactRequest) -> int:
    """Fact ``applications``: the provider's projects in the call (withdrawn ones excluded)."""
    data = request.project.data
    wanted = {"provider": text(data, "provider"), "call": text(data, "call")}
    return request.reader.count_projects(wanted, exclude_states=_CLOSED_STATES)


def sanctions_fact(request: FactRequest) -> list[str]:
    """Fact ``sanctions``: dates of the sanctions recorded against the provider, anywhere."""
    provider = text(request.project.data, "provider")
    found = request.reader.find_records("sanction", "provider", [provider]) if provider else []
    return [text(r.data, "on") for _pid, r in found]


def grades_fact(request: FactRequest) -> list[dict[str, Any]]:
    """Fact ``grades``: the provider's final grades in earlier projects (project, year, grade)."""
    provider = text(request.project.data, "provider")
    found = request.reader.find_records("assessment", "provider", [provider]) if provider else []
    return [
        {"project": pid, "year": r.data.get("year"), "grade": text(r.data, "grade")}
        for pid, r in found
    ]


#: The fact providers of ``submit``, by fact name.
SUBMIT_FACTS = {
    "provider": provider_fact,
    "call": call_fact,
    "hub": hub_fact,
    "applications": applications_fact,
    "sanctions": sanctions_fact,
    "grades": grades_fact,
}


def _past(ctx: RuleContext) -> tuple[int | None, list[dict[str, Any]]]:
    """The call's year and the provider's earlier grades, as (year, [{project, year, grade}])."""
    call = load(Call, ctx.facts.get("call"), ctx.parsed)
    grades = [dict(g) for g in ctx.facts.get("grades") or () if isinstance(g.get("year"), int)]
    return (call.year if call else None), grades


@rule(name="eligibility.fail_bar")
def no_recent_fail(ctx: RuleContext) -> Verdict:
    """No 不合格 final grade in the call years the policy bars (the previous year by default)."""
    year, grades = _past(ctx)
    years = ctx.policy.fail_bar_years
    if year is None or years == 0:
        return PASS
    failed = sorted(
        (g["year"], g["project"])
        for g in grades
        if g["grade"] == "fail" and year - years <= g["year"] < year
    )
    if not failed:
        return PASS
    when, project = failed[-1]
    return refusal(
        "eligibility.fail_bar",
        project=project,
        until=when + years,
        year=when,
        barred_years=years,
    )


def priority(ctx: RuleContext) -> tuple[Decimal, list[dict[str, Any]]]:
    """Return last year's grade bonus for this application and the grades it comes from."""
    year, grades = _past(ctx)
    if year is None:
        return Decimal(0), []
    last = [g for g in grades if g["year"] == year - 1 and g["grade"] in ctx.policy.grade_priority]
    if not last:
        return Decimal(0), []
    best = max(last, key=lambda g: ctx.policy.grade_priority[g["grade"]])
    return ctx.policy.grade_priority[best["grade"]], [best]


def submit_effect(ctx: RuleContext) -> Effects:
    """Pin the call's rubric versions (else the policy's); note the call year and purchaser."""
    call = load(Call, ctx.facts.get("call"), ctx.parsed)
    pins = {**ctx.policy.rubric_versions, **(call.rubric_versions if call else {})}
    data: dict[str, Any] = {"rubric_versions": pins}
    bonus, source = priority(ctx)
    if bonus:
        data["priority_bonus"] = str(bonus)
        data["priority_from"] = source
    if call is not None:
        data["year"] = call.year
        if not ctx.project.data.get("purchaser"):
            data["purchaser"] = call.hub
    return Effects(data=data)


def _field_problem(error: Mapping[str, Any]) -> dict[str, Any]:
    """A pydantic error as a catalogue problem naming the field (no pydantic wording)."""
    # The top-level field only: the catalogue names fields, not paths inside them.
    field = str(error["loc"][0]) if error["loc"] else ""
    if not field:
        return problem("application.dates")
    kind = error["type"]  # every pydantic error has one
    if kind == "missing":
        return problem("field.missing", field=field)
    if kind in {"string_too_short", "too_short"}:
        return problem("field.empty", field=field)
    return problem("field.invalid", field=field)


def _application_problems(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """What is wrong with `data` as an application (nothing: ``[]``)."""
    try:
        Application.model_validate({k: v for k, v in thaw(data).items() if k != "policy_version"})
    except ValidationError as exc:
        return [_field_problem(e) for e in exc.errors()]
    return []


@rule(name="eligibility.application")
def application_valid(ctx: RuleContext) -> Verdict:
    """The submitted data is a complete, valid application."""
    data = ctx.project.data
    problems = ctx.parsed.get(data, _application_problems, lambda: _application_problems(data))
    if problems:
        return refusal("eligibility.application", problems=problems)
    return PASS


@rule(name="eligibility.applicant")
def applicant_is_provider(ctx: RuleContext) -> Verdict:
    """The actor submits for the provider named in the application."""
    provider = text(ctx.project.data, "provider")
    if provider and provider in {ctx.actor.organisation, ctx.actor.id}:
        return PASS
    return refusal(
        "eligibility.applicant",
        actor=ctx.actor.id,
        provider=provider,
        actor_organisation=ctx.actor.organisation,
    )


@rule(name="eligibility.provider")
def provider_registered(ctx: RuleContext) -> Verdict:
    """The provider is registered with a valid unified social credit code."""
    if load(Provider, ctx.facts.get("provider"), ctx.parsed) is not None:
        return PASS
    provider = text(ctx.project.data, "provider")
    return refusal(
        "eligibility.provider",
        provider=provider,
    )


@rule(name="eligibility.annual_report")
def annual_report(ctx: RuleContext) -> Verdict:
    """The provider passed its last annual report (年报/年检)."""
    provider = load(Provider, ctx.facts.get("provider"), ctx.parsed)
    if provider is None or provider.annual_report_passed:
        return PASS
    return refusal(
        "eligibility.annual_report",
        provider=provider.id,
    )


@rule(name="eligibility.penalty")
def no_recent_penalty(ctx: RuleContext) -> Verdict:
    """No penalty on the provider within the policy's look-back (2 years by default)."""
    provider = load(Provider, ctx.facts.get("provider"), ctx.parsed)
    dates = list(provider.penalties) if provider else []
    dates.extend(d for d in map(as_date, ctx.facts.get("sanctions") or ()) if d is not None)
    today = local_date(ctx.now, ctx.policy)
    horizon = add_months(today, -12 * ctx.policy.penalty_lookback_years)
    recent = sorted(str(d) for d in dates if horizon <= d <= today)
    if not recent:
        return PASS
    years = ctx.policy.penalty_lookback_years
    return refusal(
        "eligibility.penalty",
        penalties=recent,
        lookback_years=years,
    )


@rule(name="eligibility.limit")
def application_limit(ctx: RuleContext) -> Verdict:
    """At most N applications per provider per call (2 by default)."""
    limit = ctx.policy.applications_per_provider_per_call
    existing = int(ctx.facts.get("applications") or 0)
    if existing < limit:
        return PASS
    return refusal(
        "eligibility.limit",
        limit=limit,
        existing=existing,
    )


@rule(name="eligibility.hub")
def hub_endorsed(ctx: RuleContext) -> Verdict:
    """The application is endorsed by a hub of the union tree."""
    if load(Hub, ctx.facts.get("hub"), ctx.parsed) is not None:
        return PASS
    hub = text(ctx.project.data, "hub")
    return refusal(
        "eligibility.hub",
        hub=hub,
    )


@rule(name="eligibility.purchaser")
def purchaser_owns_call(ctx: RuleContext) -> Verdict:
    """A purchaser named by the application is the call's hub or a hub below it.

    So no application can route itself to a purchaser outside the tree of the hub that
    owns the call (purchasing authority follows the hub tree).
    """
    purchaser = text(ctx.project.data, "purchaser")
    call = load(Call, ctx.facts.get("call"), ctx.parsed)
    if not purchaser or call is None:
        return PASS  # the call's hub purchases; eligibility.call_window reports no call
    path = (ctx.facts.get(PARTIES_FACT) or {}).get("purchaser_path") or ()
    if call.hub in path:
        return PASS
    return refusal("eligibility.purchaser", purchaser=purchaser, call=call.id, hub=call.hub)


@rule(name="eligibility.call_window")
def call_window(ctx: RuleContext) -> Verdict:
    """The call exists and is open now."""
    call = load(Call, ctx.facts.get("call"), ctx.parsed)
    if call is not None and call.opens <= ctx.now <= call.closes:
        return PASS
    name = text(ctx.project.data, "call")
    if call is None:
        return refusal("eligibility.call_window", key="eligibility.call_window.no_call", call=name)
    return refusal(
        "eligibility.call_window",
        call=name,
        opens=call.opens,
        closes=call.closes,
    )
