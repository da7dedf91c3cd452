"""The [gan] settings section (no torch: loading settings never pays for it)."""
from __future__ import annotations

from dataclasses import dataclass

from ...family import option, require


@dataclass(frozen=True)
class GANSettings:
    z_dim: int = option(100, "length of the noise vector the generator starts from")
    hidden: int = option(256, "width of the narrowest hidden layer (the others are 2x and 4x it)")
    image_size: int = option(64, "side of the images it learns and makes (replaces train.image_size; "
                                 "generate scales them up to the submission's size)")

    def __post_init__(self) -> None:
        for name in ("z_dim", "hidden"):
            require(getattr(self, name) >= 1, f"gan.{name}", "must be >= 1")
        require(8 <= self.image_size <= 256, "gan.image_size", "must be in 8..256")
