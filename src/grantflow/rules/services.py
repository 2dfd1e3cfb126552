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
from grantflow.rules._regime import is_own, load, needs_role, provider_of, record_data, values
from grantflow.rules.funds import IMPLEMENTATION_STATES

__all__ = ["sanction_valid", "service_effect", "service_valid"]


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
