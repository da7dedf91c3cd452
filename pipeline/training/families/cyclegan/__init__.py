"""CycleGAN: photo -> Monet with two generators and two PatchGAN discriminators (light: no torch here).

networks.py holds the networks, step.py the training step, settings.py the [cyclegan] section.
"""
from __future__ import annotations

from typing import Any

from ..base import PHOTO, Family, register_family
from .settings import CycleGANSettings


@register_family("cyclegan")
class CycleGAN(Family):
    maps_from = PHOTO
    description = ("Zhu et al. 2017: unpaired photo -> Monet translation with cycle and identity losses, "
                   "keeping each photo's layout.")
    good_for = "the competition's recipe: every photo becomes a painting of the same scene"
    settings = CycleGANSettings
    generator = ".networks:make_generator"
    trainer = ".step:CycleGANTrainer"
    generator_key = "G_photo2monet"
    legacy_keys = {k: k for k in ("generator", "ngf", "n_blocks", "ndf", "d_layers", "lambda_cycle",
                                  "lambda_identity", "pool_size")}

    def images_per_step(self, train: Any, settings: CycleGANSettings) -> dict[str, int]:
        return {"monet": train.batch_size, "photo": train.batch_size}

    def architecture(self, train: Any, s: CycleGANSettings) -> dict[str, Any]:
        depth = {"image_size": train.image_size} if s.generator == "unet" else {"n_blocks": s.n_blocks}
        return {"model": self.name, "generator": s.generator, "ngf": s.ngf, **depth, "ndf": s.ndf,
                "d_layers": s.d_layers}

    def summary(self, s: CycleGANSettings) -> str:
        return f"{self.name} ({s.generator} generator, ngf {s.ngf})"
