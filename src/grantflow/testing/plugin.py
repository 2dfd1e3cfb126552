"""The grantflow pytest plugin, under its historical name.

The plugin lives in the top-level module `grantflow_pytest`, which pytest loads through
the ``pytest11`` entry point without importing grantflow. This module re-exports its
fixtures for ``-p grantflow.testing.plugin`` and ``pytest_plugins`` lines written
before; it is not needed when grantflow is installed.
"""

from __future__ import annotations

from grantflow_pytest import (
    grantflow_actor,
    grantflow_audit,
    grantflow_clock,
    grantflow_engine,
    grantflow_lifecycle,
    grantflow_rules,
)

__all__ = [
    "grantflow_actor",
    "grantflow_audit",
    "grantflow_clock",
    "grantflow_engine",
    "grantflow_lifecycle",
    "grantflow_rules",
]
