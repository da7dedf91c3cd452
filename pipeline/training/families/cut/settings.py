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
# The encoder layers PatchNCE can compare, by what they are, as indices into the Sequential of the ResNet
# generator (training/networks.py): the reflection-padded input (0), the outputs of its two stride-2
# convolutions before their norms (4, 7), and residual block k's (9 + k). The encoder ends with the last
# block.
STEM = {"input": 0, "down1": 4, "down2": 7}
FIRST_BLOCK = 10
# The authors' choice: their --nce_layers "0,4,8,12,16" picks these in their anti-aliased generator
# (taesungp/contrastive-unpaired-translation); the same indices here are other layers (docs/training.md).
PAPER_LAYERS = "input, down1, down2, res1, res5"


def encoder_layers(n_blocks: int) -> dict[str, int]:
    """Each named encoder layer of a ResNet generator with `n_blocks` blocks -> its index."""
    return {**STEM, **{f"res{k}": FIRST_BLOCK + k - 1 for k in range(1, n_blocks + 1)}}


@dataclass(frozen=True)
class CUTSettings:
    mode: str = option("cut", "cut | fastcut: sets lambda_nce, nce_idt and flip_equivariance where they are "
                              "not given (cut: 1, true, false; fastcut: 10, false, true)")
    lambda_nce: float | None = option(None, "weight of the PatchNCE loss (not given: as mode says)")
    nce_idt: bool | None = option(None, "also PatchNCE between each Monet and G(Monet), the two averaged "
                                        "(not given: as mode says)")
    flip_equivariance: bool | None = option(None, "flip half the steps' generator inputs horizontally and "
                                                  "the translation's features back (not given: as mode says)")
    nce_layers: str = option(PAPER_LAYERS, "encoder layers whose patches PatchNCE compares: input, down1, "
                                           "down2, res1..resN (or indices into the generator's Sequential)")
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
        blocks = f", res1..res{self.n_blocks}" if self.n_blocks else ""
        require(bool(self.layers), "cut.nce_layers",
                f"must name layers of the encoder of a generator with cut.n_blocks={self.n_blocks}: input, "
                f"down1, down2{blocks} (or indices 0..{FIRST_BLOCK + self.n_blocks - 1}), e.g. "
                f"\"{PAPER_LAYERS}\"")

    @property
    def layers(self) -> tuple[int, ...]:
        """cut.nce_layers as sorted distinct indices into the generator's Sequential; () if it names a layer
        outside the encoder. An index is taken as it is (the form this key had before the names)."""
        found = [_index(part.strip(), self.n_blocks) for part in self.nce_layers.split(",")]
        return tuple(sorted({i for i in found if i is not None})) if None not in found else ()


def _index(part: str, n_blocks: int) -> int | None:
    """One item of cut.nce_layers: a name's index, or an index in the encoder as it is; None for neither."""
    named = encoder_layers(n_blocks)
    if part in named:
        return named[part]
    return int(part) if part.isdigit() and int(part) < FIRST_BLOCK + n_blocks else None
