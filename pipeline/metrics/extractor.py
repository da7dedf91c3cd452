"""The Inception feature extractor as the settings ask for it: [score] batch_size and half, [hardware]
workers and progress_every_s. Every caller (training's MiFID selection, generate's memorisation guard, the
score stage, the notebook's clock) builds it here, so that features.py itself knows no settings."""
from __future__ import annotations

from pathlib import Path

import torch

from ..config import Config
from .features import InceptionFeatures


def inception_features(cfg: Config, weights: Path, device: torch.device | str,
                       progress: bool = True) -> InceptionFeatures:
    """The extractor of `weights` on `device`; progress=False: no progress lines (a check within a stage)."""
    return InceptionFeatures(weights, device, batch_size=cfg.score.batch_size, half=cfg.score.half,
                             workers=cfg.hardware.workers, progress=progress,
                             progress_every_s=cfg.hardware.progress_every_s)
