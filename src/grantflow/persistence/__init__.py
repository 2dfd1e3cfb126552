"""Persistence: the store protocol and its backends (memory here; SQL in `sql`)."""

from grantflow.persistence._liveness import owner_id
from grantflow.persistence._memory import MemoryStore
from grantflow.persistence._outbox import AUDIT_TOPIC, MessageStatus, OutboxMessage, OutboxStore
from grantflow.persistence._protocol import (
    Change,
    ChunkClaim,
    ChunkProgress,
    Guard,
    JobStore,
    Leaf,
    LogLeaf,
    Move,
    MoveCommitter,
    ObligationIndex,
    ObligationRow,
    RecordGuard,
    Store,
    StoredJob,
    StoreReader,
)

__all__ = [
    "AUDIT_TOPIC",
    "Change",
    "ChunkClaim",
    "ChunkProgress",
    "Guard",
    "JobStore",
    "Leaf",
    "LogLeaf",
    "MemoryStore",
    "MessageStatus",
    "Move",
    "MoveCommitter",
    "ObligationIndex",
    "ObligationRow",
    "OutboxMessage",
    "OutboxStore",
    "RecordGuard",
    "Store",
    "StoreReader",
    "StoredJob",
    "owner_id",
]
