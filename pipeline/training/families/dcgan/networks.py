"""DCGAN's networks (Radford et al. 2016): the shared noise-to-image generator and discriminator
(training/networks.py) at train.image_size, with the [dcgan] section's discriminator options."""
from __future__ import annotations

from torch import nn

from ....config import TrainConfig
from ...networks import DCDiscriminator, DCGenerator
from ...weights import init_weights
from .settings import DCGANSettings


def make_generator(train: TrainConfig, s: DCGANSettings) -> nn.Module:
    """Noise (s.z_dim) -> a train.image_size Monet."""
    return init_weights(DCGenerator(s.z_dim, s.width, train.image_size), train.init)


def make_discriminator(train: TrainConfig, s: DCGANSettings) -> nn.Module:
    return init_weights(DCDiscriminator(s.width, train.image_size, s.spectral_norm, s.d_dropout,
                                        batch_norm=s.d_batch_norm), train.init)
