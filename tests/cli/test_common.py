"""Tests for what every command shares: usage errors, exit codes, one-line errors.

They run ``python -m grantflow`` in a subprocess (fixture `run` in conftest.py).
"""

from __future__ import annotations

import json
from typing import Any

MEMORY = {"GRANTFLOW_DB": "memory://"}


def test_python_m_grantflow_prints_help_listing_every_command(run: Any) -> None:
    """``python -m grantflow --help`` lists the commands of issue 5."""
    done = run("--help")
    assert done.returncode == 0
    for command in ("fire", "bulk", "show", "history", "explain", "verify", "checkpoint"):
        assert command in done.stdout
    for command in ("report", "diagram", "export", "db", "demo"):
        assert command in done.stdout


def test_diagram_prints_mermaid_and_dot(run: Any) -> None:
    """``diagram`` prints Mermaid by default and dot on request."""
    assert run("diagram").stdout.startswith("stateDiagram-v2")
    assert run("diagram", "--format", "dot").stdout.startswith('digraph "purchased-service"')


def test_unknown_option_and_bad_choice_exit_2(run: Any) -> None:
    """Typer's own usage errors exit 2."""
    assert run("diagram", "--format", "png").returncode == 2
    assert run("fire", "--nope").returncode == 2


def test_missing_actor_is_a_usage_error(run: Any) -> None:
    """A command that acts needs --actor; without it, a one-line message and exit 2."""
    done = run("fire", "p-1", "approve", env=MEMORY)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "error: name who acts with --actor ID (and --role ROLE), or set GRANTFLOW_ACTOR"
    )


def test_grantflow_errors_print_one_line_without_traceback(run: Any) -> None:
    """An unknown project exits 1 with the error's class and message, no traceback."""
    done = run("fire", "p-404", "approve", "--actor", "s", "--role", "purchaser", env=MEMORY)
    assert done.returncode == 1
    assert done.stderr.strip() == "error: ProjectNotFound: no project 'p-404'"
    assert "Traceback" not in done.stderr


def test_unknown_event_exits_2(run: Any) -> None:
    """Firing an event the lifecycle does not define is a usage error."""
    done = run("fire", "p-1", "fly", "--actor", "s", env=MEMORY)
    assert done.returncode == 2
    assert done.stderr.startswith("error: UnknownEvent:")


def test_actor_comes_from_the_environment(run: Any) -> None:
    """GRANTFLOW_ACTOR and GRANTFLOW_ROLE stand in for --actor and --role."""
    env = {**MEMORY, "GRANTFLOW_ACTOR": "s", "GRANTFLOW_ROLE": "purchaser evaluator"}
    done = run("explain", "p-1", "approve", env=env)
    assert done.stderr.strip() == "error: ProjectNotFound: no project 'p-1'"


def test_bad_evidence_options_are_usage_errors(run: Any) -> None:
    """``-e`` needs KEY=VALUE and ``--evidence-json`` a JSON object."""
    base = ("fire", "p", "approve", "--actor", "s")
    assert run(*base, "-e", "novalue", env=MEMORY).returncode == 2
    assert run(*base, "--evidence-json", "[1]", env=MEMORY).returncode == 2
    assert run(*base, "--evidence-json", "{bad", env=MEMORY).returncode == 2


def test_report_on_an_empty_database_is_empty(run: Any) -> None:
    """``report --json`` on an empty store prints no rows and exits 0."""
    done = run("report", "--json", env=MEMORY)
    assert done.returncode == 0
    assert json.loads(done.stdout) == {"by": "state", "rows": []}
