"""The example packages under examples/ pass their own test suites with this grantflow."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.slow
@pytest.mark.parametrize("example", ["rule-author"])
def test_the_example_package_passes_its_tests(example: str) -> None:
    """Run pytest on the example in a subprocess, as its author would (its own config)."""
    root = EXAMPLES / example
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    env.pop("PYTEST_ADDOPTS", None)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout
    assert " failed" not in result.stdout


def test_the_example_depends_only_on_grantflow_and_its_testing_extra() -> None:
    """Its pyproject names grantflow (and grantflow[testing] for tests), nothing else."""
    import tomllib

    project = tomllib.loads((EXAMPLES / "rule-author" / "pyproject.toml").read_text())["project"]
    assert project["dependencies"] == ["grantflow"]
    assert project["optional-dependencies"] == {"test": ["grantflow[testing]"]}
