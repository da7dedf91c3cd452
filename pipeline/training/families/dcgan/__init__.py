"""DCGAN: noise -> Monet, with the options of the DCGAN art experiments (light: no torch here).

networks.py holds the networks, step.py the training step, settings.py the [dcgan] section.
"""
from __future__ import annotations

from typing import Any

from ....config import TrainConfig
from ...family import NOISE, Family, register_family
from .settings import DCGANSettings


@register_family("dcgan")
class DCGAN(Family[DCGANSettings]):
    maps_from = NOISE
    description = ("Radford et al. 2016: a generator from noise to paintings, with bce, lsgan or wgan-gp "
                   "losses, spectral norm, dropout and instance noise.")
    good_for = "new paintings not tied to any photo; a baseline for noise-to-image families"
    settings = DCGANSettings
    trainer = ".step:DCGANTrainer"

    def images_per_step(self, train: TrainConfig, settings: DCGANSettings) -> dict[str, int]:
        return {"monet": train.batch_size * settings.n_critic}  # a fresh real batch for each critic step

    def architecture(self, train: TrainConfig, s: DCGANSettings) -> dict[str, Any]:
        return {"model": self.name, "z_dim": s.z_dim, "dcgan_width": s.width, "image_size": train.image_size,
                "spectral_norm": s.spectral_norm, "d_batch_norm": s.d_batch_norm}

    def summary(self, s: DCGANSettings) -> str:
        return f"{self.name} ({s.loss} loss, z {s.z_dim}, width {s.width})"
