"""Progress bars: on standard error when it is a terminal, with total, percentage, rate, ETA.

The command runs in a subprocess whose standard error is a pseudo-terminal (the `pty`
module) and whose standard output is a pipe, so the tests also see that the bar never
mixes into the output a script reads.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import threading
from pathlib import Path

import pytest

import grantflow
from grantflow.cli._app import DEMO_STEPS
from grantflow.demo import DemoClock, run_demo
from grantflow.records import Directory, Hub
from grantflow.rules import RuleBook
from grantflow.testing import capture_audit

APPLICANT = grantflow.Actor(id="org-1", roles=frozenset({"applicant"}))
STAFF = ["--actor", "staff-1", "--role", "purchaser", "--org", "city"]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRANTFLOW_")}
    for name in ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "CI"):
        env.pop(name, None)
    env.update({"TERM": "xterm-256color", "COLUMNS": "160", "PYTHONIOENCODING": "utf-8"})
    return env


def run_with_terminal(
    args: list[str], cwd: Path, *, stderr_tty: bool = True
) -> tuple[int, str, str]:
    """Run ``python -m grantflow ARGS`` with stderr on a pseudo-terminal (or a pipe).

    Returns (exit code, stdout, stderr with escape sequences removed).
    """
    cmd = [sys.executable, "-m", "grantflow", *args]
    if not stderr_tty:
        done = subprocess.run(
            cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=120, check=False
        )
        return done.returncode, done.stdout, done.stderr
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 160, 0, 0))
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every writer closed the terminal
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    with subprocess.Popen(
        cmd,
        cwd=cwd,
        env=_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=slave,
    ) as proc:
        os.close(slave)
        out, _ = proc.communicate(timeout=120)
    reader.join(timeout=10)
    os.close(master)
    text = b"".join(chunks).decode("utf-8", errors="replace")
    return proc.returncode, out.decode("utf-8"), ANSI.sub("", text).replace("\r", "\n")


def _final_bar(stderr: str, label: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if label in line]
    assert lines, stderr
    return lines[-1]


def _assert_bar(line: str, done: int, total: int, unit: str) -> None:
    """The bar shows done/total, the percentage, a rate in units per second and an ETA."""
    assert f"{done}/{total} {unit}" in line, line
    assert f"{round(100 * done / total)}%" in line, line
    assert re.search(rf"[\d,.]+ {unit}/s", line), line
    assert re.search(r"eta \d+:\d\d:\d\d", line), line


@pytest.fixture
def grants(tmp_path: Path) -> str:
    """A SQLite file with 60 applied projects and a bulk file rejecting all of them."""
    url = f"sqlite:///{tmp_path / 'grants.db'}"
    with grantflow.open(url, rules=RuleBook(), discover_rules=False) as engine:
        # The purchaser the staff act for (the default rules check the hub tree).
        Directory(engine).add_hub(Hub(id="city", name="City federation", kind="city"))
        for i in range(1, 61):
            engine.submit(actor=APPLICANT, project_id=f"p-{i}", data={"purchaser": "city"})
    rows = "".join(f"p-{i},too late\n" for i in range(1, 61))
    (tmp_path / "rows.csv").write_text("project_id,reason\n" + rows, encoding="utf-8")
    return url


def test_bulk_draws_total_percentage_rate_and_eta_on_stderr(tmp_path: Path, grants: str) -> None:
    """`bulk` on a terminal: a bar for the 60 rows on stderr; stdout is only the JSON."""
    args = ["bulk", "rows.csv", "reject", "--chunk-size", "4", "--json", "--db", grants, *STAFF]
    code, out, err = run_with_terminal(args, tmp_path)
    assert code == 0, err
    assert json.loads(out)["counts"] == {"applied": 60}
    _assert_bar(_final_bar(err, "reject rows.csv"), 60, 60, "rows")


def test_bulk_with_workers_shows_the_whole_job(tmp_path: Path, grants: str) -> None:
    """With --workers the bar counts the rows of every worker, up to the total."""
    args = ["bulk", "rows.csv", "reject", "--workers", "2", "--chunk-size", "4", "--db", grants]
    code, _out, err = run_with_terminal([*args, *STAFF], tmp_path)
    assert code == 0, err
    _assert_bar(_final_bar(err, "reject rows.csv"), 60, 60, "rows")
    assert err.count("reject rows.csv") >= 1
    assert "Traceback" not in err


def test_export_draws_a_bar_over_the_projects_it_reads(tmp_path: Path, grants: str) -> None:
    """`export --format jsonl -o FILE` shows a bar over every project."""
    args = ["export", "--format", "jsonl", "-o", "all.jsonl", "--db", grants]
    code, _out, err = run_with_terminal(args, tmp_path)
    assert code == 0, err
    _assert_bar(_final_bar(err, "export jsonl"), 60, 60, "projects")
    assert len((tmp_path / "all.jsonl").read_text("utf-8").splitlines()) == 60


def test_verify_draws_a_bar_over_every_audit_entry(tmp_path: Path, grants: str) -> None:
    """`verify` shows a bar over the 60 audit entries; stdout is only the report."""
    code, out, err = run_with_terminal(["verify", "--json", "--db", grants], tmp_path)
    assert code == 0, err
    assert json.loads(out)["entries"] == 60
    _assert_bar(_final_bar(err, "verify"), 60, 60, "entries")


def test_demo_draws_a_bar_over_its_steps(tmp_path: Path) -> None:
    """`demo` shows its steps as a bar, finished at the end."""
    code, out, err = run_with_terminal(["demo", "--projects", "10", "--json"], tmp_path)
    assert code == 0, err
    assert json.loads(out)["projects"] == 10
    _assert_bar(_final_bar(err, "demo: report"), DEMO_STEPS, DEMO_STEPS, "steps")


def test_no_bar_when_stderr_is_not_a_terminal_or_with_quiet(tmp_path: Path, grants: str) -> None:
    """A pipe on stderr, or --quiet on a terminal, gets no bar at all."""
    args = ["bulk", "rows.csv", "reject", "--dry-run", "--json", "--db", grants, *STAFF]
    code, _out, err = run_with_terminal(args, tmp_path, stderr_tty=False)
    assert (code, err) == (0, "")
    code, _out, err = run_with_terminal([*args, "--quiet"], tmp_path)
    assert (code, err.strip()) == (0, "")
    code, _out, err = run_with_terminal(
        ["export", "-q", "--format", "jsonl", "-o", "x.jsonl", "--db", grants], tmp_path
    )
    assert (code, err.strip()) == (0, "exported 60 projects")


def test_the_demo_reports_as_many_steps_as_its_bar_counts() -> None:
    """`DEMO_STEPS` is the number of steps `run_demo` reports (change both together)."""
    clock = DemoClock()
    steps: list[str] = []
    with grantflow.open(clock=clock) as engine, capture_audit(engine):
        run_demo(engine, clock=clock, projects=40, progress=steps.append)
    assert len(steps) == DEMO_STEPS
