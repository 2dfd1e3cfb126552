"""The default purchased-service lifecycle (DOMAIN.md section 2): 10 states, 10 events.

It also declares the regime's due dates (publicity end, mid-term evaluation, progress
reports, rectification, refund, final report, contract end) and its timers (closing the
publicity period, reminders, proposing termination when a rectification is overdue);
see docs/time.md.
"""

from __future__ import annotations

from grantflow.states._lifecycle import EventDef, Lifecycle, StateDef
from grantflow.states._time import ObligationDef, TimerDef

__all__ = ["APPLICANT", "EVALUATOR", "FINANCE", "PURCHASED_SERVICE", "PURCHASER", "REVIEWER"]

#: The role of a provider organisation applying for and running a project.
APPLICANT = "applicant"
#: The role of the purchasing body's staff (a hub of the union tree).
PURCHASER = "purchaser"
#: The role of an expert reviewer on the approval panel.
REVIEWER = "reviewer"
#: The role of a third-party evaluator (mid-term evaluation, performance assessment).
EVALUATOR = "evaluator"
#: The role of the purchaser's finance staff, who release payments (`Policy.release_roles`).
FINANCE = "finance"

_STATES = (
    StateDef("applied", "Applied", "已申报"),
    StateDef("reviewed", "Reviewed (pending award)", "已评审（拟立项）"),
    StateDef("contracted", "Contracted", "已签约"),
    StateDef("midterm", "Mid-term passed", "中期评估通过"),
    StateDef("rectification", "Under rectification", "整改中"),
    StateDef("assessed", "Assessed", "已考核"),
    StateDef("closed", "Closed", "已结项", terminal=True),
    StateDef("rejected", "Rejected", "未立项", terminal=True),
    StateDef("withdrawn", "Withdrawn", "已撤回", terminal=True),
    StateDef("terminated", "Terminated", "已终止", terminal=True),
)

_P = frozenset({PURCHASER})
_EVAL = frozenset({PURCHASER, EVALUATOR})

_EVENTS = (
    EventDef("submit", (), "applied", frozenset({APPLICANT}), "Submit", "申报", creates=True),
    EventDef("approve", ("applied",), "reviewed", _P, "Approve", "评审通过"),
    EventDef("reject", ("applied", "reviewed"), "rejected", _P, "Reject", "不予立项"),
    EventDef(
        "withdraw", ("applied", "reviewed"), "withdrawn", frozenset({APPLICANT}), "Withdraw", "撤回"
    ),
    EventDef("sign", ("reviewed",), "contracted", _P, "Sign contracts", "签订合同"),
    EventDef(
        "pass_midterm",
        ("contracted", "rectification"),
        "midterm",
        _P,  # it releases an installment: a purchaser's decision, never the evaluator's
        "Pass mid-term evaluation",
        "中期评估通过",
    ),
    EventDef(
        "order_rectification",
        ("contracted",),
        "rectification",
        _EVAL,
        "Order rectification",
        "责令整改",
    ),
    EventDef("assess", ("midterm",), "assessed", _EVAL, "Assess performance", "绩效考核"),
    EventDef("close", ("assessed",), "closed", _P, "Close", "结项"),
    EventDef(
        "terminate",
        ("contracted", "midterm", "rectification"),
        "terminated",
        _P,
        "Terminate",
        "终止",
    ),
)

_RUNNING = ("contracted", "midterm", "rectification")
_FINISHED = ("assessed", "closed")

_OBLIGATIONS = (
    ObligationDef(
        "publicity_end",
        anchor="record:approval.approved_at",
        offset="publicity_working_days",
        open_in=("reviewed",),
        met_in=(*_RUNNING, *_FINISHED, "terminated"),
        met_by="publicity_closed",
        label="Publicity period ends",
        label_zh="公示期满",
    ),
    ObligationDef(
        "midterm_due",
        anchor="term.middle",
        open_in=("contracted",),
        met_in=("midterm", "rectification", *_FINISHED),
        label="Mid-term evaluation due",
        label_zh="中期评估到期",
    ),
    ObligationDef(
        "progress_report",
        anchor="term.start",
        every="progress_report_months",
        offset="progress_report_working_days",
        open_in=_RUNNING,
        met_by="progress_report",
        label="Progress report due",
        label_zh="进度报告到期",
    ),
    ObligationDef(
        "rectification_due",
        anchor="record:rectification_order.deadline",
        open_in=("rectification",),
        met_in=("midterm", *_FINISHED),
        label="Rectification due",
        label_zh="整改期限",
    ),
    ObligationDef(
        "refund_due",
        anchor="record:refund_demand.due_on",
        open_in=("closed", "terminated"),
        met_data=(("refund_status", "settled"),),
        label="Refund due",
        label_zh="退款到期",
    ),
    ObligationDef(
        "final_report_due",
        anchor="term.end",
        offset="final_report_working_days",
        open_in=_RUNNING,
        met_in=_FINISHED,
        label="Final report due",
        label_zh="结项报告到期",
    ),
    ObligationDef(
        "contract_end",
        anchor="term.end",
        open_in=_RUNNING,
        met_in=_FINISHED,
        label="Contract ends",
        label_zh="合同期满",
    ),
)


def _reminder(obligation: str, label_zh: str) -> TimerDef:
    return TimerDef(
        f"remind_{obligation}",
        obligation=obligation,
        when="before",
        working_days="reminder_working_days",
        record="reminder",
        label=f"Remind: {obligation.replace('_', ' ')}",
        label_zh=f"提醒：{label_zh}",
    )


_TIMERS = (
    TimerDef(
        "close_publicity",
        obligation="publicity_end",
        when="after",
        record="publicity_closed",
        requires=("objections_cleared",),
        label="Publicity period closed without an upheld objection",
        label_zh="公示期满无异议",
    ),
    _reminder("progress_report", "进度报告"),
    _reminder("midterm_due", "中期评估"),
    _reminder("rectification_due", "整改期限"),
    _reminder("final_report_due", "结项报告"),
    _reminder("refund_due", "退款"),
    TimerDef(
        "propose_termination",
        obligation="rectification_due",
        when="after",
        record="termination_proposal",
        label="Rectification overdue: termination proposed",
        label_zh="整改逾期，建议终止合同",
    ),
)

#: The purchased-service lifecycle every engine uses unless given another.
PURCHASED_SERVICE = Lifecycle(
    name="purchased-service",
    version="1",
    states=_STATES,
    events=_EVENTS,
    obligations=_OBLIGATIONS,
    timers=_TIMERS,
)
