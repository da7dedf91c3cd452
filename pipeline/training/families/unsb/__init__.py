"""UNSB: photo -> Monet in a few stochastic steps of a learned Schrodinger bridge (Kim, Kwon, Ye, ICLR 2024;
cyclomon/UNSB), light: no torch here.

networks.py holds the time- and noise-conditioned generator (which runs the bridge when called on photos
alone), the time-conditioned PatchGAN and the energy network; step.py the training step and its loss terms;
settings.py the [unsb] section. PatchNCE and its heads are training/nce.py's, shared with CUT.
"""
from __future__ import annotations

from typing import Any

from ....config import TrainConfig
from ....engine.errors import UserError
from ...family import PHOTO, Family, register_family
from .settings import UNSBSettings


@register_family("unsb")
class UNSB(Family[UNSBSettings]):
    maps_from = PHOTO
    description = ("Kim et al. 2024: unpaired photo -> Monet in a few stochastic steps of a Schrodinger "
                   "bridge, each a pass of one time-conditioned generator, learned with CUT's adversarial "
                   "and PatchNCE terms plus an entropy-regularised transport cost (an energy network).")
    good_for = ("a newer method than CUT on CUT's losses (horse -> zebra FID 35.7 vs 45.5 in the paper): "
                "several passes per image, a dearer step")
    settings = UNSBSettings
    trainer = ".step:UNSBTrainer"

    def images_per_step(self, train: TrainConfig, settings: UNSBSettings) -> dict[str, int]:
        # two batches of photos: the second chain's, whose pairs are the energy network's negatives
        return {"monet": train.batch_size, "photo": 2 * train.batch_size}

    def architecture(self, train: TrainConfig, s: UNSBSettings) -> dict[str, Any]:
        return {"model": self.name, "ngf": s.ngf, "n_blocks": s.n_blocks, "ndf": s.ndf,
                "d_layers": s.d_layers, "steps": s.steps, "nce_layers": ",".join(s.layers),
                "mlp_width": s.mlp_width}

    def summary(self, s: UNSBSettings) -> str:
        return f"{self.name} ({s.steps} steps, ResNet-{s.n_blocks} generator, ngf {s.ngf})"

    def generate_steps(self, settings: UNSBSettings) -> int:
        return settings.steps

    def for_generate(self, generator: Any, steps: int, seed: int) -> Any:
        trained = generator.steps
        if steps > trained:
            raise UserError(f"generate.steps={steps}, but this run's bridge has unsb.steps={trained}: set "
                            f"generate.steps to 1..{trained} (0 = all {trained})")
        return generator.sample_with(steps, seed)
