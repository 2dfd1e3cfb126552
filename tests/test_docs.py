"""Every code block in the docs runs in the tests, or says why it cannot.

Conventions, as HTML comments on the line right before a block's opening fence (readers
do not see them):

* ``<!-- no-run: REASON -->``: the block does not run here, for the reason given (a
  plug-in's own package, a shell session whose commands tests/cli runs, an input file).
* ``<!-- pytest-file -->``: a file of a user's pytest project whose first line names it
  (``# conftest.py``); the page's pytest files are written to an empty folder and pytest
  runs them (`test_pytest_examples_pass`).

Every other ```python block runs, in order, in one namespace per page, with a fresh
temporary working directory, as a module of its own (so examples may write files and
define dataclasses). ```mermaid blocks are checked against the diagram they show. Any
other block needs a ``no-run`` reason (`test_every_block_runs_or_says_why`).

The built site is checked too (`site` fixture, built once): no external scripts or fonts,
Mermaid diagrams rendered, doctest examples shown as code, Chinese words in the search
index.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import hypothesis
import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
NO_RUN = re.compile(r"^<!-- no-run(?:: (?P<reason>.*\S))? -->$")
PYTEST_FILE = "<!-- pytest-file -->"
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\n]*)$")
# Pages that are generated or are tables only.
NO_EXAMPLES_NEEDED = {"reference.md", "glossary.md", "changelog.md"}


@dataclass(frozen=True)
class Block:
    """One fenced block of a page: where, which language, what comes before it, its text."""

    line: int
    language: str
    marker: str
    source: str

    @property
    def runs(self) -> bool:
        """Whether the block runs as page code (a ```python block without a marker)."""
        return self.language == "python" and not self.marker


def blocks(text: str) -> list[Block]:
    """Return every fenced block of a Markdown text (nested fences stay inside theirs)."""
    lines = text.splitlines()
    found: list[Block] = []
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
        before = lines[i - 1].strip() if i > 0 else ""
        marker = before if NO_RUN.match(before) or before == PYTEST_FILE else ""
        language = (opening["info"].split() or [""])[0]
        found.append(Block(i + 1, language, marker, "\n".join(body) + "\n"))
        i = end + 1
    return found


hypothesis.settings.register_profile(
    "grantflow-docs", suppress_health_check=[hypothesis.HealthCheck.too_slow]
)


def python_blocks(text: str) -> list[tuple[int, str]]:
    """Return (line number of the fence, source) for each runnable ```python block."""
    return [(b.line, b.source) for b in blocks(text) if b.runs]


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
            "<!-- no-run: a plug-in's own module -->",
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
            PYTEST_FILE,
            "```python",
            "# conftest.py",
            "```",
        ]
    )
    assert python_blocks(text) == [(1, "a = 1\n"), (12, "b = 2\n")]
    assert [(b.language, bool(b.marker)) for b in blocks(text)] == [
        ("python", False),
        ("python", True),
        ("toml", False),
        ("python", False),
        ("python", True),
    ]


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
    # The pages' Hypothesis examples build their strategies as they run; on a busy CI
    # machine the first draw (strategy validation) can pass Hypothesis's 1 s "too slow"
    # bar. Their assertions are what this test checks, not the machine's speed.
    previous = hypothesis.settings.default
    hypothesis.settings.load_profile("grantflow-docs")
    try:
        for line, source in python_blocks(page.read_text("utf-8")):
            # Pad so tracebacks point at the right line of the .md file.
            code = compile("\n" * line + source, str(page), "exec")
            exec(code, module.__dict__)
    finally:
        hypothesis.settings.register_profile("grantflow-docs-previous", previous)
        hypothesis.settings.load_profile("grantflow-docs-previous")


def test_the_readme_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """README.md's ```python blocks run, in a scratch folder (they create grants.db)."""
    monkeypatch.chdir(tmp_path)
    found = python_blocks((ROOT / "README.md").read_text("utf-8"))
    assert found
    namespace: dict[str, object] = {"__name__": "readme"}
    for line, source in found:
        exec(compile("\n" * line + source, str(ROOT / "README.md"), "exec"), namespace)
    assert (tmp_path / "grants.db").exists()


@pytest.mark.parametrize("page", _pages(), ids=_page_id)
def test_every_block_runs_or_says_why(page: Path) -> None:
    """Each block runs (python), is checked (mermaid, pytest files) or gives a no-run reason."""
    for block in blocks(page.read_text("utf-8")):
        where = f"{_page_id(page)}:{block.line}"
        if block.runs or block.language == "mermaid" or block.marker == PYTEST_FILE:
            continue
        reason = NO_RUN.match(block.marker)
        assert reason is not None, f"{where}: a ```{block.language} block needs a no-run reason"
        assert reason["reason"], f"{where}: say why the block cannot run"


def test_pytest_examples_pass(tmp_path: Path) -> None:
    """The pytest plugin example of the testing page passes when run as printed."""
    files = [b for b in blocks((DOCS / "testing.md").read_text("utf-8")) if b.marker == PYTEST_FILE]
    assert len(files) >= 2
    for block in files:
        name = block.source.splitlines()[0].removeprefix("# ").strip()
        (tmp_path / name).write_text(block.source, encoding="utf-8")
    (tmp_path / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout


def test_the_lifecycle_diagram_is_the_lifecycle() -> None:
    """The Mermaid diagram on the lifecycle page is what `to_mermaid` draws today."""
    from grantflow import PURCHASED_SERVICE
    from grantflow.states import to_mermaid

    (diagram,) = [
        b for b in blocks((DOCS / "lifecycle.md").read_text("utf-8")) if b.language == "mermaid"
    ]
    assert diagram.source.strip() == to_mermaid(PURCHASED_SERVICE).strip()


def test_the_storage_page_lists_the_real_tables() -> None:
    """The table of tables on the storage page names exactly the tables grantflow creates."""
    from grantflow.persistence.sql import build_tables

    tables = build_tables("")
    real = {t.name for t in tables.metadata.sorted_tables}
    text = (DOCS / "storage.md").read_text("utf-8")
    listed = set()
    for line in text.splitlines():
        if line.startswith("| `"):
            listed |= set(re.findall(r"`(\w+)`", line.split("|")[1]))
    assert listed == real


def test_the_reference_covers_every_public_module() -> None:
    """docs/reference.md renders every public module of the package."""
    text = (DOCS / "reference.md").read_text("utf-8")
    rendered = set(re.findall(r"^::: ([\w.]+)", text, re.MULTILINE))
    src = ROOT / "src"
    public = {
        ".".join(path.relative_to(src).with_suffix("").parts).removesuffix(".__init__")
        for path in (src / "grantflow").rglob("*.py")
        if not any(
            part.startswith("_") and part != "__init__.py" for part in path.relative_to(src).parts
        )
    }
    public -= {"grantflow.__main__"}
    # Implementation details that are public modules only for their siblings' sake.
    public -= {"grantflow.portfolio_sql", "grantflow.cli"}
    public = {m for m in public if not m.startswith("grantflow.rules.")}  # one page each: Regime
    missing = sorted(
        m for m in public if not any(m == r or m.startswith(r + ".") for r in rendered)
    )
    assert missing == []


# -- the built site --------------------------------------------------------------------

EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["'](?:https?:)?//""")


#: The tests reading the built site share one pytest-xdist worker: the site is built once.
ON_THE_SITE = pytest.mark.xdist_group("docs-site")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site built (strict) into a temporary folder, once.

    ``python3 tasks.py test`` builds it just before pytest, with the same command, and
    names the folder in ``GRANTFLOW_TEST_SITE``; that build is read instead of a second.
    """
    built = os.environ.get("GRANTFLOW_TEST_SITE")
    if built and (Path(built) / "index.html").is_file():
        return Path(built)
    folder = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", str(folder)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return folder


@pytest.mark.slow
@ON_THE_SITE
def test_the_site_loads_no_external_script_or_font(site: Path) -> None:
    """No page loads a script, stylesheet or font from another host; no CSS imports fonts."""
    for page in site.rglob("*.html"):
        for tag in re.findall(r"<(?:script|link)\b[^>]*>", page.read_text("utf-8")):
            if 'rel="next"' in tag or 'rel="prev"' in tag or 'rel="canonical"' in tag:
                continue
            assert not EXTERNAL.search(tag), (page.relative_to(site), tag)
    for sheet in site.rglob("*.css"):
        text = sheet.read_text("utf-8")
        assert "fonts.googleapis" not in text, sheet
        assert "fonts.gstatic" not in text, sheet
        assert not re.search(r"@import\s+url\(\s*[\"']?https?:", text), sheet


@pytest.mark.slow
@ON_THE_SITE
def test_mermaid_blocks_render_as_diagrams(site: Path) -> None:
    """A ```mermaid block becomes a `class="mermaid"` element and mermaid.js is shipped."""
    html = (site / "lifecycle" / "index.html").read_text("utf-8")
    assert '<pre class="mermaid"><code>stateDiagram-v2' in html
    scripts = re.findall(r'<script src="([^"]+)"', html)
    local = [s for s in scripts if "mermaid" in s]
    assert local
    assert not local[0].startswith(("http:", "https:", "//"))
    assert (site / "lifecycle" / local[0]).resolve().is_file()


@pytest.mark.slow
@ON_THE_SITE
def test_doctest_examples_render_as_code_not_quotes(site: Path) -> None:
    """Docstring examples (``>>>``) are highlighted console code, not nested blockquotes."""
    html = (site / "reference" / "index.html").read_text("utf-8")
    assert "<blockquote>" not in html
    assert html.count('<span class="gp">&gt;&gt;&gt; </span>') > 20


@pytest.mark.slow
@ON_THE_SITE
def test_chinese_words_are_segmented_in_the_search_index(site: Path) -> None:
    """The search index splits Chinese into words (jieba), so 立项 or 绩效 can be found."""
    index = json.loads((site / "search" / "search_index.json").read_text("utf-8"))
    assert "zh" in index["config"]["lang"]
    separator = re.compile(index["config"]["separator"])
    tokens = {t for doc in index["docs"] for t in separator.split(doc["text"]) if t}
    assert {"立项", "评审", "工会"} <= tokens
