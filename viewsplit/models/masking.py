"""Input masking: patches and features for masked cross-view prediction (MRDD stage 1, docs/methods.md#mrdd-stage-1),
and whole views (DMRNet's modality drop, MRDD's optional view drop)."""
from __future__ import annotations

import torch
from torch import Tensor


def patch_mask(x: Tensor, ratio: float, patch: int, generator: torch.Generator | None = None) -> Tensor:
    """Zero exactly ⌊ratio·N⌋ of the N = (H/p)(W/p) non-overlapping p×p patches of every image.

    Patches are chosen per sample, uniformly without replacement (argsort of uniform noise), in
    every channel at once.  Returns a new tensor; ``x`` is unchanged.
    """
    b, _, h, w = x.shape
    if h % patch or w % patch:
        raise ValueError(f"patch size {patch} does not divide the image size {h}×{w}")
    gh, gw = h // patch, w // patch
    n = gh * gw
    k = int(ratio * n + 1e-9)
    if k == 0:
        return x.clone()
    noise = torch.rand(b, n, generator=generator, device=x.device if generator is None else "cpu").to(x.device)
    masked = torch.zeros(b, n, dtype=torch.bool, device=x.device)
    masked.scatter_(1, noise.argsort(1)[:, :k], True)
    keep = (~masked).view(b, 1, gh, 1, gw, 1).expand(b, 1, gh, patch, gw, patch).reshape(b, 1, h, w)
    return x * keep.to(x.dtype)


def feature_mask(x: Tensor, ratio: float, generator: torch.Generator | None = None) -> Tensor:
    """Vector views: zero exactly ⌊ratio·D⌋ features of every sample (uniformly chosen per sample)."""
    b, d = x.shape
    k = int(ratio * d + 1e-9)
    if k == 0:
        return x.clone()
    noise = torch.rand(b, d, generator=generator, device=x.device if generator is None else "cpu").to(x.device)
    keep = torch.ones(b, d, dtype=torch.bool, device=x.device)
    keep.scatter_(1, noise.argsort(1)[:, :k], False)
    return x * keep.to(x.dtype)


def mask_view(x: Tensor, ratio: float, patch: int, generator: torch.Generator | None = None) -> Tensor:
    """Patch masking for images ``(B, C, H, W)``, feature masking for vectors ``(B, D)``."""
    return patch_mask(x, ratio, patch, generator) if x.dim() == 4 else feature_mask(x, ratio, generator)


def modality_drop(mask: Tensor, rate: float = 1.0, generator: torch.Generator | None = None) -> Tensor:
    """DMRNet's per-sample modality drop, restricted to the views each sample has.

    With probability ``rate`` a sample's mask is replaced by a subset S drawn uniformly among the
    non-empty subsets of its present views (otherwise it is kept).  S is drawn by rejection: each
    view is kept with probability ½ and draws with S = ∅ are repeated, which is uniform over the
    non-empty subsets.  ``rate = 1`` on complete two-view data is the reference's uniform draw
    from {[1,0], [0,1], [1,1]}.
    """
    b, v = mask.shape
    out = mask.clone()
    todo = torch.rand(b, generator=generator, device=mask.device) < rate
    while bool(todo.any()):
        draw = (torch.rand(b, v, generator=generator, device=mask.device) < 0.5) & mask
        ok = todo & draw.any(1)
        out[ok] = draw[ok]
        todo &= ~ok
    return out


def cross_view_split(mask: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Per sample, split its present views into an encoder input S and reconstruction targets.

    S is drawn uniformly among the non-empty *proper* subsets of the present views (rejection, as in
    :func:`modality_drop`); the targets are the present views outside S.  A sample with a single
    present view sees it and has no target.  Returns ``(seen, targets)``, both ``(B, V)`` bool.
    """
    b, v = mask.shape
    seen = mask.clone()
    todo = mask.sum(1) > 1
    while bool(todo.any()):
        draw = (torch.rand(b, v, generator=generator, device=mask.device) < 0.5) & mask
        ok = todo & draw.any(1) & (draw != mask).any(1)
        seen[ok] = draw[ok]
        todo &= ~ok
    return seen, mask & ~seen
