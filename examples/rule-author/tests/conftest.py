"""The plugin's engine runs our rule book (on top of nothing else, to test it alone)."""

from __future__ import annotations

import pytest
from grantflow.rules import RuleBook

from counsellor_rules import rule_book


@pytest.fixture
def grantflow_rules() -> RuleBook:
    """Our rule book, for the plugin's `grantflow_engine`."""
    return rule_book()
