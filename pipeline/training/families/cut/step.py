"""CUT's training step (Park et al. 2020), in the authors' order: translate, update the PatchGAN on this
step's fakes, then the generator and the PatchNCE heads on the adversarial loss + lambda_nce x PatchNCE.

The heads ("F") are an auxiliary network of the Trainer base: made once here from the generator's layer
widths, trained by optimiser "G" (the authors give them their own Adam with the generator's settings, which
is the same update), DDP-wrapped and checkpointed with the rest.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ...losses import AdversarialLoss
from ...nce import nce_per_image, sample_positions
from ...trainer import Losses, PhotoTrainer
from .networks import make_discriminator, make_heads


class CUTTrainer(PhotoTrainer):
    """One generator G (photo -> Monet), one PatchGAN D, the projection heads F."""

    generators = ("G",)
    discriminators = ("D",)
    auxiliaries = ("F",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.adversarial = AdversarialLoss(self.settings.loss)

    def make_discriminator(self) -> nn.Module:
        return make_discriminator(self.train, self.settings)

    def make_auxiliary(self, name: str) -> nn.Module:
        return make_heads(self.nets["G"], self.train, self.settings)

    def train_step(self, batch: dict[str, torch.Tensor], progress: float) -> Losses:
        s, adv = self.settings, self.adversarial
        photo, monet = batch["photo"], batch["monet"]
        G, n = self.train_nets["G"], photo.shape[0]
        # With identity NCE the Monets go through G in the photos' batch (instance norm keeps images apart).
        real = torch.cat([photo, monet]) if s.nce_idt else photo
        flipped = s.flip_equivariance and bool(torch.rand(()) < 0.5)
        with self.rt.autocast():
            out = G(real.flip(3) if flipped else real)
        fake = out[:n]

        with self.rt.autocast():
            logits = self.train_nets["D"](self.d_input(torch.cat([monet, fake.detach()]), progress))
            loss_d = adv.d_loss(*logits.chunk(2))
        self.update(loss_d, "D")

        self.freeze_discriminators(True)
        with self.rt.autocast():
            g_adv = adv.g_loss(self.nets["D"](self.d_input(fake, progress)))
            found = G(out, s.layers)
            # The translation's features, flipped back, face the unflipped input's at the same positions.
            found = [f.flip(3) for f in found] if flipped else found
            positions = sample_positions(found, s.num_patches)
            queries = self.train_nets["F"](found, positions)
            with torch.no_grad():  # the keys get no gradient: G and F as they are, outside DDP
                keys = self.nets["F"](self.nets["G"](real, s.layers), positions)
        per_image = nce_per_image(queries, keys, s.nce_t)
        nce = per_image[:n].mean()
        nce_idt = per_image[n:].mean() if s.nce_idt else torch.zeros((), device=photo.device)
        # The photo's and the Monet's terms averaged, as the authors do (their batches are the same size).
        loss_nce = (nce + nce_idt) / 2 if s.nce_idt else nce
        self.update(g_adv + s.lambda_nce * loss_nce, "G")
        self.freeze_discriminators(False)
        self.end_step()
        return {"G_adv": g_adv.detach(), "NCE": nce.detach(), "NCE_idt": nce_idt.detach(),
                "D": loss_d.detach()}
