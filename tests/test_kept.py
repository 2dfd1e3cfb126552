"""Tests for grantflow._kept: two bounded generations of recent entries."""

from __future__ import annotations

from grantflow._kept import Kept


def test_at_most_two_generations_are_kept_and_a_hit_in_the_older_moves_up() -> None:
    """Entries past twice the limit are dropped; one found in the older generation survives."""
    kept: Kept[int, str] = Kept(limit=3)
    for n in range(3):
        kept.put(n, str(n))
    kept.put(3, "3")  # the first generation is now the older one
    assert kept.get(0) == "0"  # found there, and moved up
    for n in range(4, 7):
        kept.put(n, str(n))  # the generation holding 1 and 2 is dropped
    assert len(kept) <= 6
    assert kept.get(0) == "0"
    assert kept.get(1) is None
    assert kept.get(2) is None
    assert kept.get(99) is None
