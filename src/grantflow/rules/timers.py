"""Records of time: what timers add (reminders, closings, proposals) and progress reports.

A timer's record (``reminder``, ``publicity_closed``, ``termination_proposal`` in the
default lifecycle) is added by the system actor (role ``system``) when, and only when,
that timer occurrence is due on the project: the rule computes the due timers again
from the project and the time of the attempt, so a forged or early timer record is
refused like any other bad record.

A provider files a ``progress_report`` (`grantflow.records.ProgressReport`) for each
reporting period of its contract, once.
"""

from __future__ import annotations

from typing import Any

from grantflow._canonical import thaw
from grantflow.messages import problem, refusal
from grantflow.models import Verdict
from grantflow.obligations import Schedule, reporting_periods
from grantflow.records import ProgressReport
from grantflow.rules._base import PASS, Rule, RuleContext, rule
from grantflow.rules._regime import load, record_data, record_problems, term, values
from grantflow.states import PURCHASED_SERVICE, Lifecycle

__all__ = ["SYSTEM_ROLE", "progress_report_valid", "timer_record"]

#: The role of grantflow's own actor (the timer sweep).
SYSTEM_ROLE = "system"


def timer_record(lifecycle: Lifecycle = PURCHASED_SERVICE) -> Rule:
    """Build ``timer.record``: the system adds a timer's record when that occurrence is due."""
    schedule = Schedule(lifecycle)

    @rule(name="timer.record")
    def timer_record_rule(ctx: RuleContext) -> Verdict:
        kind = ctx.event.removeprefix("record.")
        if SYSTEM_ROLE not in ctx.actor.roles:
            return refusal("timer.record", kind=kind, problems=[problem("timer.not_system")])
        data = thaw(record_data(ctx))
        occurrence = str(data.get("occurrence", ""))
        due = schedule.timers_due(ctx.project, ctx.policy, ctx.now)
        if any(d.action == ctx.event and d.data() == data for d in due):
            return PASS
        found = problem("timer.not_due", occurrence=occurrence)
        return refusal("timer.record", kind=kind, problems=[found])

    return timer_record_rule


@rule(name="progress.report")
def progress_report_valid(ctx: RuleContext) -> Verdict:
    """The provider reports a period of its contract that has not been reported yet."""
    report = load(ProgressReport, record_data(ctx), ctx.parsed)
    found: list[dict[str, Any]] = record_problems(ctx, "progress_report", report is not None)
    if report is not None:
        done = {
            r.period for r in values(ctx.project, "progress_report", ProgressReport, ctx.parsed)
        }
        if report.period not in _periods(ctx):
            found.append(problem("progress.period", period=report.period))
        elif report.period in done:
            found.append(problem("progress.repeat", period=report.period))
    if not found:
        return PASS
    return refusal("progress.report", problems=found)


def _periods(ctx: RuleContext) -> set[int]:
    """The reporting periods of the project's contract under its policy."""
    span = term(ctx.project, ctx.parsed)
    if span is None:
        return set()
    return {n for n, _end in reporting_periods(*span, ctx.policy.progress_report_months)}
