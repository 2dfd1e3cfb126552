"""Tests for grantflow._decide: the decision core's fast path for bare events.

`DecisionCore.prepare` seals an accepted fire of an event the rule book gives nothing
(no rule, fact or effect) without the general steps' intermediate objects. Whatever it
returns must be the change the general steps (subject, decide, seal) return: the same
entry and hash, the same row after it, the same due dates and the same JSON texts.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

import grantflow
from grantflow import Actor, Engine
from grantflow._canonical import freeze
from grantflow._decide import DecisionCore, Request, _not_before, sealed_change
from grantflow.audit import value_texts
from grantflow.persistence import Change
from grantflow.rules import PASS, RuleBook, RuleContext
from grantflow.testing import FrozenClock
from grantflow.testing.store_contract import submission, transition

APPLICANT = Actor(id="org-1", roles=frozenset({"applicant"}))
EVENTS = ["approve", "reject", "withdraw", "sign", "pass_midterm", "order_rectification"]
EVENTS += ["assess", "close", "terminate"]
ROLES = ["applicant", "purchaser", "evaluator"]
CONTRACT = {
    "kind": "purchase",
    "number": "purchase-001",
    "signed_on": "2025-03-11",
    "amount": "100000.00",
    "start": "2025-03-15",
    "end": "2026-03-14",
    "counterparty": None,
}


def _passes(ctx: RuleContext) -> Any:
    return PASS


def _general(core: DecisionCore, request: Request, engine: Engine, now: Any) -> Change:
    """The change of the general steps, never the fast path."""
    project, record, evidence = core.subject(request, engine.store, now)
    at = _not_before(project, now)
    decision = core.decide(project, request.event, request.actor, evidence, at, engine.store)
    return core.seal(decision, at, record, clock=now)


# Evidence text as engines accept it: no control characters, no lone surrogates.
_TEXT = st.characters(blacklist_categories=("Cc", "Cs"))

_STEPS = st.lists(
    st.tuples(
        st.integers(0, 2),  # which project
        st.sampled_from(EVENTS),
        st.frozensets(st.sampled_from(ROLES), min_size=1),
        st.integers(-180, 600),  # minutes the attempt's clock is off the engine's
        st.one_of(
            st.none(),
            st.fixed_dictionaries({"note": st.text(_TEXT, max_size=8)}),
            st.fixed_dictionaries(
                {
                    "amount": st.decimals(
                        places=2,
                        allow_nan=False,
                        allow_infinity=False,
                        min_value=0,
                        max_value=10**6,
                    )
                }
            ),
        ),
        st.booleans(),  # add a purchase contract first (it anchors due dates)
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=60, deadline=None)
@given(_STEPS, st.booleans())
def test_prepare_equals_the_general_steps(steps: list[tuple[Any, ...]], ruled: bool) -> None:
    """Every attempt: `prepare` (fast path or not) seals exactly the general path's change.

    Attempts cover role refusals, events with no edge, clocks behind the project's last
    change (clamped), evidence, projects holding a contract (due dates move), and, with
    `ruled`, a book giving ``approve`` a rule (``approve`` then takes the general path).
    """
    book = RuleBook().on("approve", _passes) if ruled else RuleBook()
    clock = FrozenClock(tick=timedelta(minutes=7))
    engine = grantflow.open(rules=book, discover_rules=False, clock=clock)
    core = engine._core
    pids = [f"p{i}" for i in range(3)]
    for pid in pids:
        engine.submit(actor=APPLICANT, project_id=pid, data={"title": pid}).raise_for_refusal()
    for index, event, roles, minutes, evidence, contract in steps:
        pid = pids[index]
        if contract and not any(r.kind == "contract" for r in engine.get(pid).records):
            engine.add_record(pid, "contract", CONTRACT, actor=APPLICANT)
        actor = Actor(id="someone", roles=roles)
        request = Request("fire", pid, event, actor, freeze(evidence or {}))
        now = clock() + timedelta(minutes=minutes)
        expected = _general(core, request, engine, now)
        change = core.prepare(request, engine.store, now)
        assert change == expected
        assert change.texts == expected.texts
        engine.fire(pid, event, actor=actor, evidence=evidence)  # move on for real


def test_the_fast_path_seals_ordinary_moves_and_leaves_the_rest_to_the_general_path() -> None:
    """An allowed move is sealed by the fast path; refusals and clamped times are not."""
    clock = FrozenClock()
    engine = grantflow.open(rules=RuleBook(), discover_rules=False, clock=clock)
    core = engine._core
    engine.submit(actor=APPLICANT, project_id="p1").raise_for_refusal()
    project = engine.get("p1")
    staff = Actor(id="staff-1", roles=frozenset({"purchaser"}))
    now = clock()
    move = core._bare_change(project, Request("fire", "p1", "approve", staff), now)
    assert move is not None
    assert move.after is not None
    assert move.after.state == "reviewed"
    assert move.entry.accepted
    assert move.entry.hash == move.after.head
    # The wrong role, no edge from the state, a clock behind the last change: general path.
    assert core._bare_change(project, Request("fire", "p1", "approve", APPLICANT), now) is None
    assert core._bare_change(project, Request("fire", "p1", "close", staff), now) is None
    behind = now - timedelta(hours=1)
    assert core._bare_change(project, Request("fire", "p1", "approve", staff), behind) is None
    # An event the book gives a rule is not bare.
    ruled = grantflow.open(rules=RuleBook().on("approve", _passes), discover_rules=False)
    assert not ruled._core.bare("approve")
    assert core.bare("approve")
    assert not core.bare("record.note")


@given(
    creating=st.booleans(),
    obligations=st.none() | st.just(()),
    version=st.integers(0, 5),
)
def test_sealed_change_is_the_change_its_init_makes(
    creating: bool, obligations: tuple[()] | None, version: int
) -> None:
    """Every field is set, to the value given; the result equals and hashes as `Change(...)`.

    Fails if `sealed_change` leaves a field unset, swaps two, or `Change` gains a field.
    """
    project = submission("p1").after
    assert project is not None
    entry = transition(project, "reviewed").entry
    texts = value_texts(entry.evidence, entry.refusals, entry.records, entry.data)
    state = None if creating else "applied"
    built = sealed_change(entry, state, version, project, obligations, texts)
    expected = Change(
        entry=entry,
        expected_state=state,
        expected_version=version,
        after=project,
        obligations=obligations,
        texts=texts,
    )
    assert built == expected
    assert {f.name: getattr(built, f.name) for f in dataclasses.fields(Change)} == {
        f.name: getattr(expected, f.name) for f in dataclasses.fields(Change)
    }
    assert built.texts is texts
    assert built.messages == ()
    assert type(built) is Change
