"""Losses usable on their own, outside the engine. Each docstring gives the formula and reference."""
from .reconstruction import masked_mean, masked_view_mse, per_sample_sse

__all__ = ["masked_mean", "masked_view_mse", "per_sample_sse"]
