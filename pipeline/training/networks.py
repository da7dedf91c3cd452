"""Networks more than one family builds on, so that families never import each other.

Image to image (CycleGAN, Zhu et al. 2017; pix2pix, Isola et al. 2017): the ResNet and U-Net generators and
the PatchGAN discriminator. Every generator maps a [-1, 1] image to a [-1, 1] image of the same size and is
fully convolutional, so a model trained on 64 px crops can translate whole 256 px photos. Instance norm
throughout, as in the papers: it normalises each image on its own, so batching several images is exact.
The ResNet generator also hands out its encoder's intermediate outputs (`features`), which CUT's contrastive
loss compares (Park et al. 2020); its weights and forward are CycleGAN's, so its checkpoints load either way.

Noise to image (DCGAN, Radford et al. 2016), at any power-of-two size: channels halve at each doubling of
resolution, capped at 8 x width, so a 256 px model stays small enough to train from 300 paintings. The
discriminator options are the ones the DCGAN art experiments rely on: spectral norm (Miyato et al. 2018)
and dropout; batch norm is left out of the critic for WGAN-GP (the gradient penalty is per sample) and when
spectral norm already bounds it.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm


# -- image to image -----------------------------------------------------------------------------------------
def _conv_block(c_in: int, c_out: int, kernel: int, stride: int = 1, padding: int = 0) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, kernel, stride, padding), nn.InstanceNorm2d(c_out), nn.ReLU(True)]


class ResnetBlock(nn.Module):
    """Two reflection-padded 3x3 convolutions with a skip connection."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), *_conv_block(channels, channels, 3),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), nn.InstanceNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """c7s1-ngf, d(2ngf), d(4ngf), n_blocks x R(4ngf), u(2ngf), u(ngf), c7s1-3 + tanh (the paper's
    notation)."""

    def __init__(self, ngf: int = 64, n_blocks: int = 9) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), *_conv_block(3, ngf, 7)]
        for i in range(2):  # downsample
            layers += _conv_block(ngf * 2**i, ngf * 2 ** (i + 1), 3, stride=2, padding=1)
        layers += [ResnetBlock(ngf * 4) for _ in range(n_blocks)]
        for i in range(2, 0, -1):  # upsample
            layers += [nn.ConvTranspose2d(ngf * 2**i, ngf * 2 ** (i - 1), 3, 2, padding=1, output_padding=1),
                       nn.InstanceNorm2d(ngf * 2 ** (i - 1)), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, 3, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def features(self, x: torch.Tensor, layers: Sequence[int]) -> list[torch.Tensor]:
        """The outputs of model[i] for each i in `layers`, in ascending order, computed only as far as the
        last of them: what CUT's contrastive loss compares between a photo and its translation (0 = the
        padded input, 4 and 7 = the two stride-2 convolutions, 9 + k = residual block k). Every output but
        the last is copied, so that a later in-place ReLU cannot overwrite it."""
        wanted, last = set(layers), max(layers)
        feats = []
        for i, layer in enumerate(self.model[: last + 1]):
            x = layer(x)
            if i in wanted:
                feats.append(x if i == last else x.clone())
        return feats

    def feature_widths(self, layers: Sequence[int]) -> list[int]:
        """The channels of `features(x, layers)`, from the architecture alone (no forward pass)."""
        widths, channels = [], 3
        for i, layer in enumerate(self.model[: max(layers) + 1]):
            channels = getattr(layer, "out_channels", channels)  # convolutions change it, the rest keep it
            if i in layers:
                widths.append(channels)
        return widths


class UnetGenerator(nn.Module):
    """Encoder-decoder with skips between mirrored levels (pix2pix; Kaggle's Monet CycleGAN tutorial).

    `depth` stride-2 levels take the image down to 1x1 (8 levels at 256 px); channels double from ngf up
    to 8*ngf. The 1x1 bottleneck has no norm because instance norm of a single pixel is undefined.
    """

    def __init__(self, ngf: int = 64, depth: int = 8) -> None:
        super().__init__()
        widths = [ngf * min(2**i, 8) for i in range(depth)]
        self.down = nn.ModuleList()
        c_in = 3
        for i, c in enumerate(widths):
            norm = 0 < i < depth - 1
            self.down.append(nn.Sequential(
                nn.Conv2d(c_in, c, 4, 2, 1), *([nn.InstanceNorm2d(c)] if norm else []), nn.LeakyReLU(0.2,
                                                                                                     True)))
            c_in = c
        self.up = nn.ModuleList()
        for i in range(depth - 1, 0, -1):  # the deepest level has no skip partner yet
            c_skip = 0 if i == depth - 1 else widths[i]
            self.up.append(nn.Sequential(
                nn.ConvTranspose2d(widths[i] + c_skip, widths[i - 1], 4, 2, 1),
                nn.InstanceNorm2d(widths[i - 1]),
                nn.ReLU(True)))
        self.last = nn.Sequential(nn.ConvTranspose2d(widths[0] * 2, 3, 4, 2, 1), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Any size works: pad up to a multiple of 2**depth (edge pixels repeated), crop the result back.
        h, w = x.shape[-2:]
        m = 2 ** len(self.down)
        x = F.pad(x, (0, -w % m, 0, -h % m), mode="replicate") if (h % m or w % m) else x
        skips = []
        for layer in self.down:
            x = layer(x)
            skips.append(x)
        skips.pop()  # the bottleneck itself
        for layer in self.up:
            x = layer(x)
            x = torch.cat([x, skips.pop()], dim=1)
        return self.last(x)[..., :h, :w]


def unet_depth(image_size: int) -> int:
    """Levels that take a training crop down to 1x1: 8 at 256 px, 5 at 32 px."""
    return max(2, int(math.log2(image_size)))


class PatchDiscriminator(nn.Module):
    """PatchGAN: a grid of real/fake logits, each seeing a 70x70 patch when d_layers = 3."""

    def __init__(self, ndf: int = 64, d_layers: int = 3, in_channels: int = 3) -> None:
        super().__init__()  # in_channels: 6 for pix2pix's conditional D (input and output together)
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        c_in = ndf
        for n in range(1, d_layers + 1):
            c_out = ndf * min(2**n, 8)
            stride = 2 if n < d_layers else 1
            layers += [nn.Conv2d(c_in, c_out, 4, stride, 1), nn.InstanceNorm2d(c_out), nn.LeakyReLU(0.2,
                                                                                                    True)]
            c_in = c_out
        layers.append(nn.Conv2d(c_in, 1, 4, 1, 1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


# -- noise to image -----------------------------------------------------------------------------------------
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
