"""Tests for grantflow.persistence._sqlconn: SQLite pragmas, network file systems."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy

from grantflow.errors import InvalidInput, StoreError
from grantflow.persistence._sqlconn import Connector, filesystem_type
from grantflow.persistence.sql import SqlStore, StorageWarning

MOUNTS = """\
/dev/sda1 / ext4 rw,relatime 0 0
server:/export /mnt/share nfs4 rw,relatime 0 0
//nas/grants /mnt/smb\\040drive cifs rw 0 0
"""


def test_filesystem_type_picks_the_longest_mount_point() -> None:
    """The deepest mount holding a path decides its file system type."""
    assert filesystem_type(Path("/mnt/share/db/grants.db"), MOUNTS) == "nfs4"
    assert filesystem_type(Path("/mnt/smb drive/x.db"), MOUNTS) == "cifs"
    assert filesystem_type(Path("/mnt/shared/x.db"), MOUNTS) == "ext4"
    assert filesystem_type(Path("/home/x.db"), "") is None


def test_sqlite_on_a_network_file_system_is_refused_or_warned(tmp_path: Path) -> None:
    """A SQLite file on NFS is refused; with allow_network_filesystem a StorageWarning."""
    mounts = tmp_path / "mounts"
    mounts.write_text(f"server:/export {tmp_path} nfs rw 0 0\n")
    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'g.db'}")
    with pytest.raises(StoreError, match="network file system"):
        Connector(engine, owned=False, mounts_file=mounts)
    with pytest.warns(StorageWarning, match="nfs"):
        Connector(engine, owned=False, mounts_file=mounts, allow_network_filesystem=True)
    engine.dispose()


def test_sqlite_connections_get_wal_and_the_chosen_synchronous(tmp_path: Path) -> None:
    """The store puts the file in WAL mode and sets synchronous, busy_timeout, foreign_keys."""
    store = SqlStore.open(f"sqlite:///{tmp_path / 'g.db'}", synchronous="NORMAL", busy_timeout=2)
    with store._db.connect() as conn:  # the store's own configured connection
        pragma = {
            name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
            for name in ("journal_mode", "synchronous", "busy_timeout", "foreign_keys")
        }
    assert pragma == {
        "journal_mode": "wal",
        "synchronous": 1,
        "busy_timeout": 2000,
        "foreign_keys": 1,
    }
    store.close()
    full = SqlStore.open(f"sqlite:///{tmp_path / 'g.db'}")
    with full._db.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2
    full.close()


def test_bookkeeping_commits_without_waiting_for_the_disk_then_full_again(
    tmp_path: Path,
) -> None:
    """`write_cursor(durable=False)` (a chunk's claim) runs at NORMAL; the next commit at FULL.

    On a file opened with ``synchronous=FULL``, on the pooled DBAPI connection both paths
    of `write_cursor` share, and whether the work succeeds or raises.
    """
    store = SqlStore.open(f"sqlite:///{tmp_path / 'g.db'}")

    def synchronous(cursor: Any) -> int:
        return int(cursor.execute("PRAGMA synchronous").fetchone()[0])

    assert store._db.write_cursor(synchronous, durable=False) == 1
    assert store._db.write_cursor(synchronous) == 2

    def fails(cursor: Any) -> None:
        raise RuntimeError("work failed")

    with pytest.raises(RuntimeError, match="work failed"):
        store._db.write_cursor(fails, durable=False)
    assert store._db.write_cursor(synchronous) == 2
    with store._db.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2
    store.close()


def test_bad_synchronous_is_refused(tmp_path: Path) -> None:
    """Only FULL and NORMAL are accepted for synchronous."""
    with pytest.raises(InvalidInput) as caught:
        SqlStore.open(f"sqlite:///{tmp_path / 'g.db'}", synchronous="OFF")  # type: ignore[arg-type]
    assert caught.value.field == "synchronous"


def test_store_survives_fork_in_the_child(tmp_path: Path) -> None:
    """After fork() the child drops inherited pooled connections and opens its own."""
    import os

    store = SqlStore.open(f"sqlite:///{tmp_path / 'g.db'}")
    assert store.load("p") is None  # a pooled connection now exists
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 0 if store.load("p") is None and list(store.chain_ids()) == [] else 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert store.load("p") is None
    store.close()


# -- read errors are StoreError (issue 10) --------------------------------------------------


def _read_only_url(tmp_path: Path) -> str:
    """A grantflow SQLite file (rollback journal) opened read-only through a URI."""
    import sqlite3

    path = tmp_path / "ro.db"
    SqlStore.open(f"sqlite:///{path}").close()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode = DELETE")
    return f"sqlite:///file:{path}?mode=ro&uri=true"


def test_a_read_only_sqlite_file_is_a_store_error(tmp_path: Path) -> None:
    """Opening a read-only SQLite file raises StoreError saying so, not sqlite3's error."""
    with pytest.raises(StoreError, match="read-only") as caught:
        SqlStore.open(_read_only_url(tmp_path))
    assert isinstance(caught.value.__cause__, sqlalchemy.exc.OperationalError)


def test_grantflow_show_on_a_read_only_file_prints_one_line(tmp_path: Path) -> None:
    """`grantflow show` on a read-only database: one line on stderr, exit 1, no traceback."""
    import subprocess
    import sys

    url = _read_only_url(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "grantflow", "show", "p-1", "--db", url],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("error: database error: the SQLite database is read-only")
    assert len(done.stderr.strip().splitlines()) == 1


@pytest.mark.postgres
def test_reads_after_pg_terminate_backend_recover_or_raise_store_errors(
    pg_url: str, pg_schema: str
) -> None:
    """A pooled connection killed by the server: pre-ping replaces it; without, StoreError."""
    admin = sqlalchemy.create_engine(pg_url)

    def kill_pool(store: SqlStore) -> None:
        with store.connect() as conn:
            pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        with admin.begin() as conn:
            conn.execute(sqlalchemy.text("SELECT pg_terminate_backend(:p)"), {"p": pid})

    try:
        store = SqlStore.open(pg_url, schema=pg_schema, table_prefix="kill_")
        kill_pool(store)
        assert store.load("p-1") is None  # pre-ping replaced the dead connection
        store.close()
        bare = SqlStore.open(
            pg_url,
            schema=pg_schema,
            table_prefix="kill_",
            engine_options={"pool_pre_ping": False, "pool_size": 1},
        )
        kill_pool(bare)
        with pytest.raises(StoreError, match="database error"):
            bare.load("p-1")
        assert bare.load("p-1") is None  # the pool moved on
        bare.close()
    finally:
        admin.dispose()
