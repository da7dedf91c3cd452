"""The [cgan] settings section (no torch: loading settings never pays for it)."""
from __future__ import annotations

from dataclasses import dataclass

from ...family import option, require

LOSSES = ("hinge", "lsgan", "bce")


@dataclass(frozen=True)
class CGANSettings:
    z_dim: int = option(128, "length of the noise vector (and of the generator's label embedding)")
    width: int = option(64, "channels of the discriminator's first layer (and the generator's last)")
    photo_fraction: float = option(0.5, "share of each batch that is photos (label 0); the rest: Monets (1)")
    loss: str = option("hinge", "hinge | lsgan | bce")

    def __post_init__(self) -> None:
        require(self.loss in LOSSES, "cgan.loss", f"must be one of: {', '.join(LOSSES)}")
        for name in ("z_dim", "width"):
            require(getattr(self, name) >= 1, f"cgan.{name}", "must be >= 1")
        require(0.0 <= self.photo_fraction < 1.0, "cgan.photo_fraction", "must be in 0..1 (1 excluded)")

    def split(self, batch_size: int) -> tuple[int, int]:
        """(photos, Monets) in a batch of batch_size."""
        photos = round(batch_size * self.photo_fraction)
        return photos, batch_size - photos
