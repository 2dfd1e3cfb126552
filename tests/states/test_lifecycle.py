"""Tests for grantflow.states._lifecycle: validation, queries, serialisation."""

from __future__ import annotations

import pytest

from grantflow.errors import LifecycleDefinitionError
from grantflow.states import PURCHASED_SERVICE, EventDef, Lifecycle, StateDef


def _lifecycle(states: list[StateDef], events: list[EventDef]) -> Lifecycle:
    return Lifecycle(name="t", version="1", states=tuple(states), events=tuple(events))


def _simple_states() -> list[StateDef]:
    return [StateDef("open"), StateDef("done", terminal=True)]


def _simple_events() -> list[EventDef]:
    return [EventDef("start", (), "open", creates=True), EventDef("finish", ("open",), "done")]


def test_default_lifecycle_has_ten_states_and_ten_events() -> None:
    """The purchased-service lifecycle defines DOMAIN.md's 10 states and 10 events."""
    assert len(PURCHASED_SERVICE.states) == 10
    assert len(PURCHASED_SERVICE.events) == 10
    assert PURCHASED_SERVICE.terminal_states == {"closed", "rejected", "withdrawn", "terminated"}
    assert PURCHASED_SERVICE.initial_event.name == "submit"


def test_default_lifecycle_labels_are_bilingual() -> None:
    """Every default state carries an English and a Chinese label."""
    for state in PURCHASED_SERVICE.states:
        assert state.label
        assert state.label_zh
    assert PURCHASED_SERVICE.state("rectification").label_zh == "整改中"


def test_edge_to_unknown_state_is_refused_naming_the_event() -> None:
    """An event going to a state that does not exist raises, naming the event."""
    events = [*_simple_events(), EventDef("oops", ("open",), "nowhere")]
    with pytest.raises(LifecycleDefinitionError, match="unknown state 'nowhere'") as info:
        _lifecycle(_simple_states(), events)
    assert info.value.offender == "oops"


def test_edge_from_unknown_state_is_refused() -> None:
    """An event leaving a state that does not exist raises, naming the event."""
    events = [*_simple_events(), EventDef("oops", ("ghost",), "done")]
    with pytest.raises(LifecycleDefinitionError) as info:
        _lifecycle(_simple_states(), events)
    assert info.value.offender == "oops"


def test_unreachable_state_is_refused_naming_the_state() -> None:
    """A state no event can reach from the initial state raises, naming the state."""
    states = [*_simple_states(), StateDef("island", terminal=True)]
    with pytest.raises(LifecycleDefinitionError, match="cannot be reached") as info:
        _lifecycle(states, _simple_events())
    assert info.value.offender == "island"


def test_non_terminal_dead_end_is_refused() -> None:
    """A non-terminal state with no way out raises, naming the state."""
    states = [StateDef("open"), StateDef("stuck"), StateDef("done", terminal=True)]
    events = [*_simple_events(), EventDef("wander", ("open",), "stuck")]
    with pytest.raises(LifecycleDefinitionError, match="no event leaves it") as info:
        _lifecycle(states, events)
    assert info.value.offender == "stuck"


def test_a_cycle_with_no_way_out_is_refused_naming_a_state() -> None:
    """States that only lead to each other (never to a terminal state) are refused."""
    states = [StateDef("open"), StateDef("a"), StateDef("b"), StateDef("done", terminal=True)]
    events = [
        EventDef("start", (), "open", creates=True),
        EventDef("finish", ("open",), "done"),
        EventDef("stray", ("open",), "a"),
        EventDef("ping", ("a",), "b"),
        EventDef("pong", ("b",), "a"),
    ]
    with pytest.raises(LifecycleDefinitionError, match="no path to a terminal state") as info:
        _lifecycle(states, events)
    assert info.value.offender in {"a", "b"}


def test_two_edges_for_one_event_and_source_are_refused() -> None:
    """One (event, source) pair may lead to only one state."""
    states = [*_simple_states(), StateDef("other", terminal=True)]
    events = [
        *_simple_events(),
        EventDef("go", ("open",), "done"),
        EventDef("go", ("open",), "other"),
    ]
    with pytest.raises(LifecycleDefinitionError, match="defined twice"):
        _lifecycle(states, events)


def test_duplicate_source_in_one_event_is_refused() -> None:
    """Listing the same source twice in one event is two edges for one (event, source)."""
    events = [
        EventDef("start", (), "open", creates=True),
        EventDef("finish", ("open", "open"), "done"),
    ]
    with pytest.raises(LifecycleDefinitionError, match="two edges from state 'open'"):
        _lifecycle(_simple_states(), events)


def test_edge_leaving_terminal_state_is_refused() -> None:
    """Terminal states absorb: an edge leaving one is a definition error."""
    events = [*_simple_events(), EventDef("reopen", ("done",), "open")]
    with pytest.raises(LifecycleDefinitionError, match="leaves terminal state") as info:
        _lifecycle(_simple_states(), events)
    assert info.value.offender == "reopen"


@pytest.mark.parametrize("count", [0, 2])
def test_exactly_one_creating_event_is_required(count: int) -> None:
    """A lifecycle needs exactly one event that creates projects."""
    events = [EventDef(f"start{i}", (), "open", creates=True) for i in range(count)]
    events.append(EventDef("finish", ("open",), "done"))
    with pytest.raises(LifecycleDefinitionError, match="exactly one creating event"):
        _lifecycle(_simple_states(), events)


def test_duplicate_state_names_are_refused() -> None:
    """Two states with one name raise, naming it."""
    with pytest.raises(LifecycleDefinitionError, match="defined twice") as info:
        _lifecycle([*_simple_states(), StateDef("open")], _simple_events())
    assert info.value.offender == "open"


def test_round_trip_through_dict_json_and_toml_is_lossless() -> None:
    """to_dict/from_dict, to_json/from_json and to_toml/from_toml rebuild an equal lifecycle."""
    lc = PURCHASED_SERVICE
    assert Lifecycle.from_dict(lc.to_dict()) == lc
    assert Lifecycle.from_json(lc.to_json()) == lc
    assert Lifecycle.from_toml(lc.to_toml()) == lc
    assert Lifecycle.from_toml(lc.to_toml()).to_dict() == lc.to_dict()


def test_malformed_data_raises_definition_error() -> None:
    """Data missing required keys or TOML that does not parse gives a definition error."""
    with pytest.raises(LifecycleDefinitionError, match="malformed"):
        Lifecycle.from_dict({"name": "x", "version": "1", "states": []})
    with pytest.raises(LifecycleDefinitionError, match="does not parse"):
        Lifecycle.from_toml("name = ")


def test_event_roles_come_from_the_definition() -> None:
    """Only an applicant may withdraw; the purchaser approves."""
    assert PURCHASED_SERVICE.event("withdraw").roles == {"applicant"}
    assert "purchaser" in PURCHASED_SERVICE.event("approve").roles
    assert PURCHASED_SERVICE.has_event("approve")
    assert not PURCHASED_SERVICE.has_event("teleport")
