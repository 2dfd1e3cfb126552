"""docs/authority.md shows the authority matrix the rules enforce, in English and Chinese."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from grantflow.messages import catalogue
from grantflow.rules.authority import matrix

PAGE = Path(__file__).resolve().parents[2] / "docs" / "authority.md"


@pytest.mark.parametrize("language", ["en", "zh"])
def test_the_page_holds_the_matrix_the_data_renders(language: str) -> None:
    """The table between the page's markers equals `matrix(language)` (regenerate on change)."""
    text = PAGE.read_text("utf-8")
    found = re.search(
        rf"<!-- matrix:{language} -->\n(.*?)\n<!-- /matrix:{language} -->", text, re.S
    )
    assert found is not None
    assert found.group(1) == matrix(language)


def test_the_chinese_matrix_names_events_kinds_and_roles_in_chinese() -> None:
    """Every event, record kind and role cell of the zh matrix is a catalogue label."""
    zh = matrix("zh")
    labels = catalogue("zh")
    for table in ("event", "kind", "role", "relation"):
        assert any(label in zh for label in labels[table].values()), table
    cells = [c.strip() for row in zh.splitlines()[2:] for c in row.split("|")[1:3]]
    assert not [c for c in cells if c and c != "---" and re.search(r"[A-Za-z]", c)]
