"""Model families: what one training step of CycleGAN or DCGAN does. The loop in train.py runs either.

A family owns its networks, optimisers, LR schedules and grad scaler, and answers:
`train_step(batch, progress)` -> the step's losses as tensors (read by the loop only every log_every
steps, so the step never waits on the device); `sample_inputs`/`sample` for the progress grids;
`inference()` for scoring; `state_dict`/`load_state_dict` (shared by all ranks) and
`rank_state`/`load_rank_state` (each rank's own, e.g. CycleGAN's image pools).
"""
from __future__ import annotations

import contextlib
import random
import warnings
from collections.abc import Callable, Iterator
from itertools import chain
from typing import Any

import torch
from torch import nn

from ...config import TrainConfig
from ..banks import ImageBank
from ..losses import AdversarialLoss, gradient_penalty, reconstruction_loss
from ..models import make_discriminator, make_generator
from ..models.diffaugment import diff_augment, parse_policy
from ..runtime import Runtime

Losses = dict[str, torch.Tensor]


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


def linear_decay(total_steps: int, decay_start: float) -> Callable[[int], float]:
    """LR factor: 1 until decay_start x total_steps, then linearly down to 0 at the last step (CycleGAN)."""
    start = int(total_steps * decay_start)
    return lambda step: 1.0 if step < start else max(0.0, (total_steps - step) / max(1, total_steps - start))


class Family:
    """What every family shares: networks (raw for weights, wrapped for training), optimisers, schedules, scaler."""

    generators: tuple[str, ...]
    discriminators: tuple[str, ...]

    def __init__(self, t: TrainConfig, rt: Runtime, total_steps: int) -> None:
        self.t, self.rt = t, rt
        self.nets: dict[str, nn.Module] = {n: rt.place(make_generator(t)) for n in self.generators}
        self.nets.update({n: rt.place(make_discriminator(t)) for n in self.discriminators})
        self.train_nets = {n: rt.wrap(net) for n, net in self.nets.items()}
        betas, scale = (t.beta1, t.beta2), t.lr_factor(rt.world_size)
        self.optimizers = {
            "G": rt.adam(chain(*(self.nets[n].parameters() for n in self.generators)), t.lr * scale, betas),
            "D": rt.adam(chain(*(self.nets[n].parameters() for n in self.discriminators)), t.lr_d * scale, betas)}
        self.schedulers = {k: torch.optim.lr_scheduler.LambdaLR(opt, linear_decay(total_steps, t.decay_start))
                           for k, opt in self.optimizers.items()}
        self.scaler = rt.grad_scaler()
        self.policy = parse_policy(t.diffaugment)

    def d_input(self, x: torch.Tensor, progress: float) -> torch.Tensor:
        """What D sees: DiffAugment, then instance noise (Sonderby et al. 2016) fading to zero over training."""
        x = diff_augment(x, self.policy)
        std = self.t.instance_noise * max(0.0, 1.0 - progress)
        return x + std * torch.randn_like(x) if std > 0 else x

    def update(self, loss: torch.Tensor, which: str) -> None:
        opt = self.optimizers[which]
        opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(opt)

    def end_step(self) -> None:
        self.scaler.update()
        with warnings.catch_warnings():
            # fp16's scaler skips an optimizer step whose gradients overflowed; torch then warns that the
            # schedule stepped before the optimizer, which is expected here and changes nothing.
            warnings.filterwarnings("ignore", "Detected call of `lr_scheduler.step", UserWarning)
            for sched in self.schedulers.values():
                sched.step()

    def freeze_discriminators(self, frozen: bool) -> None:
        """D's weights need no gradients while G learns; G's step calls the raw D, outside DDP, for the same reason."""
        for n in self.discriminators:
            self.nets[n].requires_grad_(not frozen)

    def lr(self) -> float:
        return self.optimizers["G"].param_groups[0]["lr"]

    @contextlib.contextmanager
    def inference(self) -> Iterator[Callable[[torch.Tensor], torch.Tensor]]:
        """A function photos -> Monets (float32, [-1, 1]) with the generator in eval mode, restored afterwards."""
        g = self.nets[self.generators[0]]
        g.eval()
        try:
            with torch.no_grad(), self.rt.autocast():
                yield lambda x: self.translate(g, x).float()
        finally:
            g.train()

    @staticmethod
    def images_per_step(t: TrainConfig) -> dict[str, int]:
        """Images drawn from each bank per step and rank (known before the family is built: it sets the epoch)."""
        raise NotImplementedError

    def translate(self, g: nn.Module, photos: torch.Tensor) -> torch.Tensor:
        """The generator's output for a batch of photos (DCGAN ignores them but for their number)."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {"models": {n: net.state_dict() for n, net in self.nets.items()},
                "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
                "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
                "scaler": self.scaler.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for n, net in self.nets.items():
            net.load_state_dict(state["models"][n])
        for k in self.optimizers:
            self.optimizers[k].load_state_dict(state["optimizers"][k])
            self.schedulers[k].load_state_dict(state["schedulers"][k])
        self.scaler.load_state_dict(state["scaler"])

    def rank_state(self) -> dict[str, Any]:
        return {}

    def load_rank_state(self, state: dict[str, Any]) -> None:
        pass


class CycleGAN(Family):
    """Zhu et al. 2017: two generators, two PatchGAN discriminators, LSGAN + cycle + identity losses."""

    generators = ("G_photo2monet", "G_monet2photo")
    discriminators = ("D_monet", "D_photo")
    def __init__(self, t: TrainConfig, rt: Runtime, total_steps: int) -> None:
        super().__init__(t, rt, total_steps)
        self.adversarial = AdversarialLoss("lsgan")
        self.pools = {"monet": ImagePool(t.pool_size), "photo": ImagePool(t.pool_size)}

    @staticmethod
    def images_per_step(t: TrainConfig) -> dict[str, int]:
        return {"monet": t.batch_size, "photo": t.batch_size}

    def train_step(self, batch: dict[str, torch.Tensor], progress: float) -> Losses:
        t, adv = self.t, self.adversarial
        monet, photo = batch["monet"], batch["photo"]
        G_photo2monet, G_monet2photo = self.train_nets["G_photo2monet"], self.train_nets["G_monet2photo"]
        n = photo.shape[0]
        self.freeze_discriminators(True)
        with self.rt.autocast():
            # Each generator sees its translation input and its identity input as one batch (instance norm
            # keeps images independent), so DDP sees one forward per generator and pass.
            use_identity = t.lambda_identity > 0
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
        loss_G = g_adv + t.lambda_cycle * cycle + t.lambda_cycle * t.lambda_identity * identity
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

    def sample_inputs(self, banks: dict[str, ImageBank], n: int = 8) -> torch.Tensor:
        """The first n photos, whole: the grid shows what generate will make of them."""
        return banks["photo"].full(torch.arange(min(n, len(banks["photo"])), device=self.rt.device))

    def sample(self, photos: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Photo and its Monet side by side, two pairs per row."""
        with self.inference() as translate:
            monets = torch.cat([translate(p) for p in photos.split(4)])
        return torch.stack([photos, monets], dim=1).flatten(0, 1), 4

    def translate(self, g: nn.Module, photos: torch.Tensor) -> torch.Tensor:
        return g(photos)

    def rank_state(self) -> dict[str, Any]:
        return {"pools": {k: p.state_dict() for k, p in self.pools.items()}}

    def load_rank_state(self, state: dict[str, Any]) -> None:
        for k, pool in self.pools.items():
            pool.load_state_dict(state["pools"][k], self.rt.device)


class DCGAN(Family):
    """Radford et al. 2016, with the options of the DCGAN art experiments: BCE with one-sided label smoothing,
    LSGAN, or WGAN-GP (n_critic critic steps per generator step); separate G/D learning rates."""

    generators = ("G",)
    discriminators = ("D",)

    def __init__(self, t: TrainConfig, rt: Runtime, total_steps: int) -> None:
        super().__init__(t, rt, total_steps)
        self.adversarial = AdversarialLoss(t.loss, real_label=t.label_smoothing if t.loss == "bce" else 1.0)

    @staticmethod
    def images_per_step(t: TrainConfig) -> dict[str, int]:
        return {"monet": t.batch_size * t.n_critic}  # a fresh real batch for each critic step

    def noise(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.t.z_dim, device=self.rt.device)

    def train_step(self, batch: dict[str, torch.Tensor], progress: float) -> Losses:
        t, adv = self.t, self.adversarial
        D = self.train_nets["D"]
        losses: Losses = {}
        for real in batch["monet"].chunk(t.n_critic):
            with torch.no_grad(), self.rt.autocast():
                fake = self.nets["G"](self.noise(real.shape[0]))
            self.optimizers["D"].zero_grad(set_to_none=True)
            if t.loss == "wgan-gp":
                # Backward through the raw critic first: DDP cannot differentiate twice, but it averages the
                # gradients already accumulated in .grad when the main loss goes backward through it below.
                gp = gradient_penalty(lambda x: self.nets["D"](self.d_input(x, progress)), real, fake)
                self.scaler.scale(t.gp_weight * gp).backward()
                losses["gp"] = gp.detach()
            with self.rt.autocast():
                loss_D = adv.d_loss(D(self.d_input(real, progress)), D(self.d_input(fake, progress)))
            self.scaler.scale(loss_D).backward()
            self.scaler.step(self.optimizers["D"])
            self.scaler.update()  # fp16's scaler allows one step per optimizer between updates
        losses["D"] = loss_D.detach()
        self.freeze_discriminators(True)
        with self.rt.autocast():
            fake = self.train_nets["G"](self.noise(batch["monet"].shape[0] // t.n_critic))
            loss_G = adv.g_loss(self.nets["D"](self.d_input(fake, progress)))
        self.update(loss_G, "G")
        self.freeze_discriminators(False)
        self.end_step()
        return {"G": loss_G.detach(), **losses}

    def sample_inputs(self, banks: dict[str, ImageBank], n: int = 16) -> torch.Tensor:
        """Fixed noise (its own seeded generator: drawing it must not move the training RNG)."""
        gen = torch.Generator().manual_seed(self.t.seed)
        return torch.randn(n, self.t.z_dim, generator=gen).to(self.rt.device)

    def sample(self, z: torch.Tensor) -> tuple[torch.Tensor, int]:
        with self.inference():
            return self.nets["G"](z).float(), 4

    def translate(self, g: nn.Module, photos: torch.Tensor) -> torch.Tensor:
        return g(self.noise(photos.shape[0]))


FAMILIES: dict[str, type[Family]] = {"cyclegan": CycleGAN, "dcgan": DCGAN}
