"""Authority: records come from their owners, purchasers act on their subtree, duties split.

Each test named after a hole of issue 9 fails on the code before the authority rules.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import pytest

import grantflow
from grantflow import PURCHASED_SERVICE, Actor, Policy
from grantflow.records import Hub, Person
from grantflow.rubrics import DEFAULT_RUBRICS
from grantflow.rules import RuleBook
from grantflow.rules.authority import EVENT_AUTHORITY, RECORD_KINDS, record_kind
from grantflow.rules.default import default_rules
from grantflow.rules.review import panel

if TYPE_CHECKING:
    from collections.abc import Callable

    from conftest import World


def _staff(aid: str, org: str, *roles: str) -> Actor:
    return Actor(id=aid, roles=frozenset(roles or {"purchaser"}), organisation=org)


def _district_project(world: World) -> str:
    """A project of district 1 (purchaser d1), reviewed by three clean reviewers."""
    world.directory.add_hub(Hub(id="d2", name="District 2", kind="district", parent="city"))
    pid = world.submit(purchaser="d1").raise_for_refusal().project_id
    assert pid is not None
    for n in (1, 2, 3):
        world.review(pid, n).raise_for_refusal()
    return pid


# -- records come from their owners --------------------------------------------------------


def test_a_forged_approval_no_longer_shortens_the_publicity_period(world: World) -> None:
    """An ``approval`` dated 30 days back is refused; signing a day after approval still waits."""
    pid = world.reviewed()
    world.clock.advance(1)
    forged = {
        "approver": "someone-else",
        "score": "90",
        "recommended_amount": "100000.00",
        "reviews_counted": ["r1", "r2", "r3"],
        "approved_at": (world.clock.now - timedelta(days=30)).isoformat(),
    }
    outcome = world.engine.add_record(pid, "approval", forged, actor=world.approver)
    assert world.codes(outcome) == {"records.reserved"}
    assert outcome.entry is not None  # audited
    assert not outcome.entry.accepted
    assert len(world.engine.get(pid).records_of("approval")) == 1
    signed = world.sign(pid, by=world.approver)
    assert {"publicity.period", "conflict.approver_pays"} <= world.codes(signed)
    assert world.engine.get(pid).state == "reviewed"


@pytest.mark.parametrize("kind", sorted(k.kind for k in RECORD_KINDS if k.effect_owned))
def test_effect_owned_kinds_are_never_added_directly(world: World, kind: str) -> None:
    """Every kind the regime derives is refused with ``records.reserved``, whoever adds it."""
    pid = world.contracted()
    for actor in (world.approver, world.treasurer, world.applicant, world.evaluator):
        outcome = world.engine.add_record(pid, kind, {"amount": "1.00"}, actor=actor)
        assert "records.reserved" in world.codes(outcome), (kind, actor.id)
    assert world.engine.get(pid).state == "contracted"


def test_unknown_kinds_are_refused_unless_a_book_declares_them(
    make_world: Callable[..., World],
) -> None:
    """``note`` is unknown to the default book; declared by an extension, it is accepted."""
    world = make_world()
    pid = world.submit().project_id
    assert pid is not None
    refused = world.engine.add_record(pid, "note", {"text": "hi"}, actor=world.applicant)
    assert world.codes(refused) == {"records.unknown"}
    book = default_rules().extend(RuleBook().declare_records("note"))
    with grantflow.open(rules=book) as engine:
        assert not engine.rules.reserved_kinds.isdisjoint({"approval"})
        assert "note" in engine.rules.record_kinds


def test_a_bare_book_declares_nothing_and_refuses_no_kind() -> None:
    """`RuleBook()` has no regime: any kind may be added (docs/authority.md says so)."""
    with grantflow.open(rules=RuleBook()) as engine:
        actor = Actor(id="u", roles=frozenset({"applicant"}))
        pid = engine.submit(actor=actor, data={"title": "t"}).project_id
        assert pid is not None
        assert engine.add_record(pid, "approval", {"x": 1}, actor=actor).accepted


def test_every_kind_the_regime_writes_or_reads_is_declared() -> None:
    """The default book declares exactly the kinds of `RECORD_KINDS`, derived ones reserved."""
    book = default_rules()
    assert book.record_kinds == {k.kind for k in RECORD_KINDS}
    assert book.reserved_kinds == {k.kind for k in RECORD_KINDS if k.effect_owned}
    assert set(EVENT_AUTHORITY) == {e.name for e in PURCHASED_SERVICE.events}
    assert record_kind("disbursement") is not None
    assert record_kind("nothing") is None


# -- organisations and relations: the hub tree ---------------------------------------------


def test_a_district_2_purchaser_cannot_approve_or_sign_a_district_1_project(
    world: World,
) -> None:
    """District 2's staff act only on their subtree; district 1 and the city act on d1's."""
    pid = _district_project(world)
    outsider = _staff("d2-staff", "d2")
    outcome = world.approve(pid, by=outsider)
    assert world.codes(outcome) == {"authority.relation"}
    assert world.engine.get(pid).state == "applied"
    assert world.approve(pid, by=_staff("d1-staff", "d1")).accepted
    world.clock.advance(8)
    payer = _staff("d2-pay", "d2", "purchaser", "finance")
    assert world.codes(world.sign(pid, by=payer)) == {"authority.relation"}
    street = _staff("s1-pay", "s1", "purchaser", "finance")  # below the purchaser
    assert world.codes(world.sign(pid, by=street)) == {"authority.relation"}
    assert world.sign(pid, by=_staff("city-pay", "city", "purchaser", "finance")).accepted


def test_purchaser_authority_follows_the_tree_stored_in_the_directory(world: World) -> None:
    """Re-parenting a hub moves authority with it: the tree is read as a fact each time."""
    pid = _district_project(world)
    outsider = _staff("d2-staff", "d2")
    assert world.codes(world.approve(pid, by=outsider)) == {"authority.relation"}
    world.directory.add_hub(Hub(id="d1", name="District 1", kind="district", parent="d2"))
    assert world.approve(pid, by=outsider).accepted


def test_an_application_cannot_name_a_purchaser_outside_the_calls_tree(world: World) -> None:
    """The purchaser is the call's hub or below it (``eligibility.purchaser``)."""
    world.directory.add_hub(Hub(id="other-city", name="Other city", kind="city"))
    outcome = world.submit(purchaser="other-city")
    assert world.codes(outcome) == {"eligibility.purchaser"}
    assert world.submit(purchaser="s1").accepted


def test_an_actor_without_an_organisation_acts_for_no_party(world: World) -> None:
    """No organisation, no relation: a purchaser-role actor without one cannot approve."""
    pid = _district_project(world)
    nobody = Actor(id="x", roles=frozenset({"purchaser"}))
    assert world.codes(world.approve(pid, by=nobody)) == {"authority.relation"}


# -- separation of duties ------------------------------------------------------------------


def test_an_evaluator_can_no_longer_release_the_midterm_installment(world: World) -> None:
    """The evaluator evaluates; firing ``pass_midterm`` (40 %) is the purchaser's finance's."""
    pid = world.contracted()
    world.evaluate(pid, "midterm", 85).raise_for_refusal()
    outcome = world.engine.fire(pid, "pass_midterm", actor=world.evaluator)
    assert "lifecycle.role" in world.codes(outcome)
    assert len(world.engine.get(pid).records_of("disbursement")) == 1
    approver = world.engine.fire(pid, "pass_midterm", actor=world.approver)
    assert world.codes(approver) == {"authority.release", "conflict.approver_pays"}
    clerk = _staff("city-clerk", "city")  # purchaser staff without the finance role
    assert world.codes(world.engine.fire(pid, "pass_midterm", actor=clerk)) == {"authority.release"}
    paid = world.engine.fire(pid, "pass_midterm", actor=world.treasurer)
    assert paid.accepted
    released = [r.data["released_by"] for r in world.engine.get(pid).records_of("disbursement")]
    assert released == [world.treasurer.id, world.treasurer.id]


def test_release_roles_are_policy(make_world: Callable[..., World]) -> None:
    """`Policy.release_roles` names who pays; `approver_may_release` lifts the approver bar."""
    world = make_world(Policy(release_roles=("treasury",), approver_may_release=True))
    pid = world.reviewed()
    world.clock.advance(8)
    assert world.codes(world.sign(pid)) == {"authority.release"}
    treasury = _staff("staff-1", "city", "purchaser", "treasury")  # the approver's id
    assert world.sign(pid, by=treasury).accepted


def test_an_employee_of_the_purchasing_federation_is_not_an_independent_evaluator(
    world: World,
) -> None:
    """Independence covers the purchaser: a city federation employee's evaluation is refused."""
    pid = world.contracted()
    world.directory.add_person(Person(id="ev-city", name="Seconded", organisation="city"))
    actor = Actor(id="ev-city", roles=frozenset({"evaluator"}), organisation="audit-co")
    data = {
        "stage": "midterm",
        "evaluator": "ev-city",
        "organisation": "audit-co",
        "rubric": "midterm",
        "rubric_version": 1,
        "scores": {},
    }
    outcome = world.engine.add_record(pid, "evaluation", data, actor=actor)
    refusal = next(r for r in outcome.refusals if r.code == "conflict.third_party")
    assert refusal.details["reason"] == "same_organisation"
    as_city = world.evaluate(pid, "midterm", 85, organisation="city")
    assert "conflict.third_party" in world.codes(as_city)


def test_an_employee_of_the_purchaser_does_not_count_as_a_reviewer(world: World) -> None:
    """A reviewer employed by the purchasing federation is excluded from the quorum."""
    world.directory.add_person(Person(id="r9", name="Staff expert", organisation="city"))
    pid = world.submit().project_id
    assert pid is not None
    for n in (1, 2, 9):
        world.review(pid, n).raise_for_refusal()
    refusal = next(r for r in world.approve(pid).refusals if r.code == "review.quorum")
    assert refusal.details["excluded"] == [{"reviewer": "r9", "reason": "same_organisation"}]


def test_reviewers_acting_for_a_party_are_refused(world: World) -> None:
    """A reviewer acting for the endorsing hub or the purchaser fails ``authority.independence``."""
    pid = world.submit().project_id
    assert pid is not None
    for org in ("s1", "city"):
        actor = Actor(id="r1", roles=frozenset({"reviewer"}), organisation=org)
        data = {"reviewer": "r1", "rubric_version": 1, "scores": {}, "conflict": {}}
        outcome = world.engine.add_record(pid, "review", data, actor=actor)
        assert "authority.independence" in world.codes(outcome), org


def test_a_supervision_contract_with_the_provider_is_refused(world: World) -> None:
    """The provider never supervises itself, nor does the purchaser (``contracts.parties``)."""
    pid = world.reviewed()
    world.clock.advance(8)
    for counterparty, relation in (("org-a", "applicant"), ("city", "purchaser")):
        evidence = world.sign_evidence()
        evidence["contracts"][1]["counterparty"] = counterparty
        outcome = world.engine.fire(pid, "sign", actor=world.treasurer, evidence=evidence)
        refusal = next(r for r in outcome.refusals if r.code == "contracts.parties")
        assert refusal.details["problems"][0]["relation"] == relation
    evidence = world.sign_evidence()
    del evidence["contracts"][1]["counterparty"]
    outcome = world.engine.fire(pid, "sign", actor=world.treasurer, evidence=evidence)
    assert world.codes(outcome) == {"contracts.parties"}
    assert world.sign(pid).accepted


def test_a_review_without_a_declaration_does_not_count(world: World) -> None:
    """No conflict declaration: the review is refused, and a stored one is not counted clean."""
    pid = world.submit().project_id
    assert pid is not None
    undeclared = world.review(pid, 1, conflict=None)
    problems = next(r for r in undeclared.refusals if r.code == "review.record").details
    assert {"code": "review.no_declaration"} in problems["problems"]
    for n in (1, 2, 3):
        world.review(pid, n).raise_for_refusal()
    project = world.engine.get(pid)
    stored = project.records_of("review")[0]
    legacy = stored.model_copy(update={"data": {**stored.data, "conflict": None}})
    old = project.model_copy(update={"records": (legacy, *project.records_of("review")[1:])})
    today = world.clock.now.date()
    result = panel(old, {}, DEFAULT_RUBRICS, Policy(), today)
    assert ("r1", "undeclared") in result.excluded
    lax = Policy(declaration_required=False)
    assert panel(old, {}, DEFAULT_RUBRICS, lax, today).counted


def test_the_applicant_cannot_object_to_its_own_award(world: World) -> None:
    """Objections come from anyone but the applicant; each attempt is audited."""
    pid = world.reviewed()
    objection = {"raised_by": "org-a", "grounds": "we object to ourselves"}
    own = world.engine.add_record(pid, "objection", objection, actor=world.applicant)
    assert world.codes(own) == {"authority.independence"}
    assert own.entry is not None
    assert own.entry.actor == world.applicant
    rival = dict(objection, raised_by="org-b")
    assert world.engine.add_record(pid, "objection", rival, actor=world.other_applicant).accepted


def test_self_approval_and_self_payment_are_impossible(world: World) -> None:
    """An actor of the provider holding every role can neither approve nor pay its project."""
    pid = world.reviewed()
    everything = frozenset({"applicant", "purchaser", "finance", "reviewer", "evaluator"})
    for org, aid in (("org-a", "u-a"), ("city", "org-a")):
        insider = Actor(id=aid, roles=everything, organisation=org)
        world.clock.advance(8)
        assert not world.sign(pid, by=insider).accepted
        assert "conflict.own_project" in world.codes(world.sign(pid, by=insider))
    other = world.submit(by=world.applicant).project_id
    assert other is not None
    insider = Actor(id="u-a", roles=everything, organisation="org-a")
    assert "authority.relation" in world.codes(world.approve(other, by=insider))
