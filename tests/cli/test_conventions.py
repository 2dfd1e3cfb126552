"""The command follows the conventions of command-line tools.

``--version``, shell completion, ``-`` for standard input, the event as an argument
everywhere, ``--json`` on every command and tab-separated output without Python reprs.
"""

from __future__ import annotations

import json
import re
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import typer.main

import grantflow
from grantflow.cli import app
from grantflow.records import Directory, Hub
from grantflow.rules import RuleBook

APPLICANT = grantflow.Actor(id="org-1", roles=frozenset({"applicant"}))
STAFF = {"GRANTFLOW_ACTOR": "staff-1", "GRANTFLOW_ROLE": "purchaser", "GRANTFLOW_ORG": "city"}
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
REPRS = ("Decimal(", "datetime.", "{'", "mappingproxy", "frozendict", "None")


@pytest.fixture
def db(tmp_path: Path) -> dict[str, str]:
    """Three applied projects with nested data; returns the command's env."""
    url = f"sqlite:///{tmp_path / 'grants.db'}"
    with grantflow.open(url, rules=RuleBook(), discover_rules=False) as engine:
        # The purchaser the staff act for (the default rules check the hub tree).
        Directory(engine).add_hub(Hub(id="city", name="City federation", kind="city"))
        for i in (1, 2, 3):
            data = {"title": f"Project {i}", "budget": {"total": "1000.50"}, "tags": ["a", "b"]}
            data["purchaser"] = "city"
            engine.submit(actor=APPLICANT, project_id=f"p-{i}", data=data)
    return {"GRANTFLOW_DB": url, **STAFF}


def _commands() -> list[tuple[str, Any]]:
    """Every (sub)command of the app, by its full name (typer may bring its own click)."""
    group: Any = typer.main.get_command(app)
    found: list[tuple[str, Any]] = []
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            found += [(f"{name} {sub}", c) for sub, c in command.commands.items()]
        else:
            found.append((name, command))
    return found


def test_version_prints_the_installed_version(run: Any) -> None:
    """`grantflow --version` prints the package version and exits 0."""
    done = run("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"grantflow {version('grantflow')}"


def test_shell_completion_completes_command_names(run: Any) -> None:
    """Typer's completion is on: bash completion of `grantflow ver` offers `verify`."""
    env = {"_GRANTFLOW_COMPLETE": "complete_bash", "COMP_WORDS": "grantflow ver", "COMP_CWORD": "1"}
    done = run(env=env)
    assert done.stdout.split() == ["verify"]
    assert "--show-completion" in run("--help").stdout


def test_every_command_takes_json() -> None:
    """Every command and subcommand, `diagram`, `export` and `db upgrade` included, has --json."""
    commands = _commands()
    assert {"diagram", "export", "db upgrade", "checkpoint", "demo"} <= {n for n, _ in commands}
    for name, command in commands:
        options = {opt for param in command.params for opt in param.opts}
        assert "--json" in options, name


def test_diagram_export_and_db_upgrade_print_json(run: Any, db: dict[str, str]) -> None:
    """The three commands that lacked --json print one JSON document with it."""
    diagram = json.loads(run("diagram", "--json").stdout)
    assert diagram["format"] == "mermaid"
    assert diagram["diagram"].startswith("stateDiagram-v2")
    exported = run("export", "--format", "jsonl", "-o", "all.jsonl", "--json", env=db)
    assert json.loads(exported.stdout) == {"format": "jsonl", "output": "all.jsonl", "projects": 3}
    assert run("export", "--json", env=db).returncode == 2  # the data needs a file then
    upgraded = json.loads(run("db", "upgrade", "--json", env=db).stdout)
    assert upgraded["schema_version"] >= 1
    assert upgraded["database"] == db["GRANTFLOW_DB"]


def test_the_event_is_an_argument_of_fire_explain_and_bulk(
    run: Any, db: dict[str, str], tmp_path: Path
) -> None:
    """`bulk FILE EVENT` like `fire ID EVENT`; `--event` still works with a warning."""
    (tmp_path / "rows.csv").write_text("project_id,reason\np-1,late\n", encoding="utf-8")
    done = run("bulk", "rows.csv", "reject", "--json", env=db)
    assert json.loads(done.stdout)["counts"] == {"applied": 1}
    (tmp_path / "more.csv").write_text("project_id,reason\np-2,late\n", encoding="utf-8")
    old = run("bulk", "more.csv", "--event", "reject", "--json", env=db)
    assert json.loads(old.stdout)["counts"] == {"applied": 1}
    assert "--event is deprecated" in old.stderr
    missing = run("bulk", "more.csv", env=db)
    assert missing.returncode == 2
    assert "name the event: grantflow bulk FILE EVENT" in missing.stderr
    both = run("bulk", "more.csv", "reject", "--event", "approve", env=db)
    assert both.returncode == 2


def test_a_dash_reads_standard_input(run: Any, db: dict[str, str]) -> None:
    """`bulk - EVENT` reads CSV or JSON lines from stdin; `verify --checkpoint -` too."""
    done = run("bulk", "-", "reject", "--json", env=db, stdin="project_id,reason\np-1,late\n")
    out = json.loads(done.stdout)
    assert (out["file"], out["counts"]) == ("-", {"applied": 1})
    lines = '{"id": "p-2", "reason": "late"}\n{"id": "p-3", "reason": "late"}\n'
    done = run("bulk", "-", "reject", "--json", env=db, stdin=lines)
    assert json.loads(done.stdout)["counts"] == {"applied": 2}
    checkpoint = run("checkpoint", env=db).stdout
    verified = run("verify", "--checkpoint", "-", "--json", env=db, stdin=checkpoint)
    assert verified.returncode == 0, verified.stderr
    assert json.loads(verified.stdout)["ok"] is True


def test_tab_separated_output_has_no_reprs_and_one_time_spelling(
    run: Any, db: dict[str, str]
) -> None:
    """`show` and `history` print JSON for nested values and ISO-8601 UTC times only."""
    run("fire", "p-1", "reject", "-e", "reason=late", env=db)
    shown = run("show", "p-1", env=db).stdout
    history = run("history", "p-1", env=db).stdout
    for text in (shown, history):
        for repr_ in REPRS:
            assert repr_ not in text, (repr_, text)
    data = dict(line.split("\t") for line in shown.splitlines()[2:])
    assert data["budget"] == '{"total":"1000.50"}'
    assert data["tags"] == '["a","b"]'
    stamps = re.findall(r"created (\S+), updated (\S+)", shown)[0]
    rows = [line.split("\t") for line in history.splitlines()[1:]]
    assert [row[2] for row in rows] == ["submit", "reject"]
    assert [row[5] for row in rows] == ["yes", "yes"]
    assert rows[0][3] == ""  # a submission comes from no state: empty, not "None"
    for stamp in [*stamps, *(row[1] for row in rows)]:
        assert ISO.match(stamp), stamp
    as_json = json.loads(run("history", "p-1", "--json", env=db).stdout)
    assert [e["at"] for e in as_json] == [row[1] for row in rows]
