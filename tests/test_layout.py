"""The layers import downwards only: data → models/losses → methods → engine → evaluation → CLI."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "viewsplit"
# what each lower layer must not import (relative imports of sibling packages)
# (``config``, the run config, builds on the methods' Config classes; the checks they share live in ``typed``)
FORBIDDEN = {
    "data": {"models", "losses", "methods", "engine", "eval", "cli", "estimators", "config"},
    "models": {"methods", "engine", "eval", "cli", "estimators", "config"},
    "losses": {"methods", "engine", "eval", "cli", "estimators", "config"},
    "methods": {"engine", "eval", "cli", "estimators", "config"},
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


def test_typed_settings_import_nothing_of_viewsplit_but_its_errors() -> None:
    """``typed`` (from_dict, coerce, the value checks) sits below every layer that has settings."""
    tree = ast.parse((PKG / "typed.py").read_text())
    inside = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level >= 1}
    assert inside == {"errors"}
