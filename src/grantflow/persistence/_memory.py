"""An in-memory store: the reference implementation of the store protocol, for tests."""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterator, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from grantflow._canonical import same_json
from grantflow._values import decimal_or_zero
from grantflow.audit import GENESIS, Checkpoint
from grantflow.errors import ConcurrencyError, ProjectExists
from grantflow.models import AuditEntry, Entity, Project, Record
from grantflow.persistence._guards import check_guards, guards_of
from grantflow.persistence._memory_jobs import MemoryJobs
from grantflow.persistence._memory_outbox import MemoryOutbox
from grantflow.persistence._protocol import Change, Guard, Leaf, LogLeaf, RecordGuard

__all__ = ["MemoryStore"]


class MemoryStore(MemoryJobs, MemoryOutbox):
    """Keeps projects and chains in dictionaries; one lock makes each commit atomic.

    Nothing survives the process. Use it in tests and to try grantflow out.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._projects: dict[str, Project] = {}
        self._chains: dict[str, list[AuditEntry]] = {}
        self._checkpoints: dict[str, tuple[Checkpoint, list[Leaf]]] = {}
        # The audit log order: (project id, seq) by position, and the reverse index.
        self._log: list[tuple[str, int]] = []
        self._positions: dict[tuple[str, int], int] = {}
        self._entities: dict[tuple[str, str], Entity] = {}
        # Records by kind, so cross-project look-ups (duplicate invoices) skip the rest.
        self._by_kind: dict[str, list[tuple[str, Record]]] = {}

    def __repr__(self) -> str:
        return f"MemoryStore(projects={len(self._projects)})"

    # -- reads ---------------------------------------------------------------------------

    def load(self, project_id: str) -> Project | None:
        """Return the project or ``None``."""
        return self._projects.get(project_id)

    def chain_tip(self, project_id: str) -> tuple[int, str]:
        """Return (last seq, last hash) of the chain."""
        chain = self._chains.get(project_id)
        if not chain:
            return 0, GENESIS
        return chain[-1].seq, chain[-1].hash

    def entries(self, project_id: str) -> Iterator[AuditEntry]:
        """Yield the chain's entries in order."""
        yield from list(self._chains.get(project_id, ()))

    def all_entries(self) -> Iterator[AuditEntry]:
        """Yield every entry ordered by (project id, seq)."""
        for pid in sorted(self._chains):
            yield from list(self._chains[pid])

    def all_records(self) -> Iterator[tuple[str, Record]]:
        """Yield (project id, record) for every project's records, by project id."""
        for pid in sorted(self._projects):
            for record in self._projects[pid].records:
                yield pid, record

    def chain_ids(self) -> Iterator[str]:
        """Yield every chain id, sorted."""
        yield from sorted(self._chains)

    def projects(self, *, state: str | None = None) -> Iterator[Project]:
        """Yield projects in id order, without records."""
        for pid in sorted(self._projects):
            project = self._projects[pid]
            if state is None or project.state == state:
                yield project.model_copy(update={"records": ()})

    def find_records(
        self, kind: str, field: str, values: Collection[str]
    ) -> list[tuple[str, Record]]:
        """Return (project id, record) pairs matching ``data[field] in values``."""
        wanted = set(values)
        found = [
            (pid, record)
            for pid, record in self._by_kind.get(kind, ())
            if str(record.data.get(field)) in wanted and self._has_record(pid, record)
        ]
        return sorted(found, key=lambda pair: (pair[0], pair[1].seq))

    def _has_record(self, pid: str, record: Record) -> bool:
        # The kind index is append-only; a rolled-back chunk may have left a stale entry.
        project = self._projects.get(pid)
        return project is not None and any(r is record for r in project.records)

    def count_projects(
        self, data_equals: Mapping[str, Any], *, exclude_states: Collection[str] = ()
    ) -> int:
        """Count projects matching every key of `data_equals`."""
        return sum(
            1
            for p in self._projects.values()
            if p.state not in exclude_states
            and all(same_json(p.data.get(k), v) for k, v in data_equals.items())
        )

    def sum_projects(
        self, field: str, data_equals: Mapping[str, Any], *, exclude_states: Collection[str] = ()
    ) -> Decimal:
        """Sum ``data[field]`` (as decimals) over the projects `count_projects` counts."""
        return sum(
            (
                decimal_or_zero(p.data.get(field))
                for p in self._projects.values()
                if p.state not in exclude_states
                and all(same_json(p.data.get(k), v) for k, v in data_equals.items())
            ),
            Decimal(0),
        )

    def counts_at(self, when: datetime) -> dict[str, int]:
        """Count projects by state as of `when`, from the chains."""
        counts: dict[str, int] = {}
        for chain in list(self._chains.values()):
            state = None
            for entry in chain:
                if entry.accepted and entry.at <= when and entry.to_state is not None:
                    state = entry.to_state
            if state is not None:
                counts[state] = counts.get(state, 0) + 1
        return counts

    def get_entity(self, kind: str, entity_id: str) -> Entity | None:
        """Return one entity, or ``None``."""
        return self._entities.get((kind, entity_id))

    def entities(self, kind: str, *, parent: str | None = None) -> Iterator[Entity]:
        """Yield entities of `kind` in id order."""
        for (k, _), entity in sorted(self._entities.items()):
            if k == kind and (parent is None or entity.parent == parent):
                yield entity

    def entry_hash_at(self, project_id: str, seq: int) -> str | None:
        """Return the hash of entry `seq`, if present."""
        chain = self._chains.get(project_id, ())
        if 0 < seq <= len(chain) and chain[seq - 1].seq == seq:
            return chain[seq - 1].hash
        for entry in chain:
            if entry.seq == seq:
                return entry.hash
        return None

    def log_size(self) -> int:
        """Return the number of sequenced entries."""
        return len(self._log)

    def log_leaves(self, start: int, stop: int) -> list[LogLeaf]:
        """Return the log's places in ``[start, stop)`` with the entries' current hashes."""
        return [
            (position, pid, seq, self.entry_hash_at(pid, seq))
            for position, (pid, seq) in enumerate(self._log[max(start, 0) : stop], max(start, 0))
        ]

    def log_position(self, project_id: str, seq: int) -> int | None:
        """Return the entry's log position, if sequenced."""
        return self._positions.get((project_id, seq))

    def checkpoint_leaves(self, checkpoint_id: str) -> list[Leaf] | None:
        """Return the leaves of a saved checkpoint."""
        saved = self._checkpoints.get(checkpoint_id)
        return list(saved[1]) if saved else None

    # -- writes --------------------------------------------------------------------------

    def commit(self, change: Change) -> None:
        """Apply `change` atomically (compare-and-set under the lock)."""
        with self._lock:
            if change.guards:
                check_guards(guards_of([change]), self._guard_value)
            self._apply_one(change, 0)

    def _guard_value(self, guard: Guard | RecordGuard) -> object:
        return guard.current(self)  # the caller holds the lock: no commit runs meanwhile

    def _apply_all(self, changes: Sequence[Change]) -> None:
        """Apply every change or none (the caller holds the lock)."""
        undo: list[tuple[str, Project | None, int]] = []
        queued: list[str] = []
        try:
            for index, change in enumerate(changes):
                pid = change.entry.project_id
                undo.append((pid, self._projects.get(pid), len(self._chains.get(pid, ()))))
                queued.extend(self._apply_one(change, index))
        except Exception:
            self._unqueue(queued)
            for pid, before, length in reversed(undo):
                del self._chains.setdefault(pid, [])[length:]
                if before is None:
                    self._projects.pop(pid, None)
                else:
                    self._projects[pid] = before
            raise

    def _apply_one(self, change: Change, index: int) -> list[str]:
        """Check one compare-and-set and apply it; return the outbox ids it queued.

        The caller holds the lock.
        """
        entry = change.entry
        chain = self._chains.get(entry.project_id, [])
        tip = chain[-1].seq if chain else 0
        current = self._projects.get(entry.project_id)
        if change.expected_state is None:
            if current is not None:
                raise ProjectExists(
                    f"project {entry.project_id!r} already exists",
                    project_id=entry.project_id,
                    event=entry.event,
                )
        elif (
            current is None
            or current.state != change.expected_state
            or current.version != change.expected_version
        ):
            raise self._conflict(change, index)
        if tip != change.expected_version or entry.seq != tip + 1:
            raise self._conflict(change, index)
        self._chains.setdefault(entry.project_id, []).append(entry)
        if change.after is not None:
            self._projects[entry.project_id] = change.after
            for record in entry.records:
                self._by_kind.setdefault(record.kind, []).append((entry.project_id, record))
        return self._enqueue(change)

    def put_entity(self, entity: Entity) -> None:
        """Insert or replace an entity."""
        with self._lock:
            self._entities[(entity.kind, entity.id)] = entity

    def sequence_log(self) -> int:
        """Append the entries not yet in the log, ordered by (project id, seq)."""
        with self._lock:
            new = sorted(
                (pid, entry.seq)
                for pid, chain in self._chains.items()
                for entry in chain
                if (pid, entry.seq) not in self._positions
            )
            for key in new:
                self._positions[key] = len(self._log)
                self._log.append(key)
            return len(self._log)

    def save_checkpoint(self, checkpoint: Checkpoint, leaves: Sequence[Leaf]) -> None:
        """Keep the checkpoint and its leaves."""
        with self._lock:
            self._checkpoints[checkpoint.id] = (checkpoint, list(leaves))

    def close(self) -> None:
        """Nothing to release."""

    @staticmethod
    def _conflict(change: Change, index: int = 0) -> ConcurrencyError:
        entry = change.entry
        return ConcurrencyError(
            f"project {entry.project_id!r} changed since version {change.expected_version}",
            project_id=entry.project_id,
            event=entry.event,
            state=change.expected_state,
            expected_version=change.expected_version,
            index=index,
        )

    # -- test support --------------------------------------------------------------------

    def _tamper(self, project_id: str, entries: list[AuditEntry]) -> None:
        """Replace a chain wholesale (tests use it to prove `verify` catches tampering)."""
        self._chains[project_id] = entries
