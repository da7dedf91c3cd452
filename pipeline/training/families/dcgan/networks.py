"""DCGAN (Radford et al. 2016) at any power-of-two size: noise -> image, and a discriminator returning logits.

Channels halve at each doubling of resolution, capped at 8 x width, so a 256 px model stays small
enough to train from 300 paintings. The discriminator options are the ones the DCGAN art experiments
rely on: spectral norm (Miyato et al. 2018) and dropout; batch norm is left out of the critic for
WGAN-GP (the gradient penalty is per sample) and when spectral norm already bounds it.
"""
from __future__ import annotations

import math
from itertools import pairwise
from typing import Any

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from ...weights import init_weights
from .settings import DCGANSettings


def _levels(image_size: int) -> int:
    """Stride-2 levels between a 4x4 map and the image: 6 at 256 px, 3 at 32 px."""
    levels = int(math.log2(image_size)) - 2
    if image_size != 2 ** (levels + 2) or levels < 1:
        raise ValueError(f"DCGAN image size must be a power of two >= 8, got {image_size}")
    return levels


class DCGenerator(nn.Module):
    def __init__(self, z_dim: int = 128, width: int = 64, image_size: int = 256) -> None:
        super().__init__()
        levels = _levels(image_size)
        widths = [width * min(2 ** (levels - 1 - i), 8) for i in range(levels)]
        layers: list[nn.Module] = [nn.ConvTranspose2d(z_dim, widths[0], 4, 1, 0, bias=False),
                                   nn.BatchNorm2d(widths[0]), nn.LeakyReLU(0.2, True)]
        for c_in, c_out in pairwise(widths):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out),
                       nn.LeakyReLU(0.2, True)]
        layers += [nn.ConvTranspose2d(widths[-1], 3, 4, 2, 1), nn.Tanh()]
        self.model = nn.Sequential(*layers)
        self.z_dim = z_dim

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.model(z.view(z.shape[0], self.z_dim, 1, 1))


class DCDiscriminator(nn.Module):
    def __init__(self, width: int = 64, image_size: int = 256, spectral_norm: bool = False,
                 dropout: float = 0.0, batch_norm: bool = True) -> None:
        super().__init__()
        levels = _levels(image_size)
        widths = [width * min(2**i, 8) for i in range(levels)]
        wrap = _spectral_norm if spectral_norm else (lambda m: m)
        layers: list[nn.Module] = []
        c_in = 3
        for i, c_out in enumerate(widths):
            layers.append(wrap(nn.Conv2d(c_in, c_out, 4, 2, 1, bias=not batch_norm or i == 0)))
            if batch_norm and i > 0:  # not on the input layer, as in the paper
                layers.append(nn.BatchNorm2d(c_out))
            layers.append(nn.LeakyReLU(0.2, True))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            c_in = c_out
        layers.append(wrap(nn.Conv2d(c_in, 1, 4, 1, 0)))  # 4x4 -> one logit, no sigmoid
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x).flatten(1)


def make_generator(train: Any, s: DCGANSettings) -> nn.Module:
    """Noise (s.z_dim) -> a train.image_size Monet."""
    return init_weights(DCGenerator(s.z_dim, s.width, train.image_size))


def make_discriminator(train: Any, s: DCGANSettings) -> nn.Module:
    return init_weights(DCDiscriminator(s.width, train.image_size, s.spectral_norm, s.d_dropout,
                                        batch_norm=s.d_batch_norm))
