"""`grantflow.open` and the API edges of issue 13: typed options, short help, no false ids."""

from __future__ import annotations

import inspect
import pydoc
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import grantflow
from grantflow import Actor, InvalidInput, ProjectNotFound, TransitionRefused
from grantflow.rules import RuleBook, refuse

APPLICANT = Actor(id="org-1", roles=frozenset({"applicant"}))


def test_a_refused_submission_returns_no_project_id() -> None:
    """No project exists after a refused submit, so its outcome names none.

    The attempt is still audited, in the chain its entry names.
    """
    book = RuleBook().on("submit", lambda ctx: refuse("eligibility.x", "no", "不符合"))
    with grantflow.open(rules=book, discover_rules=False) as engine:
        outcome = engine.submit(actor=APPLICANT, project_id="p-9")
        assert (outcome.accepted, outcome.project_id) == (False, None)
        assert outcome.entry is not None
        assert outcome.entry.project_id == "p-9"
        assert [e.accepted for e in engine.history("p-9")] == [False]
        with pytest.raises(ProjectNotFound):
            engine.get("p-9")
        with pytest.raises(TransitionRefused, match=r"'submit' refused: eligibility\.x") as info:
            outcome.raise_for_refusal()
        assert info.value.project_id == "p-9"


def test_an_accepted_submission_returns_its_id() -> None:
    """An accepted submit names the project it created."""
    with grantflow.open(rules=RuleBook()) as engine:
        outcome = engine.submit(actor=APPLICANT, project_id="p-1")
        assert outcome.project_id == "p-1" == engine.get("p-1").id


@pytest.mark.slow
def test_store_options_are_typed_keywords(tmp_path: Path) -> None:
    """A misspelt store option fails the type check (and at run time), not silently."""
    script = tmp_path / "user_code.py"
    script.write_text(
        textwrap.dedent(
            """
            import grantflow

            grantflow.open("sqlite:///grants.db", table_prefix="gf_", busy_timeout=2.0)
            grantflow.open("sqlite:///grants.db", tabel_prefix="gf_")
            grantflow.open("sqlite:///grants.db", synchronous="OFF")
            """
        )
    )
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(script)],
        capture_output=True,
        text=True,
        check=False,
    )
    errors = [line for line in done.stdout.splitlines() if ": error:" in line]
    assert [line.split(":")[1] for line in errors] == ["5", "6"], done.stdout
    assert 'Unexpected keyword argument "tabel_prefix"' in errors[0]
    with pytest.raises(TypeError, match="tabel_prefix"):
        grantflow.open("sqlite:///grants.db", tabel_prefix="gf_")  # type: ignore[call-arg]


def test_store_options_are_refused_for_the_memory_store() -> None:
    """Options of SQL stores given for the memory store are an error naming them."""
    with pytest.raises(InvalidInput, match=r"\['table_prefix'\] do not apply to the memory"):
        grantflow.open(table_prefix="gf_")


def test_help_on_open_is_short() -> None:
    """Defaults have short reprs: no lifecycle dump, no function addresses."""
    signature = str(inspect.signature(grantflow.open))
    assert "0x" not in signature
    assert "Lifecycle(" not in signature
    assert len(signature) < 800, len(signature)
    assert len(pydoc.render_doc(grantflow.open, renderer=pydoc.plaintext)) < 5000
