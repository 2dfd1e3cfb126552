"""The strategies draw data grantflow accepts, and cover what they promise."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from grantflow import PURCHASED_SERVICE, Actor, Lifecycle
from grantflow._canonical import validate_json
from grantflow.rules import PASS, RuleContext, refuse
from grantflow.testing import strategies as gs

FAST = settings(max_examples=60, deadline=None)


def _leaves(value: Any) -> Iterator[Any]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item)
    else:
        yield value


def _reachable(lifecycle: Lifecycle) -> set[str]:
    reached = {lifecycle.initial_event.target}
    changed = True
    while changed:
        changed = False
        for event in lifecycle.events:
            if reached & set(event.sources) and event.target not in reached:
                reached.add(event.target)
                changed = True
    return reached


@FAST
@given(gs.lifecycles())
def test_lifecycles_build_and_round_trip(lifecycle: Lifecycle) -> None:
    """Every drawn lifecycle is valid, round-trips through TOML and has events to fire."""
    assert Lifecycle.from_toml(lifecycle.to_toml()) == lifecycle
    assert Lifecycle.from_dict(lifecycle.to_dict()) == lifecycle
    assert _reachable(lifecycle) == {s.name for s in lifecycle.states}
    assert any(not e.creates for e in lifecycle.events)
    for state in lifecycle.states:
        leaves = any(state.name in e.sources for e in lifecycle.events)
        assert leaves != state.terminal, state


@settings(max_examples=30, deadline=None)
@given(gs.lifecycles(min_states=6, max_states=6))
def test_lifecycles_respect_the_size_bounds(lifecycle: Lifecycle) -> None:
    """`min_states` and `max_states` bound the number of states drawn."""
    assert len(lifecycle.states) == 6


@FAST
@given(gs.evidence())
def test_evidence_is_canonical_json(value: dict[str, Any]) -> None:
    """Evidence passes `validate_json`: no floats, aware datetimes, two-place decimals."""
    validate_json(value)
    for leaf in _leaves(value):
        assert not isinstance(leaf, float)
        if isinstance(leaf, Decimal):
            assert leaf.as_tuple().exponent == -2, leaf
        if isinstance(leaf, datetime):
            assert leaf.utcoffset() is not None, leaf


def test_evidence_can_hold_chinese_text_and_every_kind_of_value() -> None:
    """The evidence strategy reaches Chinese text, decimals, datetimes, dates and nesting."""
    seen: set[str] = set()

    @settings(max_examples=300, deadline=None)
    @given(gs.evidence())
    def collect(value: dict[str, Any]) -> None:
        for leaf in _leaves(value):
            if isinstance(leaf, str) and any("\u4e00" <= ch <= "\u9fff" for ch in leaf):
                seen.add("chinese")
            elif isinstance(leaf, Decimal):
                seen.add("decimal")
            elif isinstance(leaf, datetime):
                seen.add("datetime")
            elif isinstance(leaf, date):
                seen.add("date")
        if any(isinstance(v, dict | list) for v in value.values()):
            seen.add("nested")

    collect()
    assert seen == {"chinese", "decimal", "datetime", "date", "nested"}


@FAST
@given(gs.money(min_value=Decimal("-5"), max_value=Decimal("5")))
def test_money_has_two_places_within_bounds(amount: Decimal) -> None:
    """`money()` draws two-place decimals inside the bounds given."""
    assert amount.as_tuple().exponent == -2
    assert Decimal("-5") <= amount <= Decimal("5")


@FAST
@given(gs.actors(["reviewer", "purchaser"]))
def test_actors_hold_only_the_roles_offered(actor: Actor) -> None:
    """Drawn actors are valid `Actor`s whose roles come from the pool."""
    assert actor.roles <= {"reviewer", "purchaser"}
    assert Actor.model_validate(actor.model_dump()) == actor


@FAST
@given(gs.identifiers())
def test_identifiers_are_accepted_as_ids(value: str) -> None:
    """Drawn identifiers pass grantflow's id validation (as actor ids)."""
    assert Actor(id=value).id == value


@FAST
@given(st.data())
def test_event_names_leave_out_the_creating_event_unless_asked(data: st.DataObject) -> None:
    """`event_names` draws fireable events; the creating one only with `include_creating`."""
    name = data.draw(gs.event_names())
    assert PURCHASED_SERVICE.has_event(name)
    assert name != "submit"
    names = {data.draw(gs.event_names(include_creating=True)) for _ in range(40)}
    assert names <= {e.name for e in PURCHASED_SERVICE.events}


@FAST
@given(gs.event_sequences(max_size=5))
def test_event_sequences_draw_lifecycle_events(steps: list[gs.Step]) -> None:
    """Event sequences are bounded and name events of the lifecycle with valid evidence."""
    assert len(steps) <= 5
    for step in steps:
        assert PURCHASED_SERVICE.has_event(step.event)
        validate_json(step.evidence)


@FAST
@given(gs.projects(states=["midterm", "rectification"]))
def test_projects_are_consistent_snapshots(project: Any) -> None:
    """Projects sit in the states asked for, with records no newer than their version."""
    assert project.state in {"midterm", "rectification"}
    assert all(1 <= r.seq <= project.version for r in project.records)
    assert project.created_at <= project.updated_at
    validate_json(dict(project.data))


@FAST
@given(gs.rule_contexts(event="sign"))
def test_rule_contexts_follow_a_real_edge(ctx: RuleContext) -> None:
    """A context for `sign` comes from `reviewed`, leads to `contracted`, evidence read-only."""
    assert (ctx.source, ctx.target, ctx.project.state) == ("reviewed", "contracted", "reviewed")
    assert isinstance(ctx.evidence, MappingProxyType)
    assert ctx.now >= ctx.project.updated_at


@FAST
@given(gs.rule_contexts(event="submit"))
def test_rule_contexts_for_submit_hold_a_draft(ctx: RuleContext) -> None:
    """The creating event's context holds a draft project: no state, version 0."""
    assert ctx.source is None
    assert (ctx.project.state, ctx.project.version) == ("", 0)
    assert ctx.target == "applied"


@FAST
@given(gs.rule_contexts(event="reject", evidence=st.fixed_dictionaries({"reason": gs.texts()})))
def test_rule_contexts_let_a_rule_be_called_directly(ctx: RuleContext) -> None:
    """A rule called on drawn contexts sees the pinned evidence as the engine passes it."""

    def needs_reason(c: RuleContext) -> Any:
        if str(c.evidence.get("reason", "")).strip():
            return PASS
        return refuse("reject.reason", "a reason is required", "须说明理由")

    verdict = needs_reason(ctx)
    assert verdict.passed == bool(ctx.evidence["reason"].strip())
