"""Mental-health projects need a licensed counsellor on the team (an example rule book).

A provider lists its team with ``team_member`` records (a kind this book declares).
Before the contracts of a ``mental_health`` project are signed, at least one member must
be a counsellor whose licence number is well formed and not expired on the day of
signing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from typing import Any

from grantflow.models import Verdict
from grantflow.rules import PASS, RuleBook, RuleContext, refuse, rule

__all__ = [
    "LICENCE",
    "TEAM_KIND",
    "licensed_counsellor",
    "qualifies",
    "rule_book",
    "team_member_valid",
]

#: The record kind listing a project's team.
TEAM_KIND = "team_member"
#: A counsellor's licence number: two capital letters and eight digits.
LICENCE = re.compile(r"[A-Z]{2}\d{8}")
_ROLES = ("counsellor", "social_worker", "coordinator")


def _expiry(value: object) -> date | None:
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        return None


def qualifies(member: Mapping[str, Any], on: date) -> bool:
    """Return whether a team member is a counsellor licensed on day `on`."""
    expires = _expiry(member.get("licence_expires"))
    return (
        member.get("role") == "counsellor"
        and LICENCE.fullmatch(str(member.get("licence") or "")) is not None
        and expires is not None
        and expires >= on
    )


@rule(name="counsellor.licensed")
def licensed_counsellor(ctx: RuleContext) -> Verdict:
    """A mental-health project has a licensed counsellor on its team when it is signed."""
    if ctx.project.data.get("domain") != "mental_health":
        return PASS
    today = ctx.now.date()
    licensed = [r for r in ctx.project.records_of(TEAM_KIND) if qualifies(r.data, today)]
    if licensed:
        return PASS
    return refuse(
        "counsellor.licensed",
        "a mental-health project needs a licensed counsellor on its team",
        "心理健康类项目团队须有持证心理咨询师",
        required=1,
        submitted=0,
    )


@rule(name="counsellor.member")
def team_member_valid(ctx: RuleContext) -> Verdict:
    """A team member has a name and a known role; a counsellor gives a licence and expiry."""
    data = ctx.evidence["record"]["data"]
    problems = []
    if not str(data.get("name") or "").strip():
        problems.append("name")
    if data.get("role") not in _ROLES:
        problems.append("role")
    if data.get("role") == "counsellor":
        if LICENCE.fullmatch(str(data.get("licence") or "")) is None:
            problems.append("licence")
        if _expiry(data.get("licence_expires")) is None:
            problems.append("licence_expires")
    if not problems:
        return PASS
    return refuse(
        "counsellor.member",
        f"team member: missing or invalid {', '.join(problems)}",
        f"团队成员信息缺失或无效：{'、'.join(problems)}",
        fields=problems,
    )


def rule_book() -> RuleBook:
    """The book: the counsellor rule on ``sign``, the member check on ``team_member``."""
    return (
        RuleBook()
        .declare_records(TEAM_KIND)
        .on("sign", licensed_counsellor)
        .on("record." + TEAM_KIND, team_member_valid)
    )
