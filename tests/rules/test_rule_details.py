"""The exact details the default rules, fact providers and effects hand back.

Each test pins an output a mutation of the rule would change unnoticed: the parties a
contract makes, a release refusal's details, the authority matrix's labels, the rubric a
panel is judged on, the eligibility facts and the submission effect, how a pydantic error
names its field, the budget others hold, and what an amendment writes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from grantflow import Actor, Policy, Project, Record
from grantflow.persistence import MemoryStore
from grantflow.records import Amendment, Call
from grantflow.rubrics import APPROVAL_REVIEW, DEFAULT_RUBRICS
from grantflow.rules import FactRequest, RuleContext
from grantflow.rules._book import Effects
from grantflow.rules.amendments import _request_problems, amended_problems
from grantflow.rules.authority import contracted, matrix
from grantflow.rules.budget import release_effect, reserved_by_others
from grantflow.rules.eligibility import (
    _field_problem,
    applications_fact,
    grades_fact,
    priority,
    sanctions_fact,
    submit_effect,
)
from grantflow.rules.review import panel
from grantflow.testing.store_contract import submission, transition

if TYPE_CHECKING:
    from conftest import World

NOW = datetime(2025, 3, 20, 2, 0, tzinfo=UTC)
STAFF = Actor(id="staff", roles=frozenset({"purchaser"}), organisation="d1")
CALL = Call(
    id="c1",
    hub="city",
    year=2025,
    opens=datetime(2025, 1, 1, tzinfo=UTC),
    closes=datetime(2025, 3, 31, tzinfo=UTC),
    budget=Decimal("1000000.00"),
    rubric_versions={"approval": 2},
).model_dump(mode="json")


def _project(pid: str = "p1", records: tuple[Record, ...] = (), **data: Any) -> Project:
    return Project(
        id=pid,
        state="applied",
        version=len(records) + 1,
        head="0" * 64,
        data=data,
        records=records,
        created_at=NOW,
        updated_at=NOW,
    )


def _draft(**data: Any) -> Project:
    return _project("draft", **data).model_copy(update={"state": "", "version": 0})


def _ctx(project: Project, event: str = "submit", **facts: Any) -> RuleContext:
    return RuleContext(
        project=project, event=event, source=None, target="applied", actor=STAFF,
        evidence={}, now=NOW, policy=Policy(), facts=facts,
    )  # fmt: skip


def _request(store: MemoryStore, project: Project) -> FactRequest:
    return FactRequest(
        reader=store, project=project, event="submit", actor=STAFF, evidence={}, policy=Policy()
    )


# -- authority -------------------------------------------------------------------------------


def test_the_supervision_contract_makes_its_counterparty_supervisor_and_evaluator(
    world: World,
) -> None:
    """Without an evaluation contract the supervisor evaluates too: both relations named."""
    project = world.engine.get(world.contracted())
    assert contracted(project) == {"supervisor": "audit-co", "evaluator": "audit-co"}


def test_a_release_refusal_names_the_event_the_roles_needed_and_the_actor_s(
    world: World,
) -> None:
    """Purchaser staff without the finance role firing ``pass_midterm``: the full details."""
    pid = world.contracted()
    world.evaluate(pid, "midterm", 85).raise_for_refusal()
    clerk = Actor(id="city-clerk", roles=frozenset({"purchaser"}), organisation="city")
    outcome = world.engine.fire(pid, "pass_midterm", actor=clerk)
    assert [r.code for r in outcome.refusals] == ["authority.release"]
    assert outcome.refusals[0].details == {
        "event": "pass_midterm",
        "roles": ["finance"],
        "actor_roles": ["purchaser"],
    }


def test_the_matrix_is_in_english_by_default() -> None:
    """``matrix()`` is ``matrix("en")``: code-spelled labels, English headings."""
    assert matrix() == matrix("en")
    assert matrix().startswith("| event | roles (any of) |")


def test_a_role_without_a_chinese_label_is_shown_by_its_name() -> None:
    """A release role the catalogue does not know appears as itself in the Chinese matrix."""
    shown = matrix("zh", policy=Policy(release_roles=("cashier",)))
    assert "涉及拨款：须具备cashier角色" in shown
    assert "None" not in shown


# -- review ----------------------------------------------------------------------------------


def test_the_panel_judges_by_the_rubric_version_the_project_is_pinned_to() -> None:
    """Pinned to approval 2, a review on version 1 is left out and the key says ``approval@2``."""
    review = Record(
        kind="review",
        id="review-1",
        data={
            "reviewer": "r1",
            "rubric": "approval",
            "rubric_version": 1,
            "scores": APPROVAL_REVIEW.proportional(80),
            "conflict": {"declared": False},
        },
        seq=1,
    )
    project = _project("p1", (review,), provider="org-1", rubric_versions={"approval": 2})
    found = panel(project, {}, DEFAULT_RUBRICS, Policy(), NOW.date())
    assert found.rubric_key == "approval@2"
    assert found.counted == ()
    assert found.excluded == (("r1", "rubric_version"),)


# -- eligibility facts -----------------------------------------------------------------------


def test_withdrawn_applications_do_not_count_toward_the_limit() -> None:
    """Of the provider's two projects in the call, the withdrawn one is not counted."""
    store = MemoryStore()
    for pid, call in (("p1", "c1"), ("p2", "c1"), ("p3", "c2")):
        store.commit(submission(pid, data={"provider": "org-1", "call": call}))
    p2 = store.load("p2")
    assert p2 is not None
    store.commit(transition(p2, "withdrawn", event="withdraw"))
    assert applications_fact(_request(store, _draft(provider="org-1", call="c1"))) == 1


def _with_records(kind: str, *rows: dict[str, Any]) -> MemoryStore:
    store = MemoryStore()
    for n, data in enumerate(rows, start=1):
        record = Record(kind=kind, id=f"{kind}-{n}", data=data)
        store.commit(
            submission(f"p{n}", data={"provider": str(data["provider"])}, records=[record])
        )
    return store


def test_a_project_naming_no_provider_has_no_sanctions() -> None:
    """Even a sanction recorded against an empty provider is not the unnamed provider's."""
    store = _with_records(
        "sanction", {"provider": "", "on": "2024-05-01"}, {"provider": "org-1", "on": "2024-06-01"}
    )
    assert sanctions_fact(_request(store, _draft())) == []
    assert sanctions_fact(_request(store, _draft(provider="org-1"))) == ["2024-06-01"]


def test_a_project_naming_no_provider_has_no_grades() -> None:
    """Even an assessment of an empty provider is not the unnamed provider's."""
    store = _with_records(
        "assessment",
        {"provider": "", "year": 2024, "grade": "excellent"},
        {"provider": "org-1", "year": 2024, "grade": "good"},
    )
    assert grades_fact(_request(store, _draft())) == []
    assert grades_fact(_request(store, _draft(provider="org-1"))) == [
        {"project": "p2", "year": 2024, "grade": "good"}
    ]


def test_without_a_call_there_is_no_priority_bonus() -> None:
    """No call, no call year: the bonus is 0, from no grade."""
    grades = [{"project": "old", "year": 2024, "grade": "excellent"}]
    assert priority(_ctx(_draft(), grades=grades)) == (Decimal(0), [])


def test_only_last_year_s_grade_gives_a_bonus() -> None:
    """An excellent grade of 2020 gives nothing to a 2025 application; 2024's good gives 1."""
    old = {"project": "old", "year": 2020, "grade": "excellent"}
    assert priority(_ctx(_draft(), call=CALL, grades=[old])) == (Decimal(0), [])
    last = {"project": "last", "year": 2024, "grade": "good"}
    assert priority(_ctx(_draft(), call=CALL, grades=[old, last])) == (Decimal(1), [last])


def test_the_submission_pins_the_call_s_rubric_versions_over_the_policy_s() -> None:
    """The call pins approval 2; the other rubrics keep the policy's versions."""
    effect = submit_effect(_ctx(_draft(), call=CALL))
    assert effect.data == {
        "rubric_versions": {"approval": 2, "midterm": 1, "performance": 1},
        "year": 2025,
        "purchaser": "city",
    }


def test_a_field_error_names_the_top_level_field() -> None:
    """A nested error names only its top-level field; a too-short list is an empty field."""
    assert _field_problem({"loc": ("budget", 0, "amount"), "type": "missing"}) == {
        "code": "field.missing",
        "field": "budget",
    }
    assert _field_problem({"loc": ("tags",), "type": "too_short"}) == {
        "code": "field.empty",
        "field": "tags",
    }
    assert _field_problem({"loc": ("title",), "type": "string_too_short"}) == {
        "code": "field.empty",
        "field": "title",
    }


# -- budget ----------------------------------------------------------------------------------


def test_a_draft_s_own_figure_is_not_taken_off_what_others_hold() -> None:
    """A draft holds nothing yet: whatever its data says, the call's whole reservation counts."""
    store = MemoryStore()
    for pid, amount in (("p1", "100.00"), ("p2", "50.25")):
        store.commit(submission(pid, data={"call": "c1", "budget_reserved": amount}))
    draft = _draft(call="c1", budget_reserved="10.00")
    assert reserved_by_others(_request(store, draft)) == "150.25"


def test_releasing_the_budget_sets_the_reservation_to_zero() -> None:
    """A project holding money releases it all: ``budget_reserved`` becomes "0.00"."""
    held = _project(budget_reserved="100000.00")
    assert release_effect(_ctx(held, "reject")) == Effects(data={"budget_reserved": "0.00"})
    assert release_effect(_ctx(_project(), "reject")) == Effects()


# -- amendments ------------------------------------------------------------------------------


def test_a_malformed_request_is_an_invalid_amendment_request() -> None:
    """The problem names the record kind."""
    assert _request_problems(None, _project()) == [
        {"code": "record.invalid", "kind": "amendment_request"}
    ]


def test_a_share_of_nothing_awarded_is_zero() -> None:
    """Budget lines but no purchase contract: personnel over its cap of 0, at a share of 0."""
    line = Record(
        kind="budget_line", id="budget-personnel", data={"line": "personnel", "amount": "100.00"}
    )
    change = Amendment.model_validate({"kind": "other", "reason": "r"})
    assert amended_problems(_project("p1", (line,)), change, Policy()) == [
        {"code": "caps.share", "line": "personnel", "share": Decimal("0.00"), "cap": Decimal(40)}
    ]


def test_an_approved_line_move_does_not_touch_the_term(world: World) -> None:
    """The amendment is recorded; the project's ``term_end`` (set at signing) stays as it was."""
    pid = world.contracted()
    signed_end = world.engine.get(pid).data["term_end"]
    move = {
        "kind": "line_move",
        "reason": "plan changed",
        "from_line": "activities",
        "to_line": "training",
        "amount": "1000.00",
    }
    world.engine.add_record(
        pid, "amendment_request", move, actor=world.applicant, record_id="req-1"
    ).raise_for_refusal()
    decision = {"request": "req-1", "approved": True, "note": "ok"}
    world.engine.add_record(
        pid, "amendment_decision", decision, actor=world.approver
    ).raise_for_refusal()
    project = world.engine.get(pid)
    assert [r.id for r in project.records_of("amendment")] == ["amendment-req-1"]
    assert project.data["term_end"] == signed_end == "2026-03-14"
