"""pytest configuration for the doctests in ``src`` (run with ``--doctest-modules``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog.testing
from _pytest.doctest import DoctestItem


@pytest.fixture(autouse=True)
def _quiet_audit_log(request: pytest.FixtureRequest) -> Iterator[None]:
    """Keep structlog's audit lines out of the output that doctests compare.

    Unconfigured structlog prints to stdout; grantflow never configures it, so the test
    captures the log events instead for the duration of each doctest.
    """
    if not isinstance(request.node, DoctestItem):
        yield
        return
    with structlog.testing.capture_logs():
        yield
