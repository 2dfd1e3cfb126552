"""Publicity (公示): the award is public for N working days, and no objection stands.

Objections arrive as ``objection`` records while the project is ``reviewed``; the
purchaser rules on each with an ``objection_ruling`` record. ``sign`` needs the period
elapsed, every objection ruled on and none upheld (an upheld one means ``reject``).
"""

from __future__ import annotations

from grantflow.errors import CalendarUnavailable
from grantflow.messages import refusal
from grantflow.models import Verdict
from grantflow.records import Objection, ObjectionRuling
from grantflow.rules._base import PASS, RuleContext, rule
from grantflow.rules._regime import (
    approval,
    calendar_refusal,
    load,
    local_date,
    record_data,
    rows,
    values,
    working_calendar,
)

__all__ = ["objection_open", "objections_cleared", "period_elapsed", "ruling_valid"]


@rule(name="publicity.period")
def period_elapsed(ctx: RuleContext) -> Verdict:
    """At least N full working days (5 by default) passed between approval and today."""
    approved = approval(ctx.project, ctx.parsed)
    need = ctx.policy.publicity_working_days
    if approved is None:
        return refusal(
            "publicity.period", key="publicity.period.no_approval", required=need, elapsed=0
        )
    start = local_date(approved.approved_at, ctx.policy)
    today = local_date(ctx.now, ctx.policy)
    try:
        elapsed = working_calendar(ctx.policy).working_days_between(start, today)
    except CalendarUnavailable as exc:
        return calendar_refusal(exc)
    if elapsed >= need:
        return PASS
    return refusal(
        "publicity.period",
        required=need,
        elapsed=elapsed,
        approved_on=start,
    )


@rule(name="publicity.objection")
def objections_cleared(ctx: RuleContext) -> Verdict:
    """Every objection is ruled on and none was upheld."""
    rulings = {
        r.objection: r for r in values(ctx.project, "objection_ruling", ObjectionRuling, ctx.parsed)
    }
    open_ = [
        rec.id
        for rec, _o in rows(ctx.project, "objection", Objection, ctx.parsed)
        if rec.id not in rulings
    ]
    upheld = sorted(oid for oid, r in rulings.items() if r.upheld)
    if not open_ and not upheld:
        return PASS
    return refusal(
        "publicity.objection",
        upheld=upheld,
        pending=open_,
    )


@rule(name="publicity.objection_open")
def objection_open(ctx: RuleContext) -> Verdict:
    """Objections are taken during the publicity period and state their grounds.

    The period is the approval day and the N working days after it.
    """
    approved = approval(ctx.project, ctx.parsed)
    today = local_date(ctx.now, ctx.policy)
    timely = False
    if ctx.source == "reviewed" and approved is not None:
        start = local_date(approved.approved_at, ctx.policy)
        try:
            last = working_calendar(ctx.policy).add_working_days(
                start, ctx.policy.publicity_working_days
            )
        except CalendarUnavailable as exc:
            return calendar_refusal(exc)
        timely = today <= last
        if not timely:
            return refusal(
                "publicity.objection_open", key="publicity.objection_open.ended", ended=last
            )
    if timely and load(Objection, record_data(ctx), ctx.parsed) is not None:
        return PASS
    return refusal(
        "publicity.objection_open",
        state=ctx.source,
    )


@rule(name="publicity.ruling")
def ruling_valid(ctx: RuleContext) -> Verdict:
    """A purchaser rules once on an existing objection."""
    ruling = load(ObjectionRuling, record_data(ctx), ctx.parsed)
    objections = {r.id for r in ctx.project.records_of("objection")}
    ruled = {
        o.objection for o in values(ctx.project, "objection_ruling", ObjectionRuling, ctx.parsed)
    }
    if ruling is not None and ruling.objection in objections - ruled:
        return PASS
    target = None if ruling is None else ruling.objection
    return refusal(
        "publicity.ruling",
        objection=target,
    )
