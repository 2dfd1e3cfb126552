"""The default purchased-service lifecycle (DOMAIN.md section 2): 10 states, 10 events."""

from __future__ import annotations

from grantflow.states._lifecycle import EventDef, Lifecycle, StateDef

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

#: The purchased-service lifecycle every engine uses unless given another.
PURCHASED_SERVICE = Lifecycle(name="purchased-service", version="1", states=_STATES, events=_EVENTS)
