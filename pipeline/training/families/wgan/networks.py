"""WGAN's networks: DCGAN's generator, and DCGAN's discriminator as a critic (a score, no sigmoid, no batch
norm), its weights clipped from the start (Arjovsky et al. 2017)."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ...networks import DCDiscriminator, DCGenerator
from ...weights import init_weights
from .settings import WGANSettings


def make_generator(train: Any, s: WGANSettings) -> nn.Module:
    """Noise (s.z_dim) -> a train.image_size Monet."""
    return init_weights(DCGenerator(s.z_dim, s.width, train.image_size), train.init)


def make_critic(train: Any, s: WGANSettings) -> nn.Module:
    """A train.image_size image -> one unbounded score; every weight already inside [-clip, clip]."""
    critic = init_weights(DCDiscriminator(s.width, train.image_size, batch_norm=False), train.init)
    return clip_weights(critic, s.clip)


@torch.no_grad()
def clip_weights(net: nn.Module, clip: float) -> nn.Module:
    """Clamp every parameter of `net` to [-clip, clip] in place: the critic's Lipschitz bound."""
    for p in net.parameters():
        p.clamp_(-clip, clip)
    return net
