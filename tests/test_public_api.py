"""Tests for the public surface: sorted, complete __all__ in every public module."""

from __future__ import annotations

import importlib

import pytest

import grantflow

PUBLIC_MODULES = [
    "grantflow",
    "grantflow.audit",
    "grantflow.budget",
    "grantflow.calendar",
    "grantflow.errors",
    "grantflow.export",
    "grantflow.inputs",
    "grantflow.messages",
    "grantflow.models",
    "grantflow.outbox",
    "grantflow.persistence",
    "grantflow.policy",
    "grantflow.rules",
    "grantflow.signing",
    "grantflow.states",
]


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_all_is_sorted_and_every_name_exists(name: str) -> None:
    """__all__ is sorted and each listed name can be imported."""
    module = importlib.import_module(name)
    exported = list(module.__all__)
    assert exported == sorted(exported)
    for item in exported:
        assert hasattr(module, item), f"{name}.{item}"


def test_top_level_exports_the_contract_names() -> None:
    """The names issue 2 fixes as the contract are exported from grantflow."""
    for item in ["open", "Engine", "Actor", "Outcome", "GrantflowError", "Lifecycle"]:
        assert item in grantflow.__all__
    assert not [n for n in grantflow.__all__ if n.startswith("_")]


def test_package_is_typed() -> None:
    """A py.typed marker ships with the package."""
    from importlib.resources import files

    assert files("grantflow").joinpath("py.typed").is_file()
