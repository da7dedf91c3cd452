"""WGAN's training step (Arjovsky et al. 2017, Algorithm 1): n_critic critic steps, each on a fresh batch of
Monets and followed by clamping the critic's weights to [-clip, clip], then one generator step; RMSprop for
both networks at wgan.lr."""
from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from ...trainer import Losses, NoiseTrainer
from .networks import clip_weights, make_critic


class WGANTrainer(NoiseTrainer):
    """The critic maximises E[D(real)] - E[D(fake)] over weight-clipped networks; G maximises E[D(fake)]."""

    generators = ("G",)
    discriminators = ("D",)

    def make_discriminator(self) -> nn.Module:
        return make_critic(self.train, self.settings)

    def make_optimizer(self, which: str, params: Iterable[nn.Parameter], lr: float) -> torch.optim.Optimizer:
        """RMSprop (the paper's: momentum-based optimisers made the critic unstable) at wgan.lr for both
        networks, scaled for the global batch as train.lr_scaling says."""
        return torch.optim.RMSprop(params, lr=self.settings.lr * self.train.lr_factor(self.rt.world_size))

    def train_step(self, batch: dict[str, torch.Tensor], progress: float) -> Losses:
        s = self.settings
        D = self.train_nets["D"]
        for real in batch["monet"].chunk(s.n_critic):
            with torch.no_grad(), self.rt.autocast():
                fake = self.nets["G"](self.noise(real.shape[0]))
            self.optimizers["D"].zero_grad(set_to_none=True)
            with self.rt.autocast():
                loss_D = (D(self.d_input(fake, progress)).float().mean()
                          - D(self.d_input(real, progress)).float().mean())
            self.scaler.scale(loss_D).backward()
            self.scaler.step(self.optimizers["D"])
            self.scaler.update()  # fp16's scaler allows one step per optimizer between updates
            clip_weights(self.nets["D"], s.clip)
        self.freeze_discriminators(True)
        with self.rt.autocast():
            fake = self.train_nets["G"](self.noise(batch["monet"].shape[0] // s.n_critic))
            loss_G = -self.nets["D"](self.d_input(fake, progress)).float().mean()
        self.update(loss_G, "G")
        self.freeze_discriminators(False)
        self.end_step()
        # W: the critic's estimate of the Wasserstein distance (up to scale), falling as G learns
        return {"G": loss_G.detach(), "D": loss_D.detach(), "W": -loss_D.detach()}
