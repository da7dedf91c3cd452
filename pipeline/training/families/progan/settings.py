"""The [progan] settings section (no torch: loading settings never pays for it)."""
from __future__ import annotations

from dataclasses import dataclass

from ...family import option, require


@dataclass(frozen=True)
class ProGANSettings:
    max_size: int = option(256, "final resolution, grown from 4x4 by doubling (replaces train.image_size)")
    z_dim: int = option(512, "length of the noise vector the generator starts from")
    width: int = option(64, "channels of the max_size layers; they double at each halving of the "
                            "resolution, up to max_width (the paper: 64 at 256 px, 512 from 32 px down)")
    max_width: int = option(512, "the most channels any layer has")
    batch: str = option("4:16,256:14,512:6,1024:3",
                        "images per step and process by resolution, 'res:batch,...' from 4: a resolution "
                        "not listed takes the batch of the nearest listed one below it (the paper's)")
    images_per_phase: int = option(800_000, "real images each process sees in each fade-in and each stable "
                                            "phase (a time budget compresses every phase alike)")
    lr: float = option(1e-3, "Adam learning rate (betas 0, 0.99) of both networks, constant (replaces "
                             "train.lr, lr_d, beta1, beta2 and decay_start)")
    gp_weight: float = option(10.0, "weight of the WGAN-GP gradient penalty")
    drift: float = option(0.001, "weight of the critic's drift term, mean of D(real)^2 (keeps scores near 0)")

    def __post_init__(self) -> None:
        size = self.max_size
        require(8 <= size <= 1024 and size & (size - 1) == 0, "progan.max_size",
                "must be a power of two in 8..1024")
        for name in ("z_dim", "width", "images_per_phase"):
            require(getattr(self, name) >= 1, f"progan.{name}", "must be >= 1")
        require(self.max_width >= self.width, "progan.max_width", "must be >= progan.width")
        require(self.lr > 0, "progan.lr", "must be > 0")
        for name in ("gp_weight", "drift"):
            require(getattr(self, name) >= 0, f"progan.{name}", "must be >= 0")
        self.batches()  # checks progan.batch

    @property
    def resolutions(self) -> list[int]:
        """4, 8, ..., max_size: the resolutions it grows through."""
        return [2 ** i for i in range(2, self.max_size.bit_length())]

    def batches(self) -> dict[int, int]:
        """progan.batch as {resolution: batch} for every resolution up to max_size."""
        listed: dict[int, int] = {}
        for item in self.batch.split(","):
            res, _, n = item.strip().partition(":")
            require(res.isdigit() and n.isdigit() and int(n) >= 1 and int(res) & (int(res) - 1) == 0
                    and int(res) >= 4 and int(res) not in listed, "progan.batch",
                    f"must be 'res:batch' items (res a power of two >= 4, batch >= 1), not {item.strip()!r}")
            listed[int(res)] = int(n)
        require(4 in listed, "progan.batch", "must give the batch at 4x4 (e.g. '4:16,256:14')")
        return {r: listed[max(k for k in listed if k <= r)] for r in self.resolutions}

    def channels(self, resolution: int) -> int:
        """Layer width at `resolution`: width at max_size, doubled at each halving, capped at max_width."""
        return min(self.max_width, self.width * (self.max_size // resolution))
