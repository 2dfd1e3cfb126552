"""Persistence: the store protocol and its backends (memory here; SQL in `sql`)."""

from grantflow.persistence._memory import MemoryStore
from grantflow.persistence._protocol import Change, Leaf, Store, StoreReader

__all__ = ["Change", "Leaf", "MemoryStore", "Store", "StoreReader"]
