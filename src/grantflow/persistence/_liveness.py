"""Is the holder of a bulk job still alive? Owner ids and the same-host process check.

A worker's owner id is ``host:pid:nonce`` (`owner_id`). A lease says how long a holder
may stay silent; a holder that provably died need not be waited for. On the same host
the process id answers: no such process means the holder is dead (a live process with
a reused pid only makes us wait for the lease, never take over too early). On another
host nothing can be proven here; PostgreSQL stores add a session-bound advisory lock
for that case (`grantflow.persistence._sqljobs`).
"""

from __future__ import annotations

import os
import uuid

__all__ = ["owner_id", "provably_dead"]


def owner_id() -> str:
    """Return a new owner id for a worker of this process: ``host:pid:nonce``."""
    return f"{os.uname().nodename}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def provably_dead(owner: str) -> bool:
    """True only if `owner` names a process of this host that no longer exists."""
    parts = owner.rsplit(":", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return False
    host, pid = parts[0], int(parts[1])
    if host != os.uname().nodename or pid <= 0:
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # it exists, under another user
        return False
    return False
