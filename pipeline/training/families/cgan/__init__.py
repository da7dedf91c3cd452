"""Conditional GAN (Mirza & Osindero 2014): noise + domain label -> image, trained on photos (label 0) and
Monets (label 1) together, so the 7,038 photos teach image structure while the label carries the style
(light: no torch here).

The label enters both networks: the generator concatenates a learned label embedding to the noise, the
discriminator is a projection discriminator (Miyato & Koyama 2018: an unconditional logit plus the inner
product of a label embedding with its pooled features, spectral norm throughout). generate samples with
the Monet label: the generator it rebuilds (`networks.make_generator`) takes noise only.

networks.py holds the networks, step.py the training step, settings.py the [cgan] section.
"""
from __future__ import annotations

from typing import Any

from ....config import TrainConfig
from ...family import NOISE, Family, register_family, require
from .settings import CGANSettings


@register_family("cgan")
class CGAN(Family[CGANSettings]):
    """Concatenated label embedding in the generator, projection discriminator (Miyato & Koyama 2018)."""

    maps_from = NOISE
    description = ("Mirza & Osindero 2014: a generator from noise and a domain label (photo 0 / Monet 1), "
                   "trained on photos and paintings together, with a projection discriminator; generate "
                   "samples the Monet label.")
    good_for = ("new paintings from noise when 300 Monets alone are too few: the photos teach structure, "
                "the label the style")
    settings = CGANSettings
    trainer = ".step:CGANTrainer"

    def images_per_step(self, train: TrainConfig, s: CGANSettings) -> dict[str, int]:
        photos, monets = s.split(train.batch_size)
        return {"monet": monets, **({"photo": photos} if photos else {})}

    def check(self, train: TrainConfig, s: CGANSettings) -> None:
        require(s.split(train.batch_size)[1] >= 1, "cgan.photo_fraction",
                f"leaves no Monet in a batch of train.batch_size={train.batch_size}; lower it")

    def architecture(self, train: TrainConfig, s: CGANSettings) -> dict[str, Any]:
        return {"model": self.name, "z_dim": s.z_dim, "width": s.width, "image_size": train.image_size}

    def summary(self, s: CGANSettings) -> str:
        return (f"{self.name} ({s.loss} loss, z {s.z_dim}, width {s.width}, "
                f"photo fraction {s.photo_fraction:g})")
