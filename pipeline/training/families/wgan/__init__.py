"""WGAN: noise -> Monet with a weight-clipped Wasserstein critic (light: no torch here).

networks.py builds DCGAN's networks (imported from the dcgan family), step.py the training step with
RMSprop and clipping, settings.py the [wgan] section.
"""
from __future__ import annotations

from typing import Any

from ....config import TrainConfig
from ...family import NOISE, Family, register_family
from .settings import WGANSettings


@register_family("wgan")
class WGAN(Family[WGANSettings]):
    maps_from = NOISE
    description = ("Arjovsky et al. 2017: DCGAN's networks trained as a Wasserstein GAN, the critic's "
                   "weights clipped, RMSprop, n_critic critic steps per generator step.")
    good_for = ("the original Wasserstein GAN, for comparison; for new paintings prefer dcgan with "
                "dcgan.loss=wgan-gp")
    settings = WGANSettings
    trainer = ".step:WGANTrainer"

    def images_per_step(self, train: TrainConfig, settings: WGANSettings) -> dict[str, int]:
        return {"monet": train.batch_size * settings.n_critic}  # a fresh real batch for each critic step

    def architecture(self, train: TrainConfig, s: WGANSettings) -> dict[str, Any]:
        return {"model": self.name, "z_dim": s.z_dim, "width": s.width, "image_size": train.image_size}

    def summary(self, s: WGANSettings) -> str:
        return f"{self.name} (clip {s.clip:g}, n_critic {s.n_critic}, z {s.z_dim}, width {s.width})"
