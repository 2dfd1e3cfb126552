"""tasks.py runs pytest on every CPU unless the caller chose workers or needs one process."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

TASKS = Path(__file__).resolve().parent.parent / "tasks.py"


@pytest.fixture
def tasks(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The tasks.py script as a module, with no worker settings in the environment."""
    monkeypatch.setenv("NO_MKDOCS_2_WARNING", "1")  # what importing it would set
    monkeypatch.delenv("GRANTFLOW_TEST_WORKERS", raising=False)
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)
    spec = importlib.util.spec_from_file_location("grantflow_tasks", TASKS)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_by_default_one_worker_per_cpu_at_most_eight(
    tasks: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two CPUs give two workers, 64 give eight; tests spread one by one (loadgroup)."""
    for cpus, workers in ((2, "2"), (64, "8")):
        monkeypatch.setattr(
            tasks.os, "sched_getaffinity", lambda _pid, n=cpus: set(range(n)), raising=False
        )
        assert tasks.xdist_options(["tests/test_x.py", "-k", "n"]) == [
            "-n",
            workers,
            "--dist",
            "loadgroup",
        ]


def test_one_cpu_runs_serially(tasks: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a single CPU workers only cost: pytest runs in one process."""
    monkeypatch.setattr(tasks.os, "sched_getaffinity", lambda _pid: {0}, raising=False)
    assert tasks.xdist_options([]) == []


@pytest.mark.parametrize(
    "args",
    [
        ["-n", "3"],
        ["-n3"],
        ["-nauto"],
        ["--numprocesses=4"],
        ["--dist", "load"],
        ["-p", "no:xdist"],
        ["-pno:xdist"],
        ["--pdb"],
        ["-s"],
        ["--capture=no"],
        ["--capture", "no"],
    ],
)
def test_the_callers_choice_wins(tasks: ModuleType, args: list[str]) -> None:
    """Worker options, no xdist, a debugger or uncaptured output: nothing is added."""
    assert tasks.xdist_options(["tests", *args]) == []


def test_pytest_addopts_counts_as_the_callers_choice(
    tasks: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``PYTEST_ADDOPTS="-p no:xdist"`` runs serially too."""
    monkeypatch.setenv("PYTEST_ADDOPTS", "-q -p no:xdist")
    assert tasks.xdist_options([]) == []


def test_grantflow_test_workers_sets_the_number(
    tasks: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``GRANTFLOW_TEST_WORKERS=1`` (or 0) is serial, N is N workers, text is an error."""
    for value, expected in (("1", []), ("0", []), ("3", ["-n", "3", "--dist", "loadgroup"])):
        monkeypatch.setenv("GRANTFLOW_TEST_WORKERS", value)
        assert tasks.xdist_options([]) == expected
    monkeypatch.setenv("GRANTFLOW_TEST_WORKERS", "many")
    with pytest.raises(SystemExit, match="GRANTFLOW_TEST_WORKERS='many'"):
        tasks.xdist_options([])


MUTANTS = """\
class Parsed:
    def __init__(self) -> None:
        self.found: dict[str, int] = {}

    def xǁParsedǁ__init____mutmut_orig(self) -> None:
        self.found: dict[str, int] = {}

    def xǁParsedǁ__init____mutmut_1(self) -> None:
        self.found: dict[str, int] = None


def x_limit__mutmut_orig(n: int) -> bool:
    return n < 2


def x_limit__mutmut_1(n: int) -> bool:
    return n <= 2
"""


def _error(line: int, code: str, message: str) -> dict[str, object]:
    return {"file": "rules/m.py", "line": line, "code": code, "message": message}


def test_mutation_type_check_keeps_only_the_errors_a_mutation_causes(tasks: ModuleType) -> None:
    """Only the errors a mutation causes count as the mutant caught by mypy.

    An error a mutant shares with its original (up to line numbers) is the trampoline's;
    an error only the mutant has is the mutation's; errors outside mutants are dropped.
    """
    already = 'Attribute "found" already defined on line {}'
    rows = [
        _error(6, "no-redef", already.format(3)),  # in the original
        _error(9, "no-redef", already.format(3)),  # the same, in the mutant: trampoline's
        _error(9, "assignment", 'Incompatible types in assignment (expression has type "None")'),
        _error(3, "misc", "outside every mutant"),
    ]
    kept = tasks.mutant_type_errors(rows, {"rules/m.py": MUTANTS})
    assert kept == [rows[2]]


def test_a_mutant_mypy_accepts_is_left_to_the_tests(tasks: ModuleType) -> None:
    """No error in a mutant (``<`` for ``<=`` type-checks): nothing is reported for it."""
    assert tasks.mutant_type_errors([], {"rules/m.py": MUTANTS}) == []


def test_the_mutation_table_counts_each_module_and_both_scores(tasks: ModuleType) -> None:
    """Per module and in all: killed, caught by mypy, survived; both scores to 0.1 %."""
    lines = [
        "    grantflow.rules.funds.x_settle__mutmut_1: killed",
        "    grantflow.rules.funds.x_settle__mutmut_2: caught by type check",
        "    grantflow.rules.funds.x_settle__mutmut_3: survived",
        "    grantflow.rules.review.x_panel__mutmut_1: killed",
        "    grantflow.rules.review.x_panel__mutmut_2: killed",
        "    grantflow.rules.review.x_panel__mutmut_3: no tests",
        "Running mutation testing",
    ]
    table = tasks.mutation_table(lines).splitlines()
    assert table[2] == "| `funds` | 1 | 1 | 1 | 0 | 0 |"
    assert table[3] == "| `review` | 2 | 0 | 0 | 0 | 1 |"
    assert table[4] == "| **all** | **3** | **1** | **1** | **0** | **1** |"
    assert table[-2] == "killed (tests or mypy): 4 / 6 = 66.7 %"
    assert table[-1] == (
        "killed by the tests, of the 4 mutants mypy admits and a test reaches: 3 / 4 = 75.0 %"
    )
