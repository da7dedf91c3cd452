"""Keeping the best checkpoint by MiFID while training (train.select_by_mifid): longer is not always better.

Every N steps the sampling generator translates a fixed, seeded subset of the photos (train.select_photos)
and the result is scored against the training Monets; the generator with the lowest MiFID so far is kept
as best.pt, which generate then uses. Scoring never moves the training's random state, so a resumed run
still repeats the uninterrupted one.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ..config import Config
from ..engine.errors import StageSkipped
from ..images import decode_rgb
from ..metrics.extractor import inception_features
from ..metrics.features import find_weights, open_images
from ..metrics.mifid import real_features, score_features, to_uint8
from . import checkpoint
from .rng import rng_state, set_rng_state
from .trainer import Trainer

Translate = Callable[[torch.Tensor], torch.Tensor]  # float NCHW photos in [-1, 1] -> Monets, same range
Selector = Callable[[Translate], float]  # a translation -> its MiFID on the fixed photo subset


def make_selector(cfg: Config, device: torch.device | str) -> Selector:
    """A scorer for the training loop: translate the fixed photo subset, return its MiFID against the Monets.

    The returned function runs `translate` under inference mode, so put the generator in eval mode first if it
    needs it. Raises StageSkipped here when the FID weights cannot be found.
    """
    weights = find_weights(cfg.score.weights)
    extractor = inception_features(cfg, weights, device, progress=False)
    real = real_features(cfg.raw_dir / "monet_jpg", extractor, cfg.cache_dir)
    with open_images(cfg.raw_dir / "photo_jpg") as photo_set:
        subset = photo_set.sample(cfg.train.select_photos, cfg.score.seed)
        photos = torch.from_numpy(np.stack([decode_rgb(subset.read(n), n) for n in subset.names]))
    photos = photos.permute(0, 3, 1, 2)  # N x 3 x H x W uint8, kept on the host
    batch = cfg.generate.batch_size

    @torch.inference_mode()
    def select(translate: Translate) -> float:
        feats = []
        for start in range(0, len(photos), batch):
            x = photos[start:start + batch].to(device).float().div_(127.5).sub_(1.0)
            feats.append(extractor(to_uint8(translate(x))))
        return score_features(np.concatenate(feats), real, cfg.score.epsilon).mifid

    return select


def selector_or_none(cfg: Config, device: torch.device) -> Selector | None:
    """The scorer, or None (said in one line) where it cannot run: training goes on without best.pt."""
    try:
        return make_selector(cfg, device)
    except StageSkipped as exc:
        print(f"train: train.select_by_mifid is off for this run: {exc}")
        return None


def keep_best(out: Path, trainer: Trainer, step: int, best: float, selector: Selector) -> tuple[float, str]:
    """Score the current generator; keep it as best.pt when its MiFID is the lowest so far. Returns the best
    MiFID now and the line that says so."""
    saved = rng_state(trainer.rt.device)  # scoring must not move the training RNG: resuming stays exact
    with trainer.inference() as translate:
        score = float(selector(translate))
    set_rng_state(saved, trainer.rt.device)
    if score >= best:
        return best, f"step {step:,}: MiFID {score:.2f} (best {best:.2f})"
    checkpoint.save(out / "best.pt", {**checkpoint.header(trainer.train, trainer.settings, step),
                                      **trainer.generator_states(), "mifid": score})
    return score, f"step {step:,}: MiFID {score:.2f} (best {score:.2f}, saved best.pt)"
