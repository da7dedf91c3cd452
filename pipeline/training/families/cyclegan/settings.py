"""The [cyclegan] settings section (no torch: loading settings never pays for it)."""
from __future__ import annotations

from dataclasses import dataclass

from ...family import option, require


@dataclass(frozen=True)
class CycleGANSettings:
    generator: str = option("resnet",
                            "resnet (ResNet-9, the paper's) | unet (keeps colours early; small runs)")
    ngf: int = option(64, "generator width: channels of its first layer")
    n_blocks: int = option(9, "residual blocks of the resnet generator")
    ndf: int = option(64, "discriminator width")
    d_layers: int = option(3, "PatchGAN depth (3 = 70x70 receptive field)")
    lambda_cycle: float = option(10.0, "weight of the cycle-consistency loss")
    lambda_identity: float = option(0.5, "weight of the identity loss, times lambda_cycle")
    pool_size: int = option(50, "earlier fakes kept to show the discriminators (0 = off)")

    def __post_init__(self) -> None:
        require(self.generator in ("resnet", "unet"), "cyclegan.generator", "must be one of: resnet, unet")
        for name in ("ngf", "ndf"):
            require(getattr(self, name) >= 1, f"cyclegan.{name}", "must be >= 1")
        for name in ("n_blocks", "pool_size", "d_layers"):
            require(getattr(self, name) >= 0, f"cyclegan.{name}", "must be >= 0")
        for name in ("lambda_cycle", "lambda_identity"):
            require(getattr(self, name) >= 0, f"cyclegan.{name}", "must be >= 0")
