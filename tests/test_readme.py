"""The README's code: the quick start runs verbatim, the GridSearchCV block with one epoch, every command-line
example parses and its config keys exist in the shipped configs; links resolve."""
import re

import numpy as np
import pytest
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
    assert scope["C"].shape == (2000, 16) and [p.shape for p in scope["pred"]] == [(2000, 64), (2000, 240)]
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


# ---------------------------------------------------------------------------- every code block of the README
def fenced_blocks() -> list[tuple[str, str]]:
    """(language, body) of every fenced block of README.md."""
    text = (REPO / "README.md").read_text()
    return [(m[1], m[2]) for m in re.finditer(r"^```(\w*)\n(.*?)^```$", text, flags=re.M | re.S)]


def cli_lines() -> list[list[str]]:
    """The argv of every ``viewsplit`` command in the README's shell blocks (``python -m viewsplit`` and
    ``torchrun … -m viewsplit`` included), comments dropped; other shell lines must be set-up commands."""
    import shlex

    out = []
    for lang, body in fenced_blocks():
        if lang != "sh":
            continue
        for line in body.splitlines():
            words = shlex.split(line, comments=True)
            if not words:
                continue
            if words[0] == "viewsplit":
                out.append(words[1:])
            elif "-m" in words and words[words.index("-m") + 1] == "viewsplit":
                out.append(words[words.index("-m") + 2:])
            else:
                assert words[0] in {"make", "python3", "pip", "."}, f"README shell line not checked: {line}"
    return out


def test_every_readme_block_is_python_shell_or_the_layout():
    blocks = fenced_blocks()
    assert {lang for lang, _ in blocks} <= {"python", "sh", ""}
    assert [b for lang, b in blocks if lang == ""] == [b for lang, b in blocks if lang == "" and "viewsplit/" in b]
    assert len(cli_lines()) >= 20


def test_readme_second_python_block_runs_on_its_own(tmp_path, monkeypatch):
    """The GridSearchCV block, as written but with 1 epoch instead of 10 (the first block runs verbatim above)."""
    monkeypatch.chdir(tmp_path)
    torch.set_num_threads(1)
    code = python_blocks()["Python quick start"][1]
    assert "MRDD(epochs=10)" in code
    scope: dict = {}
    exec(compile(code.replace("MRDD(epochs=10)", "MRDD(epochs=1)"), "README.md: GridSearchCV", "exec"), scope)
    assert scope["search"].best_params_["mrdd__c_dim"] in (8, 16)


def _config_keys_exist(cfg, keys: list[str]) -> None:
    import fnmatch

    flat: list[str] = []

    def walk(d: dict, prefix: str) -> None:
        for k, v in d.items():
            flat.append(prefix + k)
            if isinstance(v, dict):
                walk(v, f"{prefix}{k}.")

    walk(cfg.to_dict(), "")
    for key in keys:
        assert fnmatch.filter(flat, key), f"--allow-changed {key}: no such key in {cfg.method}'s config"


def test_readme_cli_lines_parse_and_their_config_keys_exist(capsys):
    """Every README command parses; the configs and key=value overrides of train / run / demo / eval / bench
    lines load against the shipped configs (no training); the cheap commands run."""
    from viewsplit.cli import build_parser, main
    from viewsplit.cli.common import config_path
    from viewsplit.cli.training import DEMO_CONFIG
    from viewsplit.config import build_config, load_config, merge, parse_override

    parser = build_parser()
    ran = 0
    for argv in cli_lines():
        if argv in (["--version"], ["run", "--help"]) or argv[0] in ("datasets", "methods"):
            if argv[0].startswith("-") or "--help" in argv:
                with pytest.raises(SystemExit) as done:
                    main(argv)
                assert done.value.code == 0
            else:
                assert main(argv) == 0, argv
            ran += 1
            continue
        args, extra = parser.parse_known_args(argv)
        overrides = [*getattr(args, "overrides", []), *extra]
        assert all("=" in o for o in overrides), argv
        if args.command in ("train", "run", "demo"):
            cfg = load_config(config_path(DEMO_CONFIG if args.command == "demo" else args.config), overrides)
            _config_keys_exist(cfg, getattr(args, "allow_changed", []))
        elif args.command == "eval":
            raw = load_config(config_path(DEMO_CONFIG)).to_dict()
            for item in overrides:
                assert item.startswith("eval."), argv
                raw = merge(raw, parse_override(item))
            build_config(raw)
        elif args.command == "bench":
            for method in args.methods.split(","):
                mine = [o.split(":", 1)[1] for o in overrides if o.startswith(f"{method}:")]
                plain = [o for o in overrides if ":" not in o.split("=", 1)[0]]
                for data in args.datasets.split(","):
                    load_config(config_path(f"{data}/{method}"), [*plain, *mine])
    assert ran >= 4
    capsys.readouterr()
