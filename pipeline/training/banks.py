"""Training images held on the device as uint8, decoded once; crops, flips and scaling happen there too.

1,500 paintings + 7,038 photos at 256 px are 1.7 GB as uint8: nothing on a GPU, and on a CPU it
saves decoding every image every epoch. A training step then costs one gather on the device and no
host work at all, so there is no DataLoader to wait for.

Batches are drawn like torch's DistributedSampler: each epoch is a seeded permutation (the same on every
rank), and rank r of W takes the r-th of W disjoint slices of it at each step. The order is a pure
function of (seed, epoch, step), so a resumed run sees exactly the batches the uninterrupted one would.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from ..engine.errors import UserError
from ..engine.progress import track
from ..images import read_rgb


class ImageBank:
    """N same-sized RGB images as an (N, H, W, 3) uint8 tensor; batches come out as float NCHW in [-1, 1]."""

    def __init__(self, images: torch.Tensor, crop: int, channels_last: bool) -> None:
        self.images = images
        self.crop = crop
        self.channels_last = channels_last
        size = images.shape[1]
        if crop > size:
            raise UserError(f"setting train.image_size={crop} is larger than the training images "
                            f"({size} px); use train.image_size <= {size}")

    def __len__(self) -> int:
        return self.images.shape[0]

    def take(self, index: torch.Tensor) -> torch.Tensor:
        """The images at `index`, each randomly cropped to train.image_size and randomly flipped
        left-right."""
        b, size, dev = index.shape[0], self.images.shape[1], self.images.device
        if self.crop < size:
            span = torch.arange(self.crop, device=dev)
            top = torch.randint(0, size - self.crop + 1, (b, 1), device=dev) + span  # (b, crop) rows
            left = torch.randint(0, size - self.crop + 1, (b, 1), device=dev) + span
            batch = self.images[index.view(b, 1, 1), top.view(b, -1, 1), left.view(b, 1, -1)]
        else:
            batch = self.images[index]
        flip = torch.rand(b, 1, 1, 1, device=dev) < 0.5
        return self._to_float(torch.where(flip, batch.flip(2), batch))

    def full(self, index: torch.Tensor) -> torch.Tensor:
        """Whole images, neither cropped nor flipped (the fixed photos of the sample grids)."""
        return self._to_float(self.images[index])

    def _to_float(self, nhwc: torch.Tensor) -> torch.Tensor:
        # NHWC storage permuted to NCHW *is* the channels_last layout: no copy needed when that is wanted.
        x = nhwc.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
        return x if self.channels_last else x.contiguous()


class Shards:
    """Per-step indices into a bank: this rank's slice of a seeded permutation of the bank per pass.

    The bank an epoch passes over (train.epoch_over) is drawn epoch-aligned: pass e is epoch e, its tail that
    fills no whole step is left out. Every other bank is drawn as one stream: when a pass is used up the next
    begins, in a new order (the paintings recycled under epoch_over=photos, the photos under paintings).
    """

    def __init__(self, n: int, per_rank: int, rank: int, world_size: int, seed: int,
                 device: torch.device) -> None:
        self.n, self.per_rank, self.rank, self.world_size = n, per_rank, rank, world_size
        self.seed, self.device = seed, device
        self._perms: dict[int, torch.Tensor] = {}

    def indices(self, epoch: int, step_in_epoch: int) -> torch.Tensor:
        """This rank's images at a step of an epoch of this bank."""
        return self._take(epoch * self.n + (step_in_epoch * self.world_size + self.rank) * self.per_rank)

    def stream(self, step: int) -> torch.Tensor:
        """This rank's images at a step of the run, passes following each other."""
        return self._take((step * self.world_size + self.rank) * self.per_rank)

    def _take(self, start: int) -> torch.Tensor:
        """Stream positions start .. start + per_rank: slices of each pass's permutation (kept on the device,
        so a step never waits for a copy)."""
        end, n = start + self.per_rank, self.n
        return torch.cat([self._perm(p)[max(start, p * n) - p * n:min(end, (p + 1) * n) - p * n]
                          for p in range(start // n, (end - 1) // n + 1)])

    def _perm(self, pass_: int) -> torch.Tensor:
        if pass_ not in self._perms:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + pass_)
            self._perms = {p: v for p, v in self._perms.items() if p >= pass_ - 1}
            self._perms[pass_] = torch.randperm(self.n, generator=gen).to(self.device)
        return self._perms[pass_]


def load_bank(files: list[Path], device: torch.device, crop: int, channels_last: bool, what: str,
              workers: int = 0, show: bool = True, progress_every_s: float = 60.0) -> ImageBank:
    """Decode `files` (all the same size) in parallel threads into one uint8 tensor on `device`.

    `show` the progress: a bar on a terminal, else a line every `progress_every_s` seconds.
    """
    first = read_rgb(files[0])
    images = np.empty((len(files), *first.shape), dtype=np.uint8)

    def put(i: int) -> None:
        img = read_rgb(files[i])
        if img.shape != first.shape:
            raise UserError(f"{files[i]}: {img.shape[1]}x{img.shape[0]} but {files[0].name} is "
                            f"{first.shape[1]}x{first.shape[0]}; training images must all be the same size")
        images[i] = img

    # PIL decodes without the GIL
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        list(track(pool.map(put, range(len(files))), len(files), f"loading {what}", "img",
                   every_s=progress_every_s, disable=not show))
    return ImageBank(torch.from_numpy(images).to(device), crop, channels_last)
