"""`AsyncEngine`: the engine's operations as coroutines, deciding through the same core."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self, TypeVar, overload

from grantflow._engine import Engine
from grantflow._open import open as open_engine
from grantflow._query import Order, ProjectPage
from grantflow.aio._store import AsyncStore, bridge
from grantflow.audit import DEFAULT_ORIGIN, Checkpoint, InclusionProof, TreeHead, VerifyReport
from grantflow.bulk import BulkItem, BulkResult, Worker
from grantflow.errors import InvalidInput
from grantflow.models import Actor, AuditEntry, DecisionBasis, Outcome, Project
from grantflow.obligations import Obligation
from grantflow.persistence import MemoryStore, Store
from grantflow.policy import Policy
from grantflow.rules import RuleBook
from grantflow.states import Lifecycle
from grantflow.timers import SweepResult
from grantflow.typing import Clock, Keep, Listener

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

__all__ = ["AsyncEngine", "open"]

T = TypeVar("T")


class AsyncEngine:
    """An `Engine` for asyncio code: the same operations, awaited.

    It drives a plain `Engine` (the same decision core, rules, audit and store code)
    whose SQL store sits on SQLAlchemy's asyncio engine: each call runs in a greenlet
    (`grantflow.aio.bridge`) where every database round trip awaits the driver. Open
    one with `grantflow.aio.open`.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._store = AsyncStore(engine.store)

    def __repr__(self) -> str:
        return f"AsyncEngine({self._engine!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def store(self) -> AsyncStore:
        """The store, with coroutine methods."""
        return self._store

    @property
    def lifecycle(self) -> Lifecycle:
        """The lifecycle this engine enforces."""
        return self._engine.lifecycle

    @property
    def policy(self) -> Policy:
        """The policy new projects are pinned to."""
        return self._engine.policy

    @property
    def rules(self) -> RuleBook:
        """See `Engine.rules` (a copy of the rule book)."""
        return self._engine.rules

    def policy_for(self, project: Project) -> Policy:
        """See `Engine.policy_for` (no database call: not a coroutine)."""
        return self._engine.policy_for(project)

    async def close(self) -> None:
        """Close the store (and dispose of its asyncio engine)."""
        await bridge(self._engine.close)

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call `listener` with each committed entry (best-effort; see the outbox)."""
        return self._engine.subscribe(listener)

    async def run(self, work: Callable[[Engine], T]) -> T:
        """Run sync code that takes the underlying `Engine` (reports, exports) in the bridge.

        ``await engine.run(lambda e: Portfolio(e).totals("hub"))``: its database calls
        await the driver like the engine's own.
        """
        return await bridge(work, self._engine)

    # -- reads ---------------------------------------------------------------------------

    async def get(self, project_id: str) -> Project:
        """See `Engine.get`."""
        return await bridge(self._engine.get, project_id)

    async def history(self, project_id: str) -> list[AuditEntry]:
        """See `Engine.history`."""
        return await bridge(self._engine.history, project_id)

    async def projects(
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
        """See `Engine.projects`."""
        return await bridge(
            self._engine.projects,
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
            cursor=cursor,
        )

    async def events(self, project_id: str, *, actor: Actor) -> list[str]:
        """See `Engine.events`."""
        return await bridge(self._engine.events, project_id, actor=actor)

    async def replay(self, project_id: str) -> Project:
        """See `Engine.replay`."""
        return await bridge(self._engine.replay, project_id)

    # -- writes --------------------------------------------------------------------------

    async def submit(
        self,
        *,
        actor: Actor,
        data: Mapping[str, Any] | None = None,
        project_id: str | None = None,
        evidence: Mapping[str, Any] | None = None,
    ) -> Outcome:
        """See `Engine.submit`."""
        return await bridge(
            self._engine.submit, actor=actor, data=data, project_id=project_id, evidence=evidence
        )

    async def fire(
        self,
        project_id: str,
        event: str,
        *,
        actor: Actor,
        evidence: Mapping[str, Any] | None = None,
    ) -> Outcome:
        """See `Engine.fire`."""
        return await bridge(self._engine.fire, project_id, event, actor=actor, evidence=evidence)

    async def can_fire(
        self,
        project_id: str,
        event: str,
        *,
        actor: Actor,
        evidence: Mapping[str, Any] | None = None,
    ) -> Outcome:
        """See `Engine.can_fire`."""
        return await bridge(
            self._engine.can_fire, project_id, event, actor=actor, evidence=evidence
        )

    async def add_record(
        self,
        project_id: str,
        kind: str,
        data: Mapping[str, Any],
        *,
        actor: Actor,
        record_id: str | None = None,
    ) -> Outcome:
        """See `Engine.add_record`."""
        return await bridge(
            self._engine.add_record, project_id, kind, data, actor=actor, record_id=record_id
        )

    async def fire_many(
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
        """See `Engine.fire_many`; the event loop runs other tasks at each database call."""
        return await bridge(
            self._engine.fire_many,
            event,
            items,
            actor=actor,
            idempotency_key=idempotency_key,
            input_digest=input_digest,
            chunk_size=chunk_size,
            stop_on_error=stop_on_error,
            dry_run=dry_run,
            keep=keep,
            progress=progress,
            lease_seconds=lease_seconds,
            worker=worker,
        )

    async def migrate_policy(
        self,
        project_ids: Iterable[str],
        to_version: str,
        *,
        actor: Actor,
        reason: str,
        rubric_versions: Mapping[str, int] | None = None,
    ) -> list[Outcome]:
        """See `Engine.migrate_policy`."""
        return await bridge(
            self._engine.migrate_policy,
            project_ids,
            to_version,
            actor=actor,
            reason=reason,
            rubric_versions=rubric_versions,
        )

    # -- time ----------------------------------------------------------------------------

    async def obligations(self, project_id: str) -> list[Obligation]:
        """See `Engine.obligations`."""
        return await bridge(self._engine.obligations, project_id)

    async def due(
        self,
        *,
        before: date | datetime | None = None,
        overdue: bool = False,
        hub: str | None = None,
        subtree: bool = False,
        kind: str | Sequence[str] | None = None,
    ) -> list[Obligation]:
        """See `Engine.due`."""
        return await bridge(
            self._engine.due, before=before, overdue=overdue, hub=hub, subtree=subtree, kind=kind
        )

    async def sweep(
        self,
        now: datetime | None = None,
        *,
        dry_run: bool = False,
        chunk_size: int = 500,
        lease_seconds: float = 60.0,
        progress: Callable[[int], None] | None = None,
    ) -> SweepResult:
        """See `Engine.sweep`; the event loop runs other tasks at each database call."""
        return await bridge(
            self._engine.sweep,
            now,
            dry_run=dry_run,
            chunk_size=chunk_size,
            lease_seconds=lease_seconds,
            progress=progress,
        )

    async def reindex_obligations(self) -> int:
        """See `Engine.reindex_obligations`."""
        return await bridge(self._engine.reindex_obligations)

    async def state_at(self, project_id: str, when: datetime) -> str | None:
        """See `Engine.state_at`."""
        return await bridge(self._engine.state_at, project_id, when)

    async def counts_at(self, when: datetime) -> dict[str, int]:
        """See `Engine.counts_at`."""
        return await bridge(self._engine.counts_at, when)

    # -- integrity -----------------------------------------------------------------------

    @property
    def decision_bases(self) -> frozenset[DecisionBasis]:
        """See `Engine.decision_bases`."""
        return self._engine.decision_bases

    async def verify(
        self,
        *,
        checkpoint: Checkpoint | TreeHead | str | bytes | None = None,
        public_key: Ed25519PublicKey | None = None,
        origin: str | None = None,
        expect: Iterable[DecisionBasis] | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> VerifyReport:
        """See `Engine.verify`."""
        return await bridge(
            self._engine.verify,
            checkpoint=checkpoint,
            public_key=public_key,
            origin=origin,
            expect=expect,
            progress=progress,
        )

    @overload
    async def checkpoint(self) -> Checkpoint: ...

    @overload
    async def checkpoint(
        self, *, sign_with: Ed25519PrivateKey, origin: str = DEFAULT_ORIGIN
    ) -> str: ...

    async def checkpoint(
        self, *, sign_with: Ed25519PrivateKey | None = None, origin: str = DEFAULT_ORIGIN
    ) -> Checkpoint | str:
        """See `Engine.checkpoint`."""
        if sign_with is None:
            return await bridge(self._engine.checkpoint)
        key = sign_with
        return await bridge(lambda: self._engine.checkpoint(sign_with=key, origin=origin))

    async def prove(self, project_id: str, seq: int, *, size: int | None = None) -> InclusionProof:
        """See `Engine.prove`."""
        return await bridge(self._engine.prove, project_id, seq, size=size)


async def open(
    url: str | None = None,
    *,
    lifecycle: Lifecycle | None = None,
    rules: RuleBook | None = None,
    discover_rules: bool = True,
    policy: Policy | None = None,
    policies: Sequence[Policy] = (),
    clock: Clock | None = None,
    listeners: Sequence[Listener] = (),
    retries: int = 3,
    table_prefix: str | None = None,
    schema: str | None = None,
    create: bool | None = None,
    synchronous: Literal["FULL", "NORMAL"] | None = None,
    busy_timeout: float | None = None,
    allow_network_filesystem: bool | None = None,
    engine_options: Mapping[str, Any] | None = None,
) -> AsyncEngine:
    """Open an `AsyncEngine`; the arguments are `grantflow.open`'s.

    `url` is ``None`` or ``"memory://"`` (an in-memory store), or a database URL:
    ``sqlite:///grants.db`` (run with aiosqlite) or ``postgresql+psycopg://...``
    (psycopg's async mode). Needs the ``async`` extra: ``pip install 'grantflow[async]'``.
    """
    store: Store
    if url is None or url == "memory://":
        given = {
            "table_prefix": table_prefix,
            "schema": schema,
            "create": create,
            "synchronous": synchronous,
            "busy_timeout": busy_timeout,
            "allow_network_filesystem": allow_network_filesystem,
            "engine_options": engine_options,
        }
        if any(value is not None for value in given.values()):
            raise InvalidInput(
                f"options {sorted(k for k, v in given.items() if v is not None)} do not "
                "apply to the memory store",
                field="options",
            )
        store = MemoryStore()
    else:
        from grantflow.persistence.sql import open_async

        store = await open_async(
            url,
            table_prefix="grantflow_" if table_prefix is None else table_prefix,
            schema=schema,
            create=True if create is None else create,
            synchronous=synchronous,
            busy_timeout=busy_timeout,
            allow_network_filesystem=bool(allow_network_filesystem),
            engine_options=engine_options,
        )
    engine = open_engine(
        store,
        lifecycle=lifecycle,
        rules=rules,
        discover_rules=discover_rules,
        policy=policy,
        policies=policies,
        clock=clock,
        listeners=listeners,
        retries=retries,
    )
    return AsyncEngine(engine)
