"""`grantflow.testing` exports a small sorted surface and loads Hypothesis only on demand."""

from __future__ import annotations

import subprocess
import sys

import pytest

import grantflow.testing


def test_all_is_sorted_and_every_name_resolves() -> None:
    """`__all__` is sorted and each name (lazy ones included) can be read."""
    exported = list(grantflow.testing.__all__)
    assert exported == sorted(exported)
    for name in exported:
        assert getattr(grantflow.testing, name) is not None, name


def test_an_unknown_name_is_an_attribute_error() -> None:
    """Names outside the surface raise `AttributeError`, as for any module."""
    with pytest.raises(AttributeError, match="no_such_helper"):
        _ = grantflow.testing.no_such_helper  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "statement",
    [
        "from grantflow.testing import strategies",
        "from grantflow.testing import LifecycleStateMachine",
    ],
)
def test_lazy_names_import_in_a_fresh_interpreter(statement: str) -> None:
    """Each way of reaching the lazy names works as the first import of a process."""
    subprocess.run([sys.executable, "-c", statement], check=True, capture_output=True)
