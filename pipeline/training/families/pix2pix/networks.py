"""pix2pix networks (Isola et al. 2017): the shared U-Net generator, and a PatchGAN seeing the input and
the output together (6 channels), so the discriminator judges the pair, not the painting alone."""
from __future__ import annotations

from typing import Any

from torch import nn

from ...networks import PatchDiscriminator, UnetGenerator, unet_depth
from ...weights import init_weights
from .settings import Pix2PixSettings


def make_generator(train: Any, s: Pix2PixSettings) -> nn.Module:
    """Photo -> Monet: a U-Net whose depth takes a training crop down to 1x1 (any size works later)."""
    return init_weights(UnetGenerator(s.ngf, unet_depth(train.image_size)), train.init)


def make_discriminator(train: Any, s: Pix2PixSettings) -> nn.Module:
    """A conditional PatchGAN: input and (real or generated) painting concatenated on channels."""
    return init_weights(PatchDiscriminator(s.ndf, s.d_layers, in_channels=6), train.init)
