"""Cross-view nearest-neighbour InfoNCE (NNCLR: Dwibedi et al., ICCV 2021, arXiv 2104.14548; InfoNCE: van den
Oord et al. 2018, arXiv 1807.03748).  Reference: docs/methods.md#mrdd-options.

For paired codes a_i, b_i (two views of sample i), with â, b̂ the rows scaled to unit length, let n(i) be the
nearest other sample to i in the b codes, n(i) = argmax_{j ≠ i} b̂ᵢ·b̂ⱼ (chosen without gradient; or, given keys
k_i, n(i) = argmax_{j ≠ i} kᵢ·kⱼ), and s_ij = âᵢ·b̂_{n(j)} / τ.  Then

    L = mean_i −log softmax_j(s_ij)[i],

i.e. each sample's code from one view has to pick out, among the batch's, the other view's code of its
nearest neighbour.  With the plain positive b_i (n(i) = i) the loss only asks the two views of one sample to
agree; with the neighbour it also pulls together samples that already lie close, which tightens clusters.
Neighbours in the codes reinforce whatever grouping the codes already have; keys fixed by the input (MRDD's
``contrast_neighbours: input``) pull together samples whose inputs are alike, whatever the codes do.

With ``own_positive`` the candidates are the batch's own b-codes, s_ij = âᵢ·b̂ⱼ / τ, and both the sample's own
and its neighbour's count as positives (a two-positive form, as in supervised contrastive learning, Khosla et al.
2020, arXiv 2004.11362, with the neighbour standing in for a label):

    L = mean_i ½ (−log softmax_j(s_ij)[i] − log softmax_j(s_ij)[n(i)]),

so the views of one sample still have to agree while close samples are drawn together.

Deviations from NNCLR: the neighbour comes from the current (global) batch, not from a queue of past
embeddings (a queue gave MRDD no gain, docs/mrdd.md#input-neighbour-contrast-the-vector-preset), and gradients
flow into both codes; the codes are the VAE's posterior means, without a projector.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..distributed import gather


def neighbour_info_nce(a: Tensor, b: Tensor, temperature: float = 0.5, keys: Tensor | None = None,
                       own_positive: bool = False, gather_distributed: bool = True) -> Tensor:
    """L of the module docstring for ``a``, ``b`` (n, d), row i of each from sample i.

    ``keys`` (n, k), if given, choose the neighbours by their dot products as given (scale them as wanted, e.g.
    to unit length; :func:`input_keys`); they get no gradient.  ``own_positive``: the two-positive form.  With
    ``gather_distributed`` and an initialised process group, all are gathered (autograd-aware) from every rank
    first, so neighbours and negatives come from the global batch, as in one process.  0 for fewer than 3
    samples in all (a neighbour other than the sample and one negative besides it are needed).
    """
    if a.shape != b.shape:
        raise ValueError(f"neighbour_info_nce: a has shape {tuple(a.shape)} but b {tuple(b.shape)}")
    if keys is not None and keys.shape[0] != a.shape[0]:
        raise ValueError(f"neighbour_info_nce: keys has {keys.shape[0]} rows but a {a.shape[0]}")
    if temperature <= 0:
        raise ValueError(f"neighbour_info_nce: temperature must be > 0, got {temperature}")
    if gather_distributed:
        a, b = gather(a), gather(b)
        keys = None if keys is None else gather(keys.detach())
    if a.shape[0] < 3:
        return a.new_zeros(())
    a, b = F.normalize(a, dim=1), F.normalize(b, dim=1)
    with torch.no_grad():
        sim = b @ b.T if keys is None else keys @ keys.T
        sim.fill_diagonal_(float("-inf"))
        nearest = sim.argmax(1)
    own = torch.arange(a.shape[0], device=a.device)
    if own_positive:
        logits = a @ b.T / temperature
        return 0.5 * (F.cross_entropy(logits, own) + F.cross_entropy(logits, nearest))
    return F.cross_entropy(a @ b[nearest].T / temperature, own)


def input_keys(views: list[Tensor], mask: Tensor) -> Tensor:
    """Neighbour keys from the inputs, cat_v m_v · x_v / ‖x_v‖ (each view flattened), so k_i·k_j sums the cosines of
    the views both samples have: for ``keys`` of :func:`neighbour_info_nce`."""
    return torch.cat([F.normalize(x.flatten(1), dim=1) * mask[:, v:v + 1] for v, x in enumerate(views)], 1)


def pairwise_neighbour_info_nce(zs: list[Tensor], mask: Tensor, temperature: float = 0.5, keys: Tensor | None = None,
                                own_positive: bool = False, gather_distributed: bool = True) -> Tensor:
    """The mean over view pairs v < w of :func:`neighbour_info_nce` (z_v, z_w), each on the samples that have both
    views (``mask`` (n, V), True = present; ``keys`` (n, k) are restricted to the same rows): for methods with one
    code per view (:func:`input_neighbour_contrast`).  0 for fewer than two views."""
    terms = []
    for v in range(len(zs)):
        for w in range(v + 1, len(zs)):
            both = mask[:, v] & mask[:, w]
            terms.append(neighbour_info_nce(zs[v][both], zs[w][both], temperature,
                                            None if keys is None else keys[both], own_positive, gather_distributed))
    return torch.stack(terms).mean() if terms else zs[0].new_zeros(())


def input_neighbour_contrast(codes: list[Tensor], views: list[Tensor], mask: Tensor, temperature: float = 0.5,
                             gather_distributed: bool = True) -> Tensor:
    """The ``contrast`` term of Soft CCA, FAE, DeCUR and MIB: :func:`pairwise_neighbour_info_nce` of the per-view
    ``codes`` in the two-positive form, each sample's neighbour the one whose ``views`` are most alike
    (:func:`input_keys`)."""
    return pairwise_neighbour_info_nce(codes, mask, temperature, input_keys(views, mask), own_positive=True,
                                       gather_distributed=gather_distributed)
