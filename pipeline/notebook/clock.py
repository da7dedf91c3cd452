"""The notebook's own clock: how long training may take so that the whole run ends within Kaggle's limit.

Kaggle stops a notebook at kernel.time_limit_min (300) of wall clock, everything included, and a run
stopped there leaves no submission. So when the train cell starts, training gets what is left: the
limit, minus the time already spent since the first cell, minus what generate + zip (+ scoring, when
the FID weights are attached) + tidy will take, minus kernel.margin_min. That last cost is measured
here, on this machine: the run's generator architecture (untrained weights cost the same) renders a
few batches of the real photos into JPEGs, which are then checked and zipped as the zip stage does.
"""
from __future__ import annotations

import tempfile
import time
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ..config import Config
from ..engine.text import duration

SAFETY = 1.3  # measured per-image costs are multiplied by this (a cold disk, a busier GPU)
FIXED_S = 60.0  # loading the checkpoint, listing the photos, the preview, tidy
MIN_TRAIN_S = 6.0  # a run already out of time still trains to its first checkpoint, so that it can submit


@dataclass(frozen=True)
class Budget:
    """The notebook's time, split: what training may take of Kaggle's limit once the rest is set aside."""

    limit_s: float  # kernel.time_limit_min
    elapsed_s: float  # since the notebook's first cell
    finish_s: float  # generate + zip (+ score) + tidy, estimated
    margin_s: float  # kernel.margin_min
    user_budget_s: float = 0.0  # train.time_budget_min as the user set it (0 = none)

    @property
    def train_s(self) -> float:
        left = self.limit_s - self.elapsed_s - self.finish_s - self.margin_s
        if self.user_budget_s > 0:
            left = min(left, self.user_budget_s)
        return max(MIN_TRAIN_S, left)

    def __str__(self) -> str:
        until = self.elapsed_s + self.train_s
        note = " (train.time_budget_min is smaller and wins)" if self.train_s == self.user_budget_s else ""
        short = " - less than the plan needs: training only to its first checkpoint" \
            if self.train_s == MIN_TRAIN_S else ""
        finish = (f"generate+zip estimated {duration(self.finish_s)}" if self.finish_s
                  else "no generate in this kernel")
        return (f"training until {duration(until)} elapsed ({duration(self.train_s)} of training{note}"
                f"{short}); {finish}, margin {self.margin_s / 60:g} min, {duration(self.elapsed_s)} spent so "
                f"far of Kaggle's {duration(self.limit_s)}")


def budget(cfg: Config, started: float, finish_s: float) -> Budget:
    """The budget of a train cell starting now, in a notebook whose first cell ran at `started`
    (time.time())."""
    k = cfg.kernel
    return Budget(limit_s=k.limit_min * 60, elapsed_s=time.time() - started, finish_s=finish_s,
                margin_s=k.margin_min * 60, user_budget_s=cfg.train.time_budget_min * 60)


def measure_finish_s(cfg: Config, batches: int = 2, clock: Callable[[], float] = time.perf_counter) -> float:
    """Seconds that generate + zip (+ score with the FID weights) + tidy will take for this run, on this
    machine.

    Renders `batches` batches after a warm-up one with the run's generator architecture, then checks and
    zips them, and scales the per-image cost to the number of images the run will make.
    """
    import torch

    from ..generate.render import Renderer, initial_jobs
    from ..training.checkpoint import untrained_generator
    from ..training.runtime import setup as setup_runtime

    runtime = setup_runtime(cfg.hardware)
    loaded = untrained_generator(cfg.train, cfg.model_settings)
    renderer = Renderer(cfg, loaded, runtime)
    jobs = initial_jobs(cfg, loaded, torch.Generator().manual_seed(0))
    size = renderer.batch_size
    warm, timed = jobs[:size], jobs[size:size * (1 + batches)] or jobs[:size]
    with tempfile.TemporaryDirectory(prefix="clock-") as tmp, ThreadPoolExecutor(renderer.workers) as pool:
        out = Path(tmp)
        renderer.render(warm, out, pool, desc="clock: warm-up")
        start = clock()
        renderer.render(timed, out, pool, desc="clock: timing generate")
        written = [out / j.name for j in timed]
        _zip(cfg, written, out / "timing.zip")
        per_image = (clock() - start) / len(timed)
        if cfg.score.weights:
            per_image += _inception_per_image(cfg, out, [j.name for j in timed], runtime.device, clock)
    del renderer, loaded
    if runtime.device.type == "cuda":
        torch.cuda.empty_cache()
    return FIXED_S + SAFETY * per_image * len(jobs)


def _zip(cfg: Config, files: list[Path], target: Path) -> None:
    """What the zip stage does per image: decode and check it, then store it."""
    from ..submission.archive import check_all

    check_all([(p.name, p.read_bytes) for p in files], cfg.zip.image_size, cfg.hardware.workers, "clock: zip")
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED) as zf:
        for path in files:
            zf.writestr(path.name, path.read_bytes())


def _inception_per_image(cfg: Config, folder: Path, names: list[str], dev: object,
                         clock: Callable[[], float]) -> float:
    """Scoring (and the memorisation guard, a second pass) cost per image: Inception features of the
    images."""
    from ..metrics.extractor import inception_features
    from ..metrics.features import ImageSet

    extractor = inception_features(cfg, Path(cfg.score.weights), dev, progress=False)
    images = ImageSet(folder, tuple(names))
    extractor.of_set(images)  # warm-up
    start = clock()
    extractor.of_set(images)
    passes = 2 if cfg.generate.max_memorization > 0 else 1
    return passes * (clock() - start) / len(names)
