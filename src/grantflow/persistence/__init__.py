"""Persistence: the store protocol and its backends (memory here; SQL in `sql`)."""

from grantflow.persistence._liveness import owner_id
from grantflow.persistence._memory import MemoryStore
from grantflow.persistence._protocol import (
    Change,
    ChunkClaim,
    ChunkProgress,
    JobStore,
    Leaf,
    LogLeaf,
    ObligationIndex,
    ObligationRow,
    Store,
    StoredJob,
    StoreReader,
)

__all__ = [
    "Change",
    "ChunkClaim",
    "ChunkProgress",
    "JobStore",
    "Leaf",
    "LogLeaf",
    "MemoryStore",
    "ObligationIndex",
    "ObligationRow",
    "Store",
    "StoreReader",
    "StoredJob",
    "owner_id",
]
