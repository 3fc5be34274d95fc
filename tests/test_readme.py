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
