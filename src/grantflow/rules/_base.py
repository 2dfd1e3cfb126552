"""The rule protocol: an immutable context in, a verdict out; helpers to build both."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar, overload

from grantflow._kept import Answer, Kept, Slot
from grantflow._kept import held as _held
from grantflow.models import Actor, Project, Refusal, Verdict
from grantflow.policy import Policy
from grantflow.typing import Rule

__all__ = ["PASS", "ParseCache", "Parsed", "Rule", "RuleContext", "refuse", "rule", "rule_name"]

#: The verdict of a rule that holds.
PASS = Verdict()

_T = TypeVar("_T")


class Parsed:
    """Typed values read from one decision's immutable inputs, each worked out once.

    The default rules parse the same records (a project's reviews, contracts,
    expenditures, the record being added) with pydantic in rule after rule. A
    `RuleContext` carries one `Parsed`, so every rule and effect of a decision shares
    the parse. An answer is kept by the identity of the object it was read from, with
    the object itself held so that identity cannot be reused; the inputs are immutable
    and the parse a pure function of them, so the answer is the one a fresh parse gives,
    whichever context asks (a context copied with `dataclasses.replace` may share it).
    The decision core builds a fresh context, and so a fresh `Parsed`, per decision.
    Rules sharing an answer must treat it as read-only, as they treat the context.

    `lasting` answers outlive the decision when the core passes a `ParseCache`: a
    stored record's data is the same object from one decision to the next (the stores
    hand out the records they read before while the stored row is unchanged), so each
    record is parsed once per engine rather than once per decision.
    """

    __slots__ = ("_found", "_shared")

    def __init__(self, shared: ParseCache | None = None) -> None:
        self._found: dict[Slot, Answer] = {}
        self._shared = shared

    def get(self, source: object, key: Any, parse: Callable[[], _T]) -> _T:
        """Return `parse()` for (`source`, `key`), computing it the first time only."""
        found = self._found
        return _held(found.get, found.__setitem__, source, key, parse)

    def lasting(self, source: object, key: Any, parse: Callable[[], _T]) -> _T:
        """`get` for a parse of `source` alone (a stored record's data), kept across decisions.

        Kept in the core's `ParseCache` when there is one, else for this decision.
        """
        if self._shared is None:
            return self.get(source, key, parse)
        return self._shared.get(source, key, parse)


class ParseCache:
    """Parses kept across decisions, by the identity of what was parsed (held, so kept alive).

    Bounded: two generations of at most `limit` answers each (see `grantflow._kept`);
    safe to share between threads, where a race costs a parse, never a wrong answer.
    """

    __slots__ = ("_kept",)

    def __init__(self, limit: int = 10_000) -> None:
        self._kept: Kept[Slot, Answer] = Kept(limit)

    def __len__(self) -> int:
        return len(self._kept)

    def get(self, source: object, key: Any, parse: Callable[[], _T]) -> _T:
        """Return `parse()` for (`source`, `key`), computing it only when not kept."""
        kept = self._kept
        return _held(kept.get, kept.put, source, key, parse)


@dataclass(frozen=True, slots=True)
class RuleContext:
    """Everything a rule may look at; nothing in it can be changed, and it does no I/O.

    Attributes:
        project: the project as it is now (for ``submit``, the draft being submitted,
            with ``state == ""`` and ``version == 0``).
        event: the event being attempted (``record.<kind>`` when a record is added).
        source: the current state (``None`` for ``submit``).
        target: the state the event leads to.
        actor: who attempts it.
        evidence: what the actor sent with the attempt (read-only, nested read-only).
        now: the engine clock's time, timezone-aware UTC.
        policy: the policy the project is pinned to.
        facts: values looked up before the rules ran (see `RuleBook.provide`).
        parsed: typed values the rules have read from the above, shared by the rules
            and effects of one decision (see `Parsed`); a fresh one by default.
    """

    project: Project
    event: str
    source: str | None
    target: str | None
    actor: Actor
    evidence: Mapping[str, Any]
    now: datetime
    policy: Policy
    facts: Mapping[str, Any] = field(default_factory=dict)
    parsed: Parsed = field(default_factory=Parsed, repr=False, compare=False)


def refuse(code: str, message: str, message_zh: str, **details: Any) -> Verdict:
    """Return a verdict holding one refusal.

    >>> refuse("review.quorum", "3 reviews required, 2 submitted", "需要3份评审意见，已提交2份",
    ...        required=3, submitted=2).refusals[0].code
    'review.quorum'
    """
    return Verdict(
        refusals=(Refusal(code=code, message=message, message_zh=message_zh, details=details),)
    )


class NamedRule:
    """A rule function with a name, so `repr` and refusals say which rule it is."""

    def __init__(self, fn: Callable[[RuleContext], Verdict], name: str) -> None:
        self.fn = fn
        self.name = name
        self.__doc__ = fn.__doc__

    def __call__(self, ctx: RuleContext, /) -> Verdict:
        """Run the wrapped function."""
        return self.fn(ctx)

    def __repr__(self) -> str:
        return self.name


@overload
def rule(fn: Callable[[RuleContext], Verdict], *, name: str | None = None) -> NamedRule: ...


@overload
def rule(
    fn: None = None, *, name: str | None = None
) -> Callable[[Callable[[RuleContext], Verdict]], NamedRule]: ...


def rule(fn: Callable[[RuleContext], Verdict] | None = None, *, name: str | None = None) -> Any:
    """Name a rule function (decorator), usable bare or as ``@rule(name="...")``.

    >>> @rule
    ... def always_ok(ctx):
    ...     return PASS
    >>> always_ok
    always_ok
    """

    def wrap(f: Callable[[RuleContext], Verdict]) -> NamedRule:
        return NamedRule(f, name or str(getattr(f, "__name__", None) or repr(f)))

    return wrap(fn) if fn is not None else wrap


def rule_name(r: Callable[..., Any]) -> str:
    """Return the name a refusal reports for rule `r`."""
    if isinstance(r, NamedRule):
        return r.name
    return str(getattr(r, "__qualname__", None) or getattr(r, "__name__", None) or repr(r))
