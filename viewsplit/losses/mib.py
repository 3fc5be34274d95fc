"""MIB's estimators: critic MI bounds, Gaussian posteriors, symmetrised KL and the β schedule.

Multi-View Information Bottleneck (Federici et al., ICLR 2020, arXiv 2002.07017); reference code
mfederici/Multi-View-Information-Bottleneck @ 296fbb9 (docs/methods.md#mib).  With critic scores
``pos_b = T([z1_b; z2_b])`` on positive pairs and ``neg`` on negative pairs::

    Î_JSD = −mean softplus(−pos) − mean softplus(neg)      (the surrogate MIB maximises)
    Î_NWJ = mean pos − mean exp(neg) + 1                   (logged only)
    SKL_b = ½ [(log p1(z1_b) − log p2(z1_b)) + (log p2(z2_b) − log p1(z2_b))],   z_i ~ p_i
    L_MIB = −Î_JSD + β(t) · mean_b SKL_b

with posteriors ``p(z|x) = Independent(Normal(μ, σ), 1)``, ``σ = softplus(·) + 1e-7`` (a scale).
The reference logs the NWJ value as "I(z1;z2)" while it optimises the JSD surrogate (defect M1);
here the two carry distinct names, ``mi_jsd_surrogate`` and ``mi_nwj_estimate``.

Negatives: ``roll`` (the reference, default) pairs ``z1_{b−1 mod B}`` with ``z2_b`` — one negative
per sample; ``all`` (viewsplit option) scores every ``(z1_i, z2_j)``, ``i ≠ j`` — B(B−1) negatives.

:func:`mib_loss` evaluates the objective for every pair of V ≥ 2 views at once (one critic per
pair, batched), skipping per sample the pairs in which a view is missing.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Independent, Normal

NEGATIVES = ("roll", "all")
_LOG_2PI = math.log(2 * math.pi)


# ---------------------------------------------------------------------------- posteriors and SKL
def posterior_params(out: Tensor) -> tuple[Tensor, Tensor]:
    """``(B, 2d)`` encoder output → (μ, σ) = (out[:, :d], softplus(out[:, d:]) + 1e-7)."""
    mu, pre = out.chunk(2, dim=-1)
    return mu, F.softplus(pre) + 1e-7


def gaussian_posterior(out: Tensor) -> Independent:
    """``Independent(Normal(μ, σ), 1)`` from an encoder output (see :func:`posterior_params`)."""
    return Independent(Normal(*posterior_params(out), validate_args=False), 1, validate_args=False)


def diag_gaussian_log_prob(z: Tensor, mu: Tensor, sigma: Tensor) -> Tensor:
    """log N(z; μ, diag σ²) summed over the last dimension (= ``gaussian_posterior(·).log_prob``)."""
    return (-0.5 * ((z - mu) / sigma).pow(2) - sigma.log() - 0.5 * _LOG_2PI).sum(-1)


def symmetric_kl(mu1: Tensor, sigma1: Tensor, mu2: Tensor, sigma2: Tensor, z1: Tensor, z2: Tensor) -> Tensor:
    """Per-sample single-sample MC estimate of ½[KL(p1‖p2) + KL(p2‖p1)], z1 ~ p1 = N(μ1, σ1²), z2 ~ p2;
    shape ``z1.shape[:-1]``."""
    lp = diag_gaussian_log_prob
    return 0.5 * ((lp(z1, mu1, sigma1) - lp(z1, mu2, sigma2)) + (lp(z2, mu2, sigma2) - lp(z2, mu1, sigma1)))


# ---------------------------------------------------------------------------- critic bounds
def _mean_last(x: Tensor, mask: Tensor | None) -> Tensor:
    if mask is None:
        return x.mean(-1)
    return torch.where(mask, x, torch.zeros((), dtype=x.dtype, device=x.device)).sum(-1) / mask.sum(-1).clamp_min(1)


def mi_jsd_surrogate(pos: Tensor, neg: Tensor, pos_mask: Tensor | None = None,
                     neg_mask: Tensor | None = None) -> Tensor:
    """Î_JSD = −mean softplus(−pos) − mean softplus(neg), means over the last dimension (over the
    True entries of the masks when given)."""
    return -_mean_last(F.softplus(-pos), pos_mask) - _mean_last(F.softplus(neg), neg_mask)


def mi_nwj_estimate(pos: Tensor, neg: Tensor, pos_mask: Tensor | None = None, neg_mask: Tensor | None = None) -> Tensor:
    """Î_NWJ = mean pos − mean exp(neg) + 1 (the reference's logged "I(z1;z2)"); means as in
    :func:`mi_jsd_surrogate`."""
    return _mean_last(pos, pos_mask) - _mean_last(neg.exp(), neg_mask) + 1.0


def rolled_negatives(z1: Tensor) -> Tensor:
    """The reference's negatives: row b is z1_{b−1 mod B} (``torch.roll(z1, 1, 0)``), paired with z2_b."""
    return torch.roll(z1, 1, 0)


def previous_present(present: Tensor) -> Tensor:
    """``(..., B)`` bool → the index of the previous True entry, cyclically, for every position.

    For an all-True row this is ``(b − 1) mod B``, the pairing of :func:`rolled_negatives`; with
    missing entries the rolled negatives are drawn among the present samples only.
    """
    ar = torch.arange(present.shape[-1], device=present.device)
    last = torch.where(present, ar, -1).cummax(-1).values           # last present index ≤ b
    prev = torch.cat([last[..., -1:], last[..., :-1]], -1)          # ≤ b − 1; position 0 wraps
    return torch.where(prev < 0, last[..., -1:], prev).clamp_min(0)


class MIBCritic(nn.Module):
    """``n_pairs`` independent critics T_p([z1; z2]) = MLP 2·z_dim → hidden (ReLU) → 1, run as batched matmuls.

    The reference critic is one such MLP, 128 → 1024 → 1024 → 1.  Weights are initialised like
    ``nn.Linear`` (U(±1/√fan_in)).  ``forward`` takes ``(N, d)`` inputs when ``n_pairs == 1``, else
    ``(n_pairs, ..., d)``, and returns the scores without the last dimension.
    """

    def __init__(self, z_dim: int, hidden: list[int], n_pairs: int = 1):
        super().__init__()
        sizes = [2 * z_dim, *hidden, 1]
        self.n_pairs = n_pairs
        self.weights = nn.ParameterList(nn.Parameter(torch.empty(n_pairs, a, b)) for a, b in itertools.pairwise(sizes))
        self.biases = nn.ParameterList(nn.Parameter(torch.empty(n_pairs, 1, b)) for b in sizes[1:])
        for w, b in zip(self.weights, self.biases):
            bound = 1.0 / math.sqrt(w.shape[1])
            nn.init.uniform_(w, -bound, bound)
            nn.init.uniform_(b, -bound, bound)

    def forward(self, z1: Tensor, z2: Tensor) -> Tensor:
        x = torch.cat([z1, z2], -1)
        single = self.n_pairs == 1 and x.dim() == 2
        if single:
            x = x.unsqueeze(0)
        lead = x.shape[:-1]
        x = x.reshape(self.n_pairs, -1, x.shape[-1])
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            x = torch.baddbmm(b, x, w)
            if i < len(self.weights) - 1:
                x = F.relu(x)
        x = x.view(lead)
        return x[0] if single else x

    def scores(self, z1: Tensor, z2: Tensor, negatives: str = "roll") -> tuple[Tensor, Tensor]:
        """One critic, ``(B, d)`` inputs → ``(pos, neg)``: pos_b = T(z1_b, z2_b); neg ``(B,)`` for roll,
        ``(B(B−1),)`` for all."""
        b = z1.shape[0]
        if negatives == "roll":   # one critic call for positives and negatives
            both = self(torch.cat([z1, rolled_negatives(z1)]), torch.cat([z2, z2]))
            return both[:b], both[b:]
        if negatives != "all":
            raise ValueError(f"negatives must be one of {NEGATIVES}, got {negatives!r}")
        grid = self(z1.unsqueeze(1).expand(b, b, -1), z2.unsqueeze(0).expand(b, b, -1))   # [i, j] = T(z1_i, z2_j)
        return grid.diagonal(), grid[~torch.eye(b, dtype=torch.bool, device=grid.device)]


# ---------------------------------------------------------------------------- the objective
def view_pairs(n_views: int) -> list[tuple[int, int]]:
    """The unordered view pairs (u, v), u < v, in lexicographic order (critic p scores pair p)."""
    return list(itertools.combinations(range(n_views), 2))


def mib_loss(mu: Tensor, sigma: Tensor, z: Tensor, mask: Tensor, critic: MIBCritic, beta: float,
             negatives: str = "roll") -> dict[str, Tensor]:
    """L_MIB averaged over view pairs, from stacked posteriors ``mu, sigma, z`` of shape (V, B, d).

    For each pair p = (u, v) only the samples with both views present (``mask`` (B, V)) count:
    means run over them and rolled negatives are drawn among them (:func:`previous_present`).
    Pairs with fewer than 2 such samples are skipped; the result averages the remaining pairs::

        L = mean_p [ −Î_JSD(z_u; z_v) + β · mean_b SKL(p_u, p_v) ]

    Returns ``objective`` and the detached pair means ``mi_jsd_surrogate``, ``mi_nwj_estimate``,
    ``skl`` (zeros without gradient when no pair has 2 samples).
    """
    n_views, b, d = z.shape
    pu, pv = (torch.tensor(i, device=z.device) for i in zip(*view_pairs(n_views)))
    present = (mask[:, pu] & mask[:, pv]).T                                   # (P, B)
    n = present.sum(1)
    valid = n >= 2
    if not bool(valid.any()):
        zero = z.new_zeros(())
        return {"objective": zero, "mi_jsd_surrogate": zero, "mi_nwj_estimate": zero, "skl": zero}
    zu, zv = z[pu], z[pv]
    skl = _mean_last(symmetric_kl(mu[pu], sigma[pu], mu[pv], sigma[pv], zu, zv), present)
    if negatives == "roll":
        idx = previous_present(present).unsqueeze(-1).expand(-1, -1, d)
        both = critic(torch.cat([zu, zu.gather(1, idx)], 1), torch.cat([zv, zv], 1))
        pos, neg, neg_mask = both[:, :b], both[:, b:], present
    elif negatives == "all":
        grid = critic(zu.unsqueeze(2).expand(-1, b, b, d), zv.unsqueeze(1).expand(-1, b, b, d))   # [p, i, j]
        pos = grid.diagonal(dim1=1, dim2=2)
        off = ~torch.eye(b, dtype=torch.bool, device=z.device)
        neg, neg_mask = grid.flatten(1), (present.unsqueeze(2) & present.unsqueeze(1) & off).flatten(1)
    else:
        raise ValueError(f"negatives must be one of {NEGATIVES}, got {negatives!r}")
    jsd = mi_jsd_surrogate(pos, neg, present, neg_mask)[valid].mean()
    with torch.no_grad():
        nwj = mi_nwj_estimate(pos, neg, present, neg_mask)[valid].mean()
    skl = skl[valid].mean()
    return {"objective": -jsd + beta * skl, "mi_jsd_surrogate": jsd.detach(), "mi_nwj_estimate": nwj,
            "skl": skl.detach()}


# ---------------------------------------------------------------------------- β schedule
@dataclass
class ExponentialScheduler:
    """The β schedule, indexed by the global optimiser step t::

        log β(t) = log(start) + (log(end) − log(start)) · clip((t − start_iteration) / n_iterations, 0, 1)

    β is held at ``start`` until ``start_iteration``, then ramps log-linearly to ``end`` over
    ``n_iterations`` steps; ``t`` is the global optimiser step (reference ``ExponentialScheduler``;
    its MNIST values are start 1e-3, end 1, n_iterations 1e5, start_iteration 5e4, base 10).
    ``start == end`` gives a constant, including 0 (MV-InfoMax).  The base cancels out of the
    formula; it is kept for fidelity to the reference's signature.
    """

    start: float = 1e-3
    end: float = 1.0
    n_iterations: int = 100_000
    start_iteration: int = 50_000
    base: float = 10.0

    def __post_init__(self) -> None:
        if self.start != self.end and (self.start <= 0 or self.end <= 0):
            raise ValueError("a log-linear ramp needs start > 0 and end > 0 (or start == end), "
                             f"got {self.start}, {self.end}")
        if self.n_iterations <= 0:
            raise ValueError(f"n_iterations must be > 0, got {self.n_iterations}")

    def __call__(self, t: int) -> float:
        if self.start == self.end:
            return float(self.start)
        frac = min(max((t - self.start_iteration) / self.n_iterations, 0.0), 1.0)
        lo, hi = math.log(self.start, self.base), math.log(self.end, self.base)
        return float(self.base ** (lo + (hi - lo) * frac))
