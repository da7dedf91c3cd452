"""CUT and FastCUT: photo -> Monet with one generator and one PatchGAN, content kept by a contrastive loss on
patches instead of a cycle (light: no torch here).

networks.py holds the networks (the projection heads and the PatchNCE loss are training/nce.py's, shared
with UNSB), step.py the training step, settings.py the [cut] section (and what cut.mode sets).
"""
from __future__ import annotations

from typing import Any

from ....config import TrainConfig
from ...family import PHOTO, Family, register_family
from .settings import CUTSettings


@register_family("cut")
class CUT(Family[CUTSettings]):
    maps_from = PHOTO
    description = ("Park et al. 2020: unpaired photo -> Monet with one generator and one PatchGAN; a "
                   "contrastive loss on patches (PatchNCE) keeps each photo's content instead of a cycle.")
    good_for = ("the strongest published method here: one generator, PatchNCE instead of a cycle, about two "
                "thirds of a CycleGAN step's work")
    settings = CUTSettings
    trainer = ".step:CUTTrainer"

    def images_per_step(self, train: TrainConfig, settings: CUTSettings) -> dict[str, int]:
        return {"monet": train.batch_size, "photo": train.batch_size}

    def architecture(self, train: TrainConfig, s: CUTSettings) -> dict[str, Any]:
        return {"model": self.name, "ngf": s.ngf, "n_blocks": s.n_blocks, "ndf": s.ndf,
                "d_layers": s.d_layers, "nce_layers": ",".join(map(str, s.layers)), "mlp_width": s.mlp_width}

    def summary(self, s: CUTSettings) -> str:
        return f"{self.name} ({s.mode}, ResNet-{s.n_blocks} generator, ngf {s.ngf})"
