"""``grantflow list``: the filters of `Engine.projects`, pages with cursors, TSV and JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import grantflow
from grantflow.models import Entity
from grantflow.rules import RuleBook

APPLICANT = grantflow.Actor(id="org-1", roles=frozenset({"applicant"}))


def _db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'grants.db'}"
    with grantflow.open(url, rules=RuleBook(), discover_rules=False) as engine:
        engine.store.put_entity(Entity(kind="hub", id="city"))
        engine.store.put_entity(Entity(kind="hub", id="district", parent="city"))
        for i, hub in enumerate(["city", "district", "district", "elsewhere"]):
            data = {"hub": hub, "call": "c-2026", "year": 2026}
            engine.submit(actor=APPLICANT, project_id=f"p-{i}", data=data)
    return url


def test_list_filters_pages_and_prints_the_cursor_on_stderr(run: Any, tmp_path: Path) -> None:
    """TSV rows of one page on stdout, the next cursor on stderr; --cursor continues."""
    env = {"GRANTFLOW_DB": _db(tmp_path)}
    first = run("list", "--subtree", "city", "--limit", "2", env=env)
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert lines[0].split("\t") == ["id", "state", "hub", "call", "provider", "year", "updated"]
    assert [line.split("\t")[:3] for line in lines[1:]] == [
        ["p-0", "applied", "city"],
        ["p-1", "applied", "district"],
    ]
    cursor = first.stderr.strip().removeprefix("more: --cursor ")
    rest = run("list", "--subtree", "city", "--limit", "2", "--cursor", cursor, "--json", env=env)
    page = json.loads(rest.stdout)
    assert [p["id"] for p in page["projects"]] == ["p-2"]
    assert page["cursor"] is None


def test_list_all_follows_the_cursors_and_refuses_bad_options(run: Any, tmp_path: Path) -> None:
    """--all prints every page; a bad order or a naive time is a usage error (exit 2)."""
    env = {"GRANTFLOW_DB": _db(tmp_path)}
    done = run("list", "--all", "--limit", "1", "--order", "-id", "--year", "2026", env=env)
    assert [line.split("\t")[0] for line in done.stdout.splitlines()[1:]] == [
        "p-3",
        "p-2",
        "p-1",
        "p-0",
    ]
    assert done.stderr == ""
    bad = run("list", "--order", "title", env=env)
    assert bad.returncode == 2
    assert "order" in bad.stderr


def test_list_due_before_filters_by_open_obligations(run: Any, tmp_path: Path) -> None:
    """--due-before keeps projects with an open due date before the day; a bad day exits 2."""
    env = {"GRANTFLOW_DB": _db(tmp_path)}  # bare rule book: the projects have no due dates
    none = run("list", "--due-before", "2100-01-01", "--json", env=env)
    assert none.returncode == 0, none.stderr
    assert json.loads(none.stdout)["projects"] == []
    bad = run("list", "--due-before", "soon", env=env)
    assert bad.returncode == 2
    assert "--due-before 'soon' is not a date" in bad.stderr
