"""The [cut] settings section (no torch: loading settings never pays for it).

`mode` sets the three keys that tell CUT from FastCUT, as the authors' `--CUT_mode` sets their defaults:
each of `lambda_nce`, `nce_idt` and `flip_equivariance` that is not given takes the mode's value, and a value
given explicitly wins. The resolved values are what the run records (config.toml, checkpoints, run name).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...family import option, require

# What each mode sets (taesungp/contrastive-unpaired-translation, models/cut_model.py).
MODES: dict[str, dict[str, Any]] = {
    "cut": {"lambda_nce": 1.0, "nce_idt": True, "flip_equivariance": False},
    "fastcut": {"lambda_nce": 10.0, "nce_idt": False, "flip_equivariance": True},
}
LOSSES = ("lsgan", "bce")
# Layers of the ResNet generator's Sequential before its residual blocks (training/networks.py): the padded
# 7x7 convolution (4 layers) and two stride-2 convolutions (3 each). Its encoder ends with the last block.
STEM_LAYERS = 10


@dataclass(frozen=True)
class CUTSettings:
    mode: str = option("cut", "cut | fastcut: sets lambda_nce, nce_idt and flip_equivariance where they are "
                              "not given (cut: 1, true, false; fastcut: 10, false, true)")
    lambda_nce: float | None = option(None, "weight of the PatchNCE loss (not given: as mode says)")
    nce_idt: bool | None = option(None, "also PatchNCE between each Monet and G(Monet), the two averaged "
                                        "(not given: as mode says)")
    flip_equivariance: bool | None = option(None, "flip half the steps' generator inputs horizontally and "
                                                  "the translation's features back (not given: as mode says)")
    nce_layers: str = option("0,4,8,12,16", "generator layers (indices into its Sequential, all in the "
                                            "encoder) whose patches PatchNCE compares")
    num_patches: int = option(256, "positions sampled per layer and image (the same in input and output)")
    nce_t: float = option(0.07, "temperature of the PatchNCE softmax")
    mlp_width: int = option(256, "width of each layer's two-layer projection head")
    ngf: int = option(64, "generator width: channels of its first layer")
    n_blocks: int = option(9, "residual blocks of the ResNet generator")
    ndf: int = option(64, "discriminator width")
    d_layers: int = option(3, "PatchGAN depth (3 = 70x70 receptive field)")
    loss: str = option("lsgan", "adversarial loss: lsgan (the paper's) | bce")

    def __post_init__(self) -> None:
        require(self.mode in MODES, "cut.mode", f"must be one of: {', '.join(MODES)}")
        for key, value in MODES[self.mode].items():
            if getattr(self, key) is None:
                object.__setattr__(self, key, value)
        require(self.loss in LOSSES, "cut.loss", f"must be one of: {', '.join(LOSSES)}")
        for name in ("ngf", "ndf", "num_patches", "mlp_width"):
            require(getattr(self, name) >= 1, f"cut.{name}", "must be >= 1")
        for name in ("n_blocks", "d_layers", "lambda_nce"):
            require(getattr(self, name) >= 0, f"cut.{name}", "must be >= 0")
        require(self.nce_t > 0, "cut.nce_t", "must be > 0")
        last = STEM_LAYERS + self.n_blocks - 1
        require(_parse_layers(self.nce_layers, last) is not None, "cut.nce_layers",
                f"must be comma-separated layer indices in 0..{last} (the encoder of a generator with "
                f"cut.n_blocks={self.n_blocks}), e.g. \"0,4,8,12,16\"")

    @property
    def layers(self) -> tuple[int, ...]:
        """cut.nce_layers as sorted indices."""
        return _parse_layers(self.nce_layers, STEM_LAYERS + self.n_blocks - 1) or ()


def _parse_layers(text: str, last: int) -> tuple[int, ...] | None:
    """Distinct indices in 0..last, sorted; None if `text` is not such a list."""
    parts = [p.strip() for p in text.split(",")]
    if not all(p.isdigit() for p in parts):
        return None
    layers = tuple(sorted({int(p) for p in parts}))
    return layers if layers[-1] <= last else None
