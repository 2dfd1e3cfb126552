"""The regime docs pages: every ```python block runs, in order, in one namespace per page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

PAGES = sorted((Path(__file__).parent.parent / "docs" / "regime").glob("*.md"))
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def test_every_regime_page_has_an_example() -> None:
    """Each regime page carries at least one Python example."""
    assert len(PAGES) >= 9
    assert all(BLOCK.search(page.read_text("utf-8")) for page in PAGES)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_regime_page_examples_run(page: Path) -> None:
    """The page's Python blocks run without error."""
    namespace: dict[str, object] = {"__name__": f"docs_{page.stem}"}
    for block in BLOCK.findall(page.read_text("utf-8")):
        exec(compile(block, str(page), "exec"), namespace)
