"""A bounded keep of recent answers: two generations of a dict, swapped when one fills.

The store's decoded rows (`SeenRows`) and the decision core's parses (`ParseCache`) both
keep what they worked out for a while and must not grow without bound: the newer
generation takes what is kept or found, and when it holds `limit` entries it becomes
the older one and a fresh one starts; the older one is dropped then. A lookup or an
insert is one dictionary operation and a swap rebinds whole references, so a race
between threads costs a recomputation, never a wrong answer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

__all__ = ["Kept", "held"]

K = TypeVar("K")
V = TypeVar("V")
T = TypeVar("T")


class Kept(Generic[K, V]):
    """At most ``2 * limit`` recent entries; a hit in the older generation moves up."""

    __slots__ = ("_limit", "_new", "_old")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._new: dict[K, V] = {}
        self._old: dict[K, V] = {}

    def __len__(self) -> int:
        return len(self._new) + len(self._old)

    def get(self, key: K) -> V | None:
        """The entry kept under `key` (moved to the newer generation), or ``None``."""
        found = self._new.get(key)
        if found is not None:
            return found
        found = self._old.get(key)
        if found is not None:
            self.put(key, found)
        return found

    def put(self, key: K, value: V) -> None:
        """Keep `value` under `key` in the newer generation, starting a new one if full."""
        new = self._new
        if len(new) >= self._limit:
            self._old, self._new = new, {}
            new = self._new
        new[key] = value


#: Where `held` keeps an answer: (the source's id, a key) -> (the source, the answer).
Slot = tuple[int, Any]
Answer = tuple[object, Any]


def held(
    find: Callable[[Slot], Answer | None],
    keep: Callable[[Slot, Answer], None],
    source: object,
    key: Any,
    parse: Callable[[], T],
) -> T:
    """The answer kept for (`source`, `key`) if it was kept for this very object, else parse.

    Kept by the source's identity with the source itself, so an address reused by a new
    object is never a hit (the rules' `Parsed`/`ParseCache`, a `Schedule`'s contracts).
    """
    slot = (id(source), key)
    hit = find(slot)
    if hit is not None and hit[0] is source:
        found: T = hit[1]
        return found
    value = parse()
    keep(slot, (source, value))
    return value
