"""pix2pix: paired photo -> Monet translation, the pairs made from the paintings themselves (light: no torch).

networks.py holds the networks (CycleGAN's U-Net and PatchGAN, the latter on input and output together),
pairing.py how a painting gets its photo-like input, step.py the training step, settings.py [pix2pix].
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ....config import TrainConfig
from ....engine.errors import UserError
from ...family import PHOTO, Family, register_family
from .settings import Pix2PixSettings


@register_family("pix2pix")
class Pix2Pix(Family[Pix2PixSettings]):
    maps_from = PHOTO
    description = ("Isola et al. 2017: a U-Net trained on (photo-like version, painting) pairs made from the "
                   "Monets themselves, with L1 + a conditional PatchGAN.")
    good_for = ("a fast, stable photo -> Monet baseline: one generator, supervised by L1, no cycle to "
                "balance")
    settings = Pix2PixSettings
    trainer = ".step:Pix2PixTrainer"

    def images_per_step(self, train: TrainConfig, settings: Pix2PixSettings) -> dict[str, int]:
        return {"monet": train.batch_size}  # the inputs are made from the paintings: no photo bank

    def architecture(self, train: TrainConfig, s: Pix2PixSettings) -> dict[str, Any]:
        return {"model": self.name, "ngf": s.ngf, "image_size": train.image_size, "ndf": s.ndf,
                "d_layers": s.d_layers}

    def extra_inputs(self, cfg: Any) -> list[Path]:
        """pairing = teacher: the teacher run's last.pt (part of the train stage's key); it must exist."""
        s = cfg.model_settings
        if s.pairing != "teacher":
            return []
        path = teacher_checkpoint(cfg.data_dir, s.teacher_run)
        if not path.is_file():
            raise UserError(f"setting pix2pix.teacher_run={s.teacher_run!r}: no trained run at {path}; train "
                            f"one first (--set train.model=cyclegan --set train.run={s.teacher_run}) or use "
                            "pix2pix.pairing=smooth")
        return [path]

    def summary(self, s: Pix2PixSettings) -> str:
        return f"{self.name} ({s.pairing} pairing, ngf {s.ngf})"


def teacher_checkpoint(data_dir: Path, run: str) -> Path:
    return Path(data_dir) / "runs" / run / "last.pt"
