"""Losses usable on their own, outside the engine. Each docstring gives the formula and reference."""
from .club import CLUBSample, club_all_pairs, club_sample, gaussian_loglik
from .kl import gaussian_kl
from .reconstruction import equal_view_weights, masked_mean, masked_sse, masked_view_mse, per_sample_sse

__all__ = ["CLUBSample", "club_all_pairs", "club_sample", "gaussian_kl", "equal_view_weights", "gaussian_loglik", "masked_mean",
           "masked_sse", "masked_view_mse", "per_sample_sse"]
