"""Factor recovery on data with known factors (docs/evaluation.md#factor-recovery).

For every representation R and every known factor f (``shared``, ``view<v>``), a read-out fitted
on the training split's codes and scored on the test split's: ridge R² (and a small MLP's R²,
since a linear read-out only bounds what a code holds from below), and for the class a logistic
probe's accuracy (and, with the MLP read-outs, an MLP classifier's).  The entries that matter:
R²(shared | C) high, R²(view_v | V_v) high, R²(view_v | C) ≈ 0, R²(shared | V_v) low, class
accuracy from V_v near chance.
"""
from __future__ import annotations

import numpy as np

from .probes import run_probe
from .readout import mlp_accuracy, mlp_r2, ridge_r2


def factor_recovery(train: dict[str, np.ndarray], test: dict[str, np.ndarray], f_train: dict[str, np.ndarray],
                    f_test: dict[str, np.ndarray], y_train: np.ndarray | None, y_test: np.ndarray | None,
                    mlp: bool = True) -> dict:
    """The code × factor table: ``{"ridge_r2": {R: {f: r2}}, "mlp_r2": …, "class_acc": {R: acc},
    "class_acc_mlp": …, "chance": …}`` (the ``mlp`` entries with ``mlp``)."""
    out: dict = {"ridge_r2": {r: {f: ridge_r2(train[r], f_train[f], test[r], f_test[f]) for f in f_train}
                              for r in train}}
    if mlp:
        out["mlp_r2"] = {r: {f: mlp_r2(train[r], f_train[f], test[r], f_test[f]) for f in f_train} for r in train}
    if (y_train is not None and y_test is not None and len(np.unique(y_train[y_train >= 0])) > 1
            and (y_test >= 0).any()):
        known_tr, known_te = y_train >= 0, y_test >= 0
        out["class_acc"] = {r: run_probe("logreg", train[r][known_tr], y_train[known_tr], test[r][known_te],
                                         y_test[known_te])["acc"] for r in train}
        if mlp:
            out["class_acc_mlp"] = {r: mlp_accuracy(train[r][known_tr], y_train[known_tr], test[r][known_te],
                                                    y_test[known_te]) for r in train}
        out["chance"] = float(np.bincount(y_test[known_te]).max() / known_te.sum())
    return out


def markdown(result: dict) -> list[str]:
    """Rows of the factor-recovery table for ``metrics.md``."""
    ridge, mlp, acc = result["ridge_r2"], result.get("mlp_r2"), result.get("class_acc")
    acc_mlp = result.get("class_acc_mlp")
    factors = list(next(iter(ridge.values())))
    head = (["class acc"] if acc else []) + [f"R²({f})" for f in factors]
    lines = ["## Factor recovery (fit on train codes, scored on test codes): ridge R²"
             + (" / MLP R²" if mlp else "")
             + (f"; class: logistic{' / MLP' if acc_mlp else ''} accuracy (majority class {result['chance']:.3f})"
                if acc else ""), "",
             "| representation | " + " | ".join(head) + " |", "|---" * (len(head) + 1) + "|"]
    for r, row in ridge.items():
        cells = [f"{acc[r]:.3f}" + (f" / {acc_mlp[r]:.3f}" if acc_mlp else "")] if acc else []
        cells += [f"{row[f]:.3f}" + (f" / {mlp[r][f]:.3f}" if mlp else "") for f in factors]
        lines.append(f"| {r} | " + " | ".join(cells) + " |")
    return [*lines, ""]
