"""`capture_audit`: collect the audit entries an engine commits inside a ``with`` block."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from grantflow._engine import Engine
    from grantflow.models import AuditEntry

__all__ = ["capture_audit"]


@contextmanager
def capture_audit(engine: Engine) -> Iterator[list[AuditEntry]]:
    """Yield a list that fills with every audit entry `engine` commits until the block ends.

    Entries arrive after their commit, accepted and refused alike, in commit order.

    Examples:
        >>> import grantflow
        >>> engine = grantflow.open(rules=grantflow.RuleBook())
        >>> applicant = grantflow.Actor(id="org-1", roles=frozenset({"applicant"}))
        >>> with capture_audit(engine) as entries:
        ...     _ = engine.submit(actor=applicant)
        >>> [(e.event, e.accepted) for e in entries]
        [('submit', True)]
    """
    entries: list[AuditEntry] = []
    unsubscribe = engine.subscribe(entries.append)
    try:
        yield entries
    finally:
        unsubscribe()
