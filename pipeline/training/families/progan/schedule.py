"""ProGAN's growth schedule (no torch): its phases, and where a run stands in them at a given progress.

The phases: 4x4 stable, then for each doubling a fade-in of the new resolution and a stable phase at it,
each showing progan.images_per_phase real images at that resolution's batch. Where a run stands is read
from `progress` (step / planned steps), mapped through the phases' cumulative step counts: a time budget
that plans fewer steps than the nominal total compresses every phase alike, and a resumed run, whose
step and plan are checkpointed, stands exactly where it stopped.
"""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from itertools import accumulate

from .settings import ProGANSettings


@dataclass(frozen=True)
class Phase:
    resolution: int
    fading: bool  # the fade-in of `resolution` over the one below it
    steps: int  # in the nominal schedule
    batch: int  # images per step and process


@dataclass(frozen=True)
class Position:
    """Where training stands: the phase, and the fade-in's blend weight of the new resolution (1: stable)."""

    phase: Phase
    alpha: float

    def __str__(self) -> str:
        r = self.phase.resolution
        return f"{r}x{r}, fade-in {self.alpha:.0%}" if self.phase.fading else f"{r}x{r}, stable"


class Schedule:
    def __init__(self, s: ProGANSettings) -> None:
        batches = s.batches()
        self.phases = [Phase(r, fading, math.ceil(s.images_per_phase / batches[r]), batches[r])
                       for r in s.resolutions for fading in ((False,) if r == 4 else (True, False))]
        self.starts = [0, *accumulate(p.steps for p in self.phases)]  # the last one is the total
        # the convolutions' work up to each resolution: pixels x channels^2 summed over the levels
        levels = accumulate(r * r * s.channels(r) ** 2 for r in s.resolutions)
        self.level_work = dict(zip(s.resolutions, levels, strict=True))

    @property
    def total(self) -> int:
        """The nominal length of the run, in steps."""
        return self.starts[-1]

    def cost(self, progress: float) -> float:
        """A step's relative work at `progress`: its batch times the convolutions' pixels x channels^2 over
        the levels up to the phase's resolution (a fade-in also runs the level below), plus a fixed
        overhead of one 4x4 image's worth per image (launches, the optimiser)."""
        phase = self.at(progress).phase
        return phase.batch * (self.level_work[4] + self.level_work[phase.resolution])

    def at(self, progress: float) -> Position:
        """The position at `progress` (in [0, 1)) of the schedule."""
        step = min(max(progress, 0.0), 1.0) * self.total
        i = min(bisect.bisect_right(self.starts, step) - 1, len(self.phases) - 1)
        phase = self.phases[i]
        return Position(phase, (step - self.starts[i]) / phase.steps if phase.fading else 1.0)
