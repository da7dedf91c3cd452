"""GAN: noise -> Monet with the original fully connected networks (light: no torch here).

networks.py holds the two MLPs, step.py the training step, settings.py the [gan] section.
"""
from __future__ import annotations

from typing import Any

from ....config import TrainConfig
from ...family import NOISE, Family, register_family, require
from .settings import GANSettings


@register_family("gan")
class GAN(Family[GANSettings]):
    maps_from = NOISE
    description = ("Goodfellow et al. 2014: the original GAN, a fully connected generator and discriminator "
                   "on small flattened images (gan.image_size), binary cross-entropy.")
    good_for = "a baseline: expect blurry blobs in the paintings' palette, not brush strokes"
    settings = GANSettings
    trainer = ".step:GANTrainer"

    def images_per_step(self, train: TrainConfig, settings: GANSettings) -> dict[str, int]:
        return {"monet": train.batch_size}

    def data_size(self, train: TrainConfig, settings: GANSettings) -> int:
        return settings.image_size  # not train.image_size: MLPs stay small only on small images

    def check(self, train: TrainConfig, s: GANSettings) -> None:
        require(not train.init, "train.init",
                "does not apply to gan: its networks keep PyTorch's own initialisation; leave it empty")

    def architecture(self, train: TrainConfig, s: GANSettings) -> dict[str, Any]:
        return {"model": self.name, "z_dim": s.z_dim, "hidden": s.hidden, "image_size": s.image_size}

    def summary(self, s: GANSettings) -> str:
        return f"{self.name} (MLP, z {s.z_dim}, hidden {s.hidden}, {s.image_size} px)"
