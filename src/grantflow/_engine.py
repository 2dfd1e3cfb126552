"""The engine: decide with rules, commit with a compare-and-set, then tell the listeners.

A fire runs in four steps, and only step 3 touches the database for writing:

1. read the project snapshot and look up the facts the event's rules declare;
2. decide: lifecycle edge and roles, then every rule (pure; no I/O);
3. commit one `Change`: compare-and-set on (id, state, version), audit entry, records;
4. log the entry through structlog and call the listeners (they observe, never veto).

If step 3 loses a race, the engine starts again from step 1 (at most `retries` times),
so the decision is always taken on the state that is written over.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from types import MappingProxyType, TracebackType
from typing import Any, Self

import structlog
from pydantic import TypeAdapter, ValidationError

from grantflow._bulk import BulkRunner, Keep, job_digest
from grantflow._bulk import _chunks as bulk_chunks
from grantflow._bulk import input_digest as bulk_input_digest
from grantflow._canonical import freeze, lenient, plain, thaw, validate_json
from grantflow._machine import TransitionTable
from grantflow.audit import (
    Checkpoint,
    Problem,
    VerifyReport,
    check_chain,
    leaf_hash,
    merkle_root,
    replay,
    seal,
)
from grantflow.bulk import BulkItem, BulkResult, ItemResult, ItemStatus, Worker
from grantflow.errors import (
    ConcurrencyError,
    InvalidInput,
    ProjectNotFound,
    UnknownEvent,
)
from grantflow.models import (
    Actor,
    AuditEntry,
    Identifier,
    Outcome,
    Project,
    Record,
    Refusal,
    trusted,
)
from grantflow.persistence import Change, Store, StoreReader
from grantflow.policy import Policy
from grantflow.rules import PASS, FactRequest, RuleBook, RuleContext, Verdict, refuse, rule_name
from grantflow.states import PURCHASED_SERVICE, Lifecycle

__all__ = ["Clock", "Engine", "Listener"]

#: A function returning the current time, timezone-aware.
Clock = Callable[[], datetime]
#: Called with every audit entry after it is committed.
Listener = Callable[[AuditEntry], None]

_log = structlog.get_logger("grantflow")
_IDENTIFIER: TypeAdapter[str] = TypeAdapter(Identifier)
RECORD_EVENT_PREFIX = "record."
_EMPTY: Mapping[str, Any] = MappingProxyType({})


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _check_id(value: object, field: str) -> str:
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
        clock: Clock = _utc_now,
        listeners: Sequence[Listener] = (),
        retries: int = 3,
    ) -> None:
        self._store = store
        self._lifecycle = lifecycle
        self._table = TransitionTable(lifecycle)
        self._rules = (rules or RuleBook()).copy()
        self._rules.check(lifecycle)
        self._roles = {e.name: e.roles for e in lifecycle.events}
        self._book_cache: dict[str, tuple[tuple[Any, ...], tuple[Any, ...], tuple[Any, ...]]] = {}
        self._policy = policy or Policy()
        self._policies = {p.version: p for p in (*policies, self._policy)}
        self._clock = clock
        self._listeners = tuple(listeners)
        self._retries = retries

    def __repr__(self) -> str:
        return f"Engine(store={self._store!r}, lifecycle={self._lifecycle.name!r})"

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
        return self._lifecycle

    @property
    def policy(self) -> Policy:
        """The policy new projects are pinned to."""
        return self._policy

    @property
    def rules(self) -> RuleBook:
        """A copy of the engine's rule book."""
        return self._rules.copy()

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

    def events(self, project_id: str, *, actor: Actor) -> list[str]:
        """Return the events with an edge from the project's state that `actor` may fire.

        Rules are not run (they usually need the evidence you will send); ask `can_fire`.
        """
        actor = _check_actor(actor)
        project = self.get(project_id)
        return [
            name
            for name in self._table.events_from(project.state)
            if self._role_refusal(name, actor) is None
        ]

    def policy_for(self, project: Project) -> Policy:
        """Return the policy `project` is pinned to (the engine's when it is unknown)."""
        return self._policies.get(str(project.data.get("policy_version", "")), self._policy)

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
        actor = _check_actor(actor)
        pid = _check_id(project_id, "project_id") if project_id is not None else _new_id()
        clean_data = _clean(data, "data")
        clean_evidence = _clean(evidence, "evidence")
        event = self._lifecycle.initial_event
        for _attempt in self._attempts(pid, event.name):
            version, head = self._store.chain_tip(pid)
            now = self._now()
            draft = self._draft(pid, clean_data, version, head, now)
            outcome = self._attempt(draft, event.name, actor, clean_evidence, now, None)
            if outcome is not None:
                return outcome
        raise AssertionError("unreachable")  # pragma: no cover

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
        pid, actor, clean_evidence = self._check_fire(project_id, event, actor, evidence)
        for _attempt in self._attempts(pid, event):
            project = self.get(pid)
            outcome = self._attempt(project, event, actor, clean_evidence, self._now(), None)
            if outcome is not None:
                return outcome
        raise AssertionError("unreachable")  # pragma: no cover

    def can_fire(
        self,
        project_id: str,
        event: str,
        *,
        actor: Actor,
        evidence: Mapping[str, Any] | None = None,
    ) -> Outcome:
        """Decide `event` exactly as `fire` would, and write nothing."""
        pid, actor, clean_evidence = self._check_fire(project_id, event, actor, evidence)
        project = self.get(pid)
        now = self._now()
        target, verdict, _effects = self._decide(project, event, actor, clean_evidence, now)
        return Outcome(
            project_id=pid,
            event=event,
            accepted=verdict.passed,
            from_state=project.state,
            state=target if verdict.passed else project.state,
            refusals=verdict.refusals,
        )

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
        pid = _check_id(project_id, "project_id")
        kind = _check_id(kind, "kind")
        actor = _check_actor(actor)
        clean_data = _clean(data, "data")
        rid = _check_id(record_id, "record_id") if record_id is not None else None
        event = RECORD_EVENT_PREFIX + kind
        for _attempt in self._attempts(pid, event):
            project = self.get(pid)
            record, evidence = self._record_inputs(project, kind, clean_data, rid)
            outcome = self._attempt(project, event, actor, evidence, self._now(), record)
            if outcome is not None:
                return outcome
        raise AssertionError("unreachable")  # pragma: no cover

    def _draft(
        self, project_id: str, data: Mapping[str, Any], version: int, head: str, now: datetime
    ) -> Project:
        """The project a submission proposes: no state yet, pinned to the current policy."""
        return Project(
            id=project_id,
            state="",
            version=version,
            head=head,
            data={**data, "policy_version": self._policy.version},
            created_at=now,
            updated_at=now,
        )

    def _record_inputs(
        self, project: Project, kind: str, data: Mapping[str, Any], record_id: str | None
    ) -> tuple[Record, Mapping[str, Any]]:
        """The record a ``record.<kind>`` attempt adds, and the evidence its rules see."""
        record = Record(
            kind=kind,
            id=record_id or f"{kind}-{project.version + 1}",
            data=thaw(data),
            seq=project.version + 1,
        )
        if any(r.kind == kind and r.id == record.id for r in project.records):
            raise InvalidInput(
                f"record {kind}/{record.id} already exists on project {project.id!r}",
                field="record_id",
                project_id=project.id,
                event=RECORD_EVENT_PREFIX + kind,
                state=project.state,
            )
        return record, freeze({"record": {"kind": kind, "id": record.id, "data": data}})

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
        if to_version not in self._policies:
            raise InvalidInput(f"unknown policy version {to_version!r}", field="to_version")
        if not isinstance(reason, str) or not reason.strip():
            raise InvalidInput("a policy migration needs a reason", field="reason")
        patch: dict[str, Any] = {"policy_version": to_version}
        if rubric_versions is not None:
            patch["rubric_versions"] = {str(k): int(v) for k, v in rubric_versions.items()}
        return [
            self._migrate(_check_id(pid, "project_id"), patch, actor, reason) for pid in project_ids
        ]

    def _migrate(self, pid: str, patch: Mapping[str, Any], actor: Actor, reason: str) -> Outcome:
        for _attempt in self._attempts(pid, "migrate_policy"):
            project = self.get(pid)
            old = str(project.data.get("policy_version", ""))
            entry = seal(
                project_id=pid,
                seq=project.version + 1,
                kind="migrate",
                event="migrate_policy",
                from_state=project.state,
                to_state=project.state,
                accepted=True,
                actor=actor,
                at=self._now(),
                evidence={"reason": reason, "from_version": old},
                refusals=(),
                records=(),
                data=patch,
                prev_hash=project.head,
            )
            after = self._after(project, entry, False)
            change = Change(entry, project.state, project.version, after)
            try:
                self._store.commit(change)
            except ConcurrencyError:
                continue
            self._emit(entry)
            return Outcome(
                project_id=pid,
                event="migrate_policy",
                accepted=True,
                from_state=project.state,
                state=project.state,
                entry=entry,
            )
        raise AssertionError("unreachable")  # pragma: no cover

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

        `event` may also be ``record.<kind>``: each item's evidence is then the data of
        a record to add, exactly as `add_record` would (reviews, expenditures, ...). With
        the creating event (``submit``), each item's evidence is the new project's data,
        as `submit` takes it; an id already taken is reported as ``invalid``.

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
            dry_run: decide every item and write nothing.
            keep: ``"failures"`` keeps only results that were not applied; ``"all"``
                keeps every result of this run.
            progress: called with the number of items just finished.
            lease_seconds: how long a claimed chunk stays ours without progress.
            worker: join a shared run (several processes, one key).
        """
        event = _check_id(event, "event")
        if event.startswith(RECORD_EVENT_PREFIX):
            _check_id(event.removeprefix(RECORD_EVENT_PREFIX), "event")
        elif not self._lifecycle.has_event(event):
            raise UnknownEvent(f"lifecycle has no event {event!r} to fire", event=event)
        actor = _check_actor(actor)
        if not 1 <= chunk_size <= 100_000:
            raise InvalidInput("chunk_size must be between 1 and 100000", field="chunk_size")
        if dry_run:
            if self._lifecycle.has_event(event) and self._lifecycle.event(event).creates:
                raise InvalidInput("dry runs of submissions are not supported", field="dry_run")
            return self._dry_run(event, items, actor, chunk_size, keep, progress)
        if input_digest is None and isinstance(items, Sequence) and not isinstance(items, str):
            input_digest = bulk_input_digest(event, actor, items)
        digest = job_digest(event, actor, (input_digest or "").encode())
        key = (
            _check_id(idempotency_key, "idempotency_key")
            if idempotency_key is not None
            else f"bulk-{uuid.uuid4().hex}"
        )
        runner = BulkRunner(
            self,
            event,
            actor,
            key=key,
            digest=digest,
            chunk_size=chunk_size,
            stop_on_error=stop_on_error,
            keep=keep,
            progress=progress,
            lease=lease_seconds,
            worker=worker,
        )
        return runner.run(items)

    def _dry_run(
        self,
        event: str,
        items: Iterable[Any],
        actor: Actor,
        chunk_size: int,
        keep: Keep,
        progress: Callable[[int], None] | None,
    ) -> BulkResult:
        result = BulkResult(event=event, dry_run=True)
        for chunk in bulk_chunks(items, chunk_size):
            ids = [w.item.project_id for w in chunk if not w.error]
            loaded = {pid: self._store.load(pid) for pid in ids}
            for work in chunk:
                project = loaded.get(work.item.project_id)
                status: ItemStatus
                refusals: tuple[Refusal, ...]
                if work.error:
                    status, state, refusals, error = "invalid", None, (), work.error
                elif project is None:
                    status, state, refusals, error = "not_found", None, (), "no such project"
                else:
                    target, verdict, _ = self._decide(
                        project, event, work.item.actor or actor, work.item.evidence, self._now()
                    )
                    status = "applied" if verdict.passed else "refused"
                    state = target if verdict.passed else project.state
                    refusals, error = verdict.refusals, ""
                result.add(
                    ItemResult(
                        work.index,
                        work.item.project_id,
                        status,
                        state,
                        refusals,
                        error,
                        work.item.row,
                    ),
                    keep=keep == "all",
                )
            if progress is not None:
                progress(len(chunk))
        return result

    # -- integrity -----------------------------------------------------------------------

    def verify(self, *, checkpoint: Checkpoint | None = None) -> VerifyReport:
        """Recompute every chain; report the first bad (project, seq) of each broken one.

        With `checkpoint`, also prove that each chain head it covers is still there,
        unchanged: this catches truncation and tails recomputed after the checkpoint.
        """
        problems: list[Problem] = []
        projects = entries = 0
        # Stream three sorted sequences side by side (ids, entries, project rows): a few
        # queries per page, however many projects there are.
        stream = _Merge(self._store.all_entries(), self._store.projects())
        for pid in self._store.chain_ids():
            projects += 1
            chain, row = stream.take(pid)
            count, problem = check_chain(pid, chain)
            entries += count
            if problem is None:
                problem = self._check_row(pid, chain, row)
            if problem is not None:
                problems.append(problem)
        if checkpoint is not None:
            problems.extend(self._check_checkpoint(checkpoint))
        return VerifyReport(projects=projects, entries=entries, problems=tuple(problems))

    def checkpoint(self) -> Checkpoint:
        """Return (and store) a Merkle root over every chain head; keep it somewhere safe."""
        leaves = []
        for pid in self._store.chain_ids():
            seq, head = self._store.chain_tip(pid)
            leaves.append((pid, seq, head))
        root = merkle_root([leaf_hash(*leaf) for leaf in leaves])
        cp = Checkpoint(id=uuid.uuid4().hex, at=self._now(), size=len(leaves), root=root)
        self._store.save_checkpoint(cp, leaves)
        return cp

    def replay(self, project_id: str) -> Project:
        """Rebuild the project from its audit entries alone (it should equal `get`)."""
        project = replay(self.history(project_id))
        if project is None:
            raise ProjectNotFound(f"no project {project_id!r}", project_id=project_id)
        return project

    def state_at(self, project_id: str, when: datetime) -> str | None:
        """Return the project's state at `when` (``None`` if it did not exist yet)."""
        if when.tzinfo is None:
            raise InvalidInput("when must be timezone-aware", field="when")
        upto = [e for e in self.history(project_id) if e.at <= when]
        project = replay(upto)
        return project.state if project else None

    def counts_at(self, when: datetime) -> dict[str, int]:
        """Return how many projects were in each state at `when` (states with none omitted)."""
        if not isinstance(when, datetime) or when.tzinfo is None:
            raise InvalidInput("when must be a timezone-aware datetime", field="when")
        return self._store.counts_at(when.astimezone(UTC))

    # -- internals -----------------------------------------------------------------------

    def _now(self) -> datetime:
        now = self._clock()
        if now.tzinfo is None:
            raise InvalidInput("the engine clock returned a naive datetime", field="clock")
        return now.astimezone(UTC)

    def _check_fire(
        self, project_id: str, event: str, actor: Actor, evidence: Mapping[str, Any] | None
    ) -> tuple[str, Actor, Mapping[str, Any]]:
        pid = _check_id(project_id, "project_id")
        event = _check_id(event, "event")
        if not self._lifecycle.has_event(event) or self._lifecycle.event(event).creates:
            raise UnknownEvent(
                f"lifecycle {self._lifecycle.name!r} has no event {event!r} to fire"
                + (" (use submit)" if self._lifecycle.has_event(event) else ""),
                project_id=pid,
                event=event,
            )
        return pid, _check_actor(actor), _clean(evidence, "evidence")

    def _attempts(self, project_id: str, event: str) -> Iterator[int]:
        """Yield attempt numbers; the caller returns on success, else we raise at the end."""
        yield from range(self._retries)
        yield self._retries
        raise ConcurrencyError(
            f"project {project_id!r} kept changing; gave up after {self._retries + 1} attempts",
            project_id=project_id,
            event=event,
        )

    def _role_refusal(self, event: str, actor: Actor) -> Refusal | None:
        roles = self._roles.get(event)
        if not roles or not actor.roles.isdisjoint(roles):
            return None
        return Refusal(
            code="lifecycle.role",
            message=f"{event} may only be done by: {', '.join(sorted(roles))}",
            message_zh=f"只有以下角色可以执行{event}：{'、'.join(sorted(roles))}",
            rule="lifecycle",
            details={"required": sorted(roles), "actor_roles": sorted(actor.roles)},
        )

    def _target(self, project: Project, event: str) -> tuple[str | None, Refusal | None]:
        if event.startswith(RECORD_EVENT_PREFIX):
            return project.state, None
        if self._lifecycle.event(event).creates:
            return self._lifecycle.event(event).target, None
        target = self._table.target(event, project.state)
        if target is not None:
            return target, None
        terminal = self._lifecycle.state(project.state).terminal
        return None, Refusal(
            code="lifecycle.no_edge",
            message=(
                f"{event} is not possible from {project.state}"
                + (" (a terminal state)" if terminal else "")
            ),
            message_zh=f"当前状态（{self._lifecycle.state(project.state).label_zh}）不能执行{event}",
            rule="lifecycle",
            details={"state": project.state, "event": event, "terminal": terminal},
        )

    def _decide(
        self,
        project: Project,
        event: str,
        actor: Actor,
        evidence: Mapping[str, Any],
        now: datetime,
        reader: StoreReader | None = None,
    ) -> tuple[str | None, Verdict, list[Any]]:
        refusals: list[Refusal] = []
        role = self._role_refusal(event, actor)
        if role is not None:
            refusals.append(role)
        target, no_edge = self._target(project, event)
        if no_edge is not None:
            refusals.append(no_edge)
            return None, Verdict(refusals=tuple(refusals)), []
        policy = self.policy_for(project)
        facts = self._facts(project, event, actor, evidence, policy, reader)
        ctx = RuleContext(
            project=project,
            event=event,
            source=project.state or None,
            target=target,
            actor=actor,
            evidence=evidence,
            now=now,
            policy=policy,
            facts=freeze(facts) if facts else _EMPTY,
        )
        rules, _, effects_for = self._book_for(event)
        for r in rules:
            refusals.extend(self._run_rule(r, ctx).refusals)
        verdict = Verdict(refusals=tuple(refusals)) if refusals else PASS
        effects = [eff(ctx) for eff in effects_for] if verdict.passed else []
        return target, verdict, effects

    def _book_for(self, event: str) -> tuple[tuple[Any, ...], tuple[Any, ...], tuple[Any, ...]]:
        # The engine's book never changes after construction: look each event up once.
        cached = self._book_cache.get(event)
        if cached is None:
            cached = (
                self._rules.rules_for(event),
                self._rules.facts_for(event),
                self._rules.effects_for(event),
            )
            self._book_cache[event] = cached
        return cached

    def _facts(
        self,
        project: Project,
        event: str,
        actor: Actor,
        evidence: Mapping[str, Any],
        policy: Policy,
        reader: StoreReader | None = None,
    ) -> dict[str, Any]:
        providers = self._book_for(event)[1]
        if not providers:
            return {}
        request = FactRequest(
            reader=reader or self._store,
            project=project,
            event=event,
            actor=actor,
            evidence=evidence,
            policy=policy,
        )
        return {name: provider(request) for name, provider in providers}

    @staticmethod
    def _run_rule(r: Callable[[RuleContext], Verdict], ctx: RuleContext) -> Verdict:
        name = rule_name(r)
        try:
            verdict = r(ctx)
        except Exception as exc:  # a broken rule refuses: fail closed, and say why
            _log.warning("grantflow.rule_error", rule=name, error=repr(exc), transition=ctx.event)
            return refuse(
                "rule.error",
                f"rule {name} failed: {exc!r}",
                f"规则 {name} 执行出错：{exc!r}",
                rule=name,
            )
        if not isinstance(verdict, Verdict):  # type: ignore[unreachable, unused-ignore]
            return refuse(  # type: ignore[unreachable, unused-ignore]
                "rule.bad_verdict",
                f"rule {name} returned {type(verdict).__name__}, not a Verdict",
                f"规则 {name} 的返回值不是 Verdict",
                rule=name,
            )
        if verdict is PASS or verdict.passed:
            return verdict
        # Details become plain JSON (decimals and times as text, floats as their text),
        # so a refusal reads the same from any store and always hashes canonically.
        return Verdict(
            refusals=tuple(
                r.model_copy(update={"rule": r.rule or name, "details": lenient(r.details)})
                for r in verdict.refusals
            )
        )

    def _attempt(
        self,
        project: Project,
        event: str,
        actor: Actor,
        evidence: Mapping[str, Any],
        now: datetime,
        record: Record | None,
    ) -> Outcome | None:
        """Decide and commit once; ``None`` means the compare-and-set lost, try again."""
        change = self._prepare(project, event, actor, evidence, now, record)
        try:
            self._store.commit(change)
        except ConcurrencyError:
            _log.debug("grantflow.retry", project_id=project.id, transition=event)
            return None
        self._emit(change.entry)
        return _outcome(change)

    def _prepare(
        self,
        project: Project,
        event: str,
        actor: Actor,
        evidence: Mapping[str, Any],
        now: datetime,
        record: Record | None,
        reader: StoreReader | None = None,
    ) -> Change:
        """Decide `event` on `project` and build the change to commit (no I/O but facts)."""
        target, verdict, effects = self._decide(project, event, actor, evidence, now, reader)
        seq = project.version + 1
        creating = project.state == ""
        records: list[Record] = [record] if record is not None and verdict.passed else []
        patch: dict[str, Any] = thaw(project.data) if creating else {}
        for eff in effects:
            records.extend(
                Record(kind=r.kind, id=r.id, data=plain(r.data), seq=seq) for r in eff.records
            )
            patch.update(thaw(plain(eff.data)))
        entry = seal(
            project_id=project.id,
            seq=seq,
            kind="submit" if creating else ("record" if record else "fire"),
            event=event,
            from_state=project.state or None,
            to_state=target if verdict.passed else (project.state or None),
            accepted=verdict.passed,
            actor=actor,
            at=now,
            evidence=thaw(evidence) if evidence else {},
            refusals=verdict.refusals,
            records=records,
            data=patch if verdict.passed else {},
            prev_hash=project.head,
        )
        return Change(
            entry=entry,
            expected_state=None if creating else project.state,
            expected_version=project.version,
            after=self._after(project, entry, creating),
        )

    @staticmethod
    def _after(project: Project, entry: AuditEntry, creating: bool) -> Project | None:
        if creating and not entry.accepted:
            return None
        if creating:
            data: Mapping[str, Any] = entry.data
        elif entry.data:
            data = {**thaw(project.data), **thaw(entry.data)}
        else:
            data = project.data
        # Built from validated parts; constructing without re-validation keeps bulk fast.
        return trusted(
            Project,
            id=project.id,
            state=(entry.to_state or project.state) if entry.accepted else project.state,
            version=entry.seq,
            head=entry.hash,
            data=data,
            records=(*project.records, *entry.records) if entry.records else project.records,
            created_at=entry.at if creating else project.created_at,
            updated_at=entry.at if entry.accepted else project.updated_at,
        )

    def _emit(self, entry: AuditEntry, log: Any = None) -> None:
        # `log` is a logger bound once per bulk batch: the module proxy re-binds on
        # every call, which costs more than the rest of the emit.
        (log or _log).info(
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
            except Exception as exc:  # listeners observe; a failing one must not undo a commit
                _log.error("grantflow.listener_error", listener=repr(listener), error=repr(exc))

    @staticmethod
    def _check_row(
        project_id: str, chain: list[AuditEntry], project: Project | None
    ) -> Problem | None:
        if project is None:
            if any(e.accepted and e.kind == "submit" for e in chain):
                return Problem(project_id=project_id, seq=None, reason="project row missing")
            return None
        if not chain:
            return Problem(project_id=project_id, seq=1, reason="project has no audit chain")
        last = chain[-1]
        if (project.version, project.head) != (last.seq, last.hash):
            # Same length: the last entry differs; else the first entry one side lacks.
            same = project.version == last.seq
            return Problem(
                project_id=project_id,
                seq=last.seq if same else min(project.version, last.seq) + 1,
                reason=f"project row at version {project.version}, chain ends at {last.seq}",
            )
        rebuilt = replay(chain)
        if rebuilt is None or rebuilt.state != project.state:
            return Problem(
                project_id=project_id, seq=last.seq, reason="project state differs from replay"
            )
        return None

    def _check_checkpoint(self, checkpoint: Checkpoint) -> list[Problem]:
        leaves = self._store.checkpoint_leaves(checkpoint.id)
        if leaves is None:
            return [Problem(project_id="", seq=None, reason="checkpoint not found in store")]
        problems: list[Problem] = []
        current = []
        for pid, seq, head in leaves:
            stored = self._store.entry_hash_at(pid, seq)
            current.append(leaf_hash(pid, seq, stored or ""))
            if stored != head:
                reason = "entry missing (truncated)" if stored is None else "entry rewritten"
                problems.append(Problem(project_id=pid, seq=seq, reason=reason))
        expected = merkle_root([leaf_hash(*leaf) for leaf in leaves])
        if len(leaves) != checkpoint.size or expected != checkpoint.root:
            problems.append(
                Problem(project_id="", seq=None, reason="checkpoint leaves altered in store")
            )
        elif merkle_root(current) != checkpoint.root and not problems:
            problems.append(Problem(project_id="", seq=None, reason="checkpoint root mismatch"))
        return problems


class _Merge:
    """Walks the store's sorted entries and project rows alongside the sorted chain ids."""

    def __init__(self, entries: Iterator[AuditEntry], rows: Iterator[Project]) -> None:
        self._entries = entries
        self._rows = rows
        self._entry: AuditEntry | None = next(entries, None)
        self._row: Project | None = next(rows, None)

    def take(self, project_id: str) -> tuple[list[AuditEntry], Project | None]:
        """Return the chain and the project row of `project_id` (ids come in order)."""
        chain: list[AuditEntry] = []
        while self._entry is not None and self._entry.project_id <= project_id:
            if self._entry.project_id == project_id:
                chain.append(self._entry)
            self._entry = next(self._entries, None)
        while self._row is not None and self._row.id < project_id:
            self._row = next(self._rows, None)
        row = self._row if self._row is not None and self._row.id == project_id else None
        return chain, row


def _outcome(change: Change) -> Outcome:
    entry = change.entry
    return Outcome(
        project_id=entry.project_id,
        event=entry.event,
        accepted=entry.accepted,
        from_state=entry.from_state,
        state=change.after.state if change.after else None,
        refusals=entry.refusals,
        entry=entry,
    )


def _new_id() -> str:
    return uuid.uuid4().hex
