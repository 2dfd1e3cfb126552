"""Every docs page's Python examples run: ```python blocks, in order, one namespace per page.

Convention: a ```python block is skipped when the line right before its opening fence is
``<!-- no-run -->`` (an HTML comment, so readers do not see it). Use it only for code that
cannot run here, such as a plug-in's own module or a ``conftest.py`` shown as a file.
Blocks in any other language (``toml``, ``bash``, ``mermaid``, ...) are never run.
Each page runs with a fresh temporary working directory, as a module of its own, so
examples may write files and define dataclasses.
"""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
NO_RUN = "<!-- no-run -->"
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\n]*)$")
# Pages that are generated or are tables only.
NO_EXAMPLES_NEEDED = {"reference.md", "glossary.md", "changelog.md"}


def python_blocks(text: str) -> list[tuple[int, str]]:
    """Return (line number of the fence, source) for each runnable ```python block."""
    lines = text.splitlines()
    blocks: list[tuple[int, str]] = []
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        end = i + 1
        while end < len(lines) and lines[end].strip() != fence:
            end += 1
        body = [line.removeprefix(indent) for line in lines[i + 1 : end]]
        skipped = i > 0 and lines[i - 1].strip() == NO_RUN
        if opening["info"].split()[:1] == ["python"] and not skipped:
            blocks.append((i + 1, "\n".join(body) + "\n"))
        i = end + 1
    return blocks


def _pages() -> list[Path]:
    return sorted(p for p in DOCS.rglob("*.md") if p.is_file())


def _page_id(page: Path) -> str:
    return page.relative_to(DOCS).as_posix()


def test_the_block_finder_honours_the_conventions() -> None:
    """Only ```python blocks run; no-run blocks and other languages are skipped."""
    text = "\n".join(
        [
            "```python",
            "a = 1",
            "```",
            NO_RUN,
            "```python",
            "raise SystemExit",
            "```",
            "```toml",
            "x = 1",
            "```",
            "!!! note",
            "    ```python",
            "    b = 2",
            "    ```",
        ]
    )
    assert python_blocks(text) == [(1, "a = 1\n"), (12, "b = 2\n")]


@pytest.mark.parametrize(
    "page", [p for p in _pages() if p.name not in NO_EXAMPLES_NEEDED], ids=_page_id
)
def test_every_page_has_a_runnable_example(page: Path) -> None:
    """Each tutorial, concept and regime page carries at least one runnable example."""
    assert python_blocks(page.read_text("utf-8")), _page_id(page)


@pytest.mark.parametrize(
    "page", [p for p in _pages() if python_blocks(p.read_text("utf-8"))], ids=_page_id
)
def test_page_examples_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The page's ```python blocks run in order, in one namespace, without error."""
    monkeypatch.chdir(tmp_path)
    name = "docs_" + re.sub(r"\W", "_", _page_id(page).removesuffix(".md"))
    module = types.ModuleType(name)
    monkeypatch.setitem(sys.modules, name, module)
    for line, source in python_blocks(page.read_text("utf-8")):
        # Pad so tracebacks point at the right line of the .md file.
        code = compile("\n" * line + source, str(page), "exec")
        exec(code, module.__dict__)
