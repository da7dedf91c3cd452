"""UNSB's training step (Kim et al. 2024), in the authors' order (models/sb_model.py): a random step t of the
bridge; the bridge simulated to t without gradients from photos, from a second batch of photos and from the
Monets; the PatchGAN D, then the energy network E, then the generator and the PatchNCE heads on

    adversarial + lambda_sb x (transport - entropy) + lambda_nce x PatchNCE.

The loss terms are the functions below, written on tensors so that a test can hold each to the formula. The
energy and transport terms are computed in float32 on purpose: the entropy estimate is a log-sum-exp over
every patch of the batch and is squared in E's loss, beyond fp16's range as soon as E grows confident, and the
transport cost is a mean of squares of differences that start small.

The heads ("F") are an auxiliary network of the Trainer base, as in CUT. D and E live in one module ("D",
networks.Critics), trained by one optimiser and one DDP forward. DiffAugment (train.diffaugment) reaches D's
inputs as in every family, never E's: E compares a state with its own prediction, which a shift would undo.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ...losses import AdversarialLoss
from ...nce import nce_per_image, sample_positions
from ...trainer import Losses, PhotoTrainer
from .networks import BridgeGenerator, bridge_step, make_critics, make_heads


def wide(x: torch.Tensor) -> torch.Tensor:
    """`x` in float32 at least (a test's float64 stays float64)."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def energy_loss(positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
    """E's loss: -mean E(pair with itself) + L + L^2, L = log-sum-exp of E(pair beside another pair) over
    every patch of the batch (the square keeps L near 0, E's normalisation)."""
    lse = torch.logsumexp(wide(negative).flatten(), dim=0)
    return -wide(positive).mean() + lse + lse**2


def sb_loss(positive: torch.Tensor, negative: torch.Tensor, xt: torch.Tensor, x1: torch.Tensor, t: int,
            steps: int, tau: float) -> torch.Tensor:
    """The Schrodinger-bridge term at step t: tau x mean (x_t - x_1)^2 (the transport cost) - (steps - t) /
    steps x tau x (mean E(pair with itself) - log-sum-exp E(pair beside another)) (the entropy of the
    coupling, estimated by E)."""
    entropy = wide(positive).mean() - torch.logsumexp(wide(negative).flatten(), dim=0)
    transport = (wide(xt) - wide(x1)).pow(2).mean()
    return -(steps - t) / steps * tau * entropy + tau * transport


def pairs(xt: torch.Tensor, x1: torch.Tensor, xt2: torch.Tensor, x1_2: torch.Tensor) -> torch.Tensor:
    """E's inputs: each pair (x_t, x_1) with itself, then beside the other chain's pair (12 channels each)."""
    own = torch.cat([xt, x1], dim=1)
    return torch.cat([torch.cat([own, own], dim=1), torch.cat([own, torch.cat([xt2, x1_2], dim=1)], dim=1)])


class UNSBTrainer(PhotoTrainer):
    """One bridge generator G, the critics D (PatchGAN and energy network), the projection heads F."""

    generators = ("G",)
    discriminators = ("D",)
    auxiliaries = ("F",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.adversarial = AdversarialLoss("lsgan")  # the authors' gan_mode

    def make_discriminator(self) -> nn.Module:
        return make_critics(self.train, self.settings)

    def make_auxiliary(self, name: str) -> nn.Module:
        return make_heads(self.nets["G"], self.train, self.settings)

    @torch.no_grad()
    def simulate(self, x0: torch.Tensor, t: int) -> torch.Tensor:
        """x_t of the bridge from x0 under the current G (its raw weights, outside DDP), as training samples
        it: the prediction of each step's end, then the bridge towards it."""
        G: BridgeGenerator = self.nets["G"]
        s, xt = self.settings, x0
        for i in range(t):
            idx = torch.full((x0.shape[0],), i, device=x0.device, dtype=torch.long)
            with self.rt.autocast():
                x1 = G(xt, idx, G.noise(x0.shape[0], x0))
            xt = bridge_step(xt, x1.float(), i, s.steps, s.tau, torch.randn_like(xt))
        return xt

    def train_step(self, batch: dict[str, torch.Tensor], progress: float) -> Losses:
        s, adv, G = self.settings, self.adversarial, self.train_nets["G"]
        photo, photo2 = batch["photo"].chunk(2)
        monet, n = batch["monet"], batch["monet"].shape[0]
        t = int(torch.randint(s.steps, ()))
        start = torch.cat([photo, photo2, monet] if s.nce_idt else [photo, photo2])
        xt = self.simulate(start, t)
        idx = torch.full((n,), t, device=photo.device, dtype=torch.long)
        z = self.nets["G"].noise(xt.shape[0], xt)
        with self.rt.autocast():
            x1 = G(xt, idx.repeat(xt.shape[0] // n), z)
        fake, fake2 = x1[:n], x1[n:2 * n]

        held = fake.detach(), fake2.detach()
        with self.rt.autocast():
            logits, energy = self.train_nets["D"](idx, self.d_input(torch.cat([monet, held[0]]), progress),
                                                  pairs(xt[:n], held[0], xt[n:2 * n], held[1]))
        loss_d = adv.d_loss(*logits.chunk(2))
        loss_e = energy_loss(*energy.chunk(2))
        self.update(loss_d + loss_e, "D")  # D's and E's parameters are apart: the steps of two optimisers

        self.freeze_discriminators(True)
        critics = self.nets["D"]
        with self.rt.autocast():
            g_adv = adv.g_loss(critics.patch(self.d_input(fake, progress), idx))
            energy = critics.energy(pairs(xt[:n], fake, xt[n:2 * n], fake2), idx.repeat(2))
        positive, negative = energy.chunk(2)
        sb = sb_loss(positive, negative, xt[:n], fake, t, s.steps, s.tau)
        nce, nce_idt = self.patch_nce(photo, monet, fake, x1[2 * n:] if s.nce_idt else None)
        loss_nce = (nce + nce_idt) / 2 if s.nce_idt else nce
        self.update(g_adv + s.lambda_sb * sb + s.lambda_nce * loss_nce, "G")
        self.freeze_discriminators(False)
        self.end_step()
        return {"G_adv": g_adv.detach(), "SB": sb.detach(), "NCE": nce.detach(), "NCE_idt": nce_idt.detach(),
                "D": loss_d.detach(), "E": loss_e.detach()}

    def patch_nce(self, photo: torch.Tensor, monet: torch.Tensor, fake: torch.Tensor,
                  idt: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """PatchNCE between each photo and its prediction (and each Monet and its own), both encoded at step 0
        with one noise, as the authors do; (photo term, Monet term or 0)."""
        s, G, n = self.settings, self.train_nets["G"], photo.shape[0]
        real = torch.cat([photo, monet]) if idt is not None else photo
        out = torch.cat([fake, idt]) if idt is not None else fake
        zero = torch.zeros(real.shape[0], device=real.device, dtype=torch.long)
        z = self.nets["G"].noise(real.shape[0], real)
        with self.rt.autocast():
            found = G(out, zero, z, s.layers)
            positions = sample_positions(found, s.num_patches)
            queries = self.train_nets["F"](found, positions)
            with torch.no_grad():  # the keys get no gradient: G and F as they are, outside DDP
                keys = self.nets["F"](self.nets["G"](real, zero, z, s.layers), positions)
        per_image = nce_per_image(queries, keys, s.nce_t)
        idt_term = per_image[n:].mean() if idt is not None else torch.zeros((), device=real.device)
        return per_image[:n].mean(), idt_term

    def translate(self, g: nn.Module, photos: torch.Tensor) -> torch.Tensor:
        """The whole bridge, its noise from train.seed (the grids and MiFID selection never move the training
        RNG, and show the same noise each time)."""
        noise = torch.Generator(device=photos.device).manual_seed(self.train.seed)
        return g.sample(photos, self.settings.steps, noise)
