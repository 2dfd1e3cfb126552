#!/usr/bin/env python3
"""Developer tasks for a fresh clone; needs only Python 3.11+ on the machine.

    python3 tasks.py demo [ARGS...]   # the demo, on an embedded SQLite file
    python3 tasks.py test [PYTEST ARGS...]   # ruff, mypy --strict, mkdocs --strict, pytest
    python3 tasks.py bench [--quick]  # the benchmark suite: grantflow next to the raw floor
    python3 tasks.py mutate           # mutation testing of src/grantflow/rules (docs/mutation.md)

Each creates ``.venv`` and installs the project (editable, with its ``postgres``,
``testing`` and ``async`` extras) and the ``dev`` dependency group when the virtual
environment is missing or ``pyproject.toml`` changed. ``test`` starts a throwaway
PostgreSQL server (initdb in a temporary directory, loopback port) for the PostgreSQL
tests and stops it afterwards. With ``CI=true`` a server that cannot start is an error.
pytest runs on every CPU (pytest-xdist, at most 8 workers); ``GRANTFLOW_TEST_WORKERS=1``
or ``-p no:xdist`` runs it in one process, ``GRANTFLOW_TEST_WORKERS=N`` on N workers.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
import venv
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"
STAMP = VENV / ".grantflow-installed"


def log(msg: str) -> None:
    # Progress goes to stderr: stdout belongs to what a task prints (mutate-typecheck's JSON).
    print(f"[tasks] {msg}", file=sys.stderr, flush=True)


def ensure_venv() -> None:
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if PY.exists() and STAMP.exists() and STAMP.read_text() == digest:
        return
    if not PY.exists():
        log("creating .venv")
        venv.EnvBuilder(with_pip=True, clear=False).create(VENV)
    log("installing grantflow[postgres,testing,async] and the dev group into .venv")
    subprocess.run(
        [
            str(PY),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-e",
            ".[postgres,testing,async]",
            *dependency_group("dev"),
        ],
        cwd=ROOT,
        check=True,
    )
    STAMP.write_text(digest)


def dependency_group(name: str) -> list[str]:
    """The requirements of a ``[dependency-groups]`` group (PEP 735), includes expanded.

    Read here rather than with ``pip install --group``, which needs pip 25.1.
    """
    groups = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["dependency-groups"]
    requirements: list[str] = []
    for entry in groups[name]:
        if isinstance(entry, dict):
            requirements.extend(dependency_group(entry["include-group"]))
        else:
            requirements.append(entry)
    return requirements


def run(*cmd: str, env: dict[str, str] | None = None) -> int:
    log("$ " + " ".join(cmd))
    return subprocess.run(cmd, cwd=ROOT, env=env, check=False).returncode


# -- a throwaway PostgreSQL ------------------------------------------------------------


def pg_bindir() -> Path | None:
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        candidate = Path(out.stdout.strip())
        if (candidate / "initdb").exists():
            return candidate
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: (
            int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0
        ),
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def as_postgres_user(cmd: list[str]) -> list[str]:
    """initdb refuses to run as root: run server commands as the unprivileged user."""
    if os.geteuid() != 0:
        return cmd
    runuser = shutil.which("runuser")
    if runuser is None:
        raise RuntimeError("running as root but runuser (util-linux) is not available")
    return [runuser, "-u", "postgres", "--", *cmd]


@contextlib.contextmanager
def postgres() -> Iterator[str | None]:
    bindir = pg_bindir()
    if bindir is None:
        log("PostgreSQL server binaries not found")
        yield None
        return
    tmp = Path(tempfile.mkdtemp(prefix="grantflow-pg-"))
    data = tmp / "data"
    port = free_port()
    if os.geteuid() == 0:
        shutil.chown(tmp, user="postgres")
        tmp.chmod(0o755)
    started = False
    try:
        subprocess.run(
            as_postgres_user(
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    "grantflow",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                    "--no-sync",
                ]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
            cwd=tmp,  # the postgres user may not enter the caller's directory
        )
        opts = f"-h 127.0.0.1 -p {port} -k {tmp} -c fsync=off -c max_connections=100"
        subprocess.run(
            as_postgres_user(
                [
                    str(bindir / "pg_ctl"),
                    "-D",
                    str(data),
                    "-l",
                    str(tmp / "log"),
                    "-w",
                    "-o",
                    opts,
                    "start",
                ]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
            cwd=tmp,  # the postgres user may not enter the caller's directory
        )
        started = True
        log(f"PostgreSQL {bindir.parent.name} on 127.0.0.1:{port}")
        yield f"postgresql+psycopg://grantflow@127.0.0.1:{port}/postgres"
    except (subprocess.CalledProcessError, RuntimeError, OSError) as exc:
        log(f"PostgreSQL did not start: {exc}")
        logfile = tmp / "log"
        if logfile.exists():
            print(logfile.read_text(), file=sys.stderr)
        if not started:
            yield None
    finally:
        if started:
            subprocess.run(
                as_postgres_user(
                    [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]
                ),
                check=False,
                stdout=subprocess.DEVNULL,
                cwd=tmp,
            )
        shutil.rmtree(tmp, ignore_errors=True)


# -- tasks -------------------------------------------------------------------------------


os.environ.setdefault("NO_MKDOCS_2_WARNING", "1")


def task_demo(args: list[str]) -> int:
    ensure_venv()
    return run(str(BIN / "grantflow"), "demo", *args)


#: At most this many pytest workers: each holds a few PostgreSQL connections (the
#: throwaway server allows 100) and some tests start processes of their own.
MAX_WORKERS = 8
#: pytest options with which the caller decides about workers (or needs a single process:
#: a debugger, output not captured).
SERIAL_OPTIONS = {"--pdb", "--trace", "-s", "--capture=no", "--looponfail", "-f"}


def xdist_options(args: list[str]) -> list[str]:
    """The pytest-xdist options `test` adds: one worker per CPU, tests spread one by one.

    ``--dist loadgroup`` hands out tests singly (the best balance) except those marked
    ``xdist_group``, which share a worker (an expensive module-scoped fixture built once).
    Nothing is added when the caller chose (``-n``, ``--dist``, ``-p no:xdist``, also in
    ``PYTEST_ADDOPTS``), needs one process (``--pdb``, ``-s``), or when
    ``GRANTFLOW_TEST_WORKERS`` (default: the CPUs this process may use) is 1 or less.
    """
    given = [*args, *shlex.split(os.environ.get("PYTEST_ADDOPTS", ""))]
    for n, arg in enumerate(given):
        option = arg.split("=", 1)[0]
        if option in {"-n", "--numprocesses", "--dist", "--maxprocesses"}:
            return []
        if arg in SERIAL_OPTIONS or given[n : n + 2] == ["--capture", "no"]:
            return []
        if arg.startswith("-n") and arg[2:].isalnum():  # -n2, -nauto
            return []
        plugin = arg[2:] if arg.startswith("-p") and len(arg) > 2 else None
        if arg == "-p" and n + 1 < len(given):
            plugin = given[n + 1]
        if plugin is not None and plugin.strip() == "no:xdist":
            return []
    configured = os.environ.get("GRANTFLOW_TEST_WORKERS", "").strip()
    if configured:
        if not configured.isdigit():
            raise SystemExit(f"GRANTFLOW_TEST_WORKERS={configured!r}: give a number of workers")
        workers = int(configured)
    else:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        workers = min(cpus or 1, MAX_WORKERS)
    if workers <= 1:
        return []
    return ["-n", str(workers), "--dist", "loadgroup"]


def task_test(args: list[str]) -> int:
    ensure_venv()
    with tempfile.TemporaryDirectory(prefix="grantflow-site-") as site:
        for cmd in (
            [str(BIN / "ruff"), "check", "src", "tests", "benchmarks", "tasks.py"],
            [str(BIN / "ruff"), "format", "--check", "src", "tests", "benchmarks", "tasks.py"],
            [str(BIN / "mypy"), "--strict", "src"],
            [str(BIN / "mkdocs"), "build", "--strict", "--quiet", "--site-dir", site],
        ):
            if run(*cmd) != 0:
                log("FAILED: " + " ".join(cmd))
                return 1
        ci = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
        with postgres() as url:
            # tests/test_docs.py reads this build of the site rather than making another.
            env = {**os.environ, "GRANTFLOW_TEST_SITE": site}
            if url:
                env["GRANTFLOW_TEST_PG_URL"] = url
            elif ci:
                log("FAILED: CI=true and the PostgreSQL server could not start")
                return 1
            return run(str(PY), "-m", "pytest", *xdist_options(args), *args, env=env)


def task_bench(args: list[str]) -> int:
    ensure_venv()
    return run(str(PY), "benchmarks/suite.py", *args)


def task_mutate(args: list[str]) -> int:
    # Slow (minutes) and CPU-hungry: never part of `test`; runs at the lowest priority.
    # Configured in pyproject.toml [tool.mutmut]: the rules, against tests/rules only.
    ensure_venv()
    shutil.rmtree(ROOT / "mutants", ignore_errors=True)
    nice = ["nice", "-n", "19"] if shutil.which("nice") else []
    # The type check runs `python -m mypy`: the venv's python first on the PATH.
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    code = run(*nice, str(BIN / "mutmut"), "run", "--max-children", "2", *args, env=env)
    if code == 0:
        run(str(BIN / "mutmut"), "results")  # the survivors, one per line
        listed = subprocess.run(
            [str(BIN / "mutmut"), "results", "--all", "true"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        print(mutation_table(listed.stdout.splitlines()))
    return code


#: mutmut's verdicts, in the order of the score table's columns.
VERDICTS = ("killed", "caught by type check", "survived", "timeout", "no tests")


def mutation_table(lines: list[str]) -> str:
    """The score table of docs/mutation.md from ``mutmut results --all true``.

    One row per module of ``grantflow.rules`` and a total; the score counts a mutant
    the tests kill or mypy --strict rejects (CI runs both) as killed, and the tests'
    own score is over the mutants mypy admits.
    """
    counts: dict[str, dict[str, int]] = {}
    for line in lines:
        name, sep, verdict = line.strip().partition(": ")
        if not sep or not name.startswith("grantflow.rules."):
            continue
        module = name.split(".")[2]
        row = counts.setdefault(module, dict.fromkeys(VERDICTS, 0))
        row[verdict] = row.get(verdict, 0) + 1
    total = {v: sum(row.get(v, 0) for row in counts.values()) for v in VERDICTS}
    header = "| module | " + " | ".join(VERDICTS) + " |"
    out = [header, "|---" * (len(VERDICTS) + 1) + "|"]
    for module, row in sorted(counts.items()):
        out.append(f"| `{module}` | " + " | ".join(str(row.get(v, 0)) for v in VERDICTS) + " |")
    out.append("| **all** | " + " | ".join(f"**{total[v]}**" for v in VERDICTS) + " |")
    mutants = sum(total.values())
    caught = total["killed"] + total["caught by type check"] + total["timeout"]
    admitted = mutants - total["caught by type check"]
    tested = admitted - total["no tests"]
    if mutants:
        out.append("")
        out.append(f"killed (tests or mypy): {caught} / {mutants} = {100 * caught / mutants:.1f} %")
    if tested:
        by_tests = total["killed"] + total["timeout"]
        out.append(
            f"killed by the tests, of the {tested} mutants mypy admits and a test reaches: "
            f"{by_tests} / {tested} = {100 * by_tests / tested:.1f} %"
        )
    return "\n".join(out)


def mutant_type_errors(
    rows: list[dict[str, object]], sources: dict[str, str]
) -> list[dict[str, object]]:
    """The mypy errors a mutation causes, out of mypy's errors over mutmut's mutants/.

    mutmut keeps each function's original next to its mutants (``f__mutmut_orig``,
    ``f__mutmut_1``, ...) behind a trampoline, which alone makes mypy complain (an
    attribute "already defined" in each copy of ``__init__``, an overload without its
    implementation). An error counts only when it lies in a mutant and the original
    does not have it (same code, same message up to line numbers); the rest is the
    trampoline's, not the mutation's.
    """
    import ast
    import re

    def key(row: dict[str, object]) -> tuple[object, str]:
        return row.get("code"), re.sub(r"\d+", "#", str(row.get("message")))

    spans: dict[str, list[tuple[int, int, str]]] = {}
    for path, source in sources.items():
        spans[path] = [
            (node.lineno, node.end_lineno or node.lineno, node.name)
            for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and "__mutmut_" in node.name
        ]

    def owner(row: dict[str, object]) -> str | None:
        line = int(str(row.get("line")))
        for start, end, name in spans.get(str(row.get("file")), []):
            if start <= line <= end:
                return name
        return None

    originals: dict[str, set[tuple[object, str]]] = {}
    for row in rows:
        name = owner(row)
        if name is not None and name.endswith("__mutmut_orig"):
            originals.setdefault(name, set()).add(key(row))
    kept = []
    for row in rows:
        name = owner(row)
        if name is None or name.endswith("__mutmut_orig"):
            continue
        original = name.rsplit("__mutmut_", 1)[0] + "__mutmut_orig"
        if key(row) not in originals.get(original, set()):
            kept.append(row)
    return kept


def task_mutate_typecheck(args: list[str]) -> int:
    """mutmut's ``type_check_command`` (run in mutants/): mypy --strict, mutations only."""
    import json

    paths = [arg for arg in args if arg != "mypy"]  # "mypy" only tells mutmut the format
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--output", "json", "--no-warn-unused-ignores", *paths],
        capture_output=True,
        text=True,
        check=False,
    )
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    sources = {
        str(file): Path(str(file)).read_text(encoding="utf-8")
        for file in {row.get("file") for row in rows}
    }
    for row in mutant_type_errors(rows, sources):
        print(json.dumps(row))
    return 0


TASKS = {
    "demo": task_demo,
    "test": task_test,
    "bench": task_bench,
    "mutate": task_mutate,
    "mutate-typecheck": task_mutate_typecheck,
}


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in TASKS:
        print(__doc__)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.monotonic()
    code = TASKS[sys.argv[1]](sys.argv[2:])
    log(f"{sys.argv[1]} finished with exit code {code} in {time.monotonic() - started:.1f}s")
    return code


if __name__ == "__main__":
    sys.exit(main())
