"""Cross-view nearest-neighbour InfoNCE (NNCLR: Dwibedi et al., ICCV 2021, arXiv 2104.14548; InfoNCE: van den
Oord et al. 2018, arXiv 1807.03748).  Reference: docs/methods.md#mrdd-options.

For paired codes a_i, b_i (two views of sample i), with â, b̂ the rows scaled to unit length, let n(i) be the
nearest other sample to i in the b codes, n(i) = argmax_{j ≠ i} b̂ᵢ·b̂ⱼ (chosen without gradient), and
s_ij = âᵢ·b̂_{n(j)} / τ.  Then

    L = mean_i −log softmax_j(s_ij)[i],

i.e. each sample's code from one view has to pick out, among the batch's, the other view's code of its
nearest neighbour.  With the plain positive b_i (n(i) = i) the loss only asks the two views of one sample to
agree; with the neighbour it also pulls together samples that already lie close, which tightens clusters.

Deviations from NNCLR: the neighbour comes from the current (global) batch, not from a queue of past
embeddings, and gradients flow into both codes; the codes are the VAE's posterior means, without a projector.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..distributed import gather


def neighbour_info_nce(a: Tensor, b: Tensor, temperature: float = 0.5, gather_distributed: bool = True) -> Tensor:
    """L of the module docstring for ``a``, ``b`` (n, d), row i of each from sample i.

    With ``gather_distributed`` and an initialised process group, both are gathered (autograd-aware) from every
    rank first, so neighbours and negatives come from the global batch, as in one process.  0 for fewer than
    3 samples in all (a neighbour other than the sample and one negative besides it are needed).
    """
    if a.shape != b.shape:
        raise ValueError(f"neighbour_info_nce: a has shape {tuple(a.shape)} but b {tuple(b.shape)}")
    if temperature <= 0:
        raise ValueError(f"neighbour_info_nce: temperature must be > 0, got {temperature}")
    if gather_distributed:
        a, b = gather(a), gather(b)
    if a.shape[0] < 3:
        return a.new_zeros(())
    a, b = F.normalize(a, dim=1), F.normalize(b, dim=1)
    with torch.no_grad():
        sim = b @ b.T
        sim.fill_diagonal_(float("-inf"))
        nearest = sim.argmax(1)
    logits = a @ b[nearest].T / temperature
    return F.cross_entropy(logits, torch.arange(a.shape[0], device=a.device))
