"""Reasons: `reject`, `withdraw` and `terminate` say why; only the applicant withdraws."""

from __future__ import annotations

from grantflow.messages import refusal
from grantflow.models import Verdict
from grantflow.rules._base import PASS, RuleContext, rule
from grantflow.rules._regime import is_own, provider_of

__all__ = ["applicant_owns", "reason_given"]


@rule(name="reasons.required")
def reason_given(ctx: RuleContext) -> Verdict:
    """The evidence holds a non-empty ``reason``."""
    reason = ctx.evidence.get("reason")
    if isinstance(reason, str) and reason.strip():
        return PASS
    return refusal("reasons.required", event=ctx.event)


@rule(name="reasons.applicant_owns")
def applicant_owns(ctx: RuleContext) -> Verdict:
    """Only the applicant organisation of this project may withdraw it."""
    if is_own(ctx.actor, ctx.project):
        return PASS
    return refusal(
        "reasons.applicant_owns",
        provider=provider_of(ctx.project),
        actor_organisation=ctx.actor.organisation,
    )
