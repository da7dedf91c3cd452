"""What every family's training shares, and what each must implement: the `Trainer` base class (torch).

A trainer owns its networks, optimisers, LR schedules and grad scaler, and answers:
`train_step(batch, progress)` -> the step's losses as tensors (read by the loop only every log_every
steps, so the step never waits on the device); `sample_inputs`/`sample` for the progress grids;
`inference()` for scoring; `state_dict`/`load_state_dict` (shared by all ranks) and
`rank_state`/`load_rank_state` (each rank's own, e.g. CycleGAN's image pools).

A subclass implements the abstract methods below and names its networks in `generators` and
`discriminators`; the first generator is the one `inference` uses. Optimiser "G" covers the generators,
"D" the discriminators.
"""
from __future__ import annotations

import contextlib
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from itertools import chain
from typing import Any, ClassVar

import torch
from torch import nn

from ...config import TrainConfig
from ..banks import ImageBank
from ..diffaugment import diff_augment, parse_policy
from ..runtime import Runtime
from .base import Family

Losses = dict[str, torch.Tensor]


def linear_decay(total_steps: int, decay_start: float) -> Callable[[int], float]:
    """LR factor: 1 until decay_start x total_steps, then linearly down to 0 at the last step (CycleGAN)."""
    start = int(total_steps * decay_start)
    return lambda step: 1.0 if step < start else max(0.0, (total_steps - step) / max(1, total_steps - start))


class Trainer(ABC):
    """Networks (raw for weights, wrapped for training), optimisers, schedules, scaler; the step is the
    family's."""

    generators: ClassVar[tuple[str, ...]]
    discriminators: ClassVar[tuple[str, ...]]
    instance_noise: float = 0.0  # std of the noise added to D's inputs at the start, fading to 0
    extra_inputs: tuple = ()  # Family.extra_inputs(cfg), set by the loop after __init__ (most: none)

    def __init__(self, family: Family, t: TrainConfig, settings: Any, rt: Runtime, total_steps: int) -> None:
        self.family, self.t, self.s, self.rt = family, t, settings, rt
        self.nets: dict[str, nn.Module] = {n: rt.place(self.make_generator()) for n in self.generators}
        self.nets.update({n: rt.place(self.make_discriminator()) for n in self.discriminators})
        self.train_nets = {n: rt.wrap(net) for n, net in self.nets.items()}
        scale = t.lr_factor(rt.world_size)
        self.optimizers = {
            "G": self.make_optimizer("G", chain(*(self.nets[n].parameters() for n in self.generators)),
                                     t.lr * scale),
            "D": self.make_optimizer("D", chain(*(self.nets[n].parameters() for n in self.discriminators)),
                                     t.lr_d * scale)}
        self.schedulers = {k: torch.optim.lr_scheduler.LambdaLR(opt, linear_decay(total_steps, t.decay_start))
                           for k, opt in self.optimizers.items()}
        self.scaler = rt.grad_scaler()
        self.policy = parse_policy(t.diffaugment)

    # -- what a family implements -----------------------------------------------------------------------
    def make_generator(self) -> nn.Module:
        """One generator, freshly initialised: the family's `generator` function, unless overridden."""
        return self.family.build_generator(self.t, self.s)

    @abstractmethod
    def make_discriminator(self) -> nn.Module:
        """One discriminator (or critic), freshly initialised."""

    @abstractmethod
    def train_step(self, batch: dict[str, torch.Tensor], progress: float) -> Losses:
        """One step on `batch` (bank -> images, as many as Family.images_per_step says); progress in [0,
        1)."""

    @abstractmethod
    def sample_inputs(self, banks: dict[str, ImageBank]) -> torch.Tensor:
        """The fixed inputs of every progress grid (drawing them must not move the training RNG)."""

    @abstractmethod
    def sample(self, inputs: torch.Tensor) -> tuple[torch.Tensor, int]:
        """A grid of what the generator makes of `inputs` now: (images in [-1, 1], columns)."""

    @abstractmethod
    def translate(self, g: nn.Module, photos: torch.Tensor) -> torch.Tensor:
        """The generator's output for a batch of photos (a noise family ignores them but for their number)."""

    def make_optimizer(self, which: str, params: Iterable[nn.Parameter], lr: float) -> torch.optim.Optimizer:
        """Optimiser "G" or "D" over `params` at `lr` (train.lr or train.lr_d, scaled for the global batch):
        Adam with train.beta1/beta2 unless a family overrides this (WGAN: RMSprop)."""
        return self.rt.adam(params, lr, (self.t.beta1, self.t.beta2))

    # -- shared machinery --------------------------------------------------------------------------------
    def d_input(self, x: torch.Tensor, progress: float) -> torch.Tensor:
        """What D sees: DiffAugment, then instance noise (Sonderby et al. 2016) fading to zero over
        training."""
        x = diff_augment(x, self.policy)
        std = self.instance_noise * max(0.0, 1.0 - progress)
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
        """D's weights need no gradients while G learns; G's step calls the raw D, outside DDP, for the same
        reason."""
        for n in self.discriminators:
            self.nets[n].requires_grad_(not frozen)

    def lr(self) -> float:
        return self.optimizers["G"].param_groups[0]["lr"]

    @contextlib.contextmanager
    def inference(self) -> Iterator[Callable[[torch.Tensor], torch.Tensor]]:
        """A function photos -> Monets (float32, [-1, 1]) with the generator in eval mode, restored
        afterwards."""
        g = self.nets[self.generators[0]]
        g.eval()
        try:
            with torch.no_grad(), self.rt.autocast():
                yield lambda x: self.translate(g, x).float()
        finally:
            g.train()

    def generator_states(self) -> dict[str, Any]:
        """The generators' weights alone (best.pt)."""
        return {n: net.state_dict() for n, net in self.nets.items() if n in self.generators}

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

    def load_rank_state(self, state: dict[str, Any]) -> None:  # noqa: B027 - a family without rank state
        pass


class NoiseTrainer(Trainer):
    """What every noise -> image family's trainer shares: its noise (settings.z_dim long), the fixed noise of
    the progress grids, the grids and `translate`. A conditional family overrides `sample`/`translate`."""

    grid_size: ClassVar[int] = 16  # fixed noise vectors in a progress grid

    def noise(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.s.z_dim, device=self.rt.device)

    def sample_inputs(self, banks: dict[str, ImageBank]) -> torch.Tensor:
        """Fixed noise (its own seeded generator: drawing it must not move the training RNG)."""
        gen = torch.Generator().manual_seed(self.t.seed)
        return torch.randn(self.grid_size, self.s.z_dim, generator=gen).to(self.rt.device)

    def sample(self, z: torch.Tensor) -> tuple[torch.Tensor, int]:
        with self.inference():
            return self.nets["G"](z).float(), 4

    def translate(self, g: nn.Module, photos: torch.Tensor) -> torch.Tensor:
        return g(self.noise(photos.shape[0]))

