"""Weight initialisation shared by every family's networks (`train.init`).

Two methods, each with gain 0.02 as the papers use it: `normal` draws every convolution's and linear layer's
weights from N(0, 0.02) (DCGAN, pix2pix, CycleGAN); `xavier` draws them from Xavier-normal with gain 0.02,
std 0.02 x sqrt(2 / (fan_in + fan_out)) (CUT's authors' default, init_type=xavier), so a wide layer starts
much smaller: a 3x3 256 -> 256 convolution at 0.00042 instead of 0.02, 48 times less. Both zero the biases and
draw norm scales from N(1, 0.02), as the authors' init_weights does for either.
"""
from __future__ import annotations

from typing import TypeVar

from torch import nn

GAIN = 0.02
Net = TypeVar("Net", bound=nn.Module)


def init_weights(net: Net, method: str = "") -> Net:
    """Initialise `net` in place by `method` (train.init); "" = normal, the choice of every family that does
    not name its own (CUT passes xavier)."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            weight = m.parametrizations.weight.original if hasattr(m, "parametrizations") else m.weight
            if method == "xavier":
                nn.init.xavier_normal_(weight, gain=GAIN)
            else:
                nn.init.normal_(weight, 0.0, GAIN)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, GAIN)
            nn.init.zeros_(m.bias)
    return net
