"""Losses usable on their own, outside the engine. Each docstring gives the formula and reference."""
from .club import CLUBSample, club_all_pairs, club_sample, gaussian_loglik, gaussian_nll
from .contrastive import input_keys, input_neighbour_contrast, neighbour_info_nce, pairwise_neighbour_info_nce
from .dcca import BatchTooSmallError, DCCALoss, dcca_correlation
from .decur import (
    BarlowTwinsLoss,
    DeCURLoss,
    barlow_twins_loss,
    barlow_twins_objective,
    batch_normalise,
    common_unique_objectives,
    cross_correlation,
    decur_loss,
)
from .dmrnet import (
    DMRNetLoss,
    WeakCombinationTracker,
    combination_codes,
    combination_masks,
    hard_combination_loss,
    pme_kl,
)
from .kl import gaussian_kl, gaussian_kl_per_dim
from .mib import (
    ExponentialScheduler,
    MIBCritic,
    gaussian_posterior,
    mi_jsd_surrogate,
    mi_nwj_estimate,
    mib_loss,
    rolled_negatives,
    symmetric_kl,
)
from .mrdd import consistency_objective
from .reconstruction import equal_view_weights, masked_mean, masked_sse, masked_view_mse, per_sample_sse
from .sdl import SoftCCALoss, StochasticDecorrelationLoss, batch_standardize

__all__ = [
    "BarlowTwinsLoss", "BatchTooSmallError", "CLUBSample", "DCCALoss", "DMRNetLoss", "DeCURLoss",
    "ExponentialScheduler", "MIBCritic", "SoftCCALoss", "StochasticDecorrelationLoss", "WeakCombinationTracker",
    "barlow_twins_loss", "barlow_twins_objective", "batch_normalise", "batch_standardize", "club_all_pairs",
    "club_sample", "combination_codes", "combination_masks", "common_unique_objectives", "consistency_objective",
    "cross_correlation", "dcca_correlation", "decur_loss", "equal_view_weights", "gaussian_kl", "gaussian_kl_per_dim",
    "gaussian_loglik", "gaussian_nll", "gaussian_posterior", "hard_combination_loss", "input_keys",
    "input_neighbour_contrast", "masked_mean", "masked_sse", "masked_view_mse", "mi_jsd_surrogate", "mi_nwj_estimate",
    "mib_loss", "neighbour_info_nce", "pairwise_neighbour_info_nce", "per_sample_sse", "pme_kl", "rolled_negatives",
    "symmetric_kl",
]
