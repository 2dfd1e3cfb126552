"""The command, bulk-file and export docs pages: every ```python block runs, in order."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).parent.parent / "docs"
PAGES = [DOCS / "cli.md", DOCS / "bulk-files.md", DOCS / "export.md"]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_page_examples_run(page: Path) -> None:
    """The page's Python blocks run without error, in one namespace per page."""
    namespace: dict[str, object] = {"__name__": f"docs_{page.stem}"}
    for block in BLOCK.findall(page.read_text("utf-8")):
        exec(compile(block, str(page), "exec"), namespace)


def test_every_command_is_documented() -> None:
    """docs/cli.md has a section for every command the app registers."""
    from grantflow.cli import app

    text = (DOCS / "cli.md").read_text("utf-8")
    names = [c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands]
    assert names
    for name in names:
        assert f"## `{name}`" in text, name
    assert "## `db upgrade`" in text
