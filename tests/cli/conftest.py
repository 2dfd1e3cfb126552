"""Run the ``grantflow`` command in a subprocess, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def run(tmp_path: Path) -> Run:
    """Return a function running ``python -m grantflow ARGS`` in `tmp_path`."""

    def _run(
        *args: str, env: dict[str, str] | None = None, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        environ = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("GRANTFLOW_") or k == "GRANTFLOW_TEST_PG_URL"
        }
        environ.update({"PYTHONIOENCODING": "utf-8", "COLUMNS": "200"})
        environ.update(env or {})
        return subprocess.run(
            [sys.executable, "-m", "grantflow", *args],
            cwd=tmp_path,
            env=environ,
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=120,
            check=False,
        )

    return _run
