"""Lifecycles as data: states, events, and the checks that run when one is built."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from grantflow.errors import LifecycleDefinitionError
from grantflow.states._time import ObligationDef, TimerDef, policy_duration_fields

__all__ = ["EventDef", "Lifecycle", "StateDef"]

_T = TypeVar("_T", "StateDef", "EventDef", ObligationDef, TimerDef)


@dataclass(frozen=True, slots=True)
class StateDef:
    """A lifecycle state: its name, English and Chinese labels, and whether it is terminal."""

    name: str
    label: str = ""
    label_zh: str = ""
    terminal: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Return the state as a plain dict."""
        return {
            "name": self.name,
            "label": self.label,
            "label_zh": self.label_zh,
            "terminal": self.terminal,
        }


@dataclass(frozen=True, slots=True)
class EventDef:
    """A lifecycle event: the states it leaves, the state it enters, who may fire it.

    An empty `roles` means any actor may fire it. `creates` marks the one event that
    brings a project into being (it has no source states).
    """

    name: str
    sources: tuple[str, ...]
    target: str
    roles: frozenset[str] = frozenset()
    label: str = ""
    label_zh: str = ""
    creates: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Return the event as a plain dict (roles sorted, so output is stable)."""
        return {
            "name": self.name,
            "sources": list(self.sources),
            "target": self.target,
            "roles": sorted(self.roles),
            "label": self.label,
            "label_zh": self.label_zh,
            "creates": self.creates,
        }


@dataclass(frozen=True)
class Lifecycle:
    """A validated state machine definition: states, events and their edges.

    Building one checks it at once and raises `LifecycleDefinitionError` naming the offender
    for: duplicate names, an edge from or to an unknown state, two edges for one
    (event, source), a state no event reaches, a non-terminal state with no way out, an
    edge leaving a terminal state, and anything but exactly one creating event. The
    `obligations` (due dates) and `timers` are checked too: known states, anchors,
    durations, conditions and events (see `grantflow.states.ObligationDef`).
    """

    name: str
    version: str
    states: tuple[StateDef, ...]
    events: tuple[EventDef, ...]
    obligations: tuple[ObligationDef, ...] = ()
    timers: tuple[TimerDef, ...] = ()
    _states: dict[str, StateDef] = field(init=False, repr=False, compare=False)
    _events: dict[str, EventDef] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "states", tuple(self.states))
        object.__setattr__(self, "events", tuple(self.events))
        object.__setattr__(self, "obligations", tuple(self.obligations))
        object.__setattr__(self, "timers", tuple(self.timers))
        object.__setattr__(self, "_states", _index(self.states, "state"))
        object.__setattr__(self, "_events", _index(self.events, "event"))
        self._validate()
        self._validate_time()

    # -- queries -----------------------------------------------------------------------

    def state(self, name: str) -> StateDef:
        """Return the state called `name`; `KeyError` if there is none."""
        return self._states[name]

    def event(self, name: str) -> EventDef:
        """Return the event called `name`; `KeyError` if there is none."""
        return self._events[name]

    def has_event(self, name: str) -> bool:
        """Return whether the lifecycle defines event `name`."""
        return name in self._events

    @property
    def initial_event(self) -> EventDef:
        """The event that creates a project (``submit`` in the default lifecycle)."""
        return next(e for e in self.events if e.creates)

    @property
    def terminal_states(self) -> frozenset[str]:
        """Names of the states a project never leaves."""
        return frozenset(s.name for s in self.states if s.terminal)

    # -- validation --------------------------------------------------------------------

    def _validate(self) -> None:
        creating = [e for e in self.events if e.creates]
        if len(creating) != 1:
            names = ", ".join(e.name for e in creating) or "none"
            raise LifecycleDefinitionError(
                f"lifecycle {self.name!r} needs exactly one creating event, found: {names}",
                offender=creating[1].name if len(creating) > 1 else self.name,
            )
        seen_edges: set[tuple[str, str]] = set()
        for event in self.events:
            self._validate_event(event, seen_edges)
        self._validate_reachability(creating[0].target)
        for state in self.states:
            leaves = any(state.name in e.sources for e in self.events)
            if not state.terminal and not leaves:
                raise LifecycleDefinitionError(
                    f"state {state.name!r} is not terminal but no event leaves it",
                    offender=state.name,
                )
        self._validate_termination()

    def _validate_time(self) -> None:
        if not self.obligations and not self.timers:
            return
        durations = policy_duration_fields()
        states = frozenset(self._states)
        names = _index(self.obligations, "obligation")
        for obligation in self.obligations:
            obligation.validate(states, durations)
        _index(self.timers, "timer")
        events = {e.name: e.creates for e in self.events}
        for timer in self.timers:
            timer.validate(frozenset(names), events, durations)

    def _validate_event(self, event: EventDef, seen_edges: set[tuple[str, str]]) -> None:
        if event.target not in self._states:
            raise LifecycleDefinitionError(
                f"event {event.name!r} goes to unknown state {event.target!r}",
                offender=event.name,
            )
        if event.creates and event.sources:
            raise LifecycleDefinitionError(
                f"creating event {event.name!r} must have no source states", offender=event.name
            )
        if not event.creates and not event.sources:
            raise LifecycleDefinitionError(
                f"event {event.name!r} has no source states", offender=event.name
            )
        for source in event.sources:
            if source not in self._states:
                raise LifecycleDefinitionError(
                    f"event {event.name!r} leaves unknown state {source!r}", offender=event.name
                )
            if self._states[source].terminal:
                raise LifecycleDefinitionError(
                    f"event {event.name!r} leaves terminal state {source!r}",
                    offender=event.name,
                )
            if (event.name, source) in seen_edges:
                raise LifecycleDefinitionError(
                    f"event {event.name!r} has two edges from state {source!r}",
                    offender=event.name,
                )
            seen_edges.add((event.name, source))

    def _validate_reachability(self, start: str) -> None:
        reached = {start}
        frontier = [start]
        while frontier:
            current = frontier.pop()
            for event in self.events:
                if current in event.sources and event.target not in reached:
                    reached.add(event.target)
                    frontier.append(event.target)
        for state in self.states:
            if state.name not in reached:
                raise LifecycleDefinitionError(
                    f"state {state.name!r} cannot be reached from {start!r}",
                    offender=state.name,
                )

    def _validate_termination(self) -> None:
        """Every state has a path to a terminal state (no cycle a project can never leave)."""
        finishing = set(self.terminal_states)
        grown = True
        while grown:  # walk the edges backwards from the terminal states
            grown = False
            for event in self.events:
                if event.target in finishing:
                    new = set(event.sources) - finishing
                    if new:
                        finishing |= new
                        grown = True
        for state in self.states:
            if state.name not in finishing:
                raise LifecycleDefinitionError(
                    f"state {state.name!r} has no path to a terminal state",
                    offender=state.name,
                )

    # -- serialisation -----------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Return the lifecycle as plain data; `Lifecycle.from_dict` reverses it exactly.

        ``obligations`` and ``timers`` appear only when the lifecycle declares some.
        """
        data: dict[str, Any] = {
            "name": self.name,
            "version": self.version,
            "states": [s.to_dict() for s in self.states],
            "events": [e.to_dict() for e in self.events],
        }
        if self.obligations:
            data["obligations"] = [o.to_dict() for o in self.obligations]
        if self.timers:
            data["timers"] = [t.to_dict() for t in self.timers]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Lifecycle:
        """Build (and validate) a lifecycle from `to_dict` output or hand-written data."""
        try:
            states = tuple(
                StateDef(
                    name=str(s["name"]),
                    label=str(s.get("label", "")),
                    label_zh=str(s.get("label_zh", "")),
                    terminal=bool(s.get("terminal", False)),
                )
                for s in data["states"]
            )
            events = tuple(
                EventDef(
                    name=str(e["name"]),
                    sources=tuple(str(x) for x in e.get("sources", ())),
                    target=str(e["target"]),
                    roles=frozenset(str(r) for r in e.get("roles", ())),
                    label=str(e.get("label", "")),
                    label_zh=str(e.get("label_zh", "")),
                    creates=bool(e.get("creates", False)),
                )
                for e in data["events"]
            )
            return cls(
                name=str(data["name"]),
                version=str(data["version"]),
                states=states,
                events=events,
                obligations=tuple(ObligationDef.from_dict(o) for o in data.get("obligations", ())),
                timers=tuple(TimerDef.from_dict(t) for t in data.get("timers", ())),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise LifecycleDefinitionError(
                f"malformed lifecycle data: missing or bad {exc}"
            ) from exc

    def to_json(self) -> str:
        """Return the lifecycle as JSON text."""
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=2)

    @classmethod
    def from_json(cls, text: str) -> Lifecycle:
        """Build a lifecycle from `to_json` output."""
        return cls.from_dict(json.loads(text))

    def to_toml(self) -> str:
        """Return the lifecycle as TOML text (``[[states]]`` and ``[[events]]`` tables)."""
        lines = [f"name = {_toml_str(self.name)}", f"version = {_toml_str(self.version)}", ""]
        tables: tuple[tuple[str, tuple[Any, ...]], ...] = (
            ("states", self.states),
            ("events", self.events),
            ("obligations", self.obligations),
            ("timers", self.timers),
        )
        for table, items in tables:
            for item in items:
                lines.append(f"[[{table}]]")
                for key, value in item.to_dict().items():
                    lines.append(f"{key} = {_toml_value(value)}")
                lines.append("")
        return "\n".join(lines)

    @classmethod
    def from_toml(cls, text: str) -> Lifecycle:
        """Build a lifecycle from `to_toml` output or a hand-written TOML file."""
        try:
            return cls.from_dict(tomllib.loads(text))
        except tomllib.TOMLDecodeError as exc:
            raise LifecycleDefinitionError(f"lifecycle TOML does not parse: {exc}") from exc


def _index(items: Iterable[_T], what: str) -> dict[str, _T]:
    index: dict[str, _T] = {}
    for item in items:
        if not item.name:
            raise LifecycleDefinitionError(f"a {what} has an empty name", offender="")
        if item.name in index:
            raise LifecycleDefinitionError(
                f"{what} {item.name!r} is defined twice", offender=item.name
            )
        index[item.name] = item
    return index


def _toml_str(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dict):
        pairs = ", ".join(f"{_toml_str(str(k))} = {_toml_str(str(v))}" for k, v in value.items())
        return "{" + pairs + "}" if pairs else "{}"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_str(str(v)) for v in value) + "]"
    return _toml_str(str(value))
