"""The rule helpers of `grantflow.rules._regime` and `_base`, called directly.

What each returns where a mutation would otherwise pass unnoticed: a record's JSON
form, the rubric version a project is pinned to, the problems of a provider's record,
the memo a decision shares, the name a refusal reports for a rule, and the contract
term read once per decision by the progress-report rule.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

import pytest

from grantflow import Actor, Policy, Project
from grantflow.models import Verdict
from grantflow.records import Disbursement
from grantflow.rules import PASS, RuleContext
from grantflow.rules import _regime as regime
from grantflow.rules._base import Parsed, rule_name
from grantflow.rules._regime import make_record, pinned_version, record_problems
from grantflow.rules.timers import progress_report_valid

if TYPE_CHECKING:
    from conftest import World

NOW = datetime(2025, 3, 20, 2, 0, tzinfo=UTC)
APPLICANT = Actor(id="u-a", roles=frozenset({"applicant"}), organisation="org-a")


def _project(**data: Any) -> Project:
    return Project(
        id="p1",
        state="contracted",
        version=1,
        head="0" * 64,
        data=data,
        created_at=NOW,
        updated_at=NOW,
    )


def _ctx(project: Project, source: str | None, **evidence: Any) -> RuleContext:
    return RuleContext(
        project=project, event="record.progress_report", source=source, target=source,
        actor=APPLICANT, evidence=evidence, now=NOW, policy=Policy(),
    )  # fmt: skip


# -- make_record -----------------------------------------------------------------------------


def test_a_made_record_holds_the_json_dump_of_its_value() -> None:
    """Times as pydantic's JSON spells them ('...T02:00:00Z'), not the canonical microseconds."""
    paid = Disbursement(installment=1, amount="10.00", released_by="staff-2", at=NOW)
    record = make_record("disbursement", "disbursement-1", paid)
    assert (record.kind, record.id) == ("disbursement", "disbursement-1")
    assert record.data == {
        "installment": 1,
        "amount": "10.00",
        "released_by": "staff-2",
        "at": "2025-03-20T02:00:00Z",
    }


# -- pinned_version --------------------------------------------------------------------------


def test_a_project_s_own_pin_wins_over_the_policy() -> None:
    """Pinned to approval 2 at submission: 2, whatever the policy now says."""
    project = _project(rubric_versions={"approval": 2})
    assert pinned_version(project, "approval", Policy()) == 2
    assert pinned_version(project, "midterm", Policy()) == 1


def test_without_any_pin_a_rubric_is_at_version_1() -> None:
    """No pin on the project and none in the policy: version 1."""
    policy = Policy(rubric_versions={})
    assert pinned_version(_project(), "approval", policy) == 1
    assert pinned_version(_project(rubric_versions={"midterm": 3}), "approval", policy) == 1
    assert pinned_version(_project(), "approval", Policy(rubric_versions={"approval": 4})) == 4


# -- record_problems -------------------------------------------------------------------------


def test_a_record_out_of_term_and_malformed_names_its_kind_and_the_state() -> None:
    """Both problems, each naming the record kind; the state one names the project's state."""
    ctx = _ctx(_project(), "applied")
    assert record_problems(ctx, "expenditure", valid=False) == [
        {"code": "record.state", "kind": "expenditure", "state": "applied"},
        {"code": "record.invalid", "kind": "expenditure"},
    ]
    assert record_problems(replace(ctx, source="midterm"), "service", valid=True) == []


# -- Parsed ----------------------------------------------------------------------------------


def test_the_memo_keeps_one_answer_per_source_object() -> None:
    """Two sources under one key each keep their own answer; neither evicts the other."""
    memo = Parsed()
    first, second = ["a"], ["b"]
    assert memo.get(first, "key", lambda: 1) == 1
    assert memo.get(second, "key", lambda: 2) == 2
    assert memo.get(first, "key", lambda: 3) == 1
    assert memo.get(second, "key", lambda: 4) == 2
    assert memo.get(first, "other", lambda: 5) == 5


# -- rule_name -------------------------------------------------------------------------------


class _Named:
    """A callable object with a ``__name__`` of its own and no ``__qualname__``."""

    def __init__(self, name: str) -> None:
        self.__name__ = name

    def __call__(self, ctx: RuleContext) -> Verdict:
        return PASS

    def __repr__(self) -> str:
        return "<a named rule>"


class _Anonymous:
    """A callable object with neither name: its repr names it."""

    def __call__(self, ctx: RuleContext) -> Verdict:
        return PASS

    def __repr__(self) -> str:
        return "<an anonymous rule>"


def test_a_rule_object_is_named_by_its_own_name_else_its_repr() -> None:
    """``__qualname__`` first (functions), then ``__name__``, then ``repr``."""

    def local(ctx: RuleContext) -> Verdict:
        return PASS

    assert rule_name(local).endswith("<locals>.local")
    assert rule_name(_Named("custom.named")) == "custom.named"
    assert rule_name(_Anonymous()) == "<an anonymous rule>"


# -- the progress report reads the term through the memo -------------------------------------


def test_the_progress_report_rule_works_out_the_term_once_per_decision(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second call on the same context reads the contract term from the decision's memo."""
    calls: list[str] = []
    original: Callable[..., tuple[date, date] | None] = regime.contract_term

    def counted(project: Project, **options: Any) -> tuple[date, date] | None:
        calls.append(project.id)
        return original(project, **options)

    monkeypatch.setattr(regime, "contract_term", counted)
    project = world.engine.get(world.contracted())
    report = {"kind": "progress_report", "data": {"period": 1, "summary": "first quarter"}}
    ctx = _ctx(project, "contracted", record=report)
    assert progress_report_valid(ctx) == PASS
    assert progress_report_valid(ctx) == PASS
    assert calls == [project.id]
