"""The conditional GAN's training step: photos (label 0) and Monets (label 1) in one batch; the generator
makes a fake for each real image's label, the discriminator judges (image, label) pairs."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...losses import AdversarialLoss
from ...trainer import Losses, NoiseTrainer
from .networks import MONET_LABEL, PHOTO_LABEL, make_conditional_generator, make_discriminator


class HingeLoss:
    """The hinge loss of SN-GAN and the projection discriminator (Lim & Ye 2017; Miyato et al. 2018)."""

    def d_loss(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return F.relu(1.0 - real.float()).mean() + F.relu(1.0 + fake.float()).mean()

    def g_loss(self, fake: torch.Tensor) -> torch.Tensor:
        return -fake.float().mean()


def labels(n_photos: int, n_monets: int, device: torch.device) -> torch.Tensor:
    return torch.tensor([PHOTO_LABEL] * n_photos + [MONET_LABEL] * n_monets, dtype=torch.long, device=device)


class CGANTrainer(NoiseTrainer):
    """Mirza & Osindero 2014 conditioned on the domain; hinge, lsgan or bce losses."""

    grid_size = 8  # fixed noise vectors, shown under both labels
    generators = ("G",)
    discriminators = ("D",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        loss = self.settings.loss
        self.adversarial = HingeLoss() if loss == "hinge" else AdversarialLoss(loss)

    def make_generator(self) -> nn.Module:
        return make_conditional_generator(self.train, self.settings)

    def make_discriminator(self) -> nn.Module:
        return make_discriminator(self.train, self.settings)

    def train_step(self, batch: dict[str, torch.Tensor], progress: float) -> Losses:
        adv, D = self.adversarial, self.train_nets["D"]
        photos = batch.get("photo", batch["monet"][:0])
        real = torch.cat([photos, batch["monet"]])
        y = labels(photos.shape[0], batch["monet"].shape[0], real.device)
        with torch.no_grad(), self.rt.autocast():
            fake = self.nets["G"](self.noise(real.shape[0]), y)
        with self.rt.autocast():
            loss_D = adv.d_loss(D(self.d_input(real, progress), y), D(self.d_input(fake, progress), y))
        self.update(loss_D, "D")
        self.freeze_discriminators(True)
        with self.rt.autocast():
            fake = self.train_nets["G"](self.noise(real.shape[0]), y)
            loss_G = adv.g_loss(self.nets["D"](self.d_input(fake, progress), y))
        self.update(loss_G, "G")
        self.freeze_discriminators(False)
        self.end_step()
        return {"G": loss_G.detach(), "D": loss_D.detach()}

    def sample(self, z: torch.Tensor) -> tuple[torch.Tensor, int]:
        """The same noise under both labels: a photo row above a Monet row."""
        n = z.shape[0]
        with self.inference():
            g = self.sampling_net("G")
            return torch.cat([g(z, labels(n, 0, z.device)), g(z, labels(0, n, z.device))]).float(), n

    def translate(self, g: nn.Module, photos: torch.Tensor) -> torch.Tensor:
        n = photos.shape[0]
        return g(self.noise(n), labels(0, n, photos.device))
