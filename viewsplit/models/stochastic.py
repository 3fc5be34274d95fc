"""Stochastic layers that key their behaviour on their own mode (docs/evaluation.md#stochastic-layers).

The engine keeps a method in eval mode and switches only the submodules a stage trains to train
mode, so a layer that asked an outer module (``method.training``) would never sample.  Every
reparameterised sample in viewsplit goes through :class:`GaussianSample`, owned by the module
whose parameters produce μ and σ: it samples exactly when that module is trained.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, Protocol, TypeVar

import torch
from torch import Tensor, nn


class HasMode(Protocol):
    """An ``nn.Module`` or a stand-in with the same train / eval switch."""

    training: bool

    def eval(self) -> Any: ...

    def train(self, mode: bool = True) -> Any: ...


M = TypeVar("M", bound=HasMode)


@contextlib.contextmanager
def eval_mode(module: M) -> Iterator[M]:
    """``module`` in eval mode for the block (posterior means, no sampling, BatchNorm running statistics), then
    back in the mode it was in, also when the block raises."""
    was = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was)


class GaussianSample(nn.Module):
    """``z = μ + σ ⊙ ε`` (ε ~ N(0, I)) in training mode, ``z = μ`` in eval mode."""

    def forward(self, mu: Tensor, std: Tensor) -> Tensor:
        return mu + std * torch.randn_like(mu) if self.training else mu

    def from_logvar(self, mu: Tensor, logvar: Tensor) -> Tensor:
        """The same with σ = e^{½ logvar}."""
        return self(mu, (0.5 * logvar).exp())
