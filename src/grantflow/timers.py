"""Timers: what grantflow does by itself when dates pass, and the sweep that does it.

`Engine.sweep` finds every timer occurrence due (a reminder N working days before a due
date, the publicity period closing, a termination proposal once a rectification is
overdue), and fires each through the normal rules and audit, in bulk, as the system
actor `TIMER_ACTOR`. Each (project, timer, due date) occurrence fires once: its record
carries the occurrence's name, the rules refuse a second one, and the sweep skips an
occurrence that fired since it was listed. See docs/time.md.

>>> TIMER_ACTOR.id, sorted(TIMER_ACTOR.roles)
('grantflow-timer', ['system'])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from grantflow.bulk import BulkResult
from grantflow.models import Actor
from grantflow.obligations import TimerDue
from grantflow.rules.timers import SYSTEM_ROLE

__all__ = ["SYSTEM_ROLE", "SweepResult", "TIMER_ACTOR", "TimerDue"]

#: The named system actor timers act as; it is in every timer entry of the audit.
TIMER_ACTOR = Actor(id="grantflow-timer", roles=frozenset({SYSTEM_ROLE}))


@dataclass(slots=True)
class SweepResult:
    """What one sweep found due and what firing it did, per action.

    Attributes:
        at: the time the timers were judged at (and the entries are stamped with).
        due: the occurrences found due when the sweep started, by project and timer.
        results: the bulk result of each action (``record.reminder``, an event, ...).
        dry_run: nothing was fired.
    """

    at: datetime
    due: list[TimerDue] = field(default_factory=list)
    results: dict[str, BulkResult] = field(default_factory=dict)
    dry_run: bool = False

    def count(self, status: str) -> int:
        """How many occurrences ended with `status` (``applied`` = fired) over all actions."""
        return sum(r.counts.get(status, 0) for r in self.results.values())

    @property
    def fired(self) -> int:
        """How many occurrences this sweep's jobs fired (accepted).

        A job is shared by the workers that listed the same occurrences (and resumed
        after a crash): its tally counts what each of them fired.
        """
        return self.count("applied")

    @property
    def ok(self) -> bool:
        """True when every occurrence fired or was skipped as fired meanwhile."""
        return all(r.ok for r in self.results.values())

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready data."""
        return {
            "at": self.at.isoformat(),
            "dry_run": self.dry_run,
            "due": [{"project_id": d.project_id, "action": d.action, **d.data()} for d in self.due],
            "fired": self.fired,
            "ok": self.ok,
            "results": {action: r.to_dict() for action, r in sorted(self.results.items())},
        }
