"""Bulk transitions: per-item results for `Engine.fire_many`.

`fire_many` never stops at the first failure unless asked: each item ends in one of
the `ItemStatus` values, and the `BulkResult` counts them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from grantflow.models import Actor, Refusal
from grantflow.typing import ItemStatus, Keep

__all__ = ["BulkItem", "BulkResult", "ItemResult", "ItemStatus", "Keep", "Worker"]


@dataclass(frozen=True, slots=True)
class BulkItem:
    """One item of bulk input: a project id, its evidence, and where it came from.

    `row` is the 1-based row number in the input file (or the position in the input
    iterable), so a report can point at the line to fix. `actor`, when set, acts for
    this item instead of the run's actor (expenditures of many providers in one file).
    """

    project_id: str
    evidence: Mapping[str, Any] = field(default_factory=dict)
    row: int | None = None
    actor: Actor | None = None


@dataclass(frozen=True, slots=True)
class Worker:
    """Identity of one worker of a shared bulk run: several processes, one key.

    Workers with the same `run_id` cooperate on one job, each claiming chunks under its
    own `owner` name; a different run using the key while this one is alive gets
    `IdempotencyKeyInUse`.
    """

    run_id: str
    owner: str


@dataclass(frozen=True, slots=True)
class ItemResult:
    """The result for one item: its status, the state after, refusals or an error text."""

    index: int
    project_id: str
    status: ItemStatus
    state: str | None = None
    refusals: tuple[Refusal, ...] = ()
    error: str = ""
    row: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the result as JSON-ready data."""
        return {
            "index": self.index,
            "row": self.row,
            "project_id": self.project_id,
            "status": self.status,
            "state": self.state,
            "refusals": [r.model_dump(mode="json") for r in self.refusals],
            "error": self.error,
        }


@dataclass(slots=True)
class BulkResult:
    """Counts per status, and the per-item results that were kept.

    Applied items are kept only when the run was asked to keep them (``keep="all"``), so a
    run over a million projects stays small in memory; everything else is always kept.
    """

    event: str
    key: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    items: list[ItemResult] = field(default_factory=list)
    replayed: bool = False
    dry_run: bool = False

    @property
    def total(self) -> int:
        """How many items were processed."""
        return sum(self.counts.values())

    @property
    def ok(self) -> bool:
        """True when every item was applied (or skipped as already done)."""
        return all(status in {"applied", "skipped"} for status in self.counts)

    def count(self, status: ItemStatus) -> int:
        """Return how many items ended with `status`."""
        return self.counts.get(status, 0)

    def add(self, result: ItemResult, *, keep: bool) -> None:
        """Count `result`, and keep it when `keep` or when it is not a plain success."""
        self.counts[result.status] = self.counts.get(result.status, 0) + 1
        if keep or result.status not in {"applied", "skipped"}:
            self.items.append(result)

    def to_dict(self) -> dict[str, Any]:
        """Return the whole result as JSON-ready data."""
        return {
            "event": self.event,
            "key": self.key,
            "total": self.total,
            "counts": dict(sorted(self.counts.items())),
            "replayed": self.replayed,
            "dry_run": self.dry_run,
            "items": [item.to_dict() for item in self.items],
        }
