"""`RuleBook`: which rules gate which events, the facts they need, the records they add.

A book is checked against the lifecycle it meets (`RuleBook.check`, called when an engine
is built), can drop or swap one rule by its code (`without`, `replace`), and has a
`fingerprint` that changes whenever what it decides with changes.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from grantflow.errors import RuleDefinitionError
from grantflow.models import Actor, Project, Record
from grantflow.policy import Policy
from grantflow.rules._base import Rule, rule_name
from grantflow.typing import Effect, FactProvider

if TYPE_CHECKING:
    from grantflow.persistence import StoreReader
    from grantflow.states import Lifecycle

__all__ = [
    "ALL_EVENTS",
    "BUILTIN_RECORD_KINDS",
    "ENTRY_POINT_GROUP",
    "RECORD_PREFIX",
    "Effects",
    "FactRequest",
    "RuleBook",
]

#: Attach a rule, fact or effect to every event with this name.
ALL_EVENTS = "*"
#: Rules of ``record.<kind>`` gate adding a record of that kind (`Engine.add_record`).
RECORD_PREFIX = "record."
#: The record kinds grantflow's regime knows (`grantflow.records`); others are declared.
BUILTIN_RECORD_KINDS = frozenset(
    {
        "amendment",
        "amendment_decision",
        "amendment_request",
        "approval",
        "assessment",
        "budget_line",
        "clawback",
        "contract",
        "disbursement",
        "evaluation",
        "expenditure",
        "installment",
        "objection",
        "objection_ruling",
        "progress_report",
        "publicity_closed",
        "rectification_order",
        "refund_demand",
        "refund_payment",
        "reminder",
        "review",
        "sanction",
        "service",
        "settlement",
        "termination_proposal",
    }
)
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
    Rules for ``record.<kind>`` gate adding a record of that kind; a kind that is not one
    of the `BUILTIN_RECORD_KINDS` must be declared with `declare_records`.
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
        _check_key(event)
        for r in rules:
            if not callable(r):
                raise RuleDefinitionError(f"rule for {event!r} is not callable: {r!r}", event=event)
        self._rules.setdefault(event, []).extend(rules)
        return self

    def provide(self, name: str, provider: FactProvider, *, events: Iterable[str]) -> RuleBook:
        """Look up fact `name` with `provider` before the rules of `events` run."""
        if isinstance(events, str):
            raise RuleDefinitionError(
                f"fact {name!r}: events must be a list of names, not the string {events!r}",
                event=events,
            )
        for event in events:
            _check_key(event)
            self._facts.setdefault(event, []).append((name, provider))
        return self

    def effect(self, event: str, effect: Effect) -> RuleBook:
        """Run `effect` when `event` is accepted; it returns the records to add."""
        _check_key(event)
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

    # -- overriding --------------------------------------------------------------------

    def codes(self) -> list[str]:
        """Return the codes (names) of the book's rules, sorted, each once."""
        return sorted({rule_name(r) for rules in self._rules.values() for r in rules})

    def without(self, code: str, *, event: str | None = None) -> RuleBook:
        """Return a copy without the rule named `code` (on every event, or only `event`).

        Raises `RuleDefinitionError`, naming the closest code, if no rule has that code.

        >>> from grantflow.rules import PASS, rule
        >>> book = RuleBook().on("approve", rule(lambda ctx: PASS, name="demo.ok"))
        >>> book.without("demo.ok").rules_for("approve")
        ()
        """
        return self._swap(code, None, event)

    def replace(self, code: str, new: Rule, *, event: str | None = None) -> RuleBook:
        """Return a copy with `new` in place of the rule named `code`, in the same position.

        Raises `RuleDefinitionError`, naming the closest code, if no rule has that code.
        """
        if not callable(new):
            raise RuleDefinitionError(f"replacement for {code!r} is not callable: {new!r}")
        return self._swap(code, new, event)

    def _swap(self, code: str, new: Rule | None, event: str | None) -> RuleBook:
        keys = list(self._rules) if event is None else [event]
        if not any(rule_name(r) == code for key in keys for r in self._rules.get(key, ())):
            where = "" if event is None else f" on {event!r}"
            raise RuleDefinitionError(
                f"no rule {code!r}{where} in the rule book{_did_you_mean(code, self.codes())}",
                event=event,
            )
        book = self.copy()
        for key in keys:
            swapped = [r if rule_name(r) != code else new for r in book._rules[key]]
            book._rules[key] = [r for r in swapped if r is not None]
        book._rules = {key: rules for key, rules in book._rules.items() if rules}
        return book

    # -- checks ------------------------------------------------------------------------

    def check(self, lifecycle: Lifecycle) -> None:
        """Raise `RuleDefinitionError` unless every key of the book exists in `lifecycle`.

        Every event a rule, fact or effect is attached to must be an event of the lifecycle
        (or `ALL_EVENTS`), every ``record.<kind>`` a built-in or declared record kind; the
        error names the closest match. The lifecycle may not use the reserved names (``*``
        and the ``record.`` prefix) as event names. The engine calls this when it is built.
        """
        for name in (e.name for e in lifecycle.events):
            if name == ALL_EVENTS or name.startswith(RECORD_PREFIX):
                raise RuleDefinitionError(
                    f"lifecycle {lifecycle.name!r} uses the reserved name {name!r} for an "
                    f"event ({ALL_EVENTS!r} means every event, {RECORD_PREFIX!r}<kind> adds "
                    "a record)",
                    event=name,
                )
        events = [e.name for e in lifecycle.events]
        known = BUILTIN_RECORD_KINDS | self._record_kinds
        for what, table in (
            ("rule", self._rules),
            ("fact", self._facts),
            ("effect", self._effects),
        ):
            for key in table:
                if key == ALL_EVENTS:
                    continue
                if key.startswith(RECORD_PREFIX):
                    kind = key.removeprefix(RECORD_PREFIX)
                    if kind not in known:
                        raise RuleDefinitionError(
                            f"a {what} is attached to {key!r}, but record kind {kind!r} is "
                            "neither built in nor declared (RuleBook.declare_records)"
                            + _did_you_mean(kind, known),
                            event=key,
                        )
                elif not lifecycle.has_event(key):
                    raise RuleDefinitionError(
                        f"a {what} is attached to {key!r}, which lifecycle {lifecycle.name!r} "
                        f"does not have{_did_you_mean(key, events)}",
                        event=key,
                    )

    # -- identity ----------------------------------------------------------------------

    @property
    def fingerprint(self) -> str:
        """A sha256 (hex) of what the book decides with, equal in every process.

        It covers, per event, the rules in order (their codes, and a ``version``
        attribute when a rule has one), the facts (name and provider), the effects, and
        the declared record kinds. It does not depend on the lifecycle, on object
        addresses or on the order events were registered in; it does not see inside a
        function, so changing a rule's body without its name or ``version`` keeps it.
        """
        return hashlib.sha256(self._identity().encode("utf-8")).hexdigest()

    def _identity(self) -> str:
        keys = sorted({*self._rules, *self._facts, *self._effects})
        content = {
            "events": {
                key: {
                    "rules": [_callable_identity(r) for r in self._rules.get(key, ())],
                    "facts": [
                        [name, _callable_identity(p)] for name, p in self._facts.get(key, ())
                    ],
                    "effects": [_callable_identity(e) for e in self._effects.get(key, ())],
                }
                for key in keys
            },
            "record_kinds": sorted(self._record_kinds),
        }
        return json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))

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

    def attached_events(self) -> Sequence[str]:
        """Names of the events (and ``record.<kind>`` keys) with a rule, fact or effect."""
        return sorted({*self._rules, *self._facts, *self._effects})

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


def _check_key(event: object) -> None:
    if not isinstance(event, str) or not event or event != event.strip():
        raise RuleDefinitionError(f"event name {event!r} is not a valid name")
    if event.startswith(RECORD_PREFIX) and not event.removeprefix(RECORD_PREFIX).strip():
        raise RuleDefinitionError(f"{event!r} names no record kind", event=event)


def _did_you_mean(name: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(candidates))
    return f"; did you mean {close[0]!r}?" if close else ""


def _callable_identity(fn: Callable[..., Any]) -> list[str]:
    """A stable name for a rule, provider or effect, and its version ('' if none)."""
    name = rule_name(fn)
    if isinstance(fn, types.FunctionType):
        # Module-qualified: "<lambda>" and "f.<locals>.g" alone say too little.
        name = f"{fn.__module__}.{fn.__qualname__}"
    elif " at 0x" in name:
        # A default repr carries a memory address: name the class instead.
        name = f"{type(fn).__module__}.{type(fn).__qualname__}"
    return [name, str(getattr(fn, "version", ""))]
