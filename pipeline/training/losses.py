"""GAN losses: one adversarial-loss object whose kind (lsgan / bce / wgan-gp) the training step never sees,
plus the L1 reconstruction term of CycleGAN's cycle and identity losses.

Discriminator outputs are logits (no sigmoid in any network), and every loss is computed in float32
whatever precision the forward pass ran in.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


class AdversarialLoss:
    """`d_loss` for the discriminator/critic, `g_loss` for the generator.

    - lsgan: least squares towards 1 (real) and 0 (fake) (Mao et al. 2017; CycleGAN's choice).
    - bce: binary cross-entropy on logits; real targets are `real_label` (one-sided label smoothing,
      Salimans et al. 2016: only real targets are softened, fakes stay at 0, the generator aims at 1).
    - wgan-gp: the Wasserstein critic (Gulrajani et al. 2017); add `gradient_penalty` to its loss.
    """

    def __init__(self, kind: str = "lsgan", real_label: float = 1.0) -> None:
        if kind not in ("lsgan", "bce", "wgan-gp"):
            raise ValueError(f"unknown adversarial loss {kind!r}")
        self.kind = kind
        self.real_label = real_label

    def d_loss(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        real, fake = real.float(), fake.float()
        if self.kind == "wgan-gp":
            return fake.mean() - real.mean()
        # The mean of the real and fake terms: halves D's step relative to G's, as CycleGAN does.
        return 0.5 * (self._against(real, self.real_label) + self._against(fake, 0.0))

    def g_loss(self, fake: torch.Tensor) -> torch.Tensor:
        fake = fake.float()
        if self.kind == "wgan-gp":
            return -fake.mean()
        return self._against(fake, 1.0)

    def _against(self, logits: torch.Tensor, target: float) -> torch.Tensor:
        targets = torch.full_like(logits, target)
        if self.kind == "lsgan":
            return F.mse_loss(logits, targets)
        return F.binary_cross_entropy_with_logits(logits, targets)


def gradient_penalty(critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor,
                     fake: torch.Tensor) -> torch.Tensor:
    """E[(||grad critic(x_hat)||_2 - 1)^2] at random points x_hat between real and fake images (WGAN-GP).

    Run it in float32 (outside autocast): its second derivative is what training descends.
    """
    alpha = torch.rand(real.shape[0], 1, 1, 1, device=real.device)
    mixed = (alpha * real.float() + (1 - alpha) * fake.float()).requires_grad_(True)
    scores = critic(mixed)
    (grad,) = torch.autograd.grad(scores.sum(), mixed, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


def reconstruction_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1, for CycleGAN's two reconstruction terms: cycle consistency (photo -> Monet -> photo should give the
    photo back, so content survives) and identity (G_photo2monet of a Monet should leave it alone, which keeps
    colours from drifting)."""
    return F.l1_loss(output.float(), target.float())
