"""CUT's networks (Park et al. 2020): the shared ResNet generator, whose forward can also return its encoder
features, the shared PatchGAN, and the projection heads of the PatchNCE loss, all three initialised as the
authors do by default (Xavier-normal, gain 0.02; train.init=normal for N(0, 0.02))."""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ....config import TrainConfig
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


class PatchHeads(nn.Module):
    """One projection head per NCE layer, Linear(C, width), ReLU, Linear(width, width), applied to the
    features at sampled positions and L2-normalised (the authors' PatchSampleF with its MLPs), made once
    with the widths the generator's architecture gives."""

    def __init__(self, widths: Sequence[int], width: int) -> None:
        super().__init__()
        self.mlps = nn.ModuleList(nn.Sequential(nn.Linear(c, width), nn.ReLU(), nn.Linear(width, width))
                                  for c in widths)

    def forward(self, feats: Sequence[torch.Tensor], positions: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Per layer: the N x C x H x W features at `positions` (flat indices into H x W, the same for every
        image) -> N x P x width unit vectors.

        In float32 whatever autocast says: from the authors' small initial weights the heads' outputs start
        near 1e-4, where fp16 keeps few bits and the gradient of normalising them overflows its range."""
        out = []
        with torch.autocast(feats[0].device.type, enabled=False):
            for mlp, feat, where in zip(self.mlps, feats, positions, strict=True):
                patches = feat.flatten(2)[:, :, where].transpose(1, 2).float()
                out.append(F.normalize(mlp(patches), dim=-1))
        return out


def make_generator(train: TrainConfig, s: CUTSettings) -> nn.Module:
    """Photo -> Monet, from a checkpoint's or the current settings."""
    return init_weights(CUTGenerator(s.ngf, s.n_blocks), train.init or AUTHORS_INIT)


def make_discriminator(train: TrainConfig, s: CUTSettings) -> nn.Module:
    return init_weights(PatchDiscriminator(s.ndf, s.d_layers), train.init or AUTHORS_INIT)


def make_heads(generator: ResnetGenerator, train: TrainConfig, s: CUTSettings) -> PatchHeads:
    """The heads for `generator`'s features at cut.nce_layers."""
    heads = PatchHeads(generator.feature_widths(s.layers), s.mlp_width)
    return init_weights(heads, train.init or AUTHORS_INIT)
