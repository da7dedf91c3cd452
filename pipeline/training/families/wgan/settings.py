"""The [wgan] settings section (no torch: loading settings never pays for it)."""
from __future__ import annotations

from dataclasses import dataclass

from ...family import option, require


@dataclass(frozen=True)
class WGANSettings:
    z_dim: int = option(128, "length of the noise vector the generator starts from")
    width: int = option(64, "channels of the critic's first layer (and the generator's last)")
    clip: float = option(0.01, "every critic weight is clamped to [-clip, clip] after each critic step")
    n_critic: int = option(5, "critic steps per generator step (each on a fresh batch of Monets)")
    lr: float = option(5e-5, "RMSprop learning rate of both networks (replaces train.lr and train.lr_d)")

    def __post_init__(self) -> None:
        for name in ("z_dim", "width", "n_critic"):
            require(getattr(self, name) >= 1, f"wgan.{name}", "must be >= 1")
        require(self.clip > 0, "wgan.clip", "must be > 0")
        require(self.lr > 0, "wgan.lr", "must be > 0")
