"""MkDocs hook: show doctest examples (``>>>`` lines) as Python console code blocks.

Markdown reads a line starting with ``>>>`` as three nested blockquotes, so docstring
examples rendered by mkdocstrings would come out as quotes. This hook adds a Markdown
preprocessor, to the pages and to mkdocstrings alike, that fences each run of doctest
lines (``>>>``, ``...`` and the expected output up to a blank line) as ``pycon``.
"""

from __future__ import annotations

import re
from typing import Any

from markdown import Extension, Markdown
from markdown.preprocessors import Preprocessor
from mkdocs.plugins import event_priority

FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
PROMPT = re.compile(r"^(?P<indent>\s*)>>>( |$)")


def fence_doctests(lines: list[str]) -> list[str]:
    """Return `lines` with each doctest run wrapped in a ```pycon fence."""
    out: list[str] = []
    fence: str | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        opening = FENCE.match(line)
        if fence is not None:
            if opening and opening.group(1).startswith(fence):
                fence = None
            out.append(line)
            i += 1
            continue
        if opening:
            fence = opening.group(1)
            out.append(line)
            i += 1
            continue
        prompt = PROMPT.match(line)
        if prompt is None:
            out.append(line)
            i += 1
            continue
        indent = prompt.group("indent")
        block = []
        while i < len(lines) and lines[i].strip():
            block.append(lines[i].removeprefix(indent))
            i += 1
        out += ["", f"{indent}```pycon", *(indent + b for b in block), f"{indent}```", ""]
    return out


class _Doctests(Preprocessor):
    def run(self, lines: list[str]) -> list[str]:
        return fence_doctests(lines)


class DoctestExtension(Extension):
    """Registers the doctest preprocessor before the fenced-code ones run."""

    def extendMarkdown(self, md: Markdown) -> None:  # noqa: N802 - Markdown's API
        md.preprocessors.register(_Doctests(md), "grantflow_doctests", 40)


@event_priority(100)  # before mkdocstrings copies the Markdown extensions
def on_config(config: Any) -> Any:
    config.markdown_extensions.append(DoctestExtension())
    return config
