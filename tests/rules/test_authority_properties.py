"""The authorization property: role x relation x hub position x state x event x record kind.

One world holds a district-1 project (purchaser ``d1``, endorsed by street ``s1``) in every
state of the lifecycle. Hypothesis draws an actor (any roles, acting for any organisation
of the world) and an attempt (any event, any record kind, an undeclared kind). An oracle
computes the refusals the authority data predicts, with relations the test derives from
its own map of the world, not from `grantflow.rules.authority.relations`:

- a forbidden attempt is refused with exactly the predicted authority codes, changes no
  state and no records, and leaves one audited, refused entry;
- an allowed one carries no authority refusal (its other rules may still refuse).

Hand-written cases pin the oracle, so a wrong table or a wrong oracle cannot both pass.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grantflow import PURCHASED_SERVICE, Actor, Policy
from grantflow.records import Hub
from grantflow.rules.authority import AUTHORITY_CODES, EVENT_AUTHORITY, RECORD_KINDS, record_kind
from grantflow.rules.default import default_rules

if TYPE_CHECKING:
    from conftest import World

POLICY = Policy(applications_per_provider_per_call=20)
ROLES = ("applicant", "purchaser", "finance", "reviewer", "evaluator")
#: Who an organisation is to the project, by the test's own map of the world.
ORGS: dict[str | None, str] = {
    "org-a": "applicant",
    "org-b": "another provider",
    "s1": "endorsing street, below the purchaser",
    "d1": "the purchasing district",
    "city": "the city federation, above the purchaser",
    "d2": "a sibling district",
    "assoc-1": "an association under the city",
    "audit-co": "the contracted third party (after sign)",
    "other-co": "an uncontracted firm",
    None: "no organisation",
}
SIGNED = {"contracted", "midterm", "rectification", "assessed", "closed", "terminated"}
ACTIONS = (
    *(e.name for e in PURCHASED_SERVICE.events if not e.creates),
    *(f"record.{k.kind}" for k in RECORD_KINDS),
    "record.note",
)
#: The authority codes whose presence the oracle predicts exactly.
EXACT = {"lifecycle.role", "lifecycle.no_edge", "records.reserved", "records.unknown"}


def relations_of(org: str | None, state: str) -> set[str]:
    """The relations an actor of `org` has to the world's project in `state`."""
    return {
        "org-a": {"applicant"},
        "s1": {"endorser"},
        "d1": {"purchaser"},
        "city": {"purchaser"},
        "audit-co": {"evaluator", "supervisor"} if state in SIGNED else set(),
    }.get(org or "", set())


def oracle(action: str, state: str, roles: set[str], relations: set[str]) -> set[str]:
    """The authority refusal codes the declared data predicts for one attempt."""
    expected: set[str] = set()
    book = default_rules()
    if action.startswith("record."):
        kind = action.removeprefix("record.")
        declared = record_kind(kind)
        if kind in book.reserved_kinds:
            expected.add("records.reserved")
        if kind not in book.record_kinds:
            expected.add("records.unknown")
        if declared is None or declared.owner is None:
            return expected
        owner = declared.owner
        if owner.roles and not roles & owner.roles:
            expected.add("authority.role")
        if owner.relations and not relations & owner.relations:
            expected.add("authority.relation")
        if relations & owner.ruled_out(POLICY):
            expected.add("authority.independence")
        return expected
    event = PURCHASED_SERVICE.event(action)
    if not roles & event.roles:
        expected.add("lifecycle.role")
    if state not in event.sources:
        return expected | {"lifecycle.no_edge"}
    permission = EVENT_AUTHORITY[action]
    if not relations & permission.relations:
        expected.add(permission.code)
    if POLICY.releases(action) and not roles & set(POLICY.release_roles):
        expected.add("authority.release")
    return expected


def test_the_oracle_agrees_with_hand_written_cases() -> None:
    """A handful of cases read off DOMAIN.md, so the oracle (and the table) can be wrong."""
    p, f = {"purchaser"}, {"purchaser", "finance"}
    assert oracle("approve", "applied", p, {"purchaser"}) == set()
    assert oracle("approve", "applied", p, set()) == {"authority.relation"}
    assert oracle("approve", "applied", {"reviewer"}, set()) == {
        "lifecycle.role",
        "authority.relation",
    }
    assert oracle("sign", "reviewed", p, {"purchaser"}) == {"authority.release"}
    assert oracle("sign", "reviewed", f, {"purchaser"}) == set()
    assert oracle("pass_midterm", "contracted", {"evaluator"}, {"evaluator"}) == {
        "lifecycle.role",
        "authority.relation",
        "authority.release",
    }
    assert oracle("assess", "midterm", {"evaluator"}, {"evaluator", "supervisor"}) == set()
    assert oracle("close", "applied", f, {"purchaser"}) == {"lifecycle.no_edge"}
    assert oracle("withdraw", "applied", {"applicant"}, set()) == {"reasons.applicant_owns"}
    assert oracle("record.approval", "reviewed", f, {"purchaser"}) == {"records.reserved"}
    assert oracle("record.note", "applied", f, {"purchaser"}) == {"records.unknown"}
    assert oracle("record.review", "applied", {"reviewer"}, {"purchaser"}) == {
        "authority.independence"
    }
    assert oracle("record.objection", "reviewed", set(), set()) == set()
    assert oracle("record.objection", "reviewed", {"applicant"}, {"applicant"}) == {
        "authority.independence"
    }
    assert oracle("record.expenditure", "contracted", {"applicant"}, {"applicant"}) == set()
    assert oracle("record.evaluation", "contracted", {"evaluator"}, set()) == {"authority.relation"}


# -- the world -----------------------------------------------------------------------------


def _build(world: World) -> dict[str, str]:
    """One project in each state, through allowed attempts only (each must be accepted)."""
    world.directory.add_hub(Hub(id="d2", name="District 2", kind="district", parent="city"))
    approver = Actor(id="d1-approve", roles=frozenset({"purchaser"}), organisation="d1")
    payer = Actor(id="city-pay", roles=frozenset({"purchaser", "finance"}), organisation="city")
    engine, states = world.engine, {}
    order = {"order": {"issues": ["ledgers"], "deadline": "2025-12-31"}}
    for state in (s.name for s in PURCHASED_SERVICE.states):
        pid = world.submit(purchaser="d1").raise_for_refusal().project_id
        assert pid is not None
        states[state] = pid
    for state, pid in states.items():
        if state == "applied":
            continue
        if state == "withdrawn":
            reason = {"reason": "staff left"}
            engine.fire(pid, "withdraw", actor=world.applicant, evidence=reason).raise_for_refusal()
            continue
        if state == "rejected":
            reason = {"reason": "weak"}
            engine.fire(pid, "reject", actor=approver, evidence=reason).raise_for_refusal()
            continue
        for n in (1, 2, 3):
            world.review(pid, n).raise_for_refusal()
        world.approve(pid, by=approver).raise_for_refusal()
    world.clock.advance(8)
    for state, pid in states.items():
        if state in SIGNED:
            world.sign(pid, by=payer).raise_for_refusal()
    for state in ("midterm", "assessed", "closed"):
        world.evaluate(states[state], "midterm", 85).raise_for_refusal()
        engine.fire(states[state], "pass_midterm", actor=payer).raise_for_refusal()
    world.evaluate(states["rectification"], "midterm", 50).raise_for_refusal()
    engine.fire(
        states["rectification"], "order_rectification", actor=world.evaluator, evidence=order
    ).raise_for_refusal()
    closeout = {"closeout": {"report": "final"}}
    for state in ("assessed", "closed"):
        world.evaluate(states[state], "final", 85).raise_for_refusal()
        engine.fire(
            states[state], "assess", actor=world.evaluator, evidence=closeout
        ).raise_for_refusal()
    engine.fire(states["closed"], "close", actor=payer).raise_for_refusal()
    reason = {"reason": "fraud"}
    engine.fire(
        states["terminated"], "terminate", actor=approver, evidence=reason
    ).raise_for_refusal()
    for state, pid in states.items():
        assert engine.get(pid).state == state
    return states


@pytest.fixture(scope="module")
def authority_world(
    module_world_factory: Callable[..., World],
) -> Iterator[tuple[World, dict[str, str]]]:
    world = module_world_factory(POLICY)
    yield world, _build(world)
    world.engine.close()


def _attempt(world: World, pid: str, action: str, actor: Actor, *, dry: bool) -> Any:
    engine = world.engine
    if action.startswith("record."):
        return engine.add_record(pid, action.removeprefix("record."), {"x": "1"}, actor=actor)
    if dry:
        return engine.can_fire(pid, action, actor=actor, evidence={"reason": "r"})
    return engine.fire(pid, action, actor=actor, evidence={"reason": "r"})


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    state=st.sampled_from([s.name for s in PURCHASED_SERVICE.states]),
    action=st.sampled_from(ACTIONS),
    roles=st.sets(st.sampled_from(ROLES)),
    org=st.sampled_from(list(ORGS)),
)
def test_every_forbidden_attempt_is_refused_and_audited_and_every_allowed_one_is_not(
    authority_world: tuple[World, dict[str, str]],
    state: str,
    action: str,
    roles: set[str],
    org: str | None,
) -> None:
    """Forbidden: the predicted codes, no change, one refused entry; allowed: no such code."""
    world, states = authority_world
    pid = states[state]
    actor = Actor(id="someone", roles=frozenset(roles), organisation=org)
    expected = oracle(action, state, roles, relations_of(org, state))
    before = world.engine.get(pid)
    entries = len(world.engine.history(pid))
    outcome = _attempt(world, pid, action, actor, dry=not expected)
    codes = {r.code for r in outcome.refusals}
    if not expected:
        assert not codes & AUTHORITY_CODES, (ORGS[org], codes)
        return
    family = {c for c in codes if c in EXACT or c.startswith("authority.")}
    assert family == {c for c in expected if c in EXACT or c.startswith("authority.")}
    assert expected <= codes, (ORGS[org], codes)
    assert not outcome.accepted
    after = world.engine.get(pid)
    assert (after.state, after.records, after.data) == (before.state, before.records, before.data)
    history = world.engine.history(pid)
    assert len(history) == entries + 1
    assert not history[-1].accepted
    assert expected <= {r.code for r in history[-1].refusals}
