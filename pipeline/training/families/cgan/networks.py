"""The conditional networks: DCGAN's blocks (training/networks.py) with a domain label in each.

- generator: a learned label embedding (z_dim long) concatenated to the noise, then DCGAN's generator
  (Mirza & Osindero 2014 condition by concatenation).
- discriminator: a projection discriminator (Miyato & Koyama 2018): DCGAN's discriminator, spectral norm
  and no batch norm, whose last 4x4 features give an unconditional logit plus <embed(label), sum-pooled
  features>.

Labels: PHOTO_LABEL = 0, MONET_LABEL = 1. `MonetGenerator` (what generate rebuilds) is the conditional
generator with the label fixed to Monet: the same weights under the same state-dict keys, noise in only.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ...networks import DCDiscriminator, DCGenerator
from ...weights import init_weights
from .settings import CGANSettings

PHOTO_LABEL, MONET_LABEL = 0, 1
N_LABELS = 2


class ConditionalGenerator(nn.Module):
    """(noise, label) -> image: the label's embedding joins the noise at the generator's input."""

    def __init__(self, z_dim: int = 128, width: int = 64, image_size: int = 256) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.embed = nn.Embedding(N_LABELS, z_dim)
        self.body = DCGenerator(2 * z_dim, width, image_size)

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        z = z.view(z.shape[0], self.z_dim)
        return self.body(torch.cat([z, self.embed(labels).to(z.dtype)], 1))


class MonetGenerator(ConditionalGenerator):
    """The conditional generator with its label fixed to Monet: noise -> painting (generate's generator)."""

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if labels is None:
            labels = torch.full((z.shape[0],), MONET_LABEL, dtype=torch.long, device=z.device)
        return super().forward(z, labels)


class ProjectionDiscriminator(nn.Module):
    """(image, label) -> logit = psi(phi(x)) + <embed(label), sum-pooled phi(x)> (Miyato & Koyama 2018)."""

    def __init__(self, width: int = 64, image_size: int = 256) -> None:
        super().__init__()
        self.body = DCDiscriminator(width, image_size, spectral_norm=True, batch_norm=False)
        features = self.body.model[-1].in_channels  # the last layer: 4x4 features -> one logit
        self.embed = spectral_norm(nn.Embedding(N_LABELS, features))

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = self.body.model[:-1](x)
        unconditional = self.body.model[-1](h).flatten(1)
        projection = (self.embed(labels).to(h.dtype) * h.sum((2, 3))).sum(1, keepdim=True)
        return unconditional + projection


def make_conditional_generator(train: Any, s: CGANSettings) -> ConditionalGenerator:
    return init_weights(ConditionalGenerator(s.z_dim, s.width, train.image_size), train.init)


def make_generator(train: Any, s: CGANSettings) -> nn.Module:
    """Noise (s.z_dim) -> a train.image_size Monet: the label fixed to Monet (generate's generator)."""
    return init_weights(MonetGenerator(s.z_dim, s.width, train.image_size), train.init)


def make_discriminator(train: Any, s: CGANSettings) -> nn.Module:
    return init_weights(ProjectionDiscriminator(s.width, train.image_size), train.init)
