"""`grantflow.open`: one call from a URL, a connection or nothing to a ready `Engine`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from grantflow.errors import InvalidInput, StoreError
from grantflow.persistence import MemoryStore, Store
from grantflow.policy import Policy
from grantflow.rules import RuleBook
from grantflow.states import PURCHASED_SERVICE, Lifecycle

if TYPE_CHECKING:
    import sqlalchemy
    import sqlalchemy.orm

    from grantflow._engine import Engine
    from grantflow.typing import Clock, Listener

__all__ = ["open"]


def open(
    url: str
    | sqlalchemy.Engine
    | sqlalchemy.Connection
    | sqlalchemy.orm.Session
    | Store
    | None = None,
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
) -> Engine:
    """Open an engine on a store.

    Args:
        url: ``None`` or ``"memory://"`` for an in-memory store; a SQLAlchemy URL such as
            ``"sqlite:///grants.db"`` or ``"postgresql+psycopg://..."``; a host
            application's `sqlalchemy.Engine` (grantflow's tables go into that database);
            a host's `sqlalchemy.Connection` or ORM `Session` (SQLModel's too), whose
            transaction grantflow then joins and never commits (see the Embedding
            page); or a `Store`.
        lifecycle: the lifecycle to enforce; ``None`` means the purchased-service one.
        rules: the rule book; ``None`` means `grantflow.rules.default.default_rules()`,
            the purchased-service regime. Pass ``RuleBook()`` for a bare engine.
        discover_rules: also add the rule books published under the ``grantflow.rules``
            entry-point group.
        policy: the policy new projects are pinned to (``None``: ``Policy()``).
        policies: older policy versions that pinned projects still use.
        clock: returns the current time (timezone-aware); ``None`` means UTC now.
        listeners: called with every committed audit entry; they observe, never veto.
        retries: how often a fire that lost a race is decided again before
            `ConcurrencyError` is raised.
        table_prefix: SQL stores: prefix of grantflow's table names (``"grantflow_"``).
        schema: PostgreSQL: the schema holding grantflow's tables.
        create: SQL stores: create the tables when the database has none (default yes).
        synchronous: SQLite files grantflow opens itself: ``"FULL"`` (default) or
            ``"NORMAL"``.
        busy_timeout: SQLite files grantflow opens itself: seconds a writer waits for
            the lock (default 10).
        allow_network_filesystem: SQLite: accept a file on NFS/SMB (with a warning).
        engine_options: keyword arguments for `sqlalchemy.create_engine` when `url` is
            a URL.

    Raises:
        InvalidInput: a store option given for the memory store or an open store.

    >>> import grantflow
    >>> with grantflow.open() as engine:
    ...     engine.lifecycle.name
    'purchased-service'
    """
    from grantflow._engine import Engine, utc_now

    options = {
        name: value
        for name, value in (
            ("table_prefix", table_prefix),
            ("schema", schema),
            ("create", create),
            ("synchronous", synchronous),
            ("busy_timeout", busy_timeout),
            ("allow_network_filesystem", allow_network_filesystem),
            ("engine_options", engine_options),
        )
        if value is not None
    }
    store = _store(url, options)
    if rules is None:
        # Imported here: the default regime (records, rubrics, ...) loads when first used.
        from grantflow.rules.default import default_rules

        rules = default_rules()
    book = RuleBook().extend(rules)
    if discover_rules:
        book.extend(RuleBook.from_entry_points())
    return Engine(
        store,
        lifecycle=PURCHASED_SERVICE if lifecycle is None else lifecycle,
        rules=book,
        policy=policy,
        policies=policies,
        clock=utc_now if clock is None else clock,
        listeners=listeners,
        retries=retries,
    )


def _store(url: object, options: dict[str, Any]) -> Store:
    if url is None or url == "memory://" or isinstance(url, MemoryStore):
        if options:
            raise InvalidInput(
                f"options {sorted(options)} do not apply to the memory store", field="options"
            )
        return url if isinstance(url, MemoryStore) else MemoryStore()
    # Imported here: SQLAlchemy and the table definitions load only when a database is used.
    import sqlalchemy
    import sqlalchemy.orm

    from grantflow.persistence.sql import SqlStore

    if isinstance(url, SqlStore):
        if options:
            raise InvalidInput(
                f"options {sorted(options)} do not apply to an open store", field="options"
            )
        return url
    if isinstance(url, str | sqlalchemy.Engine | sqlalchemy.Connection | sqlalchemy.orm.Session):
        return SqlStore.open(url, **options)
    if isinstance(url, Store):
        return url
    raise StoreError(
        f"no store for {url!r}: pass a database URL, a sqlalchemy Engine, Connection or "
        "Session, or a Store"
    )
