"""CLUB: a contrastive log-ratio upper bound of mutual information (Cheng et al., ICML 2020).

A variational Gaussian ``q_θ(y|x) = N(m_θ(x), diag e^{ℓ_θ(x)})`` with
``m_θ = Linear(x_dim, h/2) → ReLU → Linear(h/2, y_dim)`` and ``ℓ_θ`` the same followed by Tanh
(as in the authors' ``mi_estimators.py``):

    loglik(x, y)  = mean_b Σ_d [ −(m_θ(x_b) − y_b)²_d / e^{ℓ_θ(x_b)_d} − ℓ_θ(x_b)_d ]   (unnormalised)
    CLUBSample    = ½ mean_b Σ_d [ (m_θ(x_b) − y_{π(b)})² − (m_θ(x_b) − y_b)² ]_d / e^{ℓ_θ(x_b)_d}
    CLUB          = mean_b Σ_d [ mean_j (m_b − y_j)² − (m_b − y_b)² ]_d / (2 e^{ℓ_b,d})

Training: the critic minimises ``learning_loss = −loglik`` on detached samples; the
representation minimises the estimate with the critic frozen.  Under DDP the estimates use the
local batch (the permutation is per rank); averaging the ranks' gradients gives the gradient of
the mean of per-rank estimates.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def gaussian_loglik(mu: Tensor, logvar: Tensor, y: Tensor) -> Tensor:
    """``mean_b Σ_d [−(μ − y)² / e^{logvar} − logvar]`` (= 2 × Gaussian log-likelihood + const)."""
    return (-(mu - y).pow(2) / logvar.exp() - logvar).sum(1).mean()


def gaussian_nll(mu: Tensor, logvar: Tensor, y: Tensor) -> Tensor:
    """The proper Gaussian NLL in nats per sample, ``mean_b Σ_d ½[(μ − y)² / e^{logvar} + logvar + log 2π]``
    (= −½ loglik + ½ d log 2π): what the critic's fit is reported in."""
    return 0.5 * ((mu - y).pow(2) / logvar.exp() + logvar + math.log(2 * math.pi)).sum(1).mean()


def club_sample(mu: Tensor, logvar: Tensor, y: Tensor, perm: Tensor) -> Tensor:
    """The sampled CLUB estimate with negatives ``y[perm]``."""
    pos = -(mu - y).pow(2) / logvar.exp()
    neg = -(mu - y[perm]).pow(2) / logvar.exp()
    return 0.5 * (pos - neg).sum(1).mean()


def club_all_pairs(mu: Tensor, logvar: Tensor, y: Tensor) -> Tensor:
    """The CLUB estimate against every y_j of the batch (j = b included)."""
    pos = -(mu - y).pow(2) / (2 * logvar.exp())
    diff = mu.unsqueeze(1) - y.unsqueeze(0)                      # (B, B, D): m_b − y_j
    neg = -(diff.pow(2).mean(1)) / (2 * logvar.exp())
    return (pos - neg).sum(1).mean()


class CLUBSample(nn.Module):
    """The vCLUB critic q_θ(y | x) and its estimates (see the module docstring)."""

    def __init__(self, x_dim: int, y_dim: int, hidden: int = 100):
        super().__init__()
        h = hidden // 2
        self.mu = nn.Sequential(nn.Linear(x_dim, h), nn.ReLU(), nn.Linear(h, y_dim))
        self.logvar = nn.Sequential(nn.Linear(x_dim, h), nn.ReLU(), nn.Linear(h, y_dim), nn.Tanh())

    def params(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.mu(x), self.logvar(x)

    def loglik(self, x: Tensor, y: Tensor) -> Tensor:
        return gaussian_loglik(*self.params(x), y)

    def nll(self, x: Tensor, y: Tensor) -> Tensor:
        """−log q_θ(y | x) in nats per sample (:func:`gaussian_nll`)."""
        return gaussian_nll(*self.params(x), y)

    def learning_loss(self, x: Tensor, y: Tensor) -> Tensor:
        """The critic's loss: −loglik on detached inputs (updates θ only)."""
        return -self.loglik(x.detach(), y.detach())

    def forward(self, x: Tensor, y: Tensor, perm: Tensor | None = None) -> Tensor:
        """The CLUBSample estimate of I(x; y); ``perm`` defaults to a fresh random permutation."""
        if perm is None:
            perm = torch.randperm(x.shape[0], device=x.device)
        return club_sample(*self.params(x), y, perm)

    def all_pairs(self, x: Tensor, y: Tensor) -> Tensor:
        return club_all_pairs(*self.params(x), y)
