"""Check a ``--db`` URL before anything connects, so that a mistake creates nothing.

SQLite creates a missing file on first connect, and grantflow creates its tables in a
database that has none; both are right for a library opening its own database and
wrong for a command that was only asked to read. Every command except ``db upgrade``
and ``demo`` therefore calls `require_database` first: a URL that cannot work, a driver
that is not installed, a missing file, a file that is not SQLite or a database without
grantflow's tables is a usage error naming the fix, and the file is left untouched.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

__all__ = [
    "MEMORY",
    "UnusableDatabaseError",
    "check_url",
    "creatable_database",
    "require_database",
]

MEMORY = "memory://"
_TABLE_PREFIX = "grantflow_"
_SQLITE_SUFFIXES = {".db", ".sqlite", ".sqlite3", ".db3"}
_EXTRA_HINT = "pip install 'grantflow[postgres]'"


@dataclass(frozen=True)
class UnusableDatabaseError(Exception):
    """The ``--db`` cannot be used as it is: `message` says why and what to do."""

    message: str

    def __str__(self) -> str:
        return self.message


def _redacted(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def check_url(db: str) -> URL | None:
    """Return the parsed URL (``None`` for ``memory://``), or raise `UnusableDatabaseError`.

    Checks that the URL parses, names SQLite or PostgreSQL, and that its driver is
    installed (a missing psycopg names the extra to install). Connects to nothing.
    """
    if db == MEMORY:
        return None
    try:
        url = make_url(db)
    except ArgumentError:
        raise UnusableDatabaseError(_not_a_url(db)) from None
    backend = url.get_backend_name()
    if backend not in {"sqlite", "postgresql"}:
        raise UnusableDatabaseError(
            f"unsupported database URL {_redacted(url)!r}: grantflow runs on "
            "sqlite:///FILE or postgresql+psycopg://USER@HOST/DB (or memory://)"
        )
    try:
        url.get_dialect().import_dbapi()
    except NoSuchModuleError:
        raise UnusableDatabaseError(
            f"unknown database driver in {_redacted(url)!r}: use sqlite:///FILE or "
            "postgresql+psycopg://USER@HOST/DB"
        ) from None
    except ImportError as exc:
        if backend == "postgresql":
            raise UnusableDatabaseError(
                f"the PostgreSQL driver {exc.name or url.get_driver_name()!r} is not "
                f"installed: {_EXTRA_HINT} and use a postgresql+psycopg:// URL"
            ) from None
        raise UnusableDatabaseError(f"the database driver is not installed: {exc}") from None
    return url


def _not_a_url(db: str) -> str:
    looks_like_file = Path(db).suffix.lower() in _SQLITE_SUFFIXES or Path(db).exists()
    if looks_like_file or "://" not in db:
        return f"{db!r} is not a database URL; for a SQLite file write sqlite:///{db}"
    return f"{db!r} is not a database URL (sqlite:///FILE or postgresql+psycopg://USER@HOST/DB)"


def _sqlite_path(url: URL | None) -> Path | None:
    if url is None or url.get_backend_name() != "sqlite":
        return None
    database = url.database or ""
    if database in {"", ":memory:"} or database.startswith("file:"):
        return None  # an in-memory SQLite database
    return Path(database)


def creatable_database(db: str) -> None:
    """Raise `UnusableDatabaseError` unless grantflow may create or upgrade its tables in `db`.

    A SQLite file may be missing (it is created, in a folder that must exist) or be a
    SQLite database, with or without grantflow's tables; anything else is refused.
    """
    path = _sqlite_path(check_url(db))
    if path is None:
        return
    if not path.exists():
        if not path.parent.is_dir():
            missing = path.parent
            raise UnusableDatabaseError(f"cannot create {path}: the folder {missing} is missing")
        return
    if not path.is_file():
        raise UnusableDatabaseError(f"{path} is not a SQLite database file")
    _has_grantflow_tables(path)


def require_database(db: str) -> None:
    """Raise `UnusableDatabaseError` unless `db` can be read without creating anything.

    For SQLite the file must exist, be a SQLite database and hold grantflow's tables;
    it is opened read-only for the check, so not even its journal mode changes. A
    PostgreSQL database is checked when the store opens (without ``create``).
    """
    path = _sqlite_path(check_url(db))
    if path is None:
        return  # the store checks the schema of PostgreSQL and in-memory SQLite itself
    fix = f"run `grantflow db upgrade --db {db}`"
    if not path.exists():
        raise UnusableDatabaseError(f"no grantflow database at {path}: {fix}")
    if not path.is_file():
        raise UnusableDatabaseError(f"{path} is not a SQLite database file")
    if not _has_grantflow_tables(path):
        raise UnusableDatabaseError(
            f"no grantflow database at {path}: the file has no grantflow tables; {fix} to add them"
        )


def _has_grantflow_tables(path: Path) -> bool:
    uri = path.resolve().as_uri() + "?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True)
    except sqlite3.Error as exc:
        raise UnusableDatabaseError(f"cannot open {path}: {exc}") from None
    try:
        found = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
            (f"{_TABLE_PREFIX}schema_version",),
        ).fetchone()
    except sqlite3.DatabaseError as exc:
        raise UnusableDatabaseError(f"{path} is not a SQLite database ({exc})") from None
    finally:
        conn.close()
    return found is not None
