"""Weight initialisation shared by every family's networks."""
from __future__ import annotations

from torch import nn


def init_weights(net: nn.Module, std: float = 0.02) -> nn.Module:
    """N(0, 0.02) for convolutions, N(1, 0.02) for norm scales, zero biases (DCGAN and CycleGAN papers)."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            weight = m.parametrizations.weight.original if hasattr(m, "parametrizations") else m.weight
            nn.init.normal_(weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)
    return net
