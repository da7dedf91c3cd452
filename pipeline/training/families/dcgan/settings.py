"""The [dcgan] settings section (no torch: loading settings never pays for it)."""
from __future__ import annotations

from dataclasses import dataclass

from ...family import option, require

LOSSES = ("bce", "lsgan", "wgan-gp")


@dataclass(frozen=True)
class DCGANSettings:
    z_dim: int = option(128, "length of the noise vector the generator starts from")
    width: int = option(64, "channels of the discriminator's first layer (and the generator's last)")
    loss: str = option("bce", "bce | lsgan | wgan-gp (n_critic critic steps per generator step)")
    label_smoothing: float = option(0.9, "target for real images with bce (1.0 = off)")
    spectral_norm: bool = option(False, "spectral norm on the discriminator's layers")
    d_dropout: float = option(0.0, "dropout after each discriminator layer")
    instance_noise: float = option(0.0,
                                   "std of gaussian noise on the discriminator's inputs, annealed to zero")
    gp_weight: float = option(10.0, "weight of the gradient penalty (wgan-gp)")
    n_critic: int = option(1, "discriminator steps per generator step")

    def __post_init__(self) -> None:
        require(self.loss in LOSSES, "dcgan.loss", f"must be one of: {', '.join(LOSSES)}")
        for name in ("z_dim", "width", "n_critic"):
            require(getattr(self, name) >= 1, f"dcgan.{name}", "must be >= 1")
        require(0.5 < self.label_smoothing <= 1.0, "dcgan.label_smoothing", "must be in 0.5..1 (1 = off)")
        require(0.0 <= self.d_dropout < 1.0, "dcgan.d_dropout", "must be in 0..1")
        for name in ("instance_noise", "gp_weight"):
            require(getattr(self, name) >= 0, f"dcgan.{name}", "must be >= 0")

    @property
    def d_batch_norm(self) -> bool:
        """Batch norm in D unless spectral norm already bounds it or the gradient penalty is per sample."""
        return not self.spectral_norm and self.loss != "wgan-gp"
