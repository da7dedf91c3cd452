"""ProGAN's training step (Karras et al. 2018): at the phase `progress` falls in (see schedule.py), one
critic step with WGAN-GP and the drift term, then one generator step, each on that phase's layers and at
its batch; real images are averaged down to the phase's resolution and, during a fade-in, blended with
their lower-resolution version as the networks blend theirs. Adam (0, 0.99) at progan.lr, constant."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ....config import LR_SCALING
from ...losses import AdversarialLoss, gradient_penalty
from ...trainer import Losses, NoiseTrainer
from .networks import fade, make_critic
from .schedule import Phase, Position, Schedule


class ProGANTrainer(NoiseTrainer):
    generators = ("G",)
    discriminators = ("D",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.schedule = Schedule(self.settings)
        self.adversarial = AdversarialLoss("wgan-gp")
        self.at = self.schedule.at(0.0)  # where the last step stood (the progress grids show that phase)
        self._phase: tuple[Phase, dict[str, nn.Module]] | None = None

    def make_discriminator(self) -> nn.Module:
        return make_critic(self.train, self.settings)

    def make_optimizer(self, which: str, params: Iterable[nn.Parameter], lr: float) -> torch.optim.Optimizer:
        """Adam (0, 0.99) at progan.lr for both networks (the paper's), scaled for the number of processes
        as train.lr_scaling says (progan.batch is per process)."""
        scale = LR_SCALING[self.train.lr_scaling](self.rt.world_size)
        return self.rt.adam(params, self.settings.lr * scale, (0.0, 0.99))

    def set_lr_factor(self, factor: float) -> None:
        """Ignored: the rate stays constant, as in the paper (the plan's decay from train.decay_start would
        slow the last, largest phases most)."""

    # -- the loop's questions ----------------------------------------------------------------------------
    def position(self, progress: float) -> str:
        return str(self.schedule.at(progress))

    def log_fields(self, progress: float) -> dict[str, float]:
        at = self.schedule.at(progress)
        return {"resolution": at.phase.resolution, "alpha": round(at.alpha, 4)}

    # -- the step ----------------------------------------------------------------------------------------
    def phase_nets(self, phase: Phase) -> dict[str, nn.Module]:
        """The phase's layers of G and D, raw ("G", "D") and wrapped for training ("G_train", "D_train"),
        built once per phase: DDP needs every parameter it wraps to get a gradient each step."""
        if self._phase is None or self._phase[0] != phase:
            raw = {n: self.nets[n].phase(phase.resolution, phase.fading) for n in ("G", "D")}
            self._phase = phase, {**raw, **{f"{n}_train": self.rt.wrap(net) for n, net in raw.items()}}
        return self._phase[1]

    def alpha(self, at: Position) -> torch.Tensor | None:
        """The fade-in's weight as a tensor (None when stable): a compiled forward does not specialise on
        it."""
        return torch.tensor(at.alpha, device=self.rt.device) if at.phase.fading else None

    @staticmethod
    def real_images(images: torch.Tensor, resolution: int, alpha: torch.Tensor | None) -> torch.Tensor:
        """Real images as the phase sees them: area-averaged down to its resolution, and during a fade-in
        blended with their half-resolution version (nearest-upsampled) as G's output is."""
        factor = images.shape[-1] // resolution
        x = F.avg_pool2d(images, factor) if factor > 1 else images
        return x if alpha is None else fade(F.interpolate(F.avg_pool2d(x, 2), scale_factor=2.0), x, alpha)

    def train_step(self, batch: dict[str, torch.Tensor], progress: float) -> Losses:
        s, adv, self.at = self.settings, self.adversarial, self.schedule.at(progress)
        nets, alpha = self.phase_nets(self.at.phase), self.alpha(self.at)
        real = self.real_images(batch["monet"][:self.at.phase.batch], self.at.phase.resolution, alpha)
        with torch.no_grad(), self.rt.autocast():
            fake = nets["G"](self.noise(real.shape[0]), alpha)
        self.optimizers["D"].zero_grad(set_to_none=True)
        # Through the raw critic first (DDP cannot differentiate twice); DDP averages it with the loss below.
        gp = gradient_penalty(lambda x: nets["D"](self.d_input(x, progress), alpha), real, fake)
        self.scaler.scale(s.gp_weight * gp).backward()
        with self.rt.autocast():
            d_real = nets["D_train"](self.d_input(real, progress), alpha).float()
            d_fake = nets["D_train"](self.d_input(fake, progress), alpha).float()
            loss_D = adv.d_loss(d_real, d_fake) + s.drift * d_real.pow(2).mean()
        self.scaler.scale(loss_D).backward()
        self.scaler.step(self.optimizers["D"])
        self.scaler.update()  # fp16's scaler allows one step per optimizer between updates
        self.freeze_discriminators(True)
        with self.rt.autocast():
            fake = nets["G_train"](self.noise(real.shape[0]), alpha)
            loss_G = adv.g_loss(nets["D"](self.d_input(fake, progress), alpha))
        self.update(loss_G, "G")
        self.freeze_discriminators(False)
        self.end_step()
        return {"G": loss_G.detach(), "D": loss_D.detach(), "gp": gp.detach()}

    # -- progress grids ----------------------------------------------------------------------------------
    def sample(self, z: torch.Tensor) -> tuple[torch.Tensor, int]:
        """The fixed noise at the last step's phase, enlarged (nearest) to max_size so the grids line up."""
        with self.inference():
            G = self.sampling_net("G").phase(self.at.phase.resolution, self.at.phase.fading)
            images = G(z, self.alpha(self.at)).float()
        return F.interpolate(images, size=self.settings.max_size), 4
