"""CycleGAN's training step (Zhu et al. 2017): two generators, two PatchGAN discriminators, LSGAN + cycle +
identity losses, and the image pools that feed the discriminators."""
from __future__ import annotations

import random
from typing import Any

import torch
from torch import nn

from ...losses import AdversarialLoss, reconstruction_loss
from ...trainer import Losses, PhotoTrainer
from .networks import make_discriminator


class ImagePool:
    """History of generated images (Shrivastava et al. 2017, as CycleGAN uses it): half of what D sees as fake
    comes from earlier generators, which keeps D from chasing only the latest G and damps oscillation."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.images: list[torch.Tensor] = []

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            if len(self.images) < self.size:
                self.images.append(image)
                out.append(image)
            elif random.random() < 0.5:
                i = random.randrange(self.size)
                out.append(self.images[i])
                self.images[i] = image
            else:
                out.append(image)
        return torch.stack(out)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"images": torch.stack(self.images).cpu() if self.images else torch.empty(0)}

    def load_state_dict(self, state: dict[str, torch.Tensor], device: torch.device) -> None:
        self.images = list(state["images"].to(device).unbind(0)) if state["images"].numel() else []



class CycleGANTrainer(PhotoTrainer):
    """Zhu et al. 2017: two generators, two PatchGAN discriminators, LSGAN + cycle + identity losses."""

    generators = ("G_photo2monet", "G_monet2photo")
    discriminators = ("D_monet", "D_photo")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.adversarial = AdversarialLoss("lsgan")
        self.pools = {bank: ImagePool(self.settings.pool_size) for bank in ("monet", "photo")}

    def make_discriminator(self) -> nn.Module:
        return make_discriminator(self.train, self.settings)

    def train_step(self, batch: dict[str, torch.Tensor], progress: float) -> Losses:
        s, adv = self.settings, self.adversarial
        monet, photo = batch["monet"], batch["photo"]
        G_photo2monet, G_monet2photo = self.train_nets["G_photo2monet"], self.train_nets["G_monet2photo"]
        n = photo.shape[0]
        self.freeze_discriminators(True)
        with self.rt.autocast():
            # Each generator sees its translation input and its identity input as one batch (instance norm
            # keeps images independent), so DDP sees one forward per generator and pass.
            use_identity = s.lambda_identity > 0
            out = G_photo2monet(torch.cat([photo, monet]) if use_identity else photo)
            fake_monet, idt_monet = out[:n], out[n:]
            out = G_monet2photo(torch.cat([monet, photo]) if use_identity else monet)
            fake_photo, idt_photo = out[:n], out[n:]
            rec_photo, rec_monet = G_monet2photo(fake_monet), G_photo2monet(fake_photo)
            g_adv = (adv.g_loss(self.nets["D_monet"](self.d_input(fake_monet, progress)))
                     + adv.g_loss(self.nets["D_photo"](self.d_input(fake_photo, progress))))
        cycle = reconstruction_loss(rec_photo, photo) + reconstruction_loss(rec_monet, monet)
        identity = (reconstruction_loss(idt_monet, monet) + reconstruction_loss(idt_photo, photo)
                    if use_identity else torch.zeros((), device=photo.device))
        loss_G = g_adv + s.lambda_cycle * cycle + s.lambda_cycle * s.lambda_identity * identity
        self.update(loss_G, "G")

        self.freeze_discriminators(False)
        with self.rt.autocast():
            d_losses = {}
            for kind, real, fake in (("monet", monet, fake_monet), ("photo", photo, fake_photo)):
                pooled = self.pools[kind].query(fake.detach())
                logits = self.train_nets[f"D_{kind}"](self.d_input(torch.cat([real, pooled]), progress))
                d_losses[f"D_{kind}"] = adv.d_loss(*logits.chunk(2))
        self.update(d_losses["D_monet"] + d_losses["D_photo"], "D")
        self.end_step()
        return {"G_adv": g_adv.detach(), "cycle": cycle.detach(), "identity": identity.detach(),
                **{k: v.detach() for k, v in d_losses.items()}}

    def rank_state(self) -> dict[str, Any]:
        return {"pools": {k: p.state_dict() for k, p in self.pools.items()}}

    def load_rank_state(self, state: dict[str, Any]) -> None:
        for k, pool in self.pools.items():
            pool.load_state_dict(state["pools"][k], self.rt.device)
