"""Held-out redundancy between the consistent code C and each specific code V_v
(docs/evaluation.md, "Redundancy of C in V_v").

Every estimator is fitted on the training split's codes and scored on the test split's:

* ``ridge_r2`` / ``mlp_r2``: R² of C predicted from V_v (:mod:`viewsplit.eval.readout`; the ridge
  read-out is the one the NLL below uses, fitted once on standardised C);
* ``nll_given`` / ``info``: held-out Gaussian NLL of (standardised) C given V_v in nats per sample,
  and the predictive information ``nll_marginal − nll_given`` in nats;
* the same from a posterior *sample* of V_v (``sample.*``) for methods whose V_v is a Gaussian
  posterior: a code whose mean predicts C but whose samples do not carries the information only
  below its noise (ridge and NLL; the MLP read-out is of the means only);
* optionally MINE (DV bound, docs/evaluation.md, "MINE"), trained on the training pairs and evaluated on the test pairs.
"""
from __future__ import annotations

import numpy as np

from ..engine.logger import Countdown
from .readout import gaussian_nll, mlp_r2


def _measures(c_tr: np.ndarray, v_tr: np.ndarray, c_te: np.ndarray, v_te: np.ndarray, mlp: bool) -> dict:
    out = gaussian_nll(v_tr, c_tr, v_te, c_te)
    if mlp:
        out["mlp_r2"] = mlp_r2(v_tr, c_tr, v_te, c_te)
    return out


def held_out_redundancy(train: dict[str, np.ndarray], test: dict[str, np.ndarray],
                        train_samples: dict[str, np.ndarray] | None = None,
                        test_samples: dict[str, np.ndarray] | None = None, mlp: bool = True,
                        mine_runs: int = 0, mine_epochs: int = 100) -> dict:
    """Per ``V_v``: the measures of C from V_v (posterior means), and from samples where given."""
    result = {}
    codes = [k for k in train if k.startswith("V_")]
    progress = Countdown("eval: MINE fits", len(codes) * mine_runs) if mine_runs else None
    for r in codes:
        row = _measures(train["C"], train[r], test["C"], test[r], mlp)
        if train_samples and test_samples and r in train_samples:
            row["sample"] = _measures(train["C"], train_samples[r], test["C"], test_samples[r], mlp=False)
        if mine_runs:
            from .mine import mine_runs as run_mine

            row["mine_nats"] = run_mine(train["C"], train[r], mine_runs, progress, f"I(C; {r})",
                                        epochs=mine_epochs, held_out=(test["C"], test[r]))
        result[r] = row
    if progress is not None:
        progress.finish()
    return result


def markdown(result: dict) -> list[str]:
    """Rows of the redundancy table for ``metrics.md``."""
    lines = ["## Redundancy of C in V_v (fit on train codes, scored on test codes)", "",
             "R² of C from V_v (ridge / MLP); Gaussian NLL of standardised C given V_v and the predictive "
             "information I = NLL(C) − NLL(C | V_v), nats per sample; 'sample' uses a posterior sample of V_v.", "",
             "| code | R² ridge | R² MLP | NLL(C given V) | I (nats) | sample: R² ridge | sample: I (nats) "
             "| MINE (nats) |",
             "|---|---|---|---|---|---|---|---|"]

    def f(x: float | None) -> str:
        return "–" if x is None else f"{x:.3f}"

    for r, row in result.items():
        s = row.get("sample", {})
        mine = row.get("mine_nats")
        lines.append(f"| {r} | {f(row['ridge_r2'])} | {f(row.get('mlp_r2'))} | {f(row['nll_given'])} | "
                     f"{f(row['info'])} | {f(s.get('ridge_r2'))} | {f(s.get('info'))} | "
                     + ("–" if mine is None else f"{mine['mean']:.3f} ± {mine['std']:.3f}") + " |")
    return [*lines, ""]
