"""ProGAN: noise -> Monet, grown from 4x4 to progan.max_size (light: no torch here).

settings.py holds the [progan] section, schedule.py the phases (which resolution, fade-in and batch at a
given progress), networks.py the growing generator and critic, step.py the training step.
"""
from __future__ import annotations

import functools
from typing import Any

from ....config import TrainConfig
from ...family import NOISE, Family, register_family, require
from .schedule import Schedule
from .settings import ProGANSettings


@register_family("progan")
class ProGAN(Family[ProGANSettings]):
    maps_from = NOISE
    description = ("Karras et al. 2018: a generator from noise grown from 4x4 to progan.max_size with a "
                   "fade-in of each new resolution; WGAN-GP with drift, minibatch standard deviation, "
                   "equalised learning rate, pixel norm.")
    good_for = ("new paintings at full resolution from noise: each phase learns one doubling of the "
                "resolution, the paper's way to stable 256 px and larger; by far the costliest family")
    settings = ProGANSettings
    trainer = ".step:ProGANTrainer"

    def images_per_step(self, train: TrainConfig, s: ProGANSettings) -> dict[str, int]:
        """The largest batch of any phase: the step takes the first batch(phase) of these random draws."""
        return {"monet": max(s.batches().values())}

    def data_size(self, train: TrainConfig, s: ProGANSettings) -> int:
        return s.max_size  # not train.image_size; each phase averages the images down to its resolution

    def total_steps(self, train: TrainConfig, s: ProGANSettings, steps_per_epoch: int) -> int:
        """The schedule's, not train.epochs': images_per_phase at each phase's batch, summed."""
        return schedule(s).total

    def length(self, train: TrainConfig, s: ProGANSettings) -> str:
        plan = schedule(s)
        return f"{plan.total:,} steps in {len(plan.phases)} phases"

    def step_cost(self, train: TrainConfig, s: ProGANSettings, progress: float) -> float:
        """A step's work grows with its phase's resolution: a time budget plans by it (see Schedule.cost)."""
        return schedule(s).cost(progress)

    def check(self, train: TrainConfig, s: ProGANSettings) -> None:
        require(not train.init, "train.init",
                "does not apply to progan: its equalised learning rate sets its own initialisation; leave "
                "it empty")

    def architecture(self, train: TrainConfig, s: ProGANSettings) -> dict[str, Any]:
        return {"model": self.name, "z_dim": s.z_dim, "width": s.width, "max_width": s.max_width,
                "max_size": s.max_size}

    def summary(self, s: ProGANSettings) -> str:
        return (f"{self.name} (4 -> {s.max_size} px, {s.images_per_phase:,} images a phase, z {s.z_dim}, "
                f"width {s.width}-{s.max_width})")


@functools.cache
def schedule(s: ProGANSettings) -> Schedule:
    """The phases of these settings (asked at every step by the clock's plan: made once)."""
    return Schedule(s)
