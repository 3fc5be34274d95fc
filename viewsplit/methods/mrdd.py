"""MRDD: masked cross-view prediction + distilled disentangling (Ke et al., CVPR 2024, arXiv 2403.10897).

Stage ``consistency`` (masked cross-view prediction, docs/methods.md#mrdd-stage-1)::

    x̃_v = mask(x_v, r, p)                     patches (images) or features (vectors), per view and sample
    (μ_c, logvar_c) = fc_z(cat_v Enc(x̃_v)),  c = μ_c + ε·e^{logvar_c/2}
    L1 = α Σ_v SSE(x_v, Dec_v(c)) + w_kl · mean_b KL(q(c|x̃) ‖ N(0, I))

Stage ``disentangle`` (distilled disentangling, docs/methods.md#mrdd-stage-2): the stage-1 model is
frozen in eval mode and gives c = μ_c of the unmasked views.  Per view, a VAE encodes s_v, its decoder reconstructs
x_v from [s_v, c], and a CLUB critic q_θ(c | s_v) is fitted on detached s_v::

    critic step:  L_θ = −loglik_θ(sg(s_v), c)
    model step:   L_v = SSE(x_v, Dec_v([s_v, c])) + β · mean_b KL(q(s_v|x_v) ‖ N(0, I)) + λ · CLUB_θ(s_v; c)

Representations: ``C`` = μ_c of the unmasked views, ``V_v`` = μ_v (posterior means; 0 in the dims
``v_min_kl`` drops).

Missing views (``batch.mask``; docs/evaluation.md#missing-views): an absent view never reaches an encoder
(``apply_present``), so its features enter fc_z as zeros and μ_c comes from the available views.
Stage 1 scores the reconstruction of view v only on the samples where v is present (the KL term
covers every sample); in stage 2 each view's reconstruction, KL and CLUB terms (and its critic's
NLL) use only the samples where that view is present, and a view with fewer than 2 of them in
the batch is skipped.  ``encode`` gives zeros (the prior mean) for a missing ``V_v``.
Stage 1 never sees a whole view absent in the paper, so μ_c of a subset of views is out of
distribution; ``view_drop`` > 0 (viewsplit option) hides random whole views from the encoder in
stage 1 while still reconstructing them, which makes C and ``predict`` usable from any subset.

Deviations from the reference code, all deliberate (docs/methods.md#mrdd-reference-code-defects):

* Stage 2 is the paper's objective (D1).  ``stage2: released_code`` reproduces the released loop
  (only the critic NLL, minimised jointly by encoder and critic) and is *not the paper's method*.
* The frozen model stays in eval mode and its c is μ_c, not a sample (D2); features are means (D3).
* α is honoured (D5); one c_dim for both stages, checked on load (D6); fc_z's width is computed (D7).
* Views of the same shape share one consistency encoder and run through it as one batch, so its
  BatchNorm statistics pool those views (the reference calls the encoder once per view).
* Each view's decoder has its own input layer (the reference shares ``to_dec`` across views).
* viewsplit options beyond the paper, off in the reference presets, each at its key in :class:`MRDDConfig`
  and with its measurements in docs/methods.md#mrdd-options: ``bn_recalibrate`` (D4), ``view_weights``,
  ``recon_reduction``, ``view_drop``, ``stage1_targets``, ``stage1_align``, ``stage1_contrast`` (with
  ``contrast_neighbours``, ``contrast_own_positive``), ``augment``, ``v_min_kl``.
* Sampling keys on the VAE that owns it (:class:`~viewsplit.models.stochastic.GaussianSample`,
  docs/evaluation.md#stochastic-layers): both stages sample c and s_v while their VAE trains, and use μ in eval mode.
* The CLUB critic (docs/methods.md#club) sees c standardised with the frozen stage 1's per-dim training
  statistics and s_v standardised over the batch (MI is invariant to both maps; the critic's
  log-variance is tanh-bounded to (−1, 1), so raw c with per-dim std 0.1–2.4 cannot be fitted), and
  takes ``n_critic`` = 5 steps per batch (the CLUB authors' demo: 5; the MRDD code: 1) on fresh
  samples of the same posteriors.  An epoch whose mean estimate for a view is below −0.1 nats is
  flagged (log row ``warnings``, a :class:`~viewsplit.errors.TrainingWarning`, the report): a
  negative CLUB estimate bounds nothing.  The critic's fit is logged as the Gaussian NLL in nats
  (``critic/nll_nats_v``; the reference's "NLL" is 2·NLL − d·log 2π).
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, cast

import torch
from torch import Tensor, nn

from ..data.augment import AugmentConfig, augment_registered
from ..data.multiview import Batch, MultiViewDataset
from ..errors import ConfigError
from ..losses import (
    CLUBSample,
    consistency_objective,
    equal_view_weights,
    gaussian_kl,
    gaussian_kl_per_dim,
    input_keys,
    masked_mean,
    neighbour_info_nce,
    per_sample_sse,
)
from ..models.backbones import BackboneConfig
from ..models.batchnorm import recalibrate_batchnorm
from ..models.masking import cross_view_split, mask_view, modality_drop
from ..models.mrdd_nets import ConsistencyAE, SpecificVAE
from ..models.stochastic import eval_mode
from ..typed import check_choice, check_positive
from .base import DataSpec, Method, Stage, StageDefaults, Step, register_method

#: nats: an epoch-mean CLUB estimate below −CLUB_NOISE is flagged as an invalid bound
CLUB_NOISE = 0.1


def _resnet() -> BackboneConfig:
    return BackboneConfig(image="resnet")


def _keep_every_v_dim(module: nn.Module, state: dict[str, Tensor], prefix: str, *_: Any) -> None:
    """Load hook: weights saved before ``v_active`` existed keep every dim of V (what they were trained with)."""
    state.setdefault(prefix + "v_active", torch.ones_like(cast("MRDD", module).v_active))


@dataclass
class MRDDConfig:
    #: consistent and specific code sizes
    c_dim: int = 10
    v_dim: int = 10
    #: stage 1: mask ratio, patch size (images), reconstruction weight α, KL weight
    mask_ratio: float = 0.7
    patch_size: int = 2
    alpha: float = 1.0
    kl_weight: float = 1.0
    #: stage 1, viewsplit option (0 = the paper): probability that a sample's encoder input keeps
    #: only a random non-empty subset of its views; every present view stays a reconstruction target,
    #: so C learns to predict absent views (what inference from a subset of views needs)
    view_drop: float = 0.0
    #: stage 1, viewsplit option: augment the encoder's input (``{}`` = MIB's strengths), not the targets
    augment: AugmentConfig | None = None
    #: stage 1, viewsplit option: ``all`` (the paper: reconstruct every view) or ``hidden`` (pure
    #: cross-view prediction: the encoder sees a random non-empty proper subset of the views and
    #: reconstructs only the others, so C has no use for a view's private factors)
    stage1_targets: str = "all"
    #: stage 1, viewsplit option for ``hidden`` targets (0 = off): encode every sample twice, from the
    #: seen subset S and from its complement T, let each code predict the other subset's views, and add
    #: ``stage1_align`` · ‖μ_S − μ_T‖², so that codes from different views share one coordinate system
    stage1_align: float = 0.0
    #: stage 1, viewsplit option for ``hidden`` targets (0 = off): ``stage1_contrast`` · the cross-view
    #: nearest-neighbour InfoNCE of μ_S and μ_T (:func:`~viewsplit.losses.neighbour_info_nce`, temperature
    #: ``contrast_temperature``): μ_S has to pick out the T-code of its nearest neighbour in the batch,
    #: which pulls close samples together and makes C's clusters tighter
    stage1_contrast: float = 0.0
    contrast_temperature: float = 0.5
    #: where the neighbours are found: ``code`` (nearest T-code) or ``input`` (the sample whose present views
    #: are most alike: the largest sum over shared views of the cosines of the standardised inputs, fixed by
    #: the data, so the term cannot reinforce the codes' own mistakes)
    contrast_neighbours: str = "code"
    #: the two-positive form: the sample's own T-code is a positive beside its neighbour's, so the views of
    #: one sample still have to agree (the vector preset: input neighbours and both positives keep the
    #: known-factor split, docs/mrdd.md#input-neighbour-contrast-the-vector-preset)
    contrast_own_positive: bool = False
    #: stage 2: specific KL weight β, CLUB weight λ, critic width h
    beta: float = 0.5
    lam: float = 1.0
    club_hidden: int = 100
    #: stage 2, viewsplit option (0 = off): a dim of V_v whose posterior carries less than ``v_min_kl`` nats
    #: (mean KL to the prior over the training data, measured when stage 2 ends) is dropped from V_v:
    #: ``encode`` and ``posteriors`` give it as 0.  Such a dim is noise to the model's own sampled code, yet
    #: its posterior mean can still carry what C lacks (docs/disentanglement.md#the-split-by-mlp-read-outs-issue-30)
    v_min_kl: float = 0.0
    #: CLUB critic steps per batch and the critic's learning rate as a multiple of the stage's
    #: (viewsplit defaults; the paper's code takes 1 step at the stage rate, which lets the encoder
    #: outrun the critic and drive the estimate below zero, where it bounds nothing)
    n_critic: int = 5
    critic_lr_scale: float = 1.0
    #: ``critic_first`` (default) or ``model_first`` (the CLUB authors' demo order)
    order: str = "critic_first"
    #: ``paper`` or ``released_code`` (defect D1 reproduced; not the paper's method)
    stage2: str = "paper"
    #: ``sum`` (reference: SSE summed over the batch) or ``batch_mean``
    recon_reduction: str = "sum"
    #: stage-1 view weights: ``size`` (reference: plain SSE sum, big views dominate) or ``equal``
    view_weights: str = "size"
    #: after stage 1, re-estimate the consistency model's BatchNorm statistics on unmasked
    #: training data (fixes D4: statistics gathered on masked inputs, applied to unmasked ones)
    bn_recalibrate: bool = False
    #: ``predict``: decoder for a missing view, ``stage2`` (Dec_v([0, c]), the specific prior mean)
    #: or ``stage1`` (Dec¹_v(c), the cross-view predictor); see ``MRDD.predict``
    missing_decoder: str = "stage2"
    consistency: BackboneConfig = field(default_factory=_resnet)
    specific: BackboneConfig = field(default_factory=_resnet)

    def validate(self) -> None:
        check_positive(self.c_dim, "model.c_dim")
        check_positive(self.v_dim, "model.v_dim")
        check_positive(self.patch_size, "model.patch_size")
        check_positive(self.n_critic, "model.n_critic")
        check_positive(self.club_hidden, "model.club_hidden")
        if not 0.0 <= self.mask_ratio < 1.0:
            check_positive(-1, "model.mask_ratio (must lie in [0, 1))")
        if not 0.0 <= self.view_drop <= 1.0:
            check_positive(-1, "model.view_drop (must lie in [0, 1])")
        check_positive(self.critic_lr_scale, "model.critic_lr_scale")
        if self.augment is not None:
            self.augment.validate("model.augment")
        check_positive(self.contrast_temperature, "model.contrast_temperature")
        for k in ("alpha", "kl_weight", "beta", "lam", "stage1_align", "stage1_contrast", "v_min_kl"):
            check_positive(getattr(self, k), f"model.{k}", allow_zero=True)
        check_choice(self.order, ("critic_first", "model_first"), "model.order")
        check_choice(self.stage2, ("paper", "released_code"), "model.stage2")
        check_choice(self.recon_reduction, ("sum", "batch_mean"), "model.recon_reduction")
        check_choice(self.view_weights, ("size", "equal"), "model.view_weights")
        check_choice(self.stage1_targets, ("all", "hidden"), "model.stage1_targets")
        check_choice(self.missing_decoder, ("stage2", "stage1"), "model.missing_decoder")
        check_choice(self.contrast_neighbours, ("code", "input"), "model.contrast_neighbours")
        for k in ("stage1_align", "stage1_contrast"):
            if getattr(self, k) > 0 and self.stage1_targets != "hidden":
                raise ConfigError(f"model.{k}: {getattr(self, k)} applies to stage1_targets: hidden only, "
                                  f"got stage1_targets: {self.stage1_targets}")
        self.consistency.validate("model.consistency")
        self.specific.validate("model.specific")


@register_method
class MRDD(Method):
    name = "mrdd"
    Config = MRDDConfig
    _optim: ClassVar[dict[str, Any]] = {"optimizer": "adamw", "lr": 5e-4, "betas": [0.9, 0.95],
                                        "weight_decay": 1e-4, "scheduler": "cosine", "t_max": 20, "eta_min": 5e-7}
    stage_defaults: ClassVar[StageDefaults] = {
        "consistency": {**_optim, "epochs": 200, "batch_size": 2048, "grad_clip": 1.0},
        "disentangle": {**_optim, "epochs": 200, "batch_size": 1024}}
    c_mean: Tensor
    c_std: Tensor
    v_active: Tensor

    def __init__(self, cfg: MRDDConfig, spec: DataSpec):
        super().__init__(cfg, spec)
        self.consistency = ConsistencyAE(spec.view_shapes, cfg.c_dim, cfg.consistency)
        self.specific = nn.ModuleList(SpecificVAE(s, cfg.v_dim, cfg.c_dim, cfg.specific) for s in spec.view_shapes)
        self.critics = nn.ModuleList(CLUBSample(cfg.v_dim, cfg.c_dim, cfg.club_hidden) for _ in spec.view_shapes)
        sizes = [math.prod(s) for s in spec.view_shapes]
        self.view_weights = equal_view_weights(sizes) if cfg.view_weights == "equal" else None
        self._frozen = False
        self._c_table: tuple[int, Tensor] | None = None   # (data set uid, c of each of its samples)
        #: per-dim mean / std of the frozen stage 1's c over the training data: the critics see
        #: standardised c (set at the start of stage 2, checkpointed)
        self.register_buffer("c_mean", torch.zeros(cfg.c_dim))
        self.register_buffer("c_std", torch.ones(cfg.c_dim))
        #: (views, v_dim): the dims of each V_v that ``encode`` keeps (``v_min_kl``; set when stage 2 ends)
        self.register_buffer("v_active", torch.ones(len(spec.view_shapes), cfg.v_dim, dtype=torch.bool))
        self.register_load_state_dict_pre_hook(_keep_every_v_dim)

    @property
    def vaes(self) -> list[SpecificVAE]:
        """The views' specific VAEs (``specific``), typed: ``nn.ModuleList`` items are plain modules to a
        type checker."""
        return cast("list[SpecificVAE]", list(self.specific))

    @property
    def clubs(self) -> list[CLUBSample]:
        """The views' CLUB critics (``critics``), typed like :attr:`vaes`."""
        return cast("list[CLUBSample]", list(self.critics))

    # ------------------------------------------------------------------ modes
    def train(self, mode: bool = True) -> MRDD:
        """Once stage 2 has begun, the consistency model stays in eval mode whatever is asked (D2)."""
        super().train(mode)
        if self._frozen:
            self.consistency.eval()
        return self

    # ------------------------------------------------------------------ stage 1
    def consistency_loss(self, batch: Batch) -> dict[str, Tensor]:
        """Stage 1 on one batch: encode the seen views, reconstruct the targets (:func:`consistency_objective`).

        With ``stage1_align`` (hidden targets; a viewsplit option) each sample is encoded from S and from
        its complement T in one batch of 2B (a single-view sample: from its view twice, with no target);
        c_S reconstructs T and c_T reconstructs S, the objective is taken over the 2B rows, and
        ``stage1_align`` · mean_b ‖μ_S − μ_T‖² over the samples with both halves is added (with
        ``stage1_contrast``, the same pairing, also ``stage1_contrast`` · NN-InfoNCE(μ_S, μ_T), the neighbours
        from the T-codes or, with ``contrast_neighbours: input``, by :func:`~viewsplit.losses.input_keys`).
        Without it, the decoder of view v only ever sees codes of subsets without v, so nothing makes C(S) and C(T)
        agree; with two views the encoder never sees both, and the evaluated C from every view (fc_z is
        linear: an affine map of the mean of the single-view codes) clustered worse than the better
        single-view code (docs/mrdd.md, small data sets).
        """
        cfg = self.cfg
        xs = batch.views
        seen_views = xs if cfg.augment is None else augment_registered(xs, cfg.augment)
        masked = [mask_view(x, cfg.mask_ratio, cfg.patch_size) for x in seen_views]
        paired = cfg.stage1_targets == "hidden" and (cfg.stage1_align > 0 or cfg.stage1_contrast > 0)
        if cfg.stage1_targets == "hidden":
            seen, targets = cross_view_split(batch.mask)
            if paired:
                pair = targets.any(1)
                other = torch.where(pair[:, None], targets, seen)
                seen, targets = torch.cat([seen, other]), torch.cat([targets, seen & pair[:, None]])
                xs, masked = [torch.cat([x, x]) for x in xs], [torch.cat([x, x]) for x in masked]
        else:
            seen = modality_drop(batch.mask, cfg.view_drop) if cfg.view_drop > 0 else batch.mask
            targets = batch.mask
        mu, logvar = self.consistency.posterior(masked, seen)
        c = self.consistency.sample.from_logvar(mu, logvar)
        x_hats = [dec(c) for dec in self.consistency.decoders]
        out = consistency_objective(xs, x_hats, targets, mu, logvar, cfg.alpha, cfg.kl_weight,
                                    cfg.recon_reduction, self.view_weights)
        if not paired:
            return out
        mu_s, mu_t = mu.chunk(2)
        agreement = masked_mean(per_sample_sse(mu_s, mu_t), pair)
        objective = out["objective"] + cfg.stage1_align * agreement
        extra = {"agreement": agreement.detach()}
        if cfg.stage1_contrast > 0:
            keys = None if cfg.contrast_neighbours == "code" else input_keys(batch.views, batch.mask)[pair]
            contrast = neighbour_info_nce(mu_s[pair], mu_t[pair], cfg.contrast_temperature, keys,
                                          cfg.contrast_own_positive)
            objective = objective + cfg.stage1_contrast * contrast
            extra["contrast"] = contrast.detach()
        return {**out, "objective": objective, **extra}

    def _recalibrate(self, data: MultiViewDataset, device: torch.device) -> None:
        recalibrate_batchnorm(self.consistency, (b.to(device) for b in data.batches(512)),
                              lambda b: self.consistency.posterior(b.views, b.mask))

    # ------------------------------------------------------------------ stage 2
    @torch.no_grad()
    def consistent_code(self, views: list[Tensor], mask: Tensor) -> Tensor:
        """μ_c of the unmasked views from the (frozen, eval-mode) stage-1 model."""
        with eval_mode(self.consistency):
            return self.consistency.posterior(views, mask)[0]

    def _precompute_c(self, data: MultiViewDataset, device: torch.device) -> None:
        """The frozen model's c for every training sample, computed once for all of stage 2."""
        chunks = [self.consistent_code(b.views, b.mask) for b in (b.to(device) for b in data.batches(1024))]
        c = torch.cat(chunks)
        self._c_table = (data.uid, c)
        self.c_mean.copy_(c.mean(0))
        self.c_std.copy_(c.std(0).clamp_min(1e-6))

    def _c(self, batch: Batch) -> Tensor:
        if "c" not in batch.cache:
            if self._c_table is not None and self._c_table[0] == batch.source:
                batch.cache["c"] = self._c_table[1][batch.index.to(self._c_table[1].device)]
            else:
                batch.cache["c"] = self.consistent_code(batch.views, batch.mask)
        return batch.cache["c"]

    def _per_view(self, batch: Batch) -> Iterator[tuple[int, Tensor, Tensor, Tensor, Tensor, Tensor]]:
        """For each view: (v, its present samples' x, their c, μ_v, logvar_v, sampled s_v)."""
        c = self._c(batch)
        for v, vae in enumerate(self.vaes):
            present = batch.mask[:, v]
            x, cv = batch.views[v], c
            if not bool(present.all()):
                idx = present.nonzero(as_tuple=True)[0]
                if idx.numel() < 2:
                    continue
                x, cv = x[idx], c[idx]
            mu, logvar = vae.posterior(x)
            yield v, x, cv, mu, logvar, vae.sample.from_logvar(mu, logvar)

    @staticmethod
    def _club_code(s: Tensor) -> Tensor:
        """s_v as the critic sees it: standardised per dim over the batch (MI is invariant to that
        map; without it the encoder can shrink a dim until a critic trained at a modest rate no
        longer resolves the information it carries)."""
        return (s - s.mean(0)) / (s.std(0) + 1e-4)

    def standardised(self, c: Tensor) -> Tensor:
        """c in the units the critics see: (c − mean) / std with the frozen stage 1's training statistics."""
        return (c - self.c_mean) / self.c_std

    def critic_loss(self, batch: Batch) -> dict[str, Tensor]:
        """The critics' −loglik on detached samples; logged as the Gaussian NLL of c̃ in nats per sample."""
        if "critic_inputs" not in batch.cache:   # the encoders are fixed during the critic's repeats
            with torch.no_grad():
                batch.cache["critic_inputs"] = [(v, mu, logvar, self.standardised(cv))
                                                for v, _, cv, mu, logvar, _ in self._per_view(batch)]
        total = batch.views[0].new_zeros(())
        out: dict[str, Tensor] = {}
        for v, mu, logvar, cv in batch.cache["critic_inputs"]:
            s = self._club_code(self.vaes[v].sample.from_logvar(mu, logvar))   # a fresh sample each repeat
            total = total + self.clubs[v].learning_loss(s, cv)
            with torch.no_grad():
                out[f"nll_nats_{v}"] = self.clubs[v].nll(s, cv)
        return {"objective": total, **out}

    def disentangle_loss(self, batch: Batch) -> dict[str, Tensor]:
        cfg = self.cfg
        recon = kl = club = batch.views[0].new_zeros(())
        per_view: dict[str, Tensor] = {}
        for v, x, cv, mu, logvar, s in self._per_view(batch):
            x_hat = self.vaes[v].decoder(torch.cat([s, cv], 1))
            sse = per_sample_sse(x, x_hat)
            recon = recon + (sse.mean() if cfg.recon_reduction == "batch_mean" else sse.sum())
            kl = kl + gaussian_kl(mu, logvar).mean()
            club_v = self.critics[v](self._club_code(s), self.standardised(cv))
            club = club + club_v
            per_view[f"club_{v}"] = club_v.detach()
        total = recon + cfg.beta * kl + cfg.lam * club
        return {"objective": total, "reconstruction": recon.detach(), "kl": kl.detach(), "club": club.detach(),
                **per_view}

    @torch.no_grad()
    def _select_v_dims(self, data: MultiViewDataset, device: torch.device) -> None:
        """``v_active``: the dims of V_v whose mean KL(q(s_v | x_v) ‖ N(0, 1)) over the training samples with
        view v is at least ``v_min_kl`` nats (eval mode; idempotent)."""
        kl = torch.zeros_like(self.v_active, dtype=torch.float64)
        count = torch.zeros(len(self.vaes), 1, dtype=torch.float64, device=kl.device)
        with eval_mode(self.specific):
            for batch in (b.to(device) for b in data.batches(1024)):
                for v, vae in enumerate(self.vaes):
                    present = batch.mask[:, v]
                    mu, logvar = vae.posterior(batch.views[v], present)
                    kl[v] += gaussian_kl_per_dim(mu, logvar)[present].sum(0).double()
                    count[v] += present.sum()
        self.v_active.copy_(kl / count.clamp_min(1) >= self.cfg.v_min_kl)

    def check_club(self, means: dict[str, float]) -> list[str]:
        """Warnings for the views whose CLUB estimate was negative over an epoch (the bound is then invalid).

        Means above −``CLUB_NOISE`` nats are not flagged: with I ≈ 0 the sampled estimate scatters around 0.
        """
        bad = {k: v for k, v in means.items() if k.startswith("model/club_") and v < -CLUB_NOISE}
        return [f"CLUB estimate of I(C; V_{k.rsplit('_', 1)[1]}) was negative over the epoch ({v:.3g} nats): the "
                "critic no longer fits q(c | s_v), so the estimate is no upper bound and the encoder exploits it; "
                "raise model.n_critic or model.critic_lr_scale" for k, v in bad.items()]

    def released_code_loss(self, batch: Batch) -> dict[str, Tensor]:
        """Defect D1 reproduced: λ·(−loglik(s_v, c)) minimised jointly by encoder and critic."""
        nll = sum((-self.clubs[v].loglik(s, cv) for v, _, cv, _, _, s in self._per_view(batch)),
                  batch.views[0].new_zeros(()))
        return {"objective": self.cfg.lam * nll, "critic_nll": nll.detach()}

    # ------------------------------------------------------------------ interface
    def stage(self, name: str) -> Stage:
        if name == "consistency":
            end = self._recalibrate if self.cfg.bn_recalibrate else None
            return Stage(name, [Step("model", [self.consistency], self.consistency_loss)], on_end=end)
        if name != "disentangle":
            raise KeyError(name)
        self._frozen = True
        self.consistency.eval()
        start = self._precompute_c
        if self.cfg.stage2 == "released_code":
            return Stage(name, [Step("model", [self.specific, self.critics], self.released_code_loss)], on_start=start)
        scale = self.cfg.critic_lr_scale
        critic = Step("critic", [self.critics], self.critic_loss, repeats=self.cfg.n_critic,
                      param_groups=lambda mods: [{"params": list(self.critics.parameters()), "lr_scale": scale}])
        model = Step("model", [self.specific], self.disentangle_loss)
        return Stage(name, [critic, model] if self.cfg.order == "critic_first" else [model, critic], on_start=start,
                     check_epoch=self.check_club, on_end=self._select_v_dims if self.cfg.v_min_kl > 0 else None)

    def encode(self, views: list[Tensor], mask: Tensor | None = None) -> dict[str, Tensor]:
        mask = self.resolve_mask(views, mask)
        out = {"C": self.consistency.posterior(views, mask)[0]}
        out.update((k, mu) for k, (mu, _) in self.posteriors(views, mask).items())
        return out

    def posteriors(self, views: list[Tensor], mask: Tensor | None = None) -> dict[str, tuple[Tensor, Tensor]]:
        """(μ_v, σ_v) of every specific code (zeros where the view is missing and in the dims ``v_min_kl`` drops)."""
        mask = self.resolve_mask(views, mask)
        out = {}
        for v, vae in enumerate(self.vaes):
            mu, logvar = vae.posterior(views[v], mask[:, v])
            keep = self.v_active[v] & mask[:, v : v + 1]
            out[f"V_{v}"] = (mu * keep, (0.5 * logvar).exp() * keep)
        return out

    @torch.no_grad()
    def predict(self, views: list[Tensor], mask: Tensor | None = None) -> list[Tensor]:
        """Reconstruct every view from the available ones (missing-view prediction).

        c comes from the available views.  A present view is reconstructed by its stage-2 decoder
        from its inferred specific code, x̂_v = Dec_v([μ_v, c]).  A missing view is decoded with
        ``missing_decoder``: ``stage2`` gives Dec_v([0, c]) (the specific prior mean; the default),
        ``stage1`` gives Dec¹_v(c), stage 1's estimate of E[x_v | c]; which predicts better depends on β
        (docs/mrdd.md).
        """
        mask = self.resolve_mask(views, mask)
        codes = self.encode(views, mask)
        c = codes["C"]
        out = []
        for v, vae in enumerate(self.vaes):
            x_hat = vae.decoder(torch.cat([codes[f"V_{v}"], c], 1))
            if self.cfg.missing_decoder == "stage1":
                present = mask[:, v].view(-1, *[1] * (x_hat.dim() - 1))
                x_hat = torch.where(present, x_hat, self.consistency.decoders[v](c))
            out.append(x_hat)
        return out

    @torch.no_grad()
    def visualise(self, views: list[Tensor], mask: Tensor | None = None) -> dict[str, list[Tensor]]:
        """Image grids per image view: originals / stage-1 / stage-2 reconstructions, and a swap grid
        whose row i decodes sample i's c with the specific code of each column's sample."""
        codes = self.encode(views, mask)
        c = codes["C"]
        stage2 = self.predict(views, mask)
        out = {}
        for v, x in enumerate(views):
            if x.dim() != 4:
                continue
            out[f"view{v}_reconstructions"] = [x, self.consistency.decoders[v](c), stage2[v]]
            s, n = codes[f"V_{v}"], x.shape[0]
            decoder = self.vaes[v].decoder
            swaps = [decoder(torch.cat([s, c[i : i + 1].expand(n, -1)], 1)) for i in range(n)]
            out[f"view{v}_swap"] = [x, *swaps]
        return out
