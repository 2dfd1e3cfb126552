"""The default rules' helpers as pure functions, at the edges the engine rarely reaches.

Each helper here is reached through the engine in other tests; these pin what they
return where a mutation of them would otherwise go unnoticed (docs/mutation.md): the
reasons a review is excluded from the panel, a memo asked about another project, the
organisations a third party must be independent of, a project's own budget reservation,
and the look-back of past employment.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

from grantflow import Actor, Entity, Policy, Project, Record
from grantflow.persistence import MemoryStore
from grantflow.records import Affiliation, Person
from grantflow.rubrics import APPROVAL_REVIEW, DEFAULT_RUBRICS
from grantflow.rules import FactRequest, RuleContext
from grantflow.rules.authority import PARTIES_FACT, interested, parties
from grantflow.rules.budget import reserved_by_others
from grantflow.rules.conflict import PEOPLE_FACT, people, ties
from grantflow.rules.review import PanelMemo, panel
from grantflow.testing.store_contract import submission

NOW = datetime(2025, 3, 20, 2, 0, tzinfo=UTC)
TODAY = date(2025, 3, 20)
STAFF = Actor(id="staff", roles=frozenset({"purchaser"}), organisation="d1")


def _project(pid: str, records: tuple[Record, ...] = (), **data: Any) -> Project:
    return Project(
        id=pid,
        state="applied",
        version=len(records) + 1,
        head="0" * 64,
        data={"provider": "org-1", "hub": "d1", "rubric_versions": {"approval": 1}, **data},
        records=records,
        created_at=NOW,
        updated_at=NOW,
    )


def _review(reviewer: str, seq: int, *, version: int = 1, percent: int = 80) -> Record:
    scores = APPROVAL_REVIEW.proportional(percent)
    if percent > 100:
        scores = {**scores, "need.evidence": "999"}
    data = {
        "reviewer": reviewer,
        "rubric": "approval",
        "rubric_version": version,
        "scores": scores,
        "conflict": {"declared": False},
    }
    return Record(kind="review", id=f"review-{seq}", data=data, seq=seq)


PEOPLE = {
    PEOPLE_FACT: {
        r: {"id": r, "name": r, "organisation": "pool"} for r in ("r1", "r2", "r3", "r4", "r5")
    }
}


def test_the_panel_names_why_each_review_is_left_out() -> None:
    """A second review by one reviewer, another rubric version, scores out of range."""
    reviews = (
        _review("r1", 1),
        _review("r1", 2, percent=60),
        _review("r2", 3, version=2),
        _review("r3", 4, percent=101),
        _review("r4", 5, percent=90),
    )
    found = panel(_project("p1", reviews), PEOPLE, DEFAULT_RUBRICS, Policy(), TODAY)
    assert [r for r, _total in found.counted] == ["r1", "r4"]
    assert found.excluded == (
        ("r1", "duplicate"),
        ("r2", "rubric_version"),
        ("r3", "invalid_scores"),
    )
    assert found.rubric_key == "approval@1"


def test_a_conflict_outranks_the_other_reasons_and_the_provider_counts() -> None:
    """A reviewer employed by the provider is excluded as such, whatever else is wrong."""
    people = {
        PEOPLE_FACT: {
            **PEOPLE[PEOPLE_FACT],
            "r5": {"id": "r5", "name": "r5", "organisation": "org-1"},
        }
    }
    project = _project("p1", (_review("r5", 1, version=2), _review("r5", 2)))
    found = panel(project, people, DEFAULT_RUBRICS, Policy(), TODAY)
    assert found.counted == ()
    assert found.excluded == (("r5", "same_organisation"), ("r5", "duplicate"))


def test_a_panel_memo_never_answers_for_another_project_facts_or_policy() -> None:
    """The memo returns the same answer only for the very same inputs."""
    memo = PanelMemo()
    two = _project("p1", (_review("r1", 1), _review("r2", 2)))
    one = _project("p2", (_review("r1", 1),))
    ctx = RuleContext(
        project=two, event="approve", source="applied", target="reviewed", actor=STAFF,
        evidence={}, now=NOW, policy=Policy(), facts=PEOPLE,
    )  # fmt: skip
    assert len(memo(ctx).counted) == 2
    assert memo(ctx) is memo(ctx)
    assert len(memo(replace(ctx, project=one)).counted) == 1
    conflicted = {
        PEOPLE_FACT: {
            **PEOPLE[PEOPLE_FACT],
            "r2": {"id": "r2", "name": "r2", "organisation": "org-1"},
        }
    }
    assert len(memo(replace(ctx, facts=conflicted)).counted) == 1
    strict = Policy(declaration_required=True, conflict_lookback_years=3)
    assert memo(replace(ctx, policy=strict)) is not memo(ctx)


def test_independence_follows_the_policy_party_by_party() -> None:
    """Each party of `Policy.independent_of` adds its organisations, and only it."""
    project = _project("p1")
    facts = {PARTIES_FACT: {"purchaser_path": ["d1", "city"]}}
    assert interested(project, facts, Policy(independent_of=("applicant",))) == ("org-1",)
    assert interested(project, facts, Policy(independent_of=("endorser",))) == ("d1",)
    assert interested(project, facts, Policy(independent_of=("purchaser",))) == ("d1", "city")
    assert interested(project, facts, Policy(independent_of=())) == ()


def _request(store: MemoryStore, project: Project) -> FactRequest:
    return FactRequest(
        reader=store, project=project, event="approve", actor=STAFF, evidence={}, policy=Policy()
    )


def test_the_call_budget_others_hold_leaves_out_the_project_s_own_reservation() -> None:
    """Reserved in the call by the other projects: the project's own share is not counted."""
    store = MemoryStore()
    held = {"p1": ("c1", "100.00"), "p2": ("c1", "50.25"), "p3": ("c2", "70.00")}
    for pid, (call, amount) in held.items():
        store.commit(submission(pid, data={"call": call, "budget_reserved": amount}))
    assert reserved_by_others(_request(store, store.load("p1"))) == "50.25"
    assert reserved_by_others(_request(store, store.load("p3"))) == "0.00"
    draft = _project("p9", call="c1").model_copy(update={"state": ""})
    assert reserved_by_others(_request(store, draft)) == "150.25"
    assert reserved_by_others(_request(store, _project("p8"))) == "0.00"


def test_past_work_counts_until_the_look_back_ends_on_the_day() -> None:
    """Look-back 3 years from 20 March 2025: work until 20 March 2022 ties, until the 19th not."""
    policy = Policy(conflict_lookback_years=3)

    def left(until: date) -> Person:
        return Person(
            id="x", name="x", affiliations=(Affiliation(organisation="org-1", until=until),)
        )

    assert ties(left(date(2022, 3, 20)), {"org-1"}, TODAY, policy) == "worked_there"
    assert ties(left(date(2022, 3, 19)), {"org-1"}, TODAY, policy) is None
    family = Person(id="y", name="y", relatives_at=("org-1",))
    assert ties(family, {"org-1"}, TODAY, policy) == "close_family"
    assert ties(Person(id="z", name="z", organisation="org-1"), {"org-1"}, TODAY, policy) == (
        "same_organisation"
    )


def _hubs() -> MemoryStore:
    store = MemoryStore()
    store.put_entity(Entity(kind="hub", id="city", data={"id": "city"}))
    store.put_entity(Entity(kind="hub", id="d1", parent="city", data={"id": "d1"}))
    store.put_entity(Entity(kind="hub", id="d2", parent="city", data={"id": "d2"}))
    store.put_entity(Entity(kind="call", id="c1", data={"hub": "d2"}))
    return store


def test_the_parties_fact_names_applicant_endorser_and_the_purchaser_with_its_path() -> None:
    """The application's purchaser when it names one, else the call's hub, else none."""
    store = _hubs()
    named = _project("p1", purchaser="d1", call="c1")
    assert parties(_request(store, named)) == {
        "applicant": "org-1",
        "endorser": "d1",
        "purchaser": "d1",
        "purchaser_path": ["d1", "city"],
    }
    from_call = _project("p2", hub="city", call="c1")
    assert parties(_request(store, from_call)) == {
        "applicant": "org-1",
        "endorser": "city",
        "purchaser": "d2",
        "purchaser_path": ["d2", "city"],
    }
    unknown_call = _project("p3", call="c9")
    assert parties(_request(store, unknown_call))["purchaser"] == ""
    assert parties(_request(store, unknown_call))["purchaser_path"] == []
    assert parties(_request(store, _project("p4")))["purchaser"] == ""


def test_the_people_fact_holds_every_reviewer_evaluator_and_the_actor() -> None:
    """Reviewers and evaluators on record, those the new record names, and the actor.

    Everyone else in the directory is left out, and so is a name without a person entity.
    """
    store = MemoryStore()
    for pid in ("r1", "e1", "r2", "e2", "staff", "outsider"):
        store.put_entity(Entity(kind="person", id=pid, data={"id": pid, "name": pid.upper()}))
    project = _project(
        "p1",
        (
            Record(kind="review", id="rv-1", data={"reviewer": "r1", "evaluator": "x"}, seq=1),
            Record(kind="evaluation", id="ev-1", data={"evaluator": "e1", "reviewer": "y"}, seq=2),
        ),
    )
    evidence = {"record": {"kind": "review", "data": {"reviewer": "r2", "evaluator": "e2"}}}
    request = replace(_request(store, project), evidence=evidence)
    found = people(request)
    assert sorted(found) == ["e1", "e2", "r1", "r2", "staff"]
    assert found["r1"] == {"id": "r1", "name": "R1"}
    assert sorted(people(_request(store, project))) == ["e1", "r1", "staff"]


def test_the_rectification_effect_records_the_order_and_refuses_to_guess_a_bad_one() -> None:
    """A valid order becomes the record; a bad one fails, naming the missing field.

    Through the engine the ``evaluation.order`` rule refuses such an order first.
    """
    import pytest
    from pydantic import ValidationError

    from grantflow.rules.evaluation import rectification_effect

    def ctx(order: dict[str, Any]) -> RuleContext:
        return RuleContext(
            project=_project("p1"), event="order_rectification", source="midterm",
            target="rectification", actor=STAFF, evidence={"order": order}, now=NOW,
            policy=Policy(),
        )  # fmt: skip

    good = {"issues": ["ledgers missing"], "deadline": "2025-06-30"}
    (record,) = rectification_effect(ctx(good)).records
    assert (record.kind, record.id, dict(record.data)) == ("rectification_order", "order-2", good)
    with pytest.raises(ValidationError) as caught:
        rectification_effect(ctx({"issues": ["ledgers missing"]}))
    assert [e["loc"] for e in caught.value.errors()] == [("deadline",)]


def test_a_grade_rule_on_an_event_from_another_state_reads_the_midterm() -> None:
    """From a state with no stage of its own, a grade rule reads the mid-term evaluation.

    With none on record, the refusal names that stage.
    """
    from grantflow.rules.evaluation import midterm_grade

    ctx = RuleContext(
        project=_project("p1"), event="custom", source="applied", target="reviewed",
        actor=STAFF, evidence={}, now=NOW, policy=Policy(),
    )  # fmt: skip
    verdict = midterm_grade()(ctx)
    assert [(r.code, r.details["stage"], r.details["grade"]) for r in verdict.refusals] == [
        ("evaluation.midterm_grade", "midterm", "none")
    ]
