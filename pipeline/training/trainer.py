"""What every family's training shares, and what each must implement: the `Trainer` base class (torch).

A trainer owns its networks, optimisers and grad scaler, and answers:
`train_step(batch, progress)` -> the step's losses as tensors (read by the loop only every log_every
steps, so the step never waits on the device); `sample_inputs`/`sample` for the progress grids;
`inference()` for scoring; `state_dict`/`load_state_dict` (shared by all ranks) and
`rank_state`/`load_rank_state` (each rank's own, e.g. CycleGAN's image pools).

A subclass implements the abstract methods below and names its networks in `generators` and
`discriminators`; the first generator is the one `inference` uses. Optimiser "G" covers the generators,
"D" the discriminators. Networks that learn with the generators but take no part in generating (CUT's
projection heads) are named in `auxiliaries` and made by `make_auxiliary`: optimiser "G" trains them, DDP
wraps them and checkpoints keep them like the rest, without an EMA average. The learning rate is set by
the loop before each step (`set_lr_factor`, from the run's plan), so a trainer keeps no schedule of its own.

`PhotoTrainer` (photo -> Monet families) and `NoiseTrainer` (noise -> Monet) add what their kind shares.

With train.ema > 0 every generator has an exponential moving average of its weights (Yazici et al. 2019,
"The Unusual Effectiveness of Averaging in GAN Training"; Karras et al. 2018 sample ProGAN this way):
averaged weights give better and steadier samples than the last step's. The averages live on the device,
are updated after every step, saved in checkpoints, and are what `sampling_net`, the grids, MiFID
selection and generate use.
"""
from __future__ import annotations

import contextlib
import copy
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from itertools import chain
from typing import Any, ClassVar

import torch
from torch import nn

from ..config import TrainConfig
from .banks import ImageBank
from .diffaugment import diff_augment, parse_policy
from .family import Family
from .runtime import Runtime

Losses = dict[str, torch.Tensor]


def ema_decay(decay: float, updates: int) -> float:
    """The averaging weight of update number `updates` (1, 2, ...): train.ema, but lower while few updates
    have been made (TensorFlow's ExponentialMovingAverage with num_updates), so that a short run's average
    is not mostly its random initial weights."""
    return min(decay, (1 + updates) / (10 + updates))


class Trainer(ABC):
    """Networks (raw for weights, wrapped for training), optimisers at the rate the loop sets, scaler; the
    step is the family's."""

    generators: ClassVar[tuple[str, ...]]
    discriminators: ClassVar[tuple[str, ...]]
    auxiliaries: ClassVar[tuple[str, ...]] = ()  # trained with the generators, never used to generate
    instance_noise: float = 0.0  # std of the noise added to D's inputs at the start, fading to 0
    extra_inputs: tuple = ()  # Family.extra_inputs(cfg), set by the loop after __init__ (most: none)

    def __init__(self, family: Family, train: TrainConfig, settings: Any, rt: Runtime) -> None:
        self.family, self.train, self.settings, self.rt = family, train, settings, rt
        self.nets: dict[str, nn.Module] = {n: rt.place(self.make_generator()) for n in self.generators}
        self.nets.update({n: rt.place(self.make_discriminator()) for n in self.discriminators})
        self.nets.update({n: rt.place(self.make_auxiliary(n)) for n in self.auxiliaries})
        self.train_nets = {n: rt.wrap(net) for n, net in self.nets.items()}
        scale = train.lr_factor(rt.world_size)
        learn_with_g = (*self.generators, *self.auxiliaries)
        self.optimizers = {
            "G": self.make_optimizer("G", chain(*(self.nets[n].parameters() for n in learn_with_g)),
                                     train.lr * scale),
            "D": self.make_optimizer("D", chain(*(self.nets[n].parameters() for n in self.discriminators)),
                                     train.lr_d * scale)}
        self.base_lrs = {k: [g["lr"] for g in opt.param_groups] for k, opt in self.optimizers.items()}
        self.ema = {n: copy.deepcopy(self.nets[n]).requires_grad_(False).eval() for n in self.generators
                    } if train.ema > 0 else {}
        self.ema_updates = 0
        self.scaler = rt.grad_scaler()
        self.policy = parse_policy(train.diffaugment)

    # -- what a family implements -----------------------------------------------------------------------
    def make_generator(self) -> nn.Module:
        """One generator, freshly initialised: the family's `generator` function, unless overridden."""
        return self.family.build_generator(self.train, self.settings)

    @abstractmethod
    def make_discriminator(self) -> nn.Module:
        """One discriminator (or critic), freshly initialised."""

    def make_auxiliary(self, name: str) -> nn.Module:
        """The network `name` of `auxiliaries`, freshly initialised (called once, after the generators and
        discriminators are built, so it may read their shapes from `self.nets`)."""
        raise NotImplementedError(f"{type(self).__name__} names the auxiliary network {name!r}: make it here")

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
        return self.rt.adam(params, lr, (self.train.beta1, self.train.beta2))

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
        if self.ema:
            self.update_ema()

    @torch.no_grad()
    def update_ema(self) -> None:
        """Move each generator's average towards its current weights (buffers, e.g. batch norm's running
        statistics, are copied: they are averages already)."""
        self.ema_updates += 1
        weight = 1.0 - ema_decay(self.train.ema, self.ema_updates)
        for n, avg in self.ema.items():
            net = self.nets[n]
            torch._foreach_lerp_(list(avg.parameters()), list(net.parameters()), weight)
            for b_avg, b in zip(avg.buffers(), net.buffers(), strict=True):
                b_avg.copy_(b)

    def set_lr_factor(self, factor: float) -> None:
        """Every optimiser's learning rate at `factor` x its initial one (the plan's schedule)."""
        for k, opt in self.optimizers.items():
            for group, base in zip(opt.param_groups, self.base_lrs[k], strict=True):
                group["lr"] = base * factor

    def position(self, progress: float) -> str:
        """Where training stands besides the step, for the resume line (ProGAN: "64x64, fade-in 40%")."""
        return ""

    def log_fields(self, progress: float) -> dict[str, float]:
        """Columns of the loss log besides the losses (ProGAN: the resolution and fade-in)."""
        return {}

    def freeze_discriminators(self, frozen: bool) -> None:
        """D's weights need no gradients while G learns; G's step calls the raw D, outside DDP, for the same
        reason."""
        for n in self.discriminators:
            self.nets[n].requires_grad_(not frozen)

    def lr(self) -> float:
        return self.optimizers["G"].param_groups[0]["lr"]

    def sampling_net(self, name: str) -> nn.Module:
        """The generator `name` as samples are drawn from it: its average when train.ema is on."""
        return self.ema[name] if name in self.ema else self.nets[name]

    @contextlib.contextmanager
    def inference(self) -> Iterator[Callable[[torch.Tensor], torch.Tensor]]:
        """A function photos -> Monets (float32, [-1, 1]) with the sampling generator in eval mode, restored
        afterwards (an average stays in eval mode)."""
        g = self.sampling_net(self.generators[0])
        g.eval()
        try:
            with torch.no_grad(), self.rt.autocast():
                yield lambda x: self.translate(g, x).float()
        finally:
            g.train(not self.ema)

    def generator_states(self) -> dict[str, Any]:
        """The generators' weights alone, and their averages when kept (best.pt)."""
        return {"models": {n: net.state_dict() for n, net in self.nets.items() if n in self.generators},
                **self._ema_state()}

    def _ema_state(self) -> dict[str, Any]:
        return {"ema": {n: avg.state_dict() for n, avg in self.ema.items()},
                "ema_updates": self.ema_updates} if self.ema else {}

    def state_dict(self) -> dict[str, Any]:
        """"models" (and "ema") go to the checkpoint's top level, the rest under "training"."""
        return {"models": {n: net.state_dict() for n, net in self.nets.items()},
                "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
                "scaler": self.scaler.state_dict(), **self._ema_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Also a checkpoint from before EMA was on (the averages start from its weights) or from before the
        plan (its LR schedulers are ignored: the loop sets the rate from the plan)."""
        for n, net in self.nets.items():
            net.load_state_dict(state["models"][n])
        for k in self.optimizers:
            self.optimizers[k].load_state_dict(state["optimizers"][k])
        self.scaler.load_state_dict(state["scaler"])
        for n, avg in self.ema.items():
            avg.load_state_dict(state["ema"][n] if "ema" in state else self.nets[n].state_dict())
        self.ema_updates = int(state.get("ema_updates", 0))

    def rank_state(self) -> dict[str, Any]:
        return {}

    def load_rank_state(self, state: dict[str, Any]) -> None:  # noqa: B027 - a family without rank state
        pass


class NoiseTrainer(Trainer):
    """What every noise -> image family's trainer shares: its noise (settings.z_dim long), the fixed noise of
    the progress grids, the grids and `translate`. A conditional family overrides `sample`/`translate`."""

    grid_size: ClassVar[int] = 16  # fixed noise vectors in a progress grid

    def noise(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.settings.z_dim, device=self.rt.device)

    def sample_inputs(self, banks: dict[str, ImageBank]) -> torch.Tensor:
        """Fixed noise (its own seeded generator: drawing it must not move the training RNG)."""
        gen = torch.Generator().manual_seed(self.train.seed)
        return torch.randn(self.grid_size, self.settings.z_dim, generator=gen).to(self.rt.device)

    def sample(self, z: torch.Tensor) -> tuple[torch.Tensor, int]:
        with self.inference():
            return self.sampling_net("G")(z).float(), 4

    def translate(self, g: nn.Module, photos: torch.Tensor) -> torch.Tensor:
        return g(self.noise(photos.shape[0]))


class PhotoTrainer(Trainer):
    """What a photo -> Monet family's trainer shares: the progress grids (fixed photos beside what the
    generator makes of them) and `translate` (the generator applied to the photos)."""

    grid_size: ClassVar[int] = 8  # fixed photos in a progress grid

    def sample_inputs(self, banks: dict[str, ImageBank]) -> torch.Tensor:
        """The first photos, whole (no RNG is drawn): the grid shows what generate will make of them."""
        first = torch.arange(min(self.grid_size, len(banks["photo"])), device=self.rt.device)
        return banks["photo"].full(first)

    def sample(self, photos: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Photo and its Monet side by side, two pairs per row."""
        with self.inference() as translate:
            monets = torch.cat([translate(p) for p in photos.split(4)])
        return torch.stack([photos, monets], dim=1).flatten(0, 1), 4

    def translate(self, g: nn.Module, photos: torch.Tensor) -> torch.Tensor:
        return g(photos)
