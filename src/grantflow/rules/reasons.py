"""Reasons: `reject`, `withdraw` and `terminate` say why; only the applicant withdraws."""

from __future__ import annotations

from grantflow.models import Verdict
from grantflow.rules._base import PASS, RuleContext, refuse, rule
from grantflow.rules._regime import is_own, provider_of

__all__ = ["applicant_owns", "reason_given"]


@rule(name="reasons.required")
def reason_given(ctx: RuleContext) -> Verdict:
    """The evidence holds a non-empty ``reason``."""
    reason = ctx.evidence.get("reason")
    if isinstance(reason, str) and reason.strip():
        return PASS
    return refuse(
        "reasons.required",
        f"{ctx.event} needs a reason",
        f"执行{ctx.event}须说明理由",
        event=ctx.event,
    )


@rule(name="reasons.applicant_owns")
def applicant_owns(ctx: RuleContext) -> Verdict:
    """Only the applicant organisation of this project may withdraw it."""
    if is_own(ctx.actor, ctx.project):
        return PASS
    return refuse(
        "reasons.applicant_owns",
        "only the applicant organisation of this project may withdraw it",
        "只有本项目的申报单位可以撤回",
        provider=provider_of(ctx.project),
        actor_organisation=ctx.actor.organisation,
    )
