"""DCGAN's training step (Radford et al. 2016) with the options of the DCGAN art experiments: BCE with
one-sided label smoothing, LSGAN, or WGAN-GP (n_critic critic steps per generator step); separate G/D
learning rates."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ...losses import AdversarialLoss, gradient_penalty
from ...trainer import Losses, NoiseTrainer
from .networks import make_discriminator


class DCGANTrainer(NoiseTrainer):
    """Radford et al. 2016, with the options of the DCGAN art experiments: BCE with one-sided label smoothing,
    LSGAN, or WGAN-GP (n_critic critic steps per generator step); separate G/D learning rates."""

    generators = ("G",)
    discriminators = ("D",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        s = self.settings
        self.adversarial = AdversarialLoss(s.loss, real_label=s.label_smoothing if s.loss == "bce" else 1.0)
        self.instance_noise = s.instance_noise

    def make_discriminator(self) -> nn.Module:
        return make_discriminator(self.train, self.settings)

    def train_step(self, batch: dict[str, torch.Tensor], progress: float) -> Losses:
        s, adv = self.settings, self.adversarial
        D = self.train_nets["D"]
        losses: Losses = {}
        for real in batch["monet"].chunk(s.n_critic):
            with torch.no_grad(), self.rt.autocast():
                fake = self.nets["G"](self.noise(real.shape[0]))
            self.optimizers["D"].zero_grad(set_to_none=True)
            if s.loss == "wgan-gp":
                # Backward through the raw critic first: DDP cannot differentiate twice, but it averages the
                # gradients already accumulated in .grad when the main loss goes backward through it below.
                gp = gradient_penalty(lambda x: self.nets["D"](self.d_input(x, progress)), real, fake)
                self.scaler.scale(s.gp_weight * gp).backward()
                losses["gp"] = gp.detach()
            with self.rt.autocast():
                loss_D = adv.d_loss(D(self.d_input(real, progress)), D(self.d_input(fake, progress)))
            self.scaler.scale(loss_D).backward()
            self.scaler.step(self.optimizers["D"])
            self.scaler.update()  # fp16's scaler allows one step per optimizer between updates
        losses["D"] = loss_D.detach()
        self.freeze_discriminators(True)
        with self.rt.autocast():
            fake = self.train_nets["G"](self.noise(batch["monet"].shape[0] // s.n_critic))
            loss_G = adv.g_loss(self.nets["D"](self.d_input(fake, progress)))
        self.update(loss_G, "G")
        self.freeze_discriminators(False)
        self.end_step()
        return {"G": loss_G.detach(), **losses}
