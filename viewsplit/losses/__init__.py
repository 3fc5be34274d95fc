"""Losses usable on their own, outside the engine. Each docstring gives the formula and reference."""
from .club import CLUBSample, club_all_pairs, club_sample, gaussian_loglik, gaussian_nll
from .dcca import BatchTooSmallError, DCCALoss, dcca_correlation
from .decur import (BarlowTwinsLoss, DeCURLoss, barlow_twins_loss, barlow_twins_objective, batch_normalise,
                    common_unique_objectives, cross_correlation, decur_loss)
from .kl import gaussian_kl
from .mib import (ExponentialScheduler, MIBCritic, gaussian_posterior, mi_jsd_surrogate, mi_nwj_estimate, mib_loss,
                  rolled_negatives, symmetric_kl)
from .reconstruction import equal_view_weights, masked_mean, masked_sse, masked_view_mse, per_sample_sse
from .sdl import SoftCCALoss, StochasticDecorrelationLoss, batch_standardize

__all__ = ["BatchTooSmallError", "CLUBSample", "DCCALoss", "SoftCCALoss", "StochasticDecorrelationLoss",
           "batch_standardize", "club_all_pairs", "club_sample", "dcca_correlation", "gaussian_kl",
           "equal_view_weights", "gaussian_loglik", "gaussian_nll", "masked_mean", "masked_sse", "masked_view_mse", "per_sample_sse",
           # MIB
           "ExponentialScheduler", "MIBCritic", "gaussian_posterior", "mi_jsd_surrogate", "mi_nwj_estimate",
           "mib_loss", "rolled_negatives", "symmetric_kl",
           # DeCUR
           "BarlowTwinsLoss", "DeCURLoss", "barlow_twins_loss", "barlow_twins_objective", "batch_normalise",
           "common_unique_objectives", "cross_correlation", "decur_loss"]

# DMRNet
from .dmrnet import (DMRNetLoss, WeakCombinationTracker, combination_codes, combination_masks,  # noqa: E402
                     hard_combination_loss, pme_kl)

__all__ += ["DMRNetLoss", "WeakCombinationTracker", "combination_codes", "combination_masks", "hard_combination_loss",
            "pme_kl"]
