"""`grantflow.open`: one call from a URL (or nothing) to a ready `Engine`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from grantflow._engine import Engine, utc_now
from grantflow.errors import InvalidInput, StoreError
from grantflow.persistence import MemoryStore, Store
from grantflow.policy import Policy
from grantflow.rules import RuleBook
from grantflow.rules.default import default_rules
from grantflow.states import PURCHASED_SERVICE, Lifecycle
from grantflow.typing import Clock, Listener

if TYPE_CHECKING:
    import sqlalchemy

__all__ = ["open"]


def open(
    url: str | sqlalchemy.Engine | Store | None = None,
    *,
    lifecycle: Lifecycle = PURCHASED_SERVICE,
    rules: RuleBook | None = None,
    discover_rules: bool = True,
    policy: Policy | None = None,
    policies: Sequence[Policy] = (),
    clock: Clock = utc_now,
    listeners: Sequence[Listener] = (),
    retries: int = 3,
    **store_options: Any,
) -> Engine:
    """Open an engine on a store.

    Args:
        url: ``None`` or ``"memory://"`` for an in-memory store; a SQLAlchemy URL such as
            ``"sqlite:///grants.db"`` or ``"postgresql+psycopg://..."``; an existing
            `sqlalchemy.Engine` (grantflow's tables go into that database); or a `Store`.
        lifecycle: the lifecycle to enforce (default: the purchased-service lifecycle).
        rules: the rule book; ``None`` means `grantflow.rules.default.default_rules()`,
            the purchased-service regime. Pass ``RuleBook()`` for a bare engine.
        discover_rules: also add the rule books published under the ``grantflow.rules``
            entry-point group.
        policy: the policy new projects are pinned to.
        policies: older policy versions that pinned projects still use.
        clock: returns the current time (timezone-aware); inject one in tests.
        listeners: called with every committed audit entry; they observe, never veto.
        retries: how often a fire that lost a race is decided again before
            `ConcurrencyError` is raised.
        **store_options: passed to the SQL store (``table_prefix``, ``schema``, ...).

    >>> import grantflow
    >>> with grantflow.open() as engine:
    ...     engine.lifecycle.name
    'purchased-service'
    """
    store = _store(url, store_options)
    book = RuleBook().extend(default_rules() if rules is None else rules)
    if discover_rules:
        book.extend(RuleBook.from_entry_points())
    return Engine(
        store,
        lifecycle=lifecycle,
        rules=book,
        policy=policy,
        policies=policies,
        clock=clock,
        listeners=listeners,
        retries=retries,
    )


def _store(url: object, options: dict[str, Any]) -> Store:
    if url is None or url == "memory://":
        if options:
            raise InvalidInput(f"options {sorted(options)} do not apply to the memory store")
        return MemoryStore()
    if isinstance(url, MemoryStore):
        if options:
            raise InvalidInput(f"options {sorted(options)} do not apply to the memory store")
        return url
    # Imported here: SQLAlchemy and the table definitions load only when a database is used.
    import sqlalchemy

    from grantflow.persistence.sql import SqlStore

    if isinstance(url, SqlStore):
        if options:
            raise InvalidInput(f"options {sorted(options)} do not apply to an open store")
        return url
    if isinstance(url, str | sqlalchemy.Engine):
        return SqlStore.open(url, **options)
    if isinstance(url, Store):
        return url
    raise StoreError(f"no store for {url!r}: pass a database URL, a sqlalchemy.Engine or a Store")
