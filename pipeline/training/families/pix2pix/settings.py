"""The [pix2pix] settings section (no torch: loading settings never pays for it)."""
from __future__ import annotations

from dataclasses import dataclass

from ...family import option, require

PAIRINGS = ("smooth", "teacher")
LOSSES = ("lsgan", "bce")


@dataclass(frozen=True)
class Pix2PixSettings:
    ngf: int = option(64, "U-Net generator width: channels of its first layer")
    ndf: int = option(64, "discriminator width")
    d_layers: int = option(3, "PatchGAN depth (3 = 70x70 receptive field)")
    lambda_l1: float = option(100.0, "weight of the L1 loss between the output and its painting")
    loss: str = option("lsgan", "adversarial loss: lsgan | bce (the paper's)")
    pairing: str = option("smooth", "how each painting gets its photo-like input: smooth (edge-preserving "
                                    "smoothing + photo colours) | teacher (a CycleGAN's Monet -> photo)")
    teacher_run: str = option("", "pairing = teacher: the cyclegan run (data/runs/<name>/last.pt) whose "
                                  "G_monet2photo makes the inputs")
    smooth_iterations: int = option(3, "pairing = smooth: passes of the bilateral filter")
    smooth_radius: int = option(2, "pairing = smooth: the filter's window radius in pixels")
    smooth_sigma_color: float = option(0.25, "pairing = smooth: colour distance (of [-1, 1] values) that "
                                             "still counts as the same surface; larger = flatter")
    saturation: float = option(1.15, "pairing = smooth: saturation factor toward photo colours")
    contrast: float = option(1.1, "pairing = smooth: contrast factor toward photo contrast")

    def __post_init__(self) -> None:
        require(self.pairing in PAIRINGS, "pix2pix.pairing", f"must be one of: {', '.join(PAIRINGS)}")
        require(self.loss in LOSSES, "pix2pix.loss", f"must be one of: {', '.join(LOSSES)}")
        require(self.pairing != "teacher" or bool(self.teacher_run), "pix2pix.teacher_run",
                "must name a trained cyclegan run when pix2pix.pairing = teacher")
        for name in ("ngf", "ndf", "smooth_radius"):
            require(getattr(self, name) >= 1, f"pix2pix.{name}", "must be >= 1")
        for name in ("d_layers", "smooth_iterations", "lambda_l1"):
            require(getattr(self, name) >= 0, f"pix2pix.{name}", "must be >= 0")
        for name in ("smooth_sigma_color", "saturation", "contrast"):
            require(getattr(self, name) > 0, f"pix2pix.{name}", "must be > 0")
