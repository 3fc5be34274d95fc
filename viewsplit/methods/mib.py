"""MIB: Multi-View Information Bottleneck (Federici et al., ICLR 2020, arXiv 2002.07017; docs/methods.md#mib).

Stochastic encoders give Gaussian posteriors p_v = p(z | x_v) (σ = softplus(·) + 1e-7); with one
reparameterised sample z_v ~ p_v per view and a critic T_ψ on [z_u; z_v]::

    L_MIB = −Î_JSD(z_1; z_2) + β(t) · SKL(p_1, p_2)         (losses.mib; β from ExponentialScheduler)

t is the global optimiser step (``Method.global_step``, checkpointed with the weights, so a
resumed run continues β from the stored step; defect M4).  β ≡ 0 (``beta_start = beta_end = 0``)
is the Multi-View InfoMax baseline (``configs/handwritten/mvinfomax.yaml``); it is the same
objective with one coefficient set to zero, so it has no registered name of its own.

One optimiser step per batch, with two parameter groups (encoders, critic) at the same lr and
no alternation: encoders and critic both *maximise* Î_JSD and the SKL term does not depend on
ψ, so minimising L jointly gives the critic exactly ∇_ψ(−Î_JSD) — there is no min-max game.

viewsplit generalisations (the paper and code are two-view):

* **V ≥ 2 views**: L = mean over view pairs u < v of [−Î_JSD(z_u; z_v) + β·SKL(p_u, p_v)], with
  one critic per pair (input [z_u; z_v]; all pairs' critics run as one batched MLP).  For V = 2
  this is the reference loss.  Every pair's SKL pulls its two posteriors together, so with many
  heterogeneous views the bottleneck keeps only what *all* views share: on Handwritten β must stay
  ≤ 3e-4 (``configs/handwritten/mib.yaml``).
* **Encoders**: views of the same shape share one encoder when ``share_encoder`` (MIB's own
  two-augmentation setting); otherwise every view has its own.
* **Missing views** (``batch.mask``): an absent view never reaches an encoder
  (``apply_present``); a pair (u, v) only uses the samples where both views are present (the
  rolled negatives are drawn among those), and a pair with fewer than 2 such samples is skipped.
* **DDP**: with ``gather_distributed`` (default) the samples of every rank are gathered
  (autograd-aware) before the critic and the SKL mean, so every rank computes the loss and
  gradients of one process on the global batch listed rank by rank (rolled negatives cross rank
  boundaries; tested with 2 gloo processes).  This holds exactly for normalisation-free encoders
  (the reference MLP); BatchNorm layers (conv trunks) keep per-rank statistics.  A DDP run is
  not bitwise a single-process run: the engine shards the epoch order round-robin, so the
  rank-major gathered order (which the roll pairing sees) differs from the single-process batch
  order, and each rank draws its own ε — the same estimator in distribution (``negatives: all``
  is order-invariant).  Without gathering, negatives are rolled within each rank's shard.
* **Augmentation** (``model.augment``, off by default): each view of a training batch gets its own
  random augmentation (:func:`viewsplit.data.augment.augment`) before its encoder, so the critic
  must find what the views share beyond pixel-aligned detail; ``encode`` sees the raw views.  The
  paper's multi-view experiments use no augmentation; the Edge-FMNIST preset turns it on.
* **Input-neighbour contrast** (``model.contrast``, 0 by default, 5 in the vector preset): adds ``contrast`` · the
  two-positive NN-InfoNCE of the views' posterior means μ_v, averaged over view pairs, each sample's neighbour the one
  with the most alike inputs (:func:`~viewsplit.losses.input_neighbour_contrast`, as Soft CCA's).  The JSD critic
  and the SKL bottleneck keep what the views share but do not draw a class together: C clustered far below the
  cheap baselines on small sets (docs/methods.md#mib).
* Representations (``encode``): ``Z_<v>`` = μ_v (zeros where view v is missing), ``Z_cat`` = their
  concatenation, and ``C`` = the mean of μ_v over the available views.  MIB has no view-specific
  codes: ``C`` is only the fused shared representation, there is no ``V_<v>``.  In the
  two-augmentation setting (``data.name=augpairs``, shared encoder) the un-augmented test views
  are identical, so ``Z_0`` = ``Z_1`` = ``C`` there (MIB's representation).

Other deviations: the encoder backbone is configurable (the default is the reference MNIST MLP
784 → 1024 → 1024 → 2·64 without normalisation); the reference trains with batch 64, Adam lr 1e-4,
no weight decay and keeps the last partial batch (938 steps per MNIST epoch), which are this
method's stage defaults.  No trained models or MIR-Flickr / Sketchy code exist upstream (M6).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, cast

import torch
from torch import Tensor, nn

from ..data.augment import AugmentConfig, augment
from ..data.multiview import Batch
from ..distributed import gather, is_distributed
from ..errors import ConfigError
from ..losses.mib import NEGATIVES, ExponentialScheduler, MIBCritic, mib_loss, posterior_params, view_pairs
from ..models.backbones import BackboneConfig, feature_encoder
from ..models.stochastic import GaussianSample
from ..typed import check_choice, check_positive
from .base import (
    DataSpec,
    Method,
    Stage,
    StageDefaults,
    Step,
    add_contrast,
    apply_present,
    check_contrast_keys,
    register_method,
)


def _reference_encoder() -> BackboneConfig:
    return BackboneConfig(hidden=[1024, 1024], norm=False, image="mlp")


@dataclass
class MIBConfig:
    #: latent size (reference 64)
    z_dim: int = 64
    #: per-view encoder trunk; a linear head to 2·z_dim (μ, pre-softplus σ) is added on top
    encoder: BackboneConfig = field(default_factory=_reference_encoder)
    #: hidden widths of the critic MLP on [z_u; z_v]
    critic_hidden: list[int] = field(default_factory=lambda: [1024, 1024])
    #: β schedule (reference: 1e-3 → 1, ramp over 100k steps starting at step 50k); 0/0 = MV-InfoMax
    beta_start: float = 1e-3
    beta_end: float = 1.0
    start_iteration: int = 50_000
    n_iterations: int = 100_000
    #: ``roll`` (reference: one rolled negative per sample) or ``all`` (every other sample)
    negatives: str = "roll"
    #: views of the same shape share one encoder
    share_encoder: bool = True
    #: gather all ranks' samples before the critic (DDP equals one process on the global batch)
    gather_distributed: bool = True
    #: augment every view independently in training (``{}`` = MIB's strengths); None = no augmentation
    augment: AugmentConfig | None = None
    #: weight of the input-neighbour contrast of the posterior means (module docstring; 0 = off), its temperature
    contrast: float = 0.0
    contrast_temperature: float = 0.5

    def validate(self) -> None:
        check_positive(self.z_dim, "model.z_dim")
        for i, h in enumerate(self.critic_hidden):
            check_positive(h, f"model.critic_hidden[{i}]")
        check_positive(self.beta_start, "model.beta_start", allow_zero=True)
        check_positive(self.beta_end, "model.beta_end", allow_zero=True)
        if self.beta_start != self.beta_end and (self.beta_start == 0 or self.beta_end == 0):
            raise ConfigError("model.beta_start/beta_end: the log-linear ramp needs both > 0; "
                              "set both to 0 for MV-InfoMax")
        check_positive(self.start_iteration, "model.start_iteration", allow_zero=True)
        check_positive(self.n_iterations, "model.n_iterations")
        check_choice(self.negatives, NEGATIVES, "model.negatives")
        check_contrast_keys(self)
        self.encoder.validate("model.encoder")
        if self.augment is not None:
            self.augment.validate("model.augment")


class GaussianEncoder(nn.Module):
    """Trunk + linear head: ``x → (B, 2·z_dim)`` = [μ; pre-softplus σ] (see ``losses.mib.gaussian_posterior``)."""

    def __init__(self, shape: tuple[int, ...], z_dim: int, cfg: BackboneConfig):
        super().__init__()
        trunk, dim = feature_encoder(shape, cfg)
        self.net = nn.Sequential(trunk, nn.Linear(dim, 2 * z_dim))
        self.sample = GaussianSample()

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


@register_method
class MIB(Method):
    name = "mib"
    Config = MIBConfig
    stage_defaults: ClassVar[StageDefaults] = {
        "train": {"epochs": 1000, "batch_size": 64, "optimizer": "adam", "lr": 1e-4, "weight_decay": 0.0,
                  "drop_last": False}}

    def __init__(self, cfg: MIBConfig, spec: DataSpec):
        super().__init__(cfg, spec)
        shapes = [tuple(s) for s in spec.view_shapes]
        keys: list = shapes if cfg.share_encoder else list(range(len(shapes)))
        unique = list(dict.fromkeys(keys))
        #: view v is encoded by ``encoders[view_encoder[v]]``
        self.view_encoder = [unique.index(k) for k in keys]
        self.encoders = nn.ModuleList(GaussianEncoder(shapes[keys.index(k)], cfg.z_dim, cfg.encoder) for k in unique)
        #: one critic per view pair (u, v), u < v, in ``view_pairs`` order, evaluated as one batched MLP
        self.critics = MIBCritic(cfg.z_dim, cfg.critic_hidden, len(view_pairs(len(shapes))))
        self.beta = ExponentialScheduler(cfg.beta_start, cfg.beta_end, cfg.n_iterations, cfg.start_iteration)

    def raw(self, views: list[Tensor], mask: Tensor) -> list[Tensor]:
        """Per-view encoder outputs ``(B, 2·z_dim)``; zeros where a view is missing."""
        return [apply_present(self.encoder_of(v), x, mask[:, v]) for v, x in enumerate(views)]

    def encoder_of(self, v: int) -> GaussianEncoder:
        """View v's encoder (``nn.ModuleList`` items are plain modules to a type checker)."""
        return cast(GaussianEncoder, self.encoders[self.view_encoder[v]])

    def loss(self, batch: Batch) -> dict[str, Tensor]:
        """L_MIB of a batch, with one reparameterised sample z_v = μ_v + σ_v ⊙ ε_v per view."""
        views = batch.views if self.cfg.augment is None else [augment(x, self.cfg.augment) for x in batch.views]
        outs = self.raw(views, batch.mask)
        params = [posterior_params(o) for o in outs]
        zs = [self.encoder_of(v).sample(mu, sigma) for v, (mu, sigma) in enumerate(params)]
        out = self.objective([p[0] for p in params], [p[1] for p in params], zs, batch.mask)
        return add_contrast(out, [p[0] for p in params], batch, self.cfg)

    def objective(self, mus: list[Tensor], sigmas: list[Tensor], zs: list[Tensor], mask: Tensor) -> dict[str, Tensor]:
        """:func:`~viewsplit.losses.mib.mib_loss` at β(global_step), on the global batch when gathering."""
        if self.cfg.gather_distributed and is_distributed():
            v = len(zs)
            local = torch.cat([*mus, *sigmas, *zs, mask.to(zs[0].dtype)], 1)
            cols = gather(local).split([m.shape[1] for m in mus] * 3 + [v], 1)
            mus, sigmas, zs, mask = list(cols[:v]), list(cols[v: 2 * v]), list(cols[2 * v: 3 * v]), cols[-1] > 0.5
        beta = self.beta(int(self.global_step))
        out = mib_loss(torch.stack(mus), torch.stack(sigmas), torch.stack(zs), mask, self.critics, beta,
                       self.cfg.negatives)
        out["beta"] = zs[0].new_tensor(beta)
        return out

    def param_groups(self, modules: list[nn.Module]) -> list[dict]:
        """Two groups at the stage's lr: the encoders and the critics (reference: one Adam, two groups)."""
        return [{"params": list(self.encoders.parameters()), "name": "encoders"},
                {"params": list(self.critics.parameters()), "name": "critic"}]

    def stage(self, name: str) -> Stage:
        if name != "train":
            raise KeyError(name)
        return Stage(name, [Step("model", [self.encoders, self.critics], self.loss, param_groups=self.param_groups)])

    def encode(self, views: list[Tensor], mask: Tensor | None = None) -> dict[str, Tensor]:
        mask = self.resolve_mask(views, mask)
        mus = [o[:, : self.cfg.z_dim] for o in self.raw(views, mask)]
        out = {f"Z_{v}": mu for v, mu in enumerate(mus)}
        out["Z_cat"] = torch.cat(mus, 1)
        out["C"] = sum(mus) / mask.sum(1, keepdim=True).to(mus[0].dtype)
        return out
