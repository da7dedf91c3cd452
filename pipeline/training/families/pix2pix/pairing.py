"""How a painting gets its photo-like input (torch, on the device, deterministic).

- smooth: a few passes of a bilateral filter (Tomasi & Manduchi 1998) flatten brush strokes while keeping
  the edges between surfaces, then a mild saturation and contrast boost moves the colours toward photo
  statistics (photos are crisper and more saturated than Monet's pastel palette). The generator learns to
  put the texture and palette back: what it later adds to a real photo.
- teacher: a trained CycleGAN's Monet -> photo generator (G_monet2photo of a cyclegan run), frozen.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ....engine.errors import UserError
from ... import checkpoint
from ...family import get_family
from .settings import Pix2PixSettings

TEACHER_KEY = "G_monet2photo"  # CycleGANTrainer.generators[1]


def bilateral(x: torch.Tensor, radius: int, sigma_color: float,
              sigma_space: float | None = None) -> torch.Tensor:
    """One bilateral filter pass over NCHW images in [-1, 1]: each pixel becomes the mean of its
    (2 radius + 1)^2 window weighted by distance and by colour similarity (edges survive)."""
    n, c, h, w = x.shape
    k = 2 * radius + 1
    sigma_space = sigma_space or radius / 1.5 + 0.5
    mode = "reflect" if radius < min(h, w) else "replicate"
    patches = F.unfold(F.pad(x, (radius,) * 4, mode=mode), k).view(n, c, k * k, h, w)
    offsets = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    d2 = (offsets.view(-1, 1) ** 2 + offsets.view(1, -1) ** 2).flatten()
    spatial = torch.exp(-d2 / (2 * sigma_space**2)).view(1, 1, k * k, 1, 1)
    colour = ((patches - x.unsqueeze(2)) ** 2).sum(1, keepdim=True)
    weights = spatial * torch.exp(-colour / (2 * sigma_color**2))
    return (patches * weights).sum(2) / weights.sum(2)


def photo_colours(x: torch.Tensor, saturation: float, contrast: float) -> torch.Tensor:
    """Saturation around each pixel's grey, contrast around each image's mean, clamped to [-1, 1]."""
    grey = x.mean(1, keepdim=True)
    x = grey + saturation * (x - grey)
    mean = x.mean((1, 2, 3), keepdim=True)
    return (mean + contrast * (x - mean)).clamp(-1, 1)


def smooth(monet: torch.Tensor, s: Pix2PixSettings) -> torch.Tensor:
    """The smooth pairing of a batch of paintings (float32, no gradient)."""
    x = monet.float()
    for _ in range(s.smooth_iterations):
        x = bilateral(x, s.smooth_radius, s.smooth_sigma_color)
    return photo_colours(x, s.saturation, s.contrast)


def load_teacher(path: Path, run: str, device: torch.device) -> nn.Module:
    """G_monet2photo of a cyclegan run's checkpoint, in eval mode and frozen; a one-line UserError else."""
    if not path.is_file():
        raise UserError(f"setting pix2pix.teacher_run={run!r}: no trained run at {path}; train one first "
                        f"(--set train.model=cyclegan --set train.run={run}) or use pix2pix.pairing=smooth")
    try:
        payload = checkpoint.read(path)
    except ValueError as exc:
        raise UserError(f"setting pix2pix.teacher_run={run!r}: {path} is unreadable ({exc})") from None
    train, settings = checkpoint.train_settings(payload)
    if TEACHER_KEY not in payload["models"]:
        raise UserError(f"setting pix2pix.teacher_run={run!r}: {path} holds a {train.model}, not a cyclegan "
                        f"(no {TEACHER_KEY})")
    with torch.random.fork_rng(devices=[]):  # building initialises weights: leave the training RNG alone
        teacher = get_family(train.model).build_generator(train, settings)
    teacher.load_state_dict(payload["models"][TEACHER_KEY])
    return teacher.to(device).eval().requires_grad_(False)


def make_pairing(s: Pix2PixSettings, inputs: list[Path], device: torch.device
                 ) -> Callable[[torch.Tensor], torch.Tensor]:
    """Paintings -> their photo-like inputs, as `s.pairing` says (`inputs`: Family.extra_inputs)."""
    if s.pairing == "smooth":
        return lambda monet: smooth(monet, s)
    if not inputs:
        raise UserError(f"setting pix2pix.teacher_run={s.teacher_run!r}: the loop gave no teacher checkpoint")
    teacher = load_teacher(inputs[0], s.teacher_run, device)

    def by_teacher(monet: torch.Tensor) -> torch.Tensor:
        return teacher(monet.float()).float()

    return by_teacher
