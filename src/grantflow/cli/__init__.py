"""The ``grantflow`` command: ``grantflow demo``, ``grantflow diagram`` and friends."""

from grantflow.cli._app import app, main

__all__ = ["app", "main"]
