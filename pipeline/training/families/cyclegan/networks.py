"""CycleGAN's networks (Zhu et al. 2017): a ResNet or U-Net generator per direction and a 70x70 PatchGAN per
domain, from the shared image-to-image networks (training/networks.py)."""
from __future__ import annotations

from torch import nn

from ....config import TrainConfig
from ...networks import PatchDiscriminator, ResnetGenerator, UnetGenerator, unet_depth
from ...weights import init_weights
from .settings import CycleGANSettings


def make_generator(train: TrainConfig, s: CycleGANSettings) -> nn.Module:
    """Photo -> Monet (the same class serves Monet -> photo), from a checkpoint's or the current settings."""
    if s.generator == "unet":
        return init_weights(UnetGenerator(s.ngf, unet_depth(train.image_size)), train.init)
    return init_weights(ResnetGenerator(s.ngf, s.n_blocks), train.init)


def make_discriminator(train: TrainConfig, s: CycleGANSettings) -> nn.Module:
    return init_weights(PatchDiscriminator(s.ndf, s.d_layers), train.init)
