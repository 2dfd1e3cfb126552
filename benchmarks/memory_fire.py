"""In memory: `Engine.fire` against a bare `transitions` trigger on one shared machine.

grantflow: a memory store, a bare rule book, ``engine.fire(pid, "approve", actor=...)``
on projects in ``applied`` (one audit entry each, hash-linked). The floor: one
`transitions.Machine` with the same states and edges, shared by N model objects, and
``model.approve()`` on each: the state change alone, no audit, no rules.
"""

from __future__ import annotations

import time

from _common import APPLICANT, STAFF, ids, interleave, median, paired_ratio, say
from transitions import Machine

import grantflow
from grantflow.rules import RuleBook
from grantflow.states import PURCHASED_SERVICE


class _Model:
    """A bare model for the transitions machine."""

    state: str


def _machine(models: list[_Model]) -> Machine:
    lifecycle = PURCHASED_SERVICE
    return Machine(
        model=models,
        states=[s.name for s in lifecycle.states],
        initial=lifecycle.initial_event.target,
        transitions=[
            {"trigger": e.name, "source": list(e.sources), "dest": e.target}
            for e in lifecycle.events
            if not e.creates
        ],
        auto_transitions=False,
    )


def transitions_rate(n: int) -> float:
    """Trigger ``approve`` on `n` models of one machine; triggers per second."""
    models = [_Model() for _ in range(n)]
    _machine(models)
    started = time.perf_counter()
    for model in models:
        model.approve()  # type: ignore[attr-defined]
    elapsed = time.perf_counter() - started
    if any(m.state != "reviewed" for m in models):
        raise RuntimeError("transitions did not move every model")
    return n / elapsed


def grantflow_rate(n: int) -> float:
    """`Engine.fire` of ``approve`` on `n` projects of a memory store; fires per second."""
    engine = grantflow.open(rules=RuleBook(), discover_rules=False)
    pids = ids(n)
    engine.fire_many("submit", ((pid, {"title": "t"}) for pid in pids), actor=APPLICANT)
    started = time.perf_counter()
    for pid in pids:
        engine.fire(pid, "approve", actor=STAFF)
    elapsed = time.perf_counter() - started
    if engine.get(pids[-1]).state != "reviewed":
        raise RuntimeError("grantflow did not move the projects")
    engine.close()
    return n / elapsed


def run(quick: bool, rounds: int) -> dict[str, float]:
    """Interleaved rounds of both; the ratio of fires per second."""
    n = 300 if quick else 20_000
    samples = interleave(
        {"transitions": lambda: transitions_rate(n), "grantflow": lambda: grantflow_rate(n)},
        rounds,
    )
    say(f"memory fire (per s): {samples}")
    return {
        "memory_fire_per_s": median(samples["grantflow"]),
        "memory_transitions_per_s": median(samples["transitions"]),
        "memory_fire_ratio": paired_ratio(samples["grantflow"], samples["transitions"]),
    }
