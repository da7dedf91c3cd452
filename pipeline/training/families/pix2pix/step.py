"""pix2pix's training step (Isola et al. 2017): G(input) should match its painting in L1 and fool a
conditional PatchGAN that sees (input, painting) pairs; the inputs are made from the paintings (pairing.py).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ...banks import ImageBank
from ...losses import AdversarialLoss, reconstruction_loss
from ...trainer import Losses, Trainer
from .networks import make_discriminator
from .pairing import make_pairing


class Pix2PixTrainer(Trainer):
    """One U-Net G (input -> painting), one PatchGAN D on 6 channels; L1 x lambda_l1 + adversarial loss.

    DiffAugment (train.diffaugment) acts on the 6-channel pair as one image: translation and cutout move
    input and painting together; colour's saturation step centres on the pair's mean.
    """

    generators = ("G",)
    discriminators = ("D",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.adversarial = AdversarialLoss(self.settings.loss)
        self._pairing: Callable[[torch.Tensor], torch.Tensor] | None = None

    def make_discriminator(self) -> nn.Module:
        return make_discriminator(self.train, self.settings)

    def pair(self, monet: torch.Tensor) -> torch.Tensor:
        """The photo-like inputs of these paintings (no gradient, float32, deterministic)."""
        if self._pairing is None:  # built on first use: the loop sets extra_inputs after __init__
            self._pairing = make_pairing(self.settings, list(self.extra_inputs), self.rt.device)
        with torch.no_grad():
            return self._pairing(monet).to(monet.dtype)

    def train_step(self, batch: dict[str, torch.Tensor], progress: float) -> Losses:
        adv, target = self.adversarial, batch["monet"]
        source = self.pair(target)
        self.freeze_discriminators(True)
        with self.rt.autocast():
            fake = self.train_nets["G"](source)
            g_adv = adv.g_loss(self.nets["D"](self.d_input(torch.cat([source, fake], 1), progress)))
        l1 = reconstruction_loss(fake, target)
        self.update(g_adv + self.settings.lambda_l1 * l1, "G")

        self.freeze_discriminators(False)
        with self.rt.autocast():
            pairs = torch.cat([torch.cat([source, target], 1), torch.cat([source, fake.detach()], 1)])
            loss_d = adv.d_loss(*self.train_nets["D"](self.d_input(pairs, progress)).chunk(2))
        self.update(loss_d, "D")
        self.end_step()
        return {"G_adv": g_adv.detach(), "L1": l1.detach(), "D": loss_d.detach()}

    def sample_inputs(self, banks: dict[str, ImageBank], n: int = 6) -> torch.Tensor:
        """The first n paintings, whole (the grid shows their inputs too; no RNG is drawn)."""
        return banks["monet"].full(torch.arange(min(n, len(banks["monet"])), device=self.rt.device))

    def sample(self, monets: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Input, G's painting of it, the real painting: one triple per row, two rows of triples."""
        sources = torch.cat([self.pair(m) for m in monets.split(4)])
        with self.inference() as translate:
            made = torch.cat([translate(x) for x in sources.split(4)])
        return torch.stack([sources, made, monets.float()], dim=1).flatten(0, 1), 6

    def translate(self, g: nn.Module, photos: torch.Tensor) -> torch.Tensor:
        return g(photos)
