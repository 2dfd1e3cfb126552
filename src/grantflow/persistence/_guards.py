"""How a store checks the guards of the changes it commits (see `Guard`)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

from grantflow.errors import ConcurrencyError
from grantflow.persistence._protocol import Change, Guard, Move, RecordGuard

__all__ = ["check_guards", "guard_lock_id", "guards_of"]


def guards_of(changes: Sequence[Change | Move]) -> list[tuple[int, Change, Guard | RecordGuard]]:
    """Each distinct guard of `changes` (by key), with the first change holding it and its index.

    Sorted by key: one order for every commit.
    """
    found: dict[str, tuple[int, Change, Guard | RecordGuard]] = {}
    for index, change in enumerate(changes):
        if isinstance(change, Change):  # a `Move` reads no facts
            for guard in change.guards:
                found.setdefault(guard.key, (index, change, guard))
    return [found[key] for key in sorted(found)]


def check_guards(
    guarded: Sequence[tuple[int, Change, Guard | RecordGuard]],
    read: Callable[[Guard | RecordGuard], object],
    lock: Callable[[Sequence[Guard | RecordGuard]], None] | None = None,
) -> None:
    """Raise `ConcurrencyError` unless every guard still reads its value.

    `guarded` is `guards_of` the commit's changes. Call it inside the commit's
    transaction, before writing: `read` must answer what is committed now
    (`Guard.current` on the store, or the transaction's own reads), and `lock` (when
    given) is called with every guard first, to hold off other guarded commits of the
    same aggregate until this transaction ends.
    """
    if not guarded:
        return
    if lock is not None:
        lock([guard for _index, _change, guard in guarded])
    for index, change, guard in guarded:
        now = read(guard)
        if now != guard.value:
            raise ConcurrencyError(
                f"what the decision read changed before it committed: {guard.key} "
                f"was {guard.value}, is {now}",
                project_id=change.entry.project_id,
                event=change.entry.event,
                state=change.expected_state,
                expected_version=change.expected_version,
                index=index,
            )


def guard_lock_id(guard: Guard | RecordGuard) -> int:
    """A signed 64-bit number for `guard`'s aggregate (a PostgreSQL advisory lock key)."""
    digest = hashlib.sha256(guard.key.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)
