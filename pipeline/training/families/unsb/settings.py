"""The [unsb] settings section (no torch: loading settings never pays for it).

Defaults are what the authors train with (cyclomon/UNSB: options/base_options.py, models/sb_model.py and
run_train.sh, which sets lambda_SB 1 over the option's 0.1): 5 steps, tau 0.01, lambda_sb 1, lambda_nce 1,
identity NCE, PatchNCE on CUT's layers with 256 patches and 256-wide heads at temperature 0.07, the ResNet-9
generator and 70x70 PatchGANs at width 64.
"""
from __future__ import annotations

from dataclasses import dataclass

from ...family import option, require

STEM = {"input": 0, "down1": 4, "down2": 7}  # in the generator's stem (networks.py), as in CUT's generator
PAPER_LAYERS = "input, down1, down2, res1, res5"  # the authors' --nce_layers 0,4,8,12,16, by meaning


@dataclass(frozen=True)
class UNSBSettings:
    steps: int = option(5, "steps of the bridge from photo to Monet (the paper's NFE): training draws one at "
                           "random, generating runs them all (generate.steps: fewer, faster)")
    tau: float = option(0.01, "entropy of the bridge: the noise between steps and the weight of the "
                              "transport and entropy terms")
    lambda_sb: float = option(1.0, "weight of the Schrodinger-bridge term (transport cost - entropy)")
    lambda_nce: float = option(1.0, "weight of the PatchNCE term between the photo and the prediction")
    nce_idt: bool = option(True, "also PatchNCE between each Monet and its own prediction, the two averaged")
    nce_layers: str = option(PAPER_LAYERS, "encoder layers whose patches PatchNCE compares: input, down1, "
                                           "down2, res1..resN")
    num_patches: int = option(256, "positions sampled per layer and image (the same in input and output)")
    nce_t: float = option(0.07, "temperature of the PatchNCE softmax")
    mlp_width: int = option(256, "width of each layer's two-layer projection head")
    ngf: int = option(64, "generator width: channels of its first layer (its time embedding is as long, "
                          "its noise 4 x ngf)")
    n_blocks: int = option(9, "time- and noise-conditioned residual blocks of the generator")
    ndf: int = option(64, "width of the PatchGAN and of the energy network")
    d_layers: int = option(3, "depth of both (3 = 70x70 receptive field)")

    def __post_init__(self) -> None:
        require(self.steps >= 1, "unsb.steps", "must be >= 1 (the paper's default: 5)")
        require(self.tau > 0, "unsb.tau", "must be > 0 (the paper's default: 0.01)")
        require(self.ngf >= 4, "unsb.ngf", "must be >= 4 (its sinusoidal time embedding is ngf long)")
        for name in ("ndf", "num_patches", "mlp_width", "d_layers"):
            require(getattr(self, name) >= 1, f"unsb.{name}", "must be >= 1")
        for name in ("n_blocks", "lambda_sb", "lambda_nce"):
            require(getattr(self, name) >= 0, f"unsb.{name}", "must be >= 0")
        require(self.nce_t > 0, "unsb.nce_t", "must be > 0")
        blocks = f", res1..res{self.n_blocks}" if self.n_blocks else ""
        require(bool(self.layers), "unsb.nce_layers",
                f"must name layers of the encoder of a generator with unsb.n_blocks={self.n_blocks}: input, "
                f"down1, down2{blocks}, e.g. \"{PAPER_LAYERS}\"")

    @property
    def layers(self) -> tuple[str, ...]:
        """unsb.nce_layers as distinct names in the encoder's order; () if one is not in the encoder."""
        known = [*STEM, *(f"res{k}" for k in range(1, self.n_blocks + 1))]
        names = {part.strip() for part in self.nce_layers.split(",")}
        return tuple(n for n in known if n in names) if names <= set(known) else ()
