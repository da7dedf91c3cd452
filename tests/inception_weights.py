"""A stand-in for the FID weights file: a random FID Inception saved exactly like the real one.

The real file is the state dict of pytorch-fid's `fid_inception_v3()` network (torchvision's
Inception3 with 1008 classes and the FID blocks), so this one is too, and the pipeline loads it
through its normal code path. A raw random init sends every image to nearly the same feature, so
the batch-norm running statistics are first calibrated on varied images: features then differ.
"""
from __future__ import annotations

from pathlib import Path
from unittest import mock

import numpy as np
import pytorch_fid.inception
import torch
import torch.nn.functional as F
import torchvision


def random_images(n: int, size: int = 64, seed: int = 0) -> torch.Tensor:
    """n smooth random uint8 images, N x 3 x size x size (coarse noise upsampled: image-like blobs)."""
    rng = np.random.default_rng(seed)
    coarse = torch.from_numpy(rng.integers(0, 256, (n, 3, 4, 4)).astype(np.float32))
    return F.interpolate(coarse, size=(size, size), mode="bilinear",
                         align_corners=False).round().to(torch.uint8)


def make_inception_weights(path: Path, calibration_images: int = 8, seed: int = 0) -> Path:
    """Write a calibrated random FID-Inception state dict to `path` (about 2 s on a CPU); returns path."""
    torch.manual_seed(seed)
    # PyTorch's default layer init (init_weights=False skips torchvision's slower truncated normal).
    random_init = torchvision.models.inception_v3(weights=None, num_classes=1008, aux_logits=False,
                                                  init_weights=False).state_dict()
    # The same constructor pytorch-fid uses for the real weights, fed our state dict instead of its URL's.
    with mock.patch.object(pytorch_fid.inception, "load_state_dict_from_url", lambda *_a, **_k: random_init):
        net = pytorch_fid.inception.fid_inception_v3()
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the calibration batches
    net.train().to(memory_format=torch.channels_last)  # ~3x faster convolutions on a CPU
    with torch.no_grad():
        for batch in random_images(calibration_images, seed=seed + 1).split(8):
            x = F.interpolate(batch.float() / 255, size=(299, 299), mode="bilinear", align_corners=False)
            # what pytorch-fid feeds the blocks
            net((2 * x - 1).contiguous(memory_format=torch.channels_last))
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = 0.1
    net.to(memory_format=torch.contiguous_format)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), path)
    return path
