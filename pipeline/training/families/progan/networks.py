"""ProGAN's networks (Karras et al. 2018): a generator and a critic that hold the layers of every resolution
from the start (a checkpoint's state_dict never changes shape), and run the layers of one phase at a time.

`phase(resolution, fading)` returns a module sharing the layers that phase uses and nothing else: DDP
requires every parameter it wraps to get a gradient each step, so the trainer wraps phases, not whole
networks. A network's own forward is its last phase, stable: the generator's plain `forward(z)` makes
max_size images, as generate expects. Fading blends the new resolution's output (or input) with the one
below it by `alpha`, a tensor so that a compiled forward is not specialised on its value.

Equalised learning rate: weights drawn from N(0, 1) and scaled at run time by He's constant, so that
Adam's step moves every layer at the same relative speed. The generator normalises each pixel's feature
vector (pixel norm) in place of batch norm; the critic appends the minibatch standard deviation before its
last block so that it can see a lack of variety.
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .settings import ProGANSettings

SLOPE = 0.2  # LeakyReLU


class EqualizedConv2d(nn.Module):
    """A convolution whose N(0, 1) weights are scaled by gain / sqrt(fan_in) at every call."""

    def __init__(self, c_in: int, c_out: int, kernel: int, padding: int = 0, gain: float = 2 ** 0.5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(c_out))
        self.scale, self.padding = gain / math.sqrt(c_in * kernel * kernel), padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.padding)


class EqualizedLinear(nn.Module):
    def __init__(self, n_in: int, n_out: int, gain: float = 2 ** 0.5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_out, n_in))
        self.bias = nn.Parameter(torch.zeros(n_out))
        self.scale = gain / math.sqrt(n_in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.scale, self.bias)


class PixelNorm(nn.Module):
    """Each pixel's feature vector scaled to unit mean square (keeps G's magnitudes from escalating)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)


class MinibatchStdDev(nn.Module):
    """One more channel: the standard deviation of each feature over a group of up to 4 images, averaged
    over features and pixels (the group's variety, which a critic of single images cannot see)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        group = next(g for g in (4, 3, 2, 1) if n % g == 0)
        y = x.float().reshape(group, -1, c, h, w)  # groups of images n/group apart, as in the paper
        std = (y.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=(1, 2, 3))
        return torch.cat([x, std.to(x.dtype).view(-1, 1, 1, 1).repeat(group, 1, h, w)], dim=1)


def _conv3(c_in: int, c_out: int, norm: bool = False) -> list[nn.Module]:
    """A 3x3 convolution (same size) and LeakyReLU, then pixel norm in the generator."""
    return [EqualizedConv2d(c_in, c_out, 3, padding=1), nn.LeakyReLU(SLOPE),
            *([PixelNorm()] if norm else [])]


def fade(low: torch.Tensor | None, high: torch.Tensor, alpha: torch.Tensor | None) -> torch.Tensor:
    """The new resolution's `high` blended over `low` by alpha (None: stable, `high` alone)."""
    return high if alpha is None else low + (high - low) * alpha


class Generator(nn.Module):
    """blocks[i] makes the 4 * 2**i features from the previous ones (block 0 from the noise); to_rgb holds
    the RGB outputs of the last two resolutions it runs (all of them in the whole network)."""

    def __init__(self, blocks: list[nn.Module], to_rgb: list[nn.Module]) -> None:
        super().__init__()
        self.blocks, self.to_rgb = nn.ModuleList(blocks), nn.ModuleList(to_rgb)

    def forward(self, z: torch.Tensor, alpha: torch.Tensor | None = None) -> torch.Tensor:
        x = prev = z.flatten(1)
        for block in self.blocks:
            prev, x = x, block(x)
        low = None if alpha is None else F.interpolate(self.to_rgb[-2](prev), scale_factor=2.0)
        return fade(low, self.to_rgb[-1](x), alpha)

    def phase(self, resolution: int, fading: bool) -> Generator:
        """The layers that make `resolution` (and, fading, the RGB output of the one below)."""
        n = _level(resolution) + 1
        return Generator(list(self.blocks[:n]), list(self.to_rgb[n - 2 if fading else n - 1:n]))


class Critic(nn.Module):
    """from_rgb[0] reads the resolution it runs at (from_rgb[1], fading, the one below); blocks[i] halves the
    features, down to the last block's 4x4 -> one score."""

    def __init__(self, from_rgb: list[nn.Module], blocks: list[nn.Module]) -> None:
        super().__init__()
        self.from_rgb, self.blocks = nn.ModuleList(from_rgb), nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor, alpha: torch.Tensor | None = None) -> torch.Tensor:
        h = self.blocks[0](self.from_rgb[0](x))
        if alpha is not None:
            h = fade(self.from_rgb[1](F.avg_pool2d(x, 2)), h, alpha)
        for block in self.blocks[1:]:
            h = block(h)
        return h

    def phase(self, resolution: int, fading: bool) -> Critic:
        first = len(self.blocks) - 1 - _level(resolution)
        inputs = self.from_rgb[first:first + 2 if fading else first + 1]
        return Critic(list(inputs), list(self.blocks[first:]))


def _level(resolution: int) -> int:
    """0 at 4x4, 1 at 8x8, ..."""
    return resolution.bit_length() - 3


def build_generator(s: ProGANSettings) -> Generator:
    c4 = s.channels(4)
    # The paper's first layer: a dense one onto 4x4 maps, its gain divided by 4 for their 16 pixels.
    blocks: list[nn.Module] = [nn.Sequential(
        PixelNorm(), EqualizedLinear(s.z_dim, c4 * 16, gain=2 ** 0.5 / 4), nn.Unflatten(1, (c4, 4, 4)),
        nn.LeakyReLU(SLOPE), PixelNorm(), *_conv3(c4, c4, norm=True))]
    for r in s.resolutions[1:]:
        c_in, c_out = s.channels(r // 2), s.channels(r)
        blocks.append(nn.Sequential(nn.Upsample(scale_factor=2.0), *_conv3(c_in, c_out, norm=True),
                                    *_conv3(c_out, c_out, norm=True)))
    to_rgb = [EqualizedConv2d(s.channels(r), 3, 1, gain=1.0) for r in s.resolutions]
    return Generator(blocks, to_rgb)


def build_critic(s: ProGANSettings) -> Critic:
    from_rgb = [nn.Sequential(EqualizedConv2d(3, s.channels(r), 1), nn.LeakyReLU(SLOPE))
                for r in reversed(s.resolutions)]
    blocks: list[nn.Module] = [nn.Sequential(*_conv3(s.channels(r), s.channels(r)),
                                             *_conv3(s.channels(r), s.channels(r // 2)), nn.AvgPool2d(2))
                               for r in reversed(s.resolutions[1:])]
    c4 = s.channels(4)
    # The last block: 4x4 features (and their minibatch std) -> a dense layer (a 4x4 convolution) -> a score.
    blocks.append(nn.Sequential(MinibatchStdDev(), *_conv3(c4 + 1, c4), EqualizedConv2d(c4, c4, 4),
                                nn.LeakyReLU(SLOPE), nn.Flatten(), EqualizedLinear(c4, 1, gain=1.0)))
    return Critic(from_rgb, blocks)


def make_generator(train: Any, s: ProGANSettings) -> nn.Module:
    """Noise (s.z_dim) -> a progan.max_size Monet (train.image_size plays no part)."""
    return build_generator(s)


def make_critic(train: Any, s: ProGANSettings) -> nn.Module:
    return build_critic(s)
