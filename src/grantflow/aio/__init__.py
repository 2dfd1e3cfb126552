"""The async API: `grantflow.aio.open` gives an `AsyncEngine` for asyncio applications.

The async engine does not decide anything itself: it drives the same `Engine` (one
decision core, the same rules, audit and store code) in a greenlet on the event loop's
thread, on SQLAlchemy's asyncio engine (aiosqlite for SQLite, psycopg's async mode for
PostgreSQL). Every database round trip awaits the driver, so other tasks run meanwhile;
the Python work between them (rules, hashing, JSON) runs on the loop. See docs/async.md
for the trade-offs. Needs the ``async`` extra (``pip install 'grantflow[async]'``).

>>> import asyncio, grantflow
>>> from grantflow import aio
>>> async def main():
...     async with await aio.open(rules=grantflow.RuleBook()) as engine:
...         actor = grantflow.Actor(id="org-1", roles=frozenset({"applicant"}))
...         outcome = await engine.submit(actor=actor, project_id="p-1")
...         return outcome.state
>>> asyncio.run(main())
'applied'
"""

from __future__ import annotations

from grantflow.aio._engine import AsyncEngine, open
from grantflow.aio._store import AsyncStore, bridge

__all__ = ["AsyncEngine", "AsyncStore", "bridge", "open"]
