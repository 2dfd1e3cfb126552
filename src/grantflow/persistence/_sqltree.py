"""The hub subtree in SQL: one recursive CTE, shared by portfolio totals and project queries."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

__all__ = ["hub_subtree_cte"]


def _is_collated(entities: sa.Table) -> bool:
    variant = getattr(entities.c.id.type, "_variant_mapping", {}).get("postgresql")
    return bool(getattr(variant, "collation", None))


def hub_subtree_cte(entities: sa.Table, root: str, *, postgres: bool) -> Any:
    """A recursive CTE (one column, ``id``) of `root` and every hub below it.

    ``UNION`` (not ``UNION ALL``) ends the walk even on a cycle of parents.
    """
    seed: Any = sa.literal(root)
    if postgres and _is_collated(entities):
        # PostgreSQL ids compare byte-wise (COLLATE "C"): the seed must say so too.
        seed = seed.collate("C")
    base = sa.select(seed.label("id")).cte("hub_tree", recursive=True)
    child = sa.select(entities.c.id).where(entities.c.kind == "hub", entities.c.parent == base.c.id)
    return base.union(child)
