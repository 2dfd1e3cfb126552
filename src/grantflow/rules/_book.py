"""`RuleBook`: which rules gate which events, the facts they need, the records they add."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from grantflow.errors import RuleDefinitionError
from grantflow.models import Actor, Project, Record
from grantflow.policy import Policy
from grantflow.rules._base import Rule
from grantflow.typing import Effect, FactProvider

if TYPE_CHECKING:
    from grantflow.persistence import StoreReader

__all__ = ["ALL_EVENTS", "ENTRY_POINT_GROUP", "Effects", "FactRequest", "RuleBook"]

#: Attach a rule, fact or effect to every event with this name.
ALL_EVENTS = "*"
#: The entry-point group third-party rule books are discovered in.
ENTRY_POINT_GROUP = "grantflow.rules"


@dataclass(frozen=True, slots=True)
class FactRequest:
    """What a fact provider gets: a read-only store and the attempt being decided."""

    reader: StoreReader
    project: Project
    event: str
    actor: Actor
    evidence: Mapping[str, Any]
    policy: Policy


@dataclass(frozen=True, slots=True)
class Effects:
    """What an accepted transition adds: records, and attribute changes merged into data."""

    records: tuple[Record, ...] = ()
    data: Mapping[str, Any] = field(default_factory=dict)


class RuleBook:
    """Rules per event (or for all events), the facts they read and the effects of success.

    Fact providers run before the rules and outside any database transaction; they are the
    only place that reads other projects (duplicate invoices, applications per call).
    Effects run after every rule passed and say which records the transition adds.
    A book that declares record kinds (`declare_records`) accepts only those in
    `Engine.add_record`; kinds declared ``effect_owned`` are written by effects alone.

    >>> from grantflow.rules import PASS
    >>> book = RuleBook().on("approve", lambda ctx: PASS)
    >>> len(book.rules_for("approve")), len(book.rules_for("sign"))
    (1, 0)
    """

    def __init__(self) -> None:
        self._rules: dict[str, list[Rule]] = {}
        self._facts: dict[str, list[tuple[str, FactProvider]]] = {}
        self._effects: dict[str, list[Effect]] = {}
        self._record_kinds: set[str] = set()
        self._reserved_kinds: set[str] = set()

    def on(self, event: str, *rules: Rule) -> RuleBook:
        """Gate `event` (or `ALL_EVENTS`) with `rules`; return the book for chaining."""
        for r in rules:
            if not callable(r):
                raise RuleDefinitionError(f"rule for {event!r} is not callable: {r!r}", event=event)
        self._rules.setdefault(event, []).extend(rules)
        return self

    def provide(self, name: str, provider: FactProvider, *, events: Iterable[str]) -> RuleBook:
        """Look up fact `name` with `provider` before the rules of `events` run."""
        for event in events:
            self._facts.setdefault(event, []).append((name, provider))
        return self

    def effect(self, event: str, effect: Effect) -> RuleBook:
        """Run `effect` when `event` is accepted; it returns the records to add."""
        self._effects.setdefault(event, []).append(effect)
        return self

    def declare_records(self, *kinds: str, effect_owned: bool = False) -> RuleBook:
        """Declare record kinds of your own; ``effect_owned`` ones only effects may write.

        Once a book declares kinds, the engine refuses a record of an undeclared kind
        (``records.unknown``), and a directly added one of an effect-owned kind
        (``records.reserved``).

        >>> sorted(RuleBook().declare_records("note", "site_visit").record_kinds)
        ['note', 'site_visit']
        """
        for kind in kinds:
            if not isinstance(kind, str) or not kind or kind != kind.strip() or "*" in kind:
                raise RuleDefinitionError(f"record kind {kind!r} is not a valid name")
        self._record_kinds.update(kinds)
        if effect_owned:
            self._reserved_kinds.update(kinds)
        return self

    @property
    def record_kinds(self) -> frozenset[str]:
        """The record kinds declared with `declare_records` (effect-owned ones included)."""
        return frozenset(self._record_kinds)

    @property
    def reserved_kinds(self) -> frozenset[str]:
        """The declared kinds only the effects of accepted transitions write."""
        return frozenset(self._reserved_kinds)

    def extend(self, other: RuleBook) -> RuleBook:
        """Add every rule, fact, effect and declared record kind of `other` to this book."""
        for event, rules in other._rules.items():
            self._rules.setdefault(event, []).extend(rules)
        for event, facts in other._facts.items():
            self._facts.setdefault(event, []).extend(facts)
        for event, effects in other._effects.items():
            self._effects.setdefault(event, []).extend(effects)
        self._record_kinds.update(other._record_kinds)
        self._reserved_kinds.update(other._reserved_kinds)
        return self

    def copy(self) -> RuleBook:
        """Return an independent copy (the engine keeps one, so later edits do not leak in)."""
        return RuleBook().extend(self)

    def rules_for(self, event: str) -> tuple[Rule, ...]:
        """Rules gating `event`: those for all events first, then the event's own."""
        return (*self._rules.get(ALL_EVENTS, ()), *self._rules.get(event, ()))

    def facts_for(self, event: str) -> tuple[tuple[str, FactProvider], ...]:
        """Fact providers to run before deciding `event`."""
        return (*self._facts.get(ALL_EVENTS, ()), *self._facts.get(event, ()))

    def effects_for(self, event: str) -> tuple[Effect, ...]:
        """Effects to run when `event` is accepted."""
        return (*self._effects.get(ALL_EVENTS, ()), *self._effects.get(event, ()))

    def events(self) -> Sequence[str]:
        """Names of the events that have at least one rule."""
        return sorted(self._rules)

    @classmethod
    def from_entry_points(cls, group: str = ENTRY_POINT_GROUP) -> RuleBook:
        """Merge the rule books published under entry-point `group`, in name order.

        Each entry point names a `RuleBook` or a callable returning one.
        """
        book = cls()
        for ep in sorted(entry_points(group=group), key=lambda e: e.name):
            try:
                loaded = ep.load()
                found = (
                    loaded() if callable(loaded) and not isinstance(loaded, RuleBook) else loaded
                )
            except Exception as exc:
                raise RuleDefinitionError(
                    f"rule plug-in {ep.name!r} failed to load: {exc}"
                ) from exc
            if not isinstance(found, RuleBook):
                raise RuleDefinitionError(
                    f"rule plug-in {ep.name!r} gave {type(found).__name__}, not a RuleBook"
                )
            book.extend(found)
        return book
