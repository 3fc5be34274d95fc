"""Every Markdown file the code, configs and docs cite exists in the repository (with its #section), and nothing
cites the project's internal notes outside it."""
import re
from pathlib import Path

from conftest import REPO
from test_readme import slug

#: a cited Markdown path, optionally with a #section: ``docs/methods.md#mrdd-stage-2``, ``(evaluation.md)``
CITED = re.compile(r"(?<![\w/.-])((?:\.{0,2}/)?[\w./-]*[\w-]\.md)(#[\w-]+)?")
SCANNED = ("viewsplit", "benchmarks", "docs", "configs")
SUFFIXES = {".py", ".md", ".yaml", ".yml", ".txt", ".toml", ".cfg"}
#: names of reports viewsplit and the benchmarks write (``RUN/metrics.md``), and a placeholder: not citations
WRITTEN = {"metrics.md", "missing.md", "bench.md", "FILE.md"}


def scanned_files() -> list[Path]:
    files = [REPO / "README.md"]
    for top in SCANNED:
        files += [p for p in sorted((REPO / top).rglob("*")) if p.suffix in SUFFIXES and p.is_file()]
    return files


def headings(page: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.M | re.S)
    return {slug(h) for h in re.findall(r"^#+ (.*)$", text, flags=re.M)}


def unresolved(file: Path, text: str) -> list[str]:
    """The cited ``*.md`` paths in ``text`` that are no file inside the repository (relative to its root, the
    citing file's folder, or docs/), or whose #section is no heading of that file; and any citation of ``../shared``."""
    bad = [f"{file.relative_to(REPO)}: cites ../shared" for _ in re.finditer(r"\.\./shared", text)]
    for m in CITED.finditer(text):
        path, anchor = m[1], (m[2] or "")[1:]
        if Path(path).name in WRITTEN or path.startswith("/"):
            continue
        candidates = [REPO / path, file.parent / path, REPO / "docs" / path]
        found = next((c for c in candidates if c.is_file() and REPO in c.resolve().parents), None)
        if found is None:
            bad.append(f"{file.relative_to(REPO)}: {m[0]} (no such file)")
        elif anchor and anchor not in headings(found):
            bad.append(f"{file.relative_to(REPO)}: {m[0]} (no such section)")
    return bad


def test_every_cited_markdown_file_and_section_exists():
    files = scanned_files()
    assert len(files) > 100 and REPO / "viewsplit" / "methods" / "mrdd.py" in files
    assert [b for f in files for b in unresolved(f, f.read_text(errors="replace"))] == []


def test_the_reference_checker_catches_missing_files_sections_and_shared_notes():
    here = REPO / "viewsplit" / "x.py"
    text = ("see methods.md §1.4, `protocols.md`, docs/methods.md#mrdd-stage-2, docs/methods.md#nope, "
            "(evaluation.md#mine), ../shared/reference/methods.md, RUN/metrics.md")
    assert unresolved(here, text) == [
        "viewsplit/x.py: cites ../shared",
        "viewsplit/x.py: protocols.md (no such file)",
        "viewsplit/x.py: docs/methods.md#nope (no such section)",
        "viewsplit/x.py: ../shared/reference/methods.md (no such file)",
    ]
