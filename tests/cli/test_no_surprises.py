"""The command creates nothing it was not asked to and never prints a traceback.

Every case runs ``python -m grantflow`` in a subprocess (fixture `run`), as a user would.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

import grantflow
from grantflow.rules import RuleBook

APPLICANT = grantflow.Actor(id="org-1", roles=frozenset({"applicant"}))
STAFF = ("--actor", "staff-1", "--role", "purchaser")


def _one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


def _host_db(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("create table customers (id integer primary key, name text)")
        conn.execute("insert into customers (name) values ('ada')")
    conn.close()


def _tables(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("select name from sqlite_master where type = 'table'").fetchall()
    conn.close()
    return sorted(name for (name,) in rows)


@pytest.mark.parametrize(
    "args",
    [
        ("verify",),
        ("report",),
        ("show", "p-1"),
        ("history", "p-1"),
        ("checkpoint",),
        ("export",),
        ("fire", "p-1", "reject", *STAFF),
        ("explain", "p-1", "reject", *STAFF),
    ],
    ids=lambda args: args[0],
)
def test_a_missing_database_file_is_named_with_its_fix_and_not_created(
    run: Any, tmp_path: Path, args: tuple[str, ...]
) -> None:
    """`verify --db sqlite:///typo.db` and friends exit 2 naming `db upgrade`; no file appears."""
    done = run(*args, "--db", "sqlite:///typo.db")
    assert done.returncode == 2, done.stderr
    line = _one_line(done.stderr)
    assert line == (
        "error: no grantflow database at typo.db: run `grantflow db upgrade --db sqlite:///typo.db`"
    )
    assert not (tmp_path / "typo.db").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_the_default_database_is_not_created_by_a_read(run: Any, tmp_path: Path) -> None:
    """Without --db, `report` in an empty folder exits 2 and leaves the folder empty."""
    done = run("report")
    assert done.returncode == 2
    assert "run `grantflow db upgrade --db sqlite:///grantflow.db`" in done.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args", [("report",), ("verify",), ("export", "--format", "jsonl")])
def test_another_applications_sqlite_file_is_left_untouched(
    run: Any, tmp_path: Path, args: tuple[str, ...]
) -> None:
    """A read on a SQLite file without grantflow's tables adds no table and changes no mode."""
    host = tmp_path / "shop.db"
    _host_db(host)
    before = host.read_bytes()
    done = run(*args, "--db", f"sqlite:///{host}")
    assert done.returncode == 2
    assert "the file has no grantflow tables" in _one_line(done.stderr)
    assert _tables(host) == ["customers"]
    assert host.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shop.db"]


def test_db_upgrade_is_the_fix_the_message_names(run: Any, tmp_path: Path) -> None:
    """After `db upgrade --db X` (the named fix), `verify --db X` works."""
    assert run("verify", "--db", "sqlite:///new.db").returncode == 2
    assert run("db", "upgrade", "--db", "sqlite:///new.db").returncode == 0
    done = run("verify", "--db", "sqlite:///new.db")
    assert done.returncode == 0, done.stderr


def _fake_missing_psycopg(folder: Path) -> dict[str, str]:
    """A PYTHONPATH entry where ``import psycopg`` fails as if it were not installed."""
    package = folder / "nopsycopg" / "psycopg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'psycopg'\", name='psycopg')\n",
        encoding="utf-8",
    )
    return {"PYTHONPATH": str(package.parent)}


@pytest.mark.slow
def test_unusable_databases_get_one_line_and_no_traceback(run: Any, tmp_path: Path) -> None:
    """A bad URL, a path, a missing driver, a file that is not a database: one line, exit 2."""
    (tmp_path / "notes.db").write_text("not a database, just notes\n", encoding="utf-8")
    (tmp_path / "folder.db").mkdir()
    cases = [
        (("--db", "htp://x"), {}, "unsupported database URL 'htp://x'"),
        (("--db", "grants.db"), {}, "for a SQLite file write sqlite:///grants.db"),
        (("--db", "sqlite:///notes.db"), {}, "notes.db is not a SQLite database"),
        (("--db", "sqlite:///folder.db"), {}, "folder.db is not a SQLite database file"),
        (
            ("--db", "postgresql+psycopg://u@127.0.0.1:1/x"),
            _fake_missing_psycopg(tmp_path),
            "pip install 'grantflow[postgres]'",
        ),
    ]
    commands = [("verify",), ("db", "upgrade"), ("report", "--json")]
    for n, (args, env, message) in enumerate(cases):
        # Every case with one command, and every command with one case: a quicker suite.
        for command in commands if n in {0, 2} else commands[n % 3 : n % 3 + 1]:
            done = run(*command, *args, env=env)
            assert done.returncode == 2, (command, args, done.stderr)
            assert message in _one_line(done.stderr), (command, args)
            assert done.stdout == ""
    assert (tmp_path / "notes.db").read_text("utf-8") == "not a database, just notes\n"


def test_a_server_that_is_down_is_one_line_with_a_debug_hint(run: Any) -> None:
    """Connection refused: one line, exit 1, a hint to rerun with --debug; --debug shows it."""
    url = "postgresql+psycopg://u@127.0.0.1:1/x"
    done = run("verify", "--db", url)
    assert done.returncode == 1
    line = _one_line(done.stderr)
    assert line.startswith("error: database error: connection")
    assert line.endswith("(rerun with --debug to see the traceback)")
    debug = run("verify", "--db", url, "--debug")
    assert debug.returncode == 1
    assert "Traceback (most recent call last)" in debug.stderr
    assert debug.stderr.strip().splitlines()[-1].startswith("error: database error:")
    assert "Traceback" in run("--debug", "verify", "--db", url).stderr


@pytest.fixture
def grants_db(tmp_path: Path) -> str:
    """A SQLite file with one applied project p-1; returns its URL."""
    url = f"sqlite:///{tmp_path / 'grants.db'}"
    with grantflow.open(url, rules=RuleBook(), discover_rules=False) as engine:
        engine.submit(actor=APPLICANT, project_id="p-1", data={"title": "T", "n": 1})
    return url


def test_an_output_path_in_a_missing_folder_is_a_usage_error(
    run: Any, tmp_path: Path, grants_db: str
) -> None:
    """An output file (export, checkpoint, bulk report) in a missing folder: exit 2, no work."""
    (tmp_path / "rows.csv").write_text("project_id,reason\np-1,late\n", encoding="utf-8")
    cases = [
        ("export", "-o", "nowhere/out.json"),
        ("checkpoint", "-o", "nowhere/cp.json"),
        ("bulk", "rows.csv", "reject", *STAFF, "--report", "nowhere/r.json"),
    ]
    for args in cases:
        done = run(*args, "--db", grants_db)
        assert done.returncode == 2, done.stderr
        assert "the folder nowhere does not exist" in _one_line(done.stderr)
    with grantflow.open(grants_db) as engine:
        assert engine.get("p-1").state == "applied"  # the bulk run did not happen
        assert engine.verify().entries == 1  # nor did the checkpoint


def test_demo_twice_on_one_database_refuses_instead_of_crashing(run: Any, tmp_path: Path) -> None:
    """A second `demo --db X` exits 2 with one line (it used to crash with IndexError)."""
    first = run("demo", "--projects", "10", "--db", "sqlite:///d.db", "--json")
    assert first.returncode == 0, first.stderr
    again = run("demo", "--projects", "10", "--db", "sqlite:///d.db", "--json")
    assert again.returncode == 2
    assert "already holds" in _one_line(again.stderr)
    assert "--add" in again.stderr
    added = run("demo", "--projects", "10", "--db", "sqlite:///d.db", "--add")
    assert added.returncode == 2
    assert "already holds the demo portfolio" in _one_line(added.stderr)


def test_demo_adds_to_a_database_of_other_projects_only_with_add(run: Any, grants_db: str) -> None:
    """`demo` refuses a non-empty database; with --add it adds the portfolio beside it."""
    refused = run("demo", "--projects", "10", "--db", grants_db)
    assert refused.returncode == 2
    assert "already holds 1 projects" in _one_line(refused.stderr)
    added = run("demo", "--projects", "10", "--db", grants_db, "--add", "--json")
    assert added.returncode == 0, added.stderr
    with grantflow.open(grants_db) as engine:
        assert engine.get("p-1").state == "applied"
        assert engine.store.load("P-2025-0001") is not None


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs Linux /dev/full")
def test_an_unexpected_error_is_one_line_with_a_debug_hint(run: Any, grants_db: str) -> None:
    """A full disk while exporting: `error: ...` and the --debug hint, not a traceback."""
    done = run("export", "--format", "jsonl", "-o", "/dev/full", "--db", grants_db)
    assert done.returncode == 1
    line = _one_line(done.stderr)
    assert "No space left on device" in line
    assert line.endswith("(rerun with --debug to see the traceback)")


def test_an_unreadable_checkpoint_is_a_usage_error(run: Any, tmp_path: Path) -> None:
    """A checkpoint path that is a folder exits 2 with one line."""
    (tmp_path / "cp.json").mkdir()
    done = run("verify", "--checkpoint", "cp.json", "--db", "memory://")
    assert done.returncode == 2
    assert "cannot read checkpoint cp.json" in _one_line(done.stderr)
