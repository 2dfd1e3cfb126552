"""Hypothesis strategies for rule authors and store authors.

Every strategy draws data grantflow accepts: identifiers within the `Identifier` limits,
canonical-JSON-safe evidence (no floats; two-place decimals; aware datetimes), and
lifecycles that pass `Lifecycle` validation.

>>> from hypothesis import given, settings
>>> from grantflow.testing import strategies as gs
>>> @settings(max_examples=20)
... @given(gs.lifecycles())
... def test_every_lifecycle_has_a_creating_event(lifecycle):
...     assert lifecycle.initial_event.creates
>>> test_every_lifecycle_has_a_creating_event()
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

from grantflow._canonical import freeze, plain
from grantflow.models import Actor, Project, Record
from grantflow.policy import Policy
from grantflow.rules import RuleContext
from grantflow.states import PURCHASED_SERVICE, EventDef, Lifecycle, StateDef
from grantflow.testing._boundaries import Boundaries, Thresholds, boundaries

__all__ = [
    "Boundaries",
    "DEFAULT_ROLES",
    "Step",
    "Thresholds",
    "actors",
    "boundaries",
    "event_names",
    "event_sequences",
    "evidence",
    "identifiers",
    "lifecycles",
    "money",
    "projects",
    "rule_contexts",
    "texts",
]

#: The roles of the default lifecycle, plus one no event asks for.
DEFAULT_ROLES = ("applicant", "evaluator", "outsider", "purchaser", "reviewer")

_EARLIEST = datetime(1990, 1, 1)
_LATEST = datetime(2099, 12, 31)
_ZH_WORDS = ("申报", "评审", "立项", "合同", "中期评估", "整改", "绩效考核", "结项", "工会", "心理")
_NAME_ALPHABET = "abcdefghijklmnopqrstuvwxyz_"


@dataclass(frozen=True, slots=True)
class Step:
    """One attempt in an event sequence: who fires which event, with what evidence."""

    event: str
    actor: Actor
    evidence: Mapping[str, Any]


def identifiers(*, max_size: int = 24) -> st.SearchStrategy[str]:
    """Draw ids grantflow accepts: printable, no surrounding space, Chinese included."""
    chars = st.characters(
        codec="utf-8", exclude_categories=("Cc", "Cs", "Zs", "Zl", "Zp"), exclude_characters="\x7f"
    )
    return st.text(chars, min_size=1, max_size=max_size)


def texts(*, max_size: int = 40) -> st.SearchStrategy[str]:
    """Draw free text (English, Chinese, punctuation, white space; never NUL)."""
    any_text = st.text(
        st.characters(codec="utf-8", exclude_categories=["Cs"], exclude_characters="\x00"),
        max_size=max_size,
    )
    chinese = st.lists(st.sampled_from(_ZH_WORDS), max_size=4).map("".join)
    return st.one_of(chinese, any_text)


def money(
    *, min_value: Decimal | int = 0, max_value: Decimal | int = 10**9
) -> st.SearchStrategy[Decimal]:
    """Draw amounts of money: `Decimal` with exactly two places, anywhere in the range.

    To test a rule that compares money with a cap, use ``boundaries(rule).money()``: it
    lands on the cap itself, which a draw from the whole range almost never does.
    """
    return st.decimals(
        min_value=min_value, max_value=max_value, places=2, allow_nan=False, allow_infinity=False
    ).map(lambda d: d.quantize(Decimal("0.01")))


def _aware_datetimes() -> st.SearchStrategy[datetime]:
    # Whole-minute offsets within +-14 h, on dates far enough from year 1 and 9999 that
    # converting to UTC cannot overflow.
    offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
        lambda m: timezone(timedelta(minutes=m))
    )
    return st.datetimes(
        min_value=_EARLIEST, max_value=_LATEST, timezones=st.one_of(st.just(UTC), offsets)
    )


def _utc_datetimes() -> st.SearchStrategy[datetime]:
    return st.datetimes(min_value=_EARLIEST, max_value=_LATEST, timezones=st.just(UTC))


def _scalars() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**53), max_value=2**53),
        texts(),
        money(min_value=-(10**9)),
        _aware_datetimes(),
        st.dates(min_value=date(1990, 1, 1), max_value=date(2099, 12, 31)),
    )


def evidence(*, max_leaves: int = 12) -> st.SearchStrategy[dict[str, Any]]:
    """Draw evidence: a string-keyed mapping of canonical-JSON-safe values, nested.

    Values are None, bools, ints, text (Chinese included), two-place decimals, aware
    datetimes in assorted offsets, dates, and lists and mappings of those. Never floats.
    """
    keys = st.one_of(st.sampled_from(("reason", "amount", "grade", "理由")), texts(max_size=12))
    values = st.recursive(
        _scalars(),
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)
        ),
        max_leaves=max_leaves,
    )
    return st.dictionaries(keys, values, max_size=5)


def actors(
    roles: Iterable[str] = DEFAULT_ROLES, *, ids: st.SearchStrategy[str] | None = None
) -> st.SearchStrategy[Actor]:
    """Draw actors holding any subset of `roles` (possibly none), with an optional organisation."""
    pool = sorted(set(roles))
    role_sets = st.sets(st.sampled_from(pool), max_size=len(pool)) if pool else st.just(set())
    id_strategy = ids if ids is not None else identifiers(max_size=16)
    return st.builds(
        Actor,
        id=id_strategy,
        roles=role_sets.map(frozenset),
        organisation=st.none() | identifiers(max_size=16),
    )


def _names(count: int) -> st.SearchStrategy[list[str]]:
    name = st.text(_NAME_ALPHABET, min_size=1, max_size=10).filter(lambda s: s[0] != "_")
    return st.lists(name, min_size=count, max_size=count, unique=True)


@st.composite
def _edges(draw: st.DrawFn, terminal: Sequence[bool]) -> list[tuple[int, int]]:
    """Edges (source, target) that reach every state and leave every non-terminal one."""
    count = len(terminal)
    open_states = [i for i in range(count) if not terminal[i]]
    edges: list[tuple[int, int]] = []
    for i in range(1, count):
        parents = [p for p in open_states if p < i]
        edges.append((draw(st.sampled_from(parents)), i))
    for source in open_states:
        if not any(s == source for s, _ in edges):
            edges.append((source, draw(st.integers(0, count - 1))))
    extra = draw(
        st.lists(st.tuples(st.sampled_from(open_states), st.integers(0, count - 1)), max_size=6)
    )
    edges = list(dict.fromkeys(edges + extra))
    # Every state needs a way out to a terminal one: link stuck states to one that has it.
    finishing = _finishing(terminal, edges)
    for source in open_states:
        if source not in finishing:
            edges.append((source, draw(st.sampled_from(sorted(finishing)))))
            finishing = _finishing(terminal, edges)
    return edges


def _finishing(terminal: Sequence[bool], edges: Sequence[tuple[int, int]]) -> set[int]:
    """The states with a path to a terminal state."""
    done = {i for i, t in enumerate(terminal) if t}
    grown = True
    while grown:
        grown = False
        for source, target in edges:
            if target in done and source not in done:
                done.add(source)
                grown = True
    return done


@st.composite
def _group_edges(draw: st.DrawFn, edges: list[tuple[int, int]]) -> list[tuple[list[int], int]]:
    """Group edges into events: one target each, a source at most once per event."""
    events: list[tuple[list[int], int]] = []
    for source, target in edges:
        joinable = [e for e in events if e[1] == target and source not in e[0]]
        join: bool = draw(st.booleans())
        if joinable and join:
            draw(st.sampled_from(joinable))[0].append(source)
        else:
            events.append(([source], target))
    return events


@st.composite
def lifecycles(
    draw: st.DrawFn,
    *,
    min_states: int = 2,
    max_states: int = 8,
    roles: Sequence[str] = ("applicant", "evaluator", "purchaser", "reviewer"),
) -> Lifecycle:
    """Draw valid lifecycles from random graphs: every state reachable, and finishable.

    State 0 is where the creating event leads; each later state hangs off an earlier
    non-terminal one, every non-terminal state gets an exit, and a few extra edges
    (self-loops included) are added. Events may have several sources and require any
    subset of `roles` (none: anyone may fire them).
    """
    count = draw(st.integers(min_value=max(min_states, 2), max_value=max(max_states, 2)))
    terminal = [False] + [draw(st.booleans()) for _ in range(count - 1)]
    terminal[-1] = terminal[-1] or not any(terminal)  # somewhere to end
    grouped = draw(_group_edges(draw(_edges(terminal))))
    state_names = draw(_names(count))
    event_names_ = draw(_names(len(grouped) + 1))
    role_sets = st.sets(st.sampled_from(list(roles)), max_size=2) if roles else st.just(set())
    zh = st.lists(st.sampled_from(_ZH_WORDS), max_size=2).map("".join)
    states = tuple(
        StateDef(name, label=name.title(), label_zh=draw(zh), terminal=terminal[i])
        for i, name in enumerate(state_names)
    )
    events = [
        EventDef(
            event_names_[0],
            (),
            state_names[0],
            frozenset(draw(role_sets)),
            label_zh=draw(zh),
            creates=True,
        )
    ]
    for name, (sources, target) in zip(event_names_[1:], grouped, strict=True):
        events.append(
            EventDef(
                name,
                tuple(state_names[s] for s in sources),
                state_names[target],
                frozenset(draw(role_sets)),
                label=name.replace("_", " "),
                label_zh=draw(zh),
            )
        )
    order = draw(st.permutations(events))
    return Lifecycle(name=draw(_names(1))[0], version="1", states=states, events=tuple(order))


def event_names(
    lifecycle: Lifecycle = PURCHASED_SERVICE, *, include_creating: bool = False
) -> st.SearchStrategy[str]:
    """Draw names of the lifecycle's events (the creating one only when asked)."""
    names = [e.name for e in lifecycle.events if include_creating or not e.creates]
    return st.sampled_from(names)


def _lifecycle_roles(lifecycle: Lifecycle) -> list[str]:
    return sorted({role for e in lifecycle.events for role in e.roles} | {"outsider"})


def event_sequences(
    lifecycle: Lifecycle = PURCHASED_SERVICE,
    *,
    min_size: int = 0,
    max_size: int = 20,
    actor: st.SearchStrategy[Actor] | None = None,
    evidence: st.SearchStrategy[Mapping[str, Any]] | None = None,
) -> st.SearchStrategy[list[Step]]:
    """Draw lists of attempts: any event (possible now or not) by actors of random roles."""
    actor_strategy = actor if actor is not None else actors(_lifecycle_roles(lifecycle))
    evidence_strategy = evidence if evidence is not None else _small_evidence()
    step = st.builds(
        Step,
        event=event_names(lifecycle),
        actor=actor_strategy,
        evidence=evidence_strategy,
    )
    return st.lists(step, min_size=min_size, max_size=max_size)


def _small_evidence() -> st.SearchStrategy[Mapping[str, Any]]:
    return _SMALL_EVIDENCE


# Built once: a strategy is an immutable value, and building a recursive one is not free.
_SMALL_EVIDENCE: st.SearchStrategy[Mapping[str, Any]] = st.one_of(
    st.just({}), evidence(max_leaves=4)
)

_RECORD_DATA: st.SearchStrategy[dict[str, Any]] = evidence(max_leaves=4)
# Validate them now, once: on first use Hypothesis would count it as slow input generation.
_SMALL_EVIDENCE.validate()
_RECORD_DATA.validate()


def _heads() -> st.SearchStrategy[str]:
    return st.text("0123456789abcdef", min_size=64, max_size=64)


@st.composite
def _records(draw: st.DrawFn, version: int) -> tuple[Record, ...]:
    kinds = st.sampled_from(("review", "contract", "expenditure", "evaluation", "service"))
    drawn = draw(
        st.lists(
            st.tuples(kinds, st.integers(1, version), _RECORD_DATA),
            max_size=min(version, 4),
        )
    )
    return tuple(
        Record(kind=kind, id=f"{kind}-{n}", data=plain(data), seq=seq)
        for n, (kind, seq, data) in enumerate(drawn, start=1)
    )


@st.composite
def projects(
    draw: st.DrawFn,
    lifecycle: Lifecycle = PURCHASED_SERVICE,
    *,
    states: Iterable[str] | None = None,
    data: st.SearchStrategy[Mapping[str, Any]] | None = None,
) -> Project:
    """Draw project snapshots in one of `states` (default: any state of `lifecycle`).

    Data and record payloads are JSON-native, as a store returns them (decimals and
    times as strings).
    """
    names = sorted(states) if states is not None else [s.name for s in lifecycle.states]
    created = draw(_utc_datetimes())
    version = draw(st.integers(min_value=1, max_value=50))
    return Project(
        id=draw(identifiers()),
        state=draw(st.sampled_from(names)),
        version=version,
        head=draw(_heads()),
        data=plain(draw(data if data is not None else _small_evidence())),
        records=draw(_records(version)),
        created_at=created,
        updated_at=created + draw(st.timedeltas(min_value=timedelta(), max_value=timedelta(400))),
    )


@st.composite
def rule_contexts(
    draw: st.DrawFn,
    lifecycle: Lifecycle = PURCHASED_SERVICE,
    *,
    event: str | None = None,
    actor: st.SearchStrategy[Actor] | None = None,
    evidence: st.SearchStrategy[Mapping[str, Any]] | None = None,
    facts: st.SearchStrategy[Mapping[str, Any]] | None = None,
    policy: st.SearchStrategy[Policy] | None = None,
    project: st.SearchStrategy[Project] | None = None,
) -> RuleContext:
    """Draw contexts to call a rule with directly, as the engine would for `event`.

    The project sits in a source state of the event (for the creating event: a draft with
    ``state == ""`` and ``version == 0``), so `source` and `target` follow a real edge.
    Pass strategies to pin what your rule reads, e.g. ``evidence=st.just({"reason": "x"})``.
    Evidence reaches the rule as the engine hands it over: read-only and JSON-native
    (a `Decimal` arrives as its string, a datetime as UTC ISO text).
    """
    name = event if event is not None else draw(event_names(lifecycle, include_creating=True))
    definition = lifecycle.event(name)
    if project is not None:
        snapshot = draw(project)
    elif definition.creates:
        snapshot = draw(projects(lifecycle)).model_copy(update={"state": "", "version": 0})
    else:
        snapshot = draw(projects(lifecycle, states=definition.sources))
    source = snapshot.state or None
    return RuleContext(
        project=snapshot,
        event=name,
        source=source,
        target=definition.target,
        actor=draw(actor if actor is not None else actors(_lifecycle_roles(lifecycle))),
        evidence=freeze(plain(draw(evidence if evidence is not None else _small_evidence()))),
        now=snapshot.updated_at + draw(st.timedeltas(timedelta(), timedelta(days=30))),
        policy=draw(policy if policy is not None else st.just(Policy())),
        facts=freeze(draw(facts if facts is not None else st.just({}))),
    )
