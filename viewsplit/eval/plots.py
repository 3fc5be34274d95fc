"""Pictures of a trained run (``viewsplit plot``): 2-D maps of its representations and its loss curves.

* Embeddings: the posterior means (eval mode, :func:`~viewsplit.eval.evaluate.extract`) of a seeded
  subsample of the test split, mapped to 2-D by t-SNE (van der Maaten & Hinton, JMLR 2008; scikit-learn's
  Barnes–Hut version, PCA initialisation, perplexity min(30, (n − 1)/3), one thread) or, when ``umap``
  (umap-learn) is importable, by UMAP (McInnes et al., 2018); points coloured by label.  Such a map keeps
  neighbourhoods, not distances: read which classes mix, not how far apart clusters are.
* Loss curves: the rows of the run's ``log.jsonl`` (:mod:`viewsplit.engine.logger`), one panel per stage,
  one line per logged loss term, against the epoch (the epoch's mean) or the global step (that step's value).

matplotlib is optional (``pip install 'viewsplit[plots]'``).  Figures are drawn on matplotlib's Agg canvas
without pyplot, so plotting changes no global backend.
"""
from __future__ import annotations

import importlib.util
import json
import logging
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.multiview import MultiViewDataset
from ..errors import ConfigError, DataError, MissingDependencyError
from ..files import Staged
from ..methods.base import Method
from .evaluate import extract

log = logging.getLogger(__name__)

#: the log row keys that are bookkeeping, not loss terms
LOG_META = frozenset({"time", "kind", "stage", "epoch", "batch", "global_step", "lr", "train_seconds", "warnings"})
EMBEDDINGS = ("auto", "tsne", "umap")
LOSS_AXES = ("epoch", "step")

Curves = dict[str, dict[str, tuple[list[float], list[float]]]]


def require_matplotlib() -> None:
    """A one-line :class:`MissingDependencyError` when matplotlib is not installed."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise MissingDependencyError("plots need matplotlib, which is not installed: "
                                     "pip install 'viewsplit[plots]' (or pip install matplotlib)") from None


def _figure(**kwargs: Any) -> Any:
    """A matplotlib Figure attached to an Agg canvas (no pyplot, no global backend)."""
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(layout="constrained", **kwargs)
    FigureCanvasAgg(fig)
    return fig


# ---------------------------------------------------------------------------- embeddings
def subsample(n: int, max_points: int, seed: int) -> np.ndarray:
    """Sorted positions of at most ``max_points`` of ``n`` samples, drawn without replacement by
    ``numpy.random.default_rng(seed)``; all of them when ``n ≤ max_points``."""
    if max_points < 1:
        raise ConfigError(f"max_points (--max-points): must be >= 1, got {max_points}")
    if n <= max_points:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, max_points, replace=False))


def embed_2d(x: np.ndarray, seed: int = 0, embedding: str = "auto") -> tuple[np.ndarray, str]:
    """``x`` (n, d) mapped to (n, 2), and a name for the map: UMAP when ``embedding`` is ``umap`` (or
    ``auto`` and umap is importable), else t-SNE.  Samples that all share one code map to the origin."""
    if embedding not in EMBEDDINGS:
        raise ConfigError(f"embedding: must be one of {', '.join(EMBEDDINGS)}, got {embedding!r}")
    n = len(x)
    if n < 5:
        raise DataError(f"a 2-D map needs at least 5 samples, got {n}")
    if np.ptp(x, axis=0).max(initial=0.0) == 0.0:
        return np.zeros((n, 2)), "no map: every sample has the same code"
    if embedding == "umap" or (embedding == "auto" and importlib.util.find_spec("umap") is not None):
        try:
            import umap
        except ImportError:
            raise MissingDependencyError("embedding umap needs umap-learn: pip install umap-learn") from None
        return umap.UMAP(n_components=2, n_neighbors=min(15, n - 1), random_state=seed).fit_transform(x), "UMAP"
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    perplexity = min(30.0, (n - 1) / 3)
    # one OpenMP thread: with torch's and scikit-learn's OpenMP runtimes both loaded on a busy 2-core machine,
    # two threads made t-SNE of 80 points take 13 s instead of 0.6 s (1000 points: 72 s instead of 13 s)
    with threadpool_limits(limits=1):
        xy = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x)
    return xy, f"t-SNE (perplexity {perplexity:.3g})"


def plot_embedding(xy: np.ndarray, labels: np.ndarray | None, path: Path, title: str) -> Path:
    """A scatter of ``xy`` coloured by ``labels`` (a legend up to 20 classes, else a colour bar; label −1
    in grey), saved as a PNG."""
    require_matplotlib()
    import matplotlib

    fig = _figure(figsize=(6.4, 5.4))
    ax = fig.subplots()
    size = float(np.clip(12000 / max(len(xy), 1), 5, 30))
    if labels is None:
        ax.scatter(xy[:, 0], xy[:, 1], s=size, color="tab:blue", linewidths=0)
    else:
        known = labels >= 0
        if not known.all():
            ax.scatter(xy[~known, 0], xy[~known, 1], s=size, color="0.7", linewidths=0, label="unlabelled")
        classes = np.unique(labels[known])
        if len(classes) <= 20:
            cmap = matplotlib.colormaps["tab10" if len(classes) <= 10 else "tab20"]
            for i, c in enumerate(classes):
                sel = labels == c
                ax.scatter(xy[sel, 0], xy[sel, 1], s=size, color=cmap(i), linewidths=0, label=str(c))
            ax.legend(title="label", fontsize="small", markerscale=max(1.0, 30 / size) ** 0.5,
                      loc="center left", bbox_to_anchor=(1.0, 0.5))
        else:
            points = ax.scatter(xy[known, 0], xy[known, 1], s=size, c=labels[known], cmap="turbo", linewidths=0)
            fig.colorbar(points, ax=ax, label="label")
    ax.set_title(title, fontsize="medium")
    ax.set_xticks([])
    ax.set_yticks([])
    fig.savefig(path, dpi=100)
    return path


def embedding_plots(method: Method, test: MultiViewDataset, out_dir: Path, max_points: int = 2000, seed: int = 0,
                    batch_size: int = 1024, device: torch.device | str = "cpu", embedding: str = "auto",
                    representations: Sequence[str] = (), staged: Staged | None = None) -> list[Path]:
    """``embedding_<rep>.png`` for each representation (default: every one ``encode`` gives except the
    ``*_cat`` concatenations) of a seeded subsample of ``test``, and ``embedding.npz`` holding the
    subsample's positions in the test split (``index``) and each map's 2-D coordinates.  The files appear
    together when every one is complete (through ``staged`` when given); a failure leaves none."""
    require_matplotlib()
    if staged is None:
        with Staged(out_dir) as out:
            return embedding_plots(method, test, out_dir, max_points, seed, batch_size, device, embedding,
                                   representations, out)
    idx = subsample(len(test), max_points, seed)
    reps = extract(method, test.subset(idx), batch_size, device)
    names = list(representations) or [r for r in reps if not r.endswith("_cat")]
    unknown = [r for r in names if r not in reps]
    if unknown:
        raise ConfigError(f"representations: {unknown} not available; this method gives {list(reps)}")
    labels = None if test.labels is None else test.labels[idx].numpy()
    arrays, paths = {"index": idx}, []
    which = (f"all {len(test)} test samples" if len(idx) == len(test) else
             f"{len(idx)} of {len(test)} test samples (seeded subsample, seed {seed})")
    for r in names:
        log.info(f"plot: 2-D map of {r} ({len(idx)} test samples)")
        xy, how = embed_2d(reps[r], seed, embedding)
        arrays[r] = xy
        title = f"{r} of {type(method).name} on {test.name}: {how}\n{which}, coloured by label"
        name = re.sub(r"[^\w+.-]", "_", r)
        plot_embedding(xy, labels, staged.path(out_dir / f"embedding_{name}.png"), title)
        paths.append(out_dir / f"embedding_{name}.png")
    saved: dict[str, Any] = arrays   # Any: mypy would match **saved against savez's allow_pickle flag
    np.savez(staged.path(out_dir / "embedding.npz"), **saved)
    return paths


# ---------------------------------------------------------------------------- loss curves
def read_loss_curves(log_path: Path, x: str = "epoch") -> Curves:
    """Per stage (in training order), per loss term: the x values and the logged values.

    ``x="epoch"`` reads the epoch rows (x = epoch number from 1, value = the epoch's mean), ``x="step"`` the
    step rows (x = global step, value = that step's).  A resumed run logs the epochs after its checkpoint
    again; the last row for a (stage, x) wins, as the final model continued from it.
    """
    if x not in LOSS_AXES:
        raise ConfigError(f"x: must be one of {', '.join(LOSS_AXES)}, got {x!r}")
    if not log_path.is_file():
        raise ConfigError(f"{log_path}: no training log (log.jsonl) in this run folder")
    rows: dict[str, dict[float, dict[str, float]]] = {}
    for i, line in enumerate(log_path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise DataError(f"{log_path}, line {i}: not a JSON row") from None
        if not isinstance(row, dict) or row.get("kind") != x:
            continue
        if "stage" not in row or ("epoch" if x == "epoch" else "global_step") not in row:
            raise DataError(f"{log_path}, line {i}: a {x} row without 'stage' or its {x}")
        at = row["epoch"] + 1 if x == "epoch" else row["global_step"]
        rows.setdefault(row["stage"], {})[at] = {
            k: float(v) for k, v in row.items()
            if k not in LOG_META and isinstance(v, (int, float)) and not isinstance(v, bool)}
    if not rows:
        why = "train.log_every sets how often steps are logged" if x == "step" else "no epoch has finished"
        raise DataError(f"{log_path}: no {x} rows to plot ({why})")
    curves: Curves = {}
    for stage, by_x in rows.items():
        terms: dict[str, tuple[list[float], list[float]]] = {}
        for at in sorted(by_x):
            for k, v in by_x[at].items():
                xs, ys = terms.setdefault(k, ([], []))
                xs.append(at)
                ys.append(v)
        curves[stage] = terms
    return curves


def _symlog_threshold(terms: dict[str, tuple[list[float], list[float]]]) -> float | None:
    """When the terms' largest magnitudes differ by more than 20×, a symlog threshold (the smallest of them) so
    that small terms are not flattened against zero; else None (a linear axis)."""
    sizes = [max(abs(v) for v in ys) for _, ys in terms.values() if ys]
    sizes = [s for s in sizes if 0 < s < math.inf]
    if len(sizes) < 2 or max(sizes) <= 20 * min(sizes):
        return None
    return min(sizes)


def plot_loss_curves(curves: Curves, path: Path, x: str = "epoch", title: str = "") -> Path:
    """One panel per stage, one line per loss term (markers when a line has ≤ 30 points; after every ten
    terms the colours repeat with another line style), saved as a PNG."""
    require_matplotlib()
    from matplotlib.ticker import MaxNLocator

    if not curves:
        raise DataError("no loss curves to plot")
    cols = min(len(curves), 3)
    rows = -(-len(curves) // cols)
    fig = _figure(figsize=(5.2 * cols, 3.8 * rows))
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, (stage, terms) in zip(axes, curves.items()):
        for i, (term, (xs, ys)) in enumerate(terms.items()):
            ax.plot(xs, ys, label=term, linewidth=1.2, linestyle=("-", "--", ":", "-.")[i // 10 % 4],
                    marker="o" if len(xs) <= 30 else None, markersize=3)
        threshold = _symlog_threshold(terms)
        if threshold is not None:
            ax.set_yscale("symlog", linthresh=threshold)
        ax.set_title(f"stage {stage}", fontsize="medium")
        ax.set_xlabel("epoch" if x == "epoch" else "global step")
        ax.set_ylabel(("epoch mean" if x == "epoch" else "step value") + (" (symlog)" if threshold else ""))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    for ax in axes[len(curves):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title, fontsize="medium")
    fig.savefig(path, dpi=100)
    return path


def save_plots(method: Method, test: MultiViewDataset, log_path: Path, out_dir: Path, max_points: int = 2000,
               seed: int = 0, batch_size: int = 1024, device: torch.device | str = "cpu", embedding: str = "auto",
               x: str = "epoch", representations: Sequence[str] = ()) -> list[Path]:
    """:func:`embedding_plots` and, when the run has a training log, ``loss_curves.png``; the PNGs written.

    The log is read first, and every file appears only when all are complete: an unreadable log or a failed
    map writes nothing."""
    require_matplotlib()
    if x not in LOSS_AXES:
        raise ConfigError(f"x: must be one of {', '.join(LOSS_AXES)}, got {x!r}")
    curves = read_loss_curves(log_path, x) if log_path.is_file() else None
    with Staged(out_dir) as out:
        paths = embedding_plots(method, test, out_dir, max_points, seed, batch_size, device, embedding,
                                representations, out)
        if curves is not None:
            title = f"{type(method).name} on {test.name}: training loss terms"
            plot_loss_curves(curves, out.path(out_dir / "loss_curves.png"), x, title)
            paths.append(out_dir / "loss_curves.png")
        else:
            log.info(f"plot: no {log_path}, so no loss curves")
    return paths
