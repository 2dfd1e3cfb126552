"""The one module that imports `transitions`: the lifecycle's transition table.

One `transitions.Machine` is built per lifecycle, with no model attached: grantflow never
adds a model per project nor attaches trigger methods to anybody's objects. Resolving an
edge is a dictionary look-up in the machine's event table, so the cost of a fire does
not grow with the number of projects.
"""

from __future__ import annotations

from transitions import Machine

from grantflow.states import Lifecycle

__all__ = ["TransitionTable"]


class TransitionTable:
    """Edges of a lifecycle as a `transitions.Machine`, queried without a model."""

    __slots__ = ("_machine", "lifecycle")

    def __init__(self, lifecycle: Lifecycle) -> None:
        self.lifecycle = lifecycle
        self._machine = Machine(
            model=[],
            states=[s.name for s in lifecycle.states],
            initial=lifecycle.initial_event.target,
            transitions=[
                {"trigger": e.name, "source": list(e.sources), "dest": e.target}
                for e in lifecycle.events
                if not e.creates
            ],
            auto_transitions=False,
            ignore_invalid_triggers=False,
        )

    def target(self, event: str, source: str) -> str | None:
        """Return the state `event` leads to from `source`, or ``None`` if there is no edge."""
        machine_event = self._machine.events.get(event)
        if machine_event is None:
            return None
        edges = machine_event.transitions.get(source)
        if not edges:
            return None
        dest: str | None = edges[0].dest
        return dest

    def events_from(self, source: str) -> list[str]:
        """Return the names of the events with an edge leaving `source`, in definition order."""
        names: list[str] = self._machine.get_triggers(source)
        return names
