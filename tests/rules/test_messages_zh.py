"""Chinese refusal messages hold no English identifiers or Python values (the issue's cases)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from grantflow.models import Outcome

if TYPE_CHECKING:
    from conftest import World

LATIN = re.compile(r"[A-Za-z]")


def _zh(outcome: Outcome, code: str) -> str:
    return next(r.message_zh for r in outcome.refusals if r.code == code)


def test_a_line_cap_names_the_line_in_chinese_with_yuan_amounts(world: World) -> None:
    """Was ``administration科目已支出…``: now 管理费, amounts as ¥5,500.00."""
    pid = world.contracted()
    outcome = world.spend(pid, "5500.01", "INV-1", line="administration")
    text = _zh(outcome, "funds.line_cap")
    assert text.startswith("管理费已支出¥0.00，加本笔¥5,500.01超过上限¥5,500.00")
    assert not LATIN.search(text)


def test_a_missing_midterm_score_reads_none_in_chinese(world: World) -> None:
    """Was ``midterm评估等级须为合格及以上（得分None）``: now 中期评估, 无."""
    pid = world.contracted()
    text = _zh(
        world.engine.fire(pid, "pass_midterm", actor=world.treasurer), "evaluation.midterm_grade"
    )
    assert text == "中期评估等级须为合格及以上（得分无，等级无）"


def test_upheld_objections_are_counted_not_printed_as_a_list(world: World) -> None:
    """Was ``异议成立：['objection-6']``: now a count of upheld and pending objections."""
    pid = world.reviewed()
    objection = {"raised_by": "citizen", "grounds": "double funding"}
    world.engine.add_record(pid, "objection", objection, actor=world.other_applicant)
    oid = world.engine.get(pid).records_of("objection")[0].id
    ruling = {"objection": oid, "upheld": True}
    world.engine.add_record(pid, "objection_ruling", ruling, actor=world.approver)
    world.clock.advance(8)
    text = _zh(world.sign(pid), "publicity.objection")
    assert text == "成立的异议1项，待处理的异议0项"


def test_a_missing_field_is_named_in_chinese_not_by_pydantic(world: World) -> None:
    """Was pydantic's ``Field required``: now 缺少服务领域."""
    data = world.application()
    del data["domain"]
    outcome = world.engine.submit(actor=world.applicant, data=data)
    text = _zh(outcome, "eligibility.application")
    assert text == "申报材料不完整或有误：缺少服务领域"
    assert "domain: missing" in next(r.message for r in outcome.refusals)


def test_refused_events_and_roles_are_named_in_chinese(world: World) -> None:
    """``执行reject须说明理由`` becomes 执行驳回须说明理由; a role reads 购买主体."""
    pid = world.submit().raise_for_refusal().project_id
    outcome = world.engine.fire(pid, "reject", actor=world.approver)
    assert _zh(outcome, "reasons.required") == "执行驳回须说明理由"
    sanction = {"provider": "org-a", "on": "2025-03-01", "reason": "false ledgers"}
    refused = world.engine.add_record(pid, "sanction", sanction, actor=world.applicant)
    assert _zh(refused, "authority.role") == "登记处罚记录须由购买主体执行"
    assert _zh(refused, "authority.relation") == (
        "登记处罚记录须由本项目的购买主体（本级或上级枢纽）执行"
    )
