"""The timer sweep behind `Engine.sweep`: find due occurrences, fire them through bulk runs.

1. Candidates: the projects with an open obligation due by the furthest reminder lead,
   read from the store's obligation index (SQL), or every project (a store without one).
2. For each candidate, the occurrences due at `now` (`Schedule.timers_due`): a record
   timer has not fired while the project lacks its record; an event timer has not fired
   while the chain holds no entry naming the occurrence.
3. One bulk run per action (``record.reminder``, an event, ...) as `TIMER_ACTOR`, through
   `BulkRunner`: chunked transactions, progress committed with them, resume after a
   crash. The job's idempotency key is derived from the (project, timer, due date)
   occurrences it fires, and its run id from the key, so workers that list the same
   occurrences share one job and split its chunks (leases, ``SKIP LOCKED`` on
   PostgreSQL). Before each item is decided, on the state it is decided on, the
   occurrence is checked again (`BulkRunner`'s ``skip``): one fired meanwhile, by
   another worker or an earlier crashed run, is skipped and writes nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from grantflow._bulk import BulkRunner, input_digest, job_digest
from grantflow._decide import DecisionCore
from grantflow.bulk import BulkItem, Worker
from grantflow.calendar import WorkingCalendar
from grantflow.errors import CalendarUnavailable
from grantflow.models import AuditEntry, Project
from grantflow.obligations import TimerDue, local_date
from grantflow.persistence import JobStore, Move, ObligationIndex, Store, StoreReader, owner_id
from grantflow.timers import TIMER_ACTOR, SweepResult

__all__ = ["Sweep"]

_PAGE = 500


class Sweep:
    """One `Engine.sweep` call at time `now`."""

    def __init__(
        self,
        core: DecisionCore,
        store: Store,
        now: datetime,
        *,
        publish: Callable[[Sequence[AuditEntry | Move]], None],
        retries: int,
        chunk_size: int,
        lease: float,
        progress: Callable[[int], None] | None,
    ) -> None:
        self._core = core
        self._schedule = core.schedule
        self._store = store
        self._now = now
        self._publish = publish
        self._retries = retries
        self._size = chunk_size
        self._lease = lease
        self._progress = progress

    # -- what is due ---------------------------------------------------------------------

    def due(self) -> list[TimerDue]:
        """Every occurrence due at `now` that has not fired, by project then timer order."""
        if not self._schedule.timers:
            return []
        found: list[TimerDue] = []
        for project in self._candidates():
            policy = self._core.policy_for(project)
            occurrences = self._schedule.timers_due(project, policy, self._now)
            if any(not d.action.startswith("record.") for d in occurrences):
                fired = _event_firings(self._store, project.id)
                occurrences = [d for d in occurrences if d.occurrence not in fired]
            found.extend(occurrences)
        return found

    def _candidates(self) -> Iterator[Project]:
        store = self._store
        if not isinstance(store, ObligationIndex):
            for row in store.projects():
                project = store.load(row.id)
                if project is not None:
                    yield project
            return
        rows = store.obligation_rows(status="open", due_by=self._horizon())
        ids = sorted({r.project_id for r in rows})
        for start in range(0, len(ids), _PAGE):
            page = ids[start : start + _PAGE]
            if isinstance(store, JobStore):
                loaded: Mapping[str, Project] = store.load_many(page)
            else:  # pragma: no cover - every SQL store is a JobStore
                loaded = {pid: p for pid in page if (p := store.load(pid)) is not None}
            yield from (loaded[pid] for pid in page if pid in loaded)

    def _horizon(self) -> date:
        """The last due date a timer may look at today: today plus the longest lead.

        Taken over every policy the core knows (each may count other days); a day of
        slack covers policies in other time zones.
        """
        furthest = local_date(self._now, self._core.policy)
        for policy in self._core.policies:
            today = local_date(self._now, policy)
            lead = self._schedule.lead_days(policy)
            calendar = WorkingCalendar.for_policy(policy)
            try:
                last = calendar.add_working_days(today, lead)
            except CalendarUnavailable:
                last = WorkingCalendar(
                    holidays=policy.holidays, workdays=policy.workdays, official=False
                ).add_working_days(today, lead)
            furthest = max(furthest, last)
        return furthest + timedelta(days=1)

    # -- firing --------------------------------------------------------------------------

    def run(self, *, dry_run: bool = False) -> SweepResult:
        """Fire every due occurrence (or only list them, with `dry_run`)."""
        due = self.due()
        result = SweepResult(at=self._now, due=due, dry_run=dry_run)
        if dry_run:
            return result
        by_action: dict[str, list[TimerDue]] = {}
        for occurrence in due:
            by_action.setdefault(occurrence.action, []).append(occurrence)
        for action, occurrences in sorted(by_action.items()):
            result.results[action] = self._fire(action, occurrences)
        return result

    def _fire(self, action: str, occurrences: list[TimerDue]) -> Any:
        items = [
            BulkItem(project_id=d.project_id, evidence=self._evidence(d), row=i + 1)
            for i, d in enumerate(sorted(occurrences, key=lambda d: (d.project_id, d.occurrence)))
        ]
        names = "\n".join(f"{i.project_id}\x00{_occurrence(i.evidence)}" for i in items)
        key = "sweep-" + hashlib.sha256(f"{action}\n{names}".encode()).hexdigest()[:40]
        digest = input_digest(action, TIMER_ACTOR, items)
        runner = BulkRunner(
            self._core,
            self._store,
            action,
            TIMER_ACTOR,
            now=lambda: self._now,
            publish=self._publish,
            retries=self._retries,
            key=key,
            digest=job_digest(action, TIMER_ACTOR, digest.encode()),
            chunk_size=self._size,
            stop_on_error=False,
            keep="failures",
            progress=self._progress,
            lease=self._lease,
            # Workers listing the same occurrences join one run and share its chunks.
            worker=Worker(run_id=key, owner=owner_id()),
            skip=self._fired_meanwhile,
        )
        return runner.run(items)

    def _evidence(self, occurrence: TimerDue) -> dict[str, Any]:
        data = occurrence.data()
        if occurrence.action.startswith("record."):
            return data
        timer = self._schedule.timer(occurrence.timer)
        label = timer.label if timer is not None and timer.label else occurrence.timer
        return {"timer": data, "reason": f"{label} ({occurrence.occurrence})"}

    def _fired_meanwhile(self, item: BulkItem, reader: StoreReader) -> str | None:
        """Why the item's occurrence must not fire now; ``None`` if it still must."""
        project = reader.load(item.project_id)
        if project is None:
            return "no such project"
        name = _occurrence(item.evidence)
        policy = self._core.policy_for(project)
        due = self._schedule.timers_due(project, policy, self._now)
        if not any(d.occurrence == name for d in due):
            return f"timer {name} fired already or is no longer due"
        if "timer" in item.evidence and name in _event_firings(reader, project.id):
            return f"timer {name} fired already"
        return None


def _occurrence(evidence: Mapping[str, Any]) -> str:
    timer = evidence.get("timer")
    source = timer if isinstance(timer, Mapping) else evidence
    return str(source.get("occurrence", ""))


def _event_firings(reader: StoreReader, project_id: str) -> frozenset[str]:
    """Occurrences an event timer fired on the project (accepted or not), from its chain."""
    found = set()
    for entry in reader.entries(project_id):
        timer = entry.evidence.get("timer") if entry.actor.id == TIMER_ACTOR.id else None
        if isinstance(timer, Mapping) and "occurrence" in timer:
            found.add(str(timer["occurrence"]))
    return frozenset(found)
