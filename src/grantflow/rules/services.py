"""Service records and sanctions: what a running project delivers, and penalties on providers.

``service`` records (`ServiceRecord`: activities and person-times in a domain) come from
the provider while the project runs; their running totals are kept in the project's data
for portfolio reports. ``sanction`` records (`Sanction`) are added by a purchaser and make
the provider ineligible for the policy's look-back (see `eligibility.penalty`).
"""

from __future__ import annotations

from grantflow.models import Verdict
from grantflow.records import Sanction, ServiceRecord
from grantflow.rules._base import PASS, RuleContext, refuse, rule
from grantflow.rules._book import Effects
from grantflow.rules._regime import (
    is_own,
    load,
    local_date,
    needs_role,
    provider_of,
    record_data,
    term,
    text,
    values,
)
from grantflow.rules.funds import IMPLEMENTATION_STATES

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
    problems = []
    if not is_own(ctx.actor, ctx.project):
        problems.append("only the provider logs its services")
    if ctx.source not in IMPLEMENTATION_STATES:
        problems.append(f"no service records while {ctx.source}")
    if load(ServiceRecord, record_data(ctx)) is None:
        problems.append("not a valid service record")
    if not problems:
        return PASS
    return refuse(
        "services.record",
        f"service record not accepted: {'; '.join(problems)}",
        f"服务记录不予登记：{'；'.join(problems)}",
        problems=problems,
    )


@rule(name="services.in_term")
def service_in_term(ctx: RuleContext) -> Verdict:
    """The service was delivered inside the contract term (extensions included)."""
    served, span = load(ServiceRecord, record_data(ctx)), term(ctx.project)
    if served is None or span is None or span[0] <= served.date <= span[1]:
        return PASS
    return refuse(
        "services.in_term",
        f"service dated {served.date} is outside the term {span[0]} to {span[1]}",
        f"服务日期{served.date}不在合同期{span[0]}至{span[1]}内",
        date=served.date,
        start=span[0],
        end=span[1],
    )


@rule(name="services.plausible")
def service_plausible(ctx: RuleContext) -> Verdict:
    """Not in the future, in the project's own domain, person-times and activities bounded."""
    served = load(ServiceRecord, record_data(ctx))
    if served is None:
        return PASS  # services.record reports it
    problems = []
    today = local_date(ctx.now, ctx.policy)
    if served.date > today:
        problems.append(f"dated {served.date}, after today {today}")
    domain = text(ctx.project.data, "domain")
    if domain and served.domain != domain:
        problems.append(f"domain {served.domain} is not the project's {domain}")
    if served.person_times > ctx.policy.service_person_times_max:
        problems.append(
            f"{served.person_times} person-times exceed {ctx.policy.service_person_times_max}"
        )
    if served.activities > ctx.policy.service_activities_max:
        problems.append(
            f"{served.activities} activities exceed {ctx.policy.service_activities_max}"
        )
    if not problems:
        return PASS
    return refuse(
        "services.plausible",
        f"service record not plausible: {'; '.join(problems)}",
        f"服务记录不合常理：{'；'.join(problems)}",
        problems=problems,
    )


def service_effect(ctx: RuleContext) -> Effects:
    """Keep running totals of activities and person-times in the project's data."""
    new = load(ServiceRecord, record_data(ctx))
    logged = [*values(ctx.project, "service", ServiceRecord), *([new] if new else [])]
    return Effects(
        data={
            "activities": sum(s.activities for s in logged),
            "person_times": sum(s.person_times for s in logged),
        }
    )


@rule(name="services.sanction")
def sanction_valid(ctx: RuleContext) -> Verdict:
    """A purchaser records a sanction on this project's provider, with a reason."""
    role = needs_role(ctx, "purchaser", "services.sanction")
    if not role.passed:
        return role
    sanction = load(Sanction, record_data(ctx))
    if sanction is not None and sanction.provider == provider_of(ctx.project):
        return PASS
    return refuse(
        "services.sanction",
        "a sanction names this project's provider, a date and a reason",
        "处罚记录须载明本项目承接主体、日期和理由",
        provider=provider_of(ctx.project),
    )
