"""CUT's networks (Park et al. 2020): the shared ResNet generator, whose forward can also return its encoder
features, the shared PatchGAN, and the projection heads of the PatchNCE loss, all three initialised as the
authors do by default (Xavier-normal, gain 0.02; train.init=normal for N(0, 0.02)); the heads are
training/nce.py's, shared with UNSB."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ....config import TrainConfig
from ...nce import PatchHeads
from ...networks import PatchDiscriminator, ResnetGenerator
from ...weights import init_weights
from .settings import CUTSettings


class CUTGenerator(ResnetGenerator):
    """CycleGAN's ResNet generator (the same weights and state-dict keys) whose forward also answers
    `layers`: DDP synchronises the gradients of what runs through forward, so the feature passes of the
    PatchNCE loss go through it as the translation does."""

    def forward(self, x: torch.Tensor, layers: Sequence[int] = ()) -> torch.Tensor | list[torch.Tensor]:
        return self.features(x, layers) if layers else super().forward(x)


AUTHORS_INIT = "xavier"  # train.init when not given: the authors' init_type default


def make_generator(train: TrainConfig, s: CUTSettings) -> nn.Module:
    """Photo -> Monet, from a checkpoint's or the current settings."""
    return init_weights(CUTGenerator(s.ngf, s.n_blocks), train.init or AUTHORS_INIT)


def make_discriminator(train: TrainConfig, s: CUTSettings) -> nn.Module:
    return init_weights(PatchDiscriminator(s.ndf, s.d_layers), train.init or AUTHORS_INIT)


def make_heads(generator: ResnetGenerator, train: TrainConfig, s: CUTSettings) -> PatchHeads:
    """The heads for `generator`'s features at cut.nce_layers."""
    heads = PatchHeads(generator.feature_widths(s.layers), s.mlp_width)
    return init_weights(heads, train.init or AUTHORS_INIT)
