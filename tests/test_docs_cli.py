"""The command docs page covers every command (its examples run in tests/test_docs.py)."""

from __future__ import annotations

import re
from pathlib import Path

DOCS = Path(__file__).parent.parent / "docs"
PAGES = [DOCS / "cli.md", DOCS / "bulk-files.md", DOCS / "export.md"]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def test_every_command_is_documented() -> None:
    """docs/cli.md has a section for every command the app registers."""
    from grantflow.cli import app

    text = (DOCS / "cli.md").read_text("utf-8")
    names = [c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands]
    assert names
    for name in names:
        assert f"## `{name}`" in text, name
    assert "## `db upgrade`" in text
