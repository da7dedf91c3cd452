"""CycleGAN: photo -> Monet with two generators and two PatchGAN discriminators (light: no torch here).

networks.py holds the networks, step.py the training step, settings.py the [cyclegan] section.
"""
from __future__ import annotations

from typing import Any

from ....config import TrainConfig
from ...family import PHOTO, Family, register_family
from .settings import CycleGANSettings


@register_family("cyclegan")
class CycleGAN(Family[CycleGANSettings]):
    maps_from = PHOTO
    description = ("Zhu et al. 2017: unpaired photo -> Monet translation with cycle and identity losses, "
                   "keeping each photo's layout.")
    good_for = "the competition's recipe: every photo becomes a painting of the same scene"
    settings = CycleGANSettings
    trainer = ".step:CycleGANTrainer"
    generator_key = "G_photo2monet"

    def images_per_step(self, train: TrainConfig, settings: CycleGANSettings) -> dict[str, int]:
        return {"monet": train.batch_size, "photo": train.batch_size}

    def architecture(self, train: TrainConfig, s: CycleGANSettings) -> dict[str, Any]:
        depth = {"image_size": train.image_size} if s.generator == "unet" else {"n_blocks": s.n_blocks}
        return {"model": self.name, "generator": s.generator, "ngf": s.ngf, **depth, "ndf": s.ndf,
                "d_layers": s.d_layers}

    def summary(self, s: CycleGANSettings) -> str:
        return f"{self.name} ({s.generator} generator, ngf {s.ngf})"
