"""Service records and sanctions: what a running project delivers, and penalties on providers.

``service`` records (`ServiceRecord`: activities and person-times in a domain) come from
the provider while the project runs; their running totals are kept in the project's data
for portfolio reports. ``sanction`` records (`Sanction`) are added by a purchaser and make
the provider ineligible for the policy's look-back (see `eligibility.penalty`).
"""

from __future__ import annotations

from grantflow.messages import problem, refusal
from grantflow.models import Verdict
from grantflow.records import Sanction, ServiceRecord
from grantflow.rules._base import PASS, RuleContext, rule
from grantflow.rules._book import Effects
from grantflow.rules._regime import (
    load,
    local_date,
    provider_of,
    record_data,
    record_problems,
    term,
    text,
    values,
)

__all__ = [
    "sanction_valid",
    "service_effect",
    "service_in_term",
    "service_plausible",
    "service_valid",
]


@rule(name="services.record")
def service_valid(ctx: RuleContext) -> Verdict:
    """The provider logs well-formed service activity while the project runs."""
    valid = load(ServiceRecord, record_data(ctx), ctx.parsed) is not None
    problems = record_problems(ctx, "service", valid)
    if not problems:
        return PASS
    return refusal("services.record", problems=problems)


@rule(name="services.in_term")
def service_in_term(ctx: RuleContext) -> Verdict:
    """The service was delivered inside the contract term (extensions included)."""
    served, span = load(ServiceRecord, record_data(ctx), ctx.parsed), term(ctx.project, ctx.parsed)
    if served is None or span is None or span[0] <= served.date <= span[1]:
        return PASS
    return refusal(
        "services.in_term",
        date=served.date,
        start=span[0],
        end=span[1],
    )


@rule(name="services.plausible")
def service_plausible(ctx: RuleContext) -> Verdict:
    """Not in the future, in the project's own domain, person-times and activities bounded."""
    served = load(ServiceRecord, record_data(ctx), ctx.parsed)
    if served is None:
        return PASS  # services.record reports it
    problems = []
    today = local_date(ctx.now, ctx.policy)
    if served.date > today:
        problems.append(problem("service.future", date=served.date, today=today))
    domain = text(ctx.project.data, "domain")
    if domain and served.domain != domain:
        problems.append(problem("service.domain", domain=served.domain, expected=domain))
    most = ctx.policy.service_person_times_max
    if served.person_times > most:
        problems.append(problem("service.person_times", value=served.person_times, max=most))
    most = ctx.policy.service_activities_max
    if served.activities > most:
        problems.append(problem("service.activities", value=served.activities, max=most))
    if not problems:
        return PASS
    return refusal("services.plausible", problems=problems)


def service_effect(ctx: RuleContext) -> Effects:
    """Keep running totals of activities and person-times in the project's data."""
    new = load(ServiceRecord, record_data(ctx), ctx.parsed)
    logged = [*values(ctx.project, "service", ServiceRecord, ctx.parsed), *([new] if new else [])]
    return Effects(
        data={
            "activities": sum(s.activities for s in logged),
            "person_times": sum(s.person_times for s in logged),
        }
    )


@rule(name="services.sanction")
def sanction_valid(ctx: RuleContext) -> Verdict:
    """A purchaser records a sanction on this project's provider, with a reason."""
    sanction = load(Sanction, record_data(ctx), ctx.parsed)
    if sanction is not None and sanction.provider == provider_of(ctx.project):
        return PASS
    return refusal(
        "services.sanction",
        provider=provider_of(ctx.project),
    )
