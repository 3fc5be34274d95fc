"""The layers import downwards only: data → models/losses → methods → engine → evaluation → CLI."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "viewsplit"
# what each lower layer must not import (relative imports of sibling packages)
FORBIDDEN = {
    "data": {"models", "losses", "methods", "engine", "eval", "cli", "estimators"},
    "models": {"methods", "engine", "eval", "cli", "estimators"},
    "losses": {"methods", "engine", "eval", "cli", "estimators"},
    "methods": {"engine", "eval", "cli", "estimators"},
}


def _imported_packages(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level >= 2 and node.module:
            out.add(node.module.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("viewsplit."):
            out.add(node.module.split(".")[1])
    return out


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_lower_layers_do_not_import_upper_ones(layer: str) -> None:
    bad = {f"{p.name}: {sorted(_imported_packages(p) & FORBIDDEN[layer])}"
           for p in (PKG / layer).glob("*.py") if _imported_packages(p) & FORBIDDEN[layer]}
    assert not bad, f"viewsplit/{layer} imports layers above it: {sorted(bad)}"
