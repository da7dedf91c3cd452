"""The original GAN's training step (Goodfellow et al. 2014, Algorithm 1 with k = 1): one discriminator step
with binary cross-entropy, then one generator step with the non-saturating loss (maximise log D(G(z)))."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ...losses import AdversarialLoss
from ...trainer import Losses, NoiseTrainer
from .networks import make_discriminator


class GANTrainer(NoiseTrainer):
    generators = ("G",)
    discriminators = ("D",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.adversarial = AdversarialLoss("bce")  # no label smoothing: the paper's objective

    def make_discriminator(self) -> nn.Module:
        return make_discriminator(self.train, self.settings)

    def train_step(self, batch: dict[str, torch.Tensor], progress: float) -> Losses:
        adv, D = self.adversarial, self.train_nets["D"]
        real = batch["monet"]
        with torch.no_grad(), self.rt.autocast():
            fake = self.nets["G"](self.noise(real.shape[0]))
        with self.rt.autocast():
            loss_D = adv.d_loss(D(self.d_input(real, progress)), D(self.d_input(fake, progress)))
        self.update(loss_D, "D")
        self.freeze_discriminators(True)
        with self.rt.autocast():
            fake = self.train_nets["G"](self.noise(real.shape[0]))
            loss_G = adv.g_loss(self.nets["D"](self.d_input(fake, progress)))
        self.update(loss_G, "G")
        self.freeze_discriminators(False)
        self.end_step()
        return {"G": loss_G.detach(), "D": loss_D.detach()}
