"""The engine facade: validate the call, decide in the core, commit, then tell the listeners.

A write runs in three steps, and only step 2 touches the database for writing:

1. `DecisionCore.prepare`: read the project (and the facts the event's rules declare),
   decide, and seal the `Change` (no writes);
2. commit the change: compare-and-set on (id, state, version), audit entry, records;
3. log the entry and call the listeners (they observe, never veto).

If step 2 loses a race, the engine starts again from step 1 (at most `retries` times),
so the decision is always taken on the state that is written over. Bulk runs decide
through the same core (see `grantflow._bulk`).
"""

from __future__ import annotations

import logging
import sys
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING, Any, Self, overload

from pydantic import TypeAdapter, ValidationError

from grantflow import audit
from grantflow._bulk import BulkRunner, job_digest
from grantflow._bulk import input_digest as items_digest
from grantflow._canonical import freeze, plain, validate_json
from grantflow._decide import RECORD_EVENT_PREFIX, DecisionCore, Request, move_entry, outcome_of
from grantflow._log import get_logger
from grantflow._query import Order, ProjectPage, ProjectQuery, page, select
from grantflow.audit import Checkpoint, InclusionProof, TreeHead, VerifyReport
from grantflow.bulk import BulkItem, BulkResult, Worker
from grantflow.errors import ConcurrencyError, InvalidInput, ProjectNotFound, UnknownEvent
from grantflow.models import Actor, AuditEntry, DecisionBasis, Identifier, Outcome, Project
from grantflow.obligations import Obligation
from grantflow.persistence import Change, Move, ObligationIndex, ObligationRow, Store
from grantflow.policy import Policy
from grantflow.rules import RuleBook
from grantflow.states import PURCHASED_SERVICE, Lifecycle
from grantflow.timers import SweepResult
from grantflow.typing import Clock, Keep, Listener

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

__all__ = ["Engine", "utc_now"]

_log = get_logger()
_IDENTIFIER: TypeAdapter[str] = TypeAdapter(Identifier)
_EMPTY: Mapping[str, Any] = MappingProxyType({})


def utc_now() -> datetime:
    """The system clock, timezone-aware UTC: the engine's default `Clock`."""
    return datetime.now(UTC)


class Engine:
    """Runs projects through a lifecycle over a store; create one with `grantflow.open`.

    An engine holds no per-project state: the store is the single source of truth, and
    several engines (threads, processes, hosts) may share one database.
    """

    def __init__(
        self,
        store: Store,
        *,
        lifecycle: Lifecycle = PURCHASED_SERVICE,
        rules: RuleBook | None = None,
        policy: Policy | None = None,
        policies: Sequence[Policy] = (),
        clock: Clock = utc_now,
        listeners: Sequence[Listener] = (),
        retries: int = 3,
    ) -> None:
        self._store = store
        (rules or RuleBook()).check(lifecycle)
        self._core = DecisionCore(
            lifecycle=lifecycle,
            rules=rules or RuleBook(),
            policy=policy or Policy(),
            policies=policies,
        )
        self._clock = clock
        self._listeners = tuple(listeners)
        self._retries = retries
        #: The events `fire` takes (every event but the one that creates a project).
        self._fireable = frozenset(e.name for e in lifecycle.events if not e.creates)

    def __repr__(self) -> str:
        return f"Engine(store={self._store!r}, lifecycle={self.lifecycle.name!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- properties ----------------------------------------------------------------------

    @property
    def store(self) -> Store:
        """The store this engine writes to."""
        return self._store

    @property
    def lifecycle(self) -> Lifecycle:
        """The lifecycle this engine enforces."""
        return self._core.lifecycle

    @property
    def policy(self) -> Policy:
        """The policy new projects are pinned to."""
        return self._core.policy

    @property
    def rules(self) -> RuleBook:
        """A copy of the engine's rule book."""
        return self._core.rules

    def close(self) -> None:
        """Close the store."""
        self._store.close()

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call `listener` with every audit entry committed from now on; return an unsubscriber.

        Listeners observe after the commit; an exception in one is logged, never raised.
        """
        self._listeners = (*self._listeners, listener)

        def unsubscribe() -> None:
            self._listeners = tuple(x for x in self._listeners if x is not listener)

        return unsubscribe

    # -- reads ---------------------------------------------------------------------------

    def get(self, project_id: str) -> Project:
        """Return the project; `ProjectNotFound` if there is none."""
        project = self._store.load(_check_id(project_id, "project_id"))
        if project is None:
            raise ProjectNotFound(f"no project {project_id!r}", project_id=project_id)
        return project

    def history(self, project_id: str) -> list[AuditEntry]:
        """Return every audit entry of the project (accepted and refused), oldest first."""
        pid = _check_id(project_id, "project_id")
        entries = list(self._store.entries(pid))
        if not entries:
            raise ProjectNotFound(f"no project {project_id!r}", project_id=project_id)
        return entries

    def projects(
        self,
        *,
        state: str | None = None,
        hub: str | None = None,
        subtree: str | None = None,
        call: str | None = None,
        brand: str | None = None,
        provider: str | None = None,
        year: int | None = None,
        updated_since: datetime | None = None,
        due_before: date | None = None,
        order: Order = "id",
        limit: int = 100,
        cursor: str | None = None,
    ) -> ProjectPage:
        """Return one page of projects (without records) matching every filter given.

        Filters compare the project's state, its data fields ``hub``, ``call``,
        ``brand``, ``provider`` (text) and ``year`` (an integer), and its update time
        (`updated_since`, inclusive); `subtree` keeps projects whose hub is that hub or
        any hub below it; `due_before` those with an open obligation due before that
        day (as `due` lists them). `order` is ``id``, ``updated_at`` or ``created_at``, with a
        leading ``-`` for descending (ties by id). Pages are keyset-paginated: pass the
        page's `cursor` back, with the same filters, for the next one (``None`` on the
        last page). SQL stores answer in the database, with indexes.
        """
        query = ProjectQuery.build(
            cursor=cursor,
            state=state,
            hub=hub,
            subtree=subtree,
            call=call,
            brand=brand,
            provider=provider,
            year=year,
            updated_since=updated_since,
            due_before=due_before,
            order=order,
            limit=limit,
        )
        sql = sys.modules.get("grantflow.persistence.sql")  # loaded by whoever made one
        if sql is not None and isinstance(self._store, sql.SqlStore):
            from grantflow._query_sql import query_projects

            with self._store.connect() as conn:
                return page(query_projects(conn, self._store.tables, query), query)
        hubs = None
        if query.subtree is not None:
            from grantflow.records import Directory

            hubs = frozenset(Directory(self._store).hub_subtree(query.subtree))
        due = None
        if query.due_before is not None:
            due = frozenset(o.project_id for o in self.due(before=query.due_before))
        return page(select(self._store.projects(), query, hubs, due), query)

    def events(self, project_id: str, *, actor: Actor) -> list[str]:
        """Return the events with an edge from the project's state that `actor` may fire.

        Rules are not run (they usually need the evidence you will send); ask `can_fire`.
        """
        actor = _check_actor(actor)
        return self._core.permitted_events(self.get(project_id).state, actor)

    def policy_for(self, project: Project) -> Policy:
        """Return the policy `project` is pinned to (the engine's when it is unknown)."""
        return self._core.policy_for(project)

    # -- writes --------------------------------------------------------------------------

    def submit(
        self,
        *,
        actor: Actor,
        data: Mapping[str, Any] | None = None,
        project_id: str | None = None,
        evidence: Mapping[str, Any] | None = None,
    ) -> Outcome:
        """Submit a new project; when accepted it is in the lifecycle's first state.

        A refused submission is still audited (in the chain of `project_id`) but creates
        no project. Raises `ProjectExists` if `project_id` is taken.
        """
        request = Request(
            kind="submit",
            project_id=_check_id(project_id, "project_id") if project_id is not None else _new_id(),
            event=self.lifecycle.initial_event.name,
            actor=_check_actor(actor),
            evidence=_clean(evidence, "evidence"),
            data=_clean(data, "data"),
        )
        return self._run(request)

    def fire(
        self,
        project_id: str,
        event: str,
        *,
        actor: Actor,
        evidence: Mapping[str, Any] | None = None,
    ) -> Outcome:
        """Attempt `event` on the project; the outcome says whether it was accepted and why not.

        Every attempt is audited. A refusal is not an exception: call
        `Outcome.raise_for_refusal()` to make it one.
        """
        return self._run(self._fire_request(project_id, event, actor, evidence))

    def can_fire(
        self,
        project_id: str,
        event: str,
        *,
        actor: Actor,
        evidence: Mapping[str, Any] | None = None,
    ) -> Outcome:
        """Decide `event` exactly as `fire` would, and write nothing."""
        request = self._fire_request(project_id, event, actor, evidence)
        return self._core.preview(request, self._store, self._now())

    def add_record(
        self,
        project_id: str,
        kind: str,
        data: Mapping[str, Any],
        *,
        actor: Actor,
        record_id: str | None = None,
    ) -> Outcome:
        """Add a record (a review, an expenditure, ...) through the rules of ``record.<kind>``.

        The record is audited and hash-chained like a transition; the state does not change.
        """
        request = Request(
            kind="record",
            project_id=_check_id(project_id, "project_id"),
            event=RECORD_EVENT_PREFIX + _check_id(kind, "kind"),
            actor=_check_actor(actor),
            data=_clean(data, "data"),
            record_id=_check_id(record_id, "record_id") if record_id is not None else None,
        )
        return self._run(request)

    def migrate_policy(
        self,
        project_ids: Iterable[str],
        to_version: str,
        *,
        actor: Actor,
        reason: str,
        rubric_versions: Mapping[str, int] | None = None,
    ) -> list[Outcome]:
        """Move projects to another known policy version, one audited ``migrate`` entry each.

        Projects stay pinned to the policy (and rubric versions) they started under until
        moved here. The entry's data carries the new ``policy_version`` (and
        ``rubric_versions`` when given), so replay reproduces the move.
        """
        actor = _check_actor(actor)
        if not self._core.has_policy(to_version):
            raise InvalidInput(f"unknown policy version {to_version!r}", field="to_version")
        if not isinstance(reason, str) or not reason.strip():
            raise InvalidInput("a policy migration needs a reason", field="reason")
        patch: dict[str, Any] = {"policy_version": to_version}
        if rubric_versions is not None:
            patch["rubric_versions"] = {str(k): int(v) for k, v in rubric_versions.items()}
        outcomes = []
        for raw in project_ids:
            pid = _check_id(raw, "project_id")

            def prepare(pid: str = pid) -> Change:
                return self._core.migration(self.get(pid), patch, actor, reason, self._now())

            outcomes.append(self._commit_retrying(pid, "migrate_policy", prepare))
        return outcomes

    # -- bulk ----------------------------------------------------------------------------

    def fire_many(
        self,
        event: str,
        items: Iterable[str | tuple[str, Mapping[str, Any] | None] | BulkItem],
        *,
        actor: Actor,
        idempotency_key: str | None = None,
        input_digest: str | None = None,
        chunk_size: int = 500,
        stop_on_error: bool = False,
        dry_run: bool = False,
        keep: Keep = "failures",
        progress: Callable[[int], None] | None = None,
        lease_seconds: float = 60.0,
        worker: Worker | None = None,
    ) -> BulkResult:
        """Fire `event` on many projects; every item gets a result, none stops the rest.

        Each item is decided exactly as the single call would decide it after the items
        before it (the differential tests hold the two equal). `event` may also be
        ``record.<kind>``: each item's evidence is then the data of a record to add, as
        `add_record` takes it (reviews, expenditures, ...). With the creating event
        (``submit``), each item's evidence is the new project's data, as `submit` takes
        it; an id already taken is reported as ``invalid``.

        Items are project ids, ``(id, evidence)`` pairs or `BulkItem`; they are read
        lazily, `chunk_size` at a time, and each chunk is committed in one transaction
        together with the job's progress. With an `idempotency_key` (one is made up when
        omitted; it is on the result), running again with the same key and input returns
        the stored result and writes nothing, and a run that crashed resumes where it
        stopped. The same key with other input raises `IdempotencyKeyMismatch`; while
        another process runs the key, `IdempotencyKeyInUse`.

        Args:
            event: the event to fire on every item.
            items: the input, consumed once.
            actor: who fires.
            idempotency_key: names the job, for replay and resume.
            input_digest: a digest of the whole input when the caller has one (a file's
                sha256); lists are digested automatically; other iterables are checked
                chunk by chunk.
            chunk_size: items per chunk (and per transaction when nothing conflicts).
            stop_on_error: stop after the first chunk with an item not applied.
            dry_run: decide every item exactly as the real run would, write nothing.
            keep: ``"failures"`` keeps only results that were not applied; ``"all"``
                keeps every result of this run.
            progress: called with the number of items just finished.
            lease_seconds: how long a claimed chunk stays ours without progress.
            worker: join a shared run (several processes, one key).
        """
        event = _check_id(event, "event")
        self._core.request_kind(event)  # UnknownEvent before anything is read
        if event.startswith(RECORD_EVENT_PREFIX):
            _check_id(event.removeprefix(RECORD_EVENT_PREFIX), "event")
        actor = _check_actor(actor)
        if isinstance(items, str | bytes | Mapping) or not isinstance(items, Iterable):
            raise InvalidInput(
                f"items must be an iterable of bulk items, not {type(items).__name__}",
                field="items",
            )
        if not 1 <= chunk_size <= 100_000:
            raise InvalidInput("chunk_size must be between 1 and 100000", field="chunk_size")
        if input_digest is None and isinstance(items, Sequence):
            input_digest = items_digest(event, actor, items)
        key = (
            _check_id(idempotency_key, "idempotency_key")
            if idempotency_key is not None
            else f"bulk-{uuid.uuid4().hex}"
        )
        runner = BulkRunner(
            self._core,
            self._store,
            event,
            actor,
            now=self._now,
            publish=self._publish_batch,
            observed=self._observed,
            retries=self._retries,
            key=key,
            digest=job_digest(event, actor, (input_digest or "").encode()),
            chunk_size=chunk_size,
            stop_on_error=stop_on_error,
            keep=keep,
            progress=progress,
            lease=lease_seconds,
            worker=worker,
            dry_run=dry_run,
        )
        return runner.dry_run(items) if dry_run else runner.run(items)

    # -- time ----------------------------------------------------------------------------

    def obligations(self, project_id: str) -> list[Obligation]:
        """Return the project's due dates (open, met or waived), derived from the project.

        Declared by the lifecycle (`Lifecycle.obligations`), counted on the working-day
        calendar of the project's pinned policy. See docs/time.md.
        """
        project = self.get(project_id)
        return list(self._core.schedule.derive(project, self.policy_for(project)))

    def due(
        self,
        *,
        before: date | datetime | None = None,
        overdue: bool = False,
        hub: str | None = None,
        subtree: bool = False,
        kind: str | Sequence[str] | None = None,
    ) -> list[Obligation]:
        """Return the open obligations of every project, by due date, then project and key.

        A SQL store answers from its obligation index (kept in the transaction of each
        entry); another store derives them project by project.

        Args:
            before: only those due before this day (a time counts in the policy's zone).
            overdue: only those whose due date has passed (by the engine clock).
            hub: only projects of this hub (and, with `subtree`, of the hubs below it).
            subtree: include the hubs below `hub` (`grantflow.records.Directory`).
            kind: only obligations of this kind (or these kinds).
        """
        kinds = self._check_kinds(kind)
        today = self._today(self._now())
        last: date | None = None
        if before is not None:
            if isinstance(before, datetime):
                if before.tzinfo is None:
                    raise InvalidInput("before must be a date or an aware datetime", field="before")
                before = self._today(before)
            if not isinstance(before, date):
                raise InvalidInput("before must be a date or an aware datetime", field="before")
            last = before - timedelta(days=1)
        if overdue:
            yesterday = today - timedelta(days=1)
            last = yesterday if last is None else min(last, yesterday)
        hubs: tuple[str, ...] = ()
        if hub is not None:
            root = _check_id(hub, "hub")
            if subtree:
                from grantflow.records import Directory

                hubs = tuple(Directory(self._store).hub_subtree(root))
            else:
                hubs = (root,)
        elif subtree:
            raise InvalidInput("subtree needs a hub", field="subtree")
        if isinstance(self._store, ObligationIndex):
            rows = self._store.obligation_rows(status="open", due_by=last, kinds=kinds, hubs=hubs)
            return [Obligation.from_row(r) for r in rows]
        found = [
            o
            for p in self._store.projects()
            for o in self.obligations(p.id)
            if o.status == "open"
            and (last is None or o.due_on <= last)
            and (not kinds or o.kind in kinds)
            and (not hubs or o.hub in hubs)
        ]
        return sorted(found, key=lambda o: (o.due_on, o.project_id, o.key))

    def sweep(
        self,
        now: datetime | None = None,
        *,
        dry_run: bool = False,
        chunk_size: int = 500,
        lease_seconds: float = 60.0,
        progress: Callable[[int], None] | None = None,
    ) -> SweepResult:
        """Fire every timer due at `now` (default: the engine clock), each exactly once.

        Reminders, the publicity period's close, termination proposals (the lifecycle's
        `Lifecycle.timers`) go through the normal rules and audit as `TIMER_ACTOR`, in
        bulk runs keyed by the (project, timer, due date) occurrences they fire: running
        it again, after a crash, or on several workers at once fires nothing twice.
        Entries are stamped with `now`. With `dry_run`, list what is due, fire nothing.
        """
        from grantflow._sweep import Sweep

        if now is None:
            moment = self._now()
        elif not isinstance(now, datetime) or now.tzinfo is None:
            raise InvalidInput("now must be a timezone-aware datetime", field="now")
        else:
            moment = now.astimezone(UTC)
        if not 1 <= chunk_size <= 100_000:
            raise InvalidInput("chunk_size must be between 1 and 100000", field="chunk_size")
        sweep = Sweep(
            self._core,
            self._store,
            moment,
            publish=self._publish,
            retries=self._retries,
            chunk_size=chunk_size,
            lease=lease_seconds,
            progress=progress,
        )
        return sweep.run(dry_run=dry_run)

    def reindex_obligations(self) -> int:
        """Rebuild the store's obligation index from every project; return the rows written.

        Needed once after upgrading a database to the schema with the index (projects
        from before have no rows), and after changing the calendar or a policy's durations.
        A store without an index has nothing to rebuild (returns 0).
        """
        if not isinstance(self._store, ObligationIndex):
            return 0
        written = 0
        page: dict[str, tuple[ObligationRow, ...]] = {}
        for row in self._store.projects():
            project = self._store.load(row.id)
            if project is None:
                continue
            page[project.id] = self._core.schedule.rows(project, self.policy_for(project))
            written += len(page[project.id])
            if len(page) >= 500:
                self._store.index_obligations(page)
                page = {}
        if page:
            self._store.index_obligations(page)
        return written

    def _check_kinds(self, kind: str | Sequence[str] | None) -> tuple[str, ...]:
        if kind is None:
            return ()
        kinds = (kind,) if isinstance(kind, str) else tuple(kind)
        known = {o.name for o in self.lifecycle.obligations}
        for name in kinds:
            if name not in known:
                raise InvalidInput(
                    f"unknown obligation kind {name!r}; the lifecycle has: "
                    + (", ".join(sorted(known)) or "none"),
                    field="kind",
                )
        return kinds

    def _today(self, moment: datetime) -> date:
        from zoneinfo import ZoneInfo

        return moment.astimezone(ZoneInfo(self.policy.timezone)).date()

    # -- integrity -----------------------------------------------------------------------

    @property
    def decision_bases(self) -> frozenset[DecisionBasis]:
        """What this engine decides under: its lifecycle, rule book and each policy it knows.

        Every audit entry it writes records one of them (``entry.decided_under``); pass
        them to `verify` as `expect` to require that every decision was taken so.
        """
        return self._core.bases

    def verify(
        self,
        *,
        checkpoint: Checkpoint | TreeHead | str | bytes | None = None,
        public_key: Ed25519PublicKey | None = None,
        origin: str | None = None,
        expect: Iterable[DecisionBasis] | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> VerifyReport:
        """Check every stored fact against the audit chains, under this engine's lifecycle.

        Same as `grantflow.audit.verify` on this engine's store with its lifecycle: every
        chain's hashes and steps, every project and record row against the replay, and
        with `checkpoint` (a `Checkpoint`, a trusted `TreeHead`, or a signed checkpoint's
        text with `public_key`) that the store still holds what it covered.
        """
        return audit.verify(
            self._store,
            checkpoint=checkpoint,
            public_key=public_key,
            origin=origin,
            lifecycle=self.lifecycle,
            expect=expect,
            progress=progress,
        )

    @overload
    def checkpoint(self) -> Checkpoint: ...

    @overload
    def checkpoint(
        self, *, sign_with: Ed25519PrivateKey, origin: str = audit.DEFAULT_ORIGIN
    ) -> str: ...

    def checkpoint(
        self,
        *,
        sign_with: Ed25519PrivateKey | None = None,
        origin: str = audit.DEFAULT_ORIGIN,
    ) -> Checkpoint | str:
        """Take a checkpoint to keep somewhere safe, outside the database.

        With `sign_with` (the purchaser's Ed25519 key): sequence the audit log, take its
        tree head, and return it signed (`grantflow.signing`; the text a later
        ``verify(checkpoint=text, public_key=...)`` proves the log against). Without it:
        a `Checkpoint`, a Merkle root over every chain head, stored in the database too.
        """
        if sign_with is None:
            return audit.checkpoint(self._store, at=self._now())
        from grantflow.signing import sign_checkpoint  # needs cryptography; import it late

        head = audit.tree_head(self._store, origin=origin, at=self._now())
        return sign_checkpoint(head, sign_with)

    def prove(self, project_id: str, seq: int, *, size: int | None = None) -> InclusionProof:
        """Return the inclusion proof of entry `seq` of the project in the audit log.

        In the tree of `size` entries (a checkpoint's size); without it, the log is
        sequenced first and the proof is in the tree of all of it.
        """
        pid = _check_id(project_id, "project_id")
        if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1:
            raise InvalidInput("seq must be a positive integer", field="seq", project_id=pid)
        if size is None:
            size = audit.tree_head(self._store, at=self._now()).size
        return audit.inclusion_proof(self._store, pid, seq, size=size)

    def replay(self, project_id: str) -> Project:
        """Rebuild the project from its audit entries alone (it should equal `get`).

        Every entry is checked against the lifecycle on the way (`grantflow.audit.replay`);
        `EvidenceError` names the first that does not follow it.
        """
        project = audit.replay(self.history(project_id), lifecycle=self.lifecycle)
        if project is None:
            raise ProjectNotFound(f"no project {project_id!r}", project_id=project_id)
        return project

    def state_at(self, project_id: str, when: datetime) -> str | None:
        """Return the project's state at `when` (``None`` if it did not exist yet)."""
        if not isinstance(when, datetime) or when.tzinfo is None:
            raise InvalidInput("when must be a timezone-aware datetime", field="when")
        # An entry is never dated before the entry before it, so the entries
        # up to `when` are a prefix of the accepted ones, as `counts_at` counts them.
        history = self.history(project_id)
        project = audit.replay((e for e in history if e.at <= when), lifecycle=self.lifecycle)
        return project.state if project else None

    def counts_at(self, when: datetime) -> dict[str, int]:
        """Return how many projects were in each state at `when` (states with none omitted)."""
        if not isinstance(when, datetime) or when.tzinfo is None:
            raise InvalidInput("when must be a timezone-aware datetime", field="when")
        return self._store.counts_at(when.astimezone(UTC))

    # -- internals -----------------------------------------------------------------------

    def _now(self) -> datetime:
        now = self._clock()
        if type(now) is datetime and now.tzinfo is UTC:
            return now  # the default clock's reading: UTC already
        if not isinstance(now, datetime) or now.tzinfo is None:
            raise InvalidInput("the engine clock returned a naive datetime", field="clock")
        return now.astimezone(UTC)

    def _fire_request(
        self, project_id: str, event: str, actor: Actor, evidence: Mapping[str, Any] | None
    ) -> Request:
        pid = _check_id(project_id, "project_id")
        if type(event) is not str or event not in self._fireable:
            event = self._fire_event(pid, event)
        # kind, project_id, event, actor, evidence: positional (keywords cost a fire 2 %)
        return Request("fire", pid, event, _check_actor(actor), _clean(evidence, "evidence"))

    def _fire_event(self, pid: str, event: object) -> str:
        """`event` checked the long way: `InvalidInput`, or `UnknownEvent` unless fireable."""
        name = _check_id(event, "event")
        if not self.lifecycle.has_event(name) or self.lifecycle.event(name).creates:
            raise UnknownEvent(
                f"lifecycle {self.lifecycle.name!r} has no event {name!r} to fire"
                + (" (use submit)" if self.lifecycle.has_event(name) else ""),
                project_id=pid,
                event=name,
            )
        return name

    def _run(self, request: Request) -> Outcome:
        """Decide and commit `request`, deciding again on fresh state after a lost race."""
        # The first attempt inline (most never race); `_commit_retrying` takes the rest.
        store = self._store
        change = self._core.prepare(request, store, self._now())
        try:
            store.commit(change)
        except ConcurrencyError:
            _log.debug("grantflow.retry", project_id=request.project_id, transition=request.event)
            return self._commit_retrying(
                request.project_id,
                request.event,
                lambda: self._core.prepare(request, self._store, self._now()),
                tried=1,
            )
        return self._committed(change)

    def _committed(self, change: Change) -> Outcome:
        """The outcome of a committed change, its entry published if anyone reads it."""
        if self._observed():
            self._publish((change.entry,))
        return outcome_of(change)

    def _commit_retrying(
        self, project_id: str, event: str, prepare: Callable[[], Change], *, tried: int = 0
    ) -> Outcome:
        """Prepare and commit until a commit wins; `tried` attempts were lost already."""
        for _attempt in range(tried, self._retries + 1):
            change = prepare()
            try:
                self._store.commit(change)
            except ConcurrencyError:
                _log.debug("grantflow.retry", project_id=project_id, transition=event)
                continue
            return self._committed(change)
        raise ConcurrencyError(
            f"project {project_id!r} kept changing; gave up after {self._retries + 1} attempts",
            project_id=project_id,
            event=event,
        )

    def _publish(self, entries: Sequence[AuditEntry | Move]) -> None:
        """Log committed entries and hand them to the listeners (who observe, never veto)."""
        logging_on = _log.enabled(logging.INFO)  # off: build nothing
        for item in entries:
            entry = item if isinstance(item, AuditEntry) else move_entry(item)
            if logging_on:
                _log.info(
                    "grantflow.audit",
                    project_id=entry.project_id,
                    seq=entry.seq,
                    transition=entry.event,
                    from_state=entry.from_state,
                    to_state=entry.to_state,
                    accepted=entry.accepted,
                    actor=entry.actor.id,
                    refusals=[r.code for r in entry.refusals],
                    hash=entry.hash,
                )
            for listener in self._listeners:
                try:
                    listener(entry)
                except Exception as exc:  # listeners observe; one failing must not undo a commit
                    _log.error("grantflow.listener_error", listener=repr(listener), error=repr(exc))

    def _observed(self) -> bool:
        """Whether anyone reads committed entries: a listener, or the audit log at INFO."""
        return bool(self._listeners) or _log.enabled(logging.INFO)

    def _publish_batch(self, entries: Sequence[AuditEntry | Move]) -> None:
        """Log one bulk commit's entries as one record, then tell the listeners of each.

        One ``grantflow.audit_batch`` record per committed batch, its message one line
        per entry and its ``entries`` attribute one dict per entry: the audit log of a
        bulk run costs a record per chunk, not per item (see docs/embedding.md).
        """
        if entries and _log.enabled(logging.INFO):
            _log.info(
                "grantflow.audit_batch",
                transition=entries[0].event,
                count=len(entries),
                entries=_EntryLines(entries),
            )
        if not self._listeners:
            return
        for item in entries:
            entry = item if isinstance(item, AuditEntry) else move_entry(item)
            for listener in self._listeners:
                try:
                    listener(entry)
                except Exception as exc:  # listeners observe; one failing must not undo a commit
                    _log.error("grantflow.listener_error", listener=repr(listener), error=repr(exc))


class _EntryLines(Sequence[Mapping[str, Any]]):
    """The entries of a batch record: one dict per entry on access, one line each in text."""

    __slots__ = ("_entries",)

    def __init__(self, entries: Sequence[AuditEntry | Move]) -> None:
        # A bulk run's moves are rendered as the entries they stand for (same fields).
        self._entries = tuple(entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [_entry_fields(e) for e in self._entries[index]]
        return _entry_fields(self._entries[index])

    def __repr__(self) -> str:
        # What the record's message shows: rendered only when a handler formats it.
        return "".join(
            f"\n  {e.project_id} seq={e.seq} {e.from_state}->{e.to_state} "
            f"accepted={e.accepted} actor={e.actor.id} "
            f"refusals={','.join(r.code for r in e.refusals) or '-'} hash={e.hash}"
            for e in self._entries
        )


def _entry_fields(entry: AuditEntry | Move) -> dict[str, Any]:
    return {
        "project_id": entry.project_id,
        "seq": entry.seq,
        "transition": entry.event,
        "from_state": entry.from_state,
        "to_state": entry.to_state,
        "accepted": entry.accepted,
        "actor": entry.actor.id,
        "refusals": [r.code for r in entry.refusals],
        "hash": entry.hash,
    }


def _check_id(value: object, field: str) -> str:
    if type(value) is str and 0 < len(value) <= 128 and value.isascii() and value.isprintable():
        return value  # what the validator accepts, checked without building its error path
    try:
        return _IDENTIFIER.validate_python(value, strict=True)
    except ValidationError as exc:
        raise InvalidInput(
            f"{field}: {exc.errors()[0]['msg']}", field=field, errors=exc.errors()
        ) from exc


def _check_actor(actor: object) -> Actor:
    if not isinstance(actor, Actor):
        raise InvalidInput(f"actor must be an Actor, not {type(actor).__name__}", field="actor")
    return actor


def _clean(value: Mapping[str, Any] | None, field: str) -> Mapping[str, Any]:
    if value is None:
        return _EMPTY
    if not isinstance(value, Mapping):
        raise InvalidInput(f"{field} must be a mapping", field=field)
    validate_json(value, field=field)
    cleaned: Mapping[str, Any] = freeze(plain(value))
    return cleaned


def _new_id() -> str:
    return uuid.uuid4().hex
