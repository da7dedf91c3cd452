"""PatchNCE (Park et al. 2020), shared by the families that keep a photo's content with it (CUT, UNSB): each
patch of a translation should be recognised as the patch of the input at the same position among the input's
other patches, so the translation keeps the photo's content where it is without a second generator to cycle
back through.

A query (a feature of the translation at one position) and its key (the input's feature at that position)
are the positive pair; the keys at the image's other sampled positions are the negatives. Only patches of the
same image serve as negatives: the authors found that best for CUT and FastCUT (models/patchnce.py).
`PatchHeads` are the projection heads the features pass through first (the authors' PatchSampleF).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def sample_positions(feats: Sequence[torch.Tensor], num_patches: int) -> list[torch.Tensor]:
    """Per layer, `num_patches` distinct positions (flat indices into H x W; all of them when there are
    fewer), shared by every image of the batch and by queries and keys alike."""
    out = []
    for feat in feats:
        h, w = feat.shape[-2:]
        out.append(torch.randperm(h * w, device=feat.device)[:num_patches])
    return out


def patch_nce(queries: torch.Tensor, keys: torch.Tensor, temperature: float) -> torch.Tensor:
    """The InfoNCE loss of every patch: N x P (images x patches) from unit vectors of N x P x C.

    Logits of a patch: [its query . its key, its query . the keys of its image's other patches] /
    temperature; the loss is the cross-entropy with the positive (index 0) as the target. Keys get no
    gradient (the authors detach them). Computed in float32, whatever autocast says.
    """
    p = queries.shape[1]
    with torch.autocast(queries.device.type, enabled=False):
        q, k = queries.float(), keys.detach().float()
        positive = (q * k).sum(-1, keepdim=True)
        others = (q @ k.transpose(1, 2)).masked_fill(torch.eye(p, dtype=torch.bool, device=q.device),
                                                     float("-inf"))
        logits = torch.cat([positive, others], dim=-1) / temperature
        return -F.log_softmax(logits, dim=-1)[..., 0]


def nce_per_image(queries: Sequence[torch.Tensor], keys: Sequence[torch.Tensor],
                  temperature: float) -> torch.Tensor:
    """Each image's PatchNCE loss: the mean over its patches, then over the layers (N)."""
    return torch.stack([patch_nce(q, k, temperature).mean(1) for q, k in zip(queries, keys, strict=True)]
                       ).mean(0)


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
