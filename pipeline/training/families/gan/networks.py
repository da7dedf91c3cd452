"""The original GAN's networks (Goodfellow et al. 2014) as multilayer perceptrons on flattened images:
noise -> hidden -> 2 hidden -> 4 hidden -> 3 x size x size (tanh), and the mirror image down to one logit.
LeakyReLU throughout (the paper's maxout units are rarely used now)."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .settings import GANSettings


def _mlp(sizes: list[int]) -> list[nn.Module]:
    """Linear layers between consecutive sizes, LeakyReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:], strict=False)):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(nn.LeakyReLU(0.2, True))
    return layers


class MLPGenerator(nn.Module):
    def __init__(self, z_dim: int = 100, hidden: int = 256, image_size: int = 64) -> None:
        super().__init__()
        self.z_dim, self.image_size = z_dim, image_size
        self.model = nn.Sequential(*_mlp([z_dim, hidden, 2 * hidden, 4 * hidden, 3 * image_size ** 2]),
                                   nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.model(z.reshape(z.shape[0], self.z_dim)).view(-1, 3, self.image_size, self.image_size)


class MLPDiscriminator(nn.Module):
    def __init__(self, hidden: int = 256, image_size: int = 64) -> None:
        super().__init__()
        self.model = nn.Sequential(*_mlp([3 * image_size ** 2, 4 * hidden, 2 * hidden, hidden, 1]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.flatten(1))  # one logit per image, no sigmoid (BCE on logits)


def make_generator(train: Any, s: GANSettings) -> nn.Module:
    """Noise (s.z_dim) -> a gan.image_size Monet (train.image_size plays no part)."""
    return MLPGenerator(s.z_dim, s.hidden, s.image_size)


def make_discriminator(train: Any, s: GANSettings) -> nn.Module:
    return MLPDiscriminator(s.hidden, s.image_size)
