"""The README's Python examples: the quick start runs verbatim, the others at least compile."""
import re

import numpy as np
import torch
from conftest import REPO


def python_blocks() -> dict[str, list[str]]:
    """The fenced ```python blocks of README.md, by the heading they sit under."""
    blocks: dict[str, list[str]] = {}
    heading = ""
    for part in re.split(r"(^#+ [^\n]*$|^```python\n.*?^```$)", (REPO / "README.md").read_text(), flags=re.M | re.S):
        if part.startswith("#"):
            heading = part.lstrip("# ").strip()
        elif part.startswith("```python"):
            blocks.setdefault(heading, []).append(part[len("```python\n"): -len("```")])
    return blocks


def test_readme_python_quick_start_runs_verbatim(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.set_num_threads(1)
    code = python_blocks()["Python quick start"][0]
    scope: dict = {}
    exec(compile(code, "README.md: Python quick start", "exec"), scope)
    assert scope["C"].shape == (2000, 10) and [p.shape for p in scope["pred"]] == [(2000, 64), (2000, 240)]
    saved = np.load(tmp_path / "features.npz")
    assert set(saved.files) == {"C", "V_0", "V_1", "C+V_best", "C+V_all"}
    assert (tmp_path / "mrdd.pt").exists()


def test_every_readme_python_block_compiles():
    blocks = [b for bs in python_blocks().values() for b in bs]
    assert len(blocks) >= 2
    for code in blocks:
        compile(code, "README.md", "exec")


LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading: lower case, punctuation dropped, spaces → hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def broken_links(page) -> list[str]:
    """The relative links and images of a Markdown page (outside code blocks) whose file, or whose
    #anchor in a Markdown file, does not exist."""
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.M | re.S)
    broken = []
    for target in LINK.findall(text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):          # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path) if path else page
        if not file.exists():
            broken.append(f"{page.name}: {target} (no such file)")
        elif anchor and file.suffix == ".md":
            headings = re.findall(r"^#+ (.*)$", re.sub(r"^```.*?^```", "", file.read_text(), flags=re.M | re.S),
                                  flags=re.M)
            if anchor not in {slug(h) for h in headings}:
                broken.append(f"{page.name}: {target} (no such heading)")
    return broken


def test_readme_and_docs_links_resolve(tmp_path):
    pages = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    assert len(pages) >= 12 and (REPO / "docs" / "README.md") in pages
    assert [b for p in pages for b in broken_links(p)] == []
    # every docs page is reachable from the index, and the README links the index
    index = (REPO / "docs" / "README.md").read_text()
    assert [p.name for p in pages[1:] if p.name != "README.md" and f"]({p.name})" not in index] == []
    assert "](docs/README.md)" in (REPO / "README.md").read_text()
    # the checker itself finds a missing file, a missing heading, and passes good links and web links
    (tmp_path / "a.md").write_text("# Title here\n[ok](a.md#title-here) [web](https://x.org/y) [bad](b.md) "
                                   "[gone](a.md#nope)\n```\n[in code](c.md)\n```\n")
    assert broken_links(tmp_path / "a.md") == ["a.md: b.md (no such file)", "a.md: a.md#nope (no such heading)"]
