"""The types that appear in grantflow's public signatures, in one place.

Annotate your own code with these rather than spelling the callables out:

>>> from datetime import UTC, datetime
>>> from grantflow.typing import Clock
>>> clock: Clock = lambda: datetime(2025, 3, 1, tzinfo=UTC)
>>> clock().year
2025

`Rule`, `FactProvider` and `Effect` are what a `RuleBook` takes (see `grantflow.rules`);
`Clock` and `Listener` what `grantflow.open` takes; `ItemStatus` and `Keep` what bulk
runs report and keep.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeAlias, runtime_checkable

from grantflow.models import AuditEntry, Verdict

if TYPE_CHECKING:
    from grantflow.rules import Effects, FactRequest, RuleContext

__all__ = ["Clock", "Effect", "FactProvider", "ItemStatus", "Keep", "Listener", "Rule"]

#: A function returning the current time, timezone-aware.
Clock: TypeAlias = Callable[[], datetime]
#: Called with every audit entry after it is committed (observes; cannot veto).
Listener: TypeAlias = Callable[[AuditEntry], None]
#: Looks a fact up before the rules of an event run (the only reads of other projects).
FactProvider: TypeAlias = Callable[["FactRequest"], Any]
#: Says what an accepted transition adds: records and attribute changes.
Effect: TypeAlias = Callable[["RuleContext"], "Effects"]
#: What happened to one item of a bulk run.
ItemStatus: TypeAlias = Literal["applied", "refused", "conflict", "not_found", "invalid", "skipped"]
#: Which item results a `BulkResult` keeps: all, or only those that were not applied.
Keep: TypeAlias = Literal["all", "failures"]


@runtime_checkable
class Rule(Protocol):
    """A rule: any callable from `RuleContext` to `Verdict`."""

    def __call__(self, ctx: RuleContext, /) -> Verdict:
        """Decide; return `PASS` or a verdict built with `refuse`."""
        ...
