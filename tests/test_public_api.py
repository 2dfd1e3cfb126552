"""Tests for the public surface: sorted, complete __all__ in every public module."""

from __future__ import annotations

import importlib

import pytest

import grantflow

PUBLIC_MODULES = [
    "grantflow",
    "grantflow.aio",
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


def _public_modules() -> list[str]:
    """Every importable grantflow module whose dotted name has no private part."""
    import pkgutil

    names = ["grantflow"]
    for info in pkgutil.walk_packages(grantflow.__path__, "grantflow."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return sorted(names)


def _defined_names(module: object) -> set[str]:
    """Top-level names a module's own source defines (defs, classes, assignments)."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(module))  # type: ignore[arg-type]
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return {n for n in names if not n.startswith("_")}


@pytest.mark.parametrize("name", _public_modules())
def test_every_public_name_of_every_public_module_is_in_all(name: str) -> None:
    """Each public module lists in a sorted __all__ every public name it defines."""
    module = importlib.import_module(name)
    exported = list(getattr(module, "__all__", ()))
    assert exported, f"{name} has no __all__"
    assert exported == sorted(exported), f"{name}.__all__ is not sorted"
    missing = _defined_names(module) - set(exported)
    assert not missing, f"{name} defines public names missing from __all__: {sorted(missing)}"
    for item in exported:
        assert hasattr(module, item), f"{name}.{item} is listed but does not exist"


def test_no_module_imports_a_private_name_of_another_package() -> None:
    """Private modules and names are used only inside their own package.

    ``from a.b._m import x`` is allowed only from modules inside ``a.b``; ``from m
    import _x`` only from modules of ``m``'s own package; and the engine and the bulk
    runner do not import each other.
    """
    import ast
    from pathlib import Path

    root = Path(grantflow.__file__).parent
    offences = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent).with_suffix("")
        parts = list(rel.parts)
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        package = module if parts[-1] == "__init__" else ".".join(parts[:-1])
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if not isinstance(node, ast.ImportFrom) or not node.module or node.level:
                continue
            source = node.module
            if not source.startswith("grantflow"):
                continue
            pieces = source.split(".")
            for i, piece in enumerate(pieces):
                owner = ".".join(pieces[:i])
                if piece.startswith("_") and not (
                    package == owner or package.startswith(owner + ".")
                ):
                    offences.append(f"{module}: from {source} import ...")
            source_package = source.rsplit(".", 1)[0] if source != "grantflow" else source
            for alias in node.names:
                private = alias.name.startswith("_") and not alias.name.startswith("__")
                if private and package not in (source_package, source):
                    offences.append(f"{module}: from {source} import {alias.name}")
    assert not offences, "\n".join(offences)
    storage = " ".join(p.read_text("utf-8") for p in (root / "persistence").glob("*.py"))
    assert "from grantflow.portfolio" not in storage, "storage must not import reporting code"
    engine = (root / "_engine.py").read_text("utf-8")
    bulk = (root / "_bulk.py").read_text("utf-8")
    assert "grantflow._bulk" in engine
    assert "grantflow._engine" not in bulk
