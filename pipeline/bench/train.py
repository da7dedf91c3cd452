"""Training throughput of the presets users train (`kaggle`, `kaggle-cut`, `kaggle-unsb`, `default`): their
real step, at their size (CUT's beside CycleGAN's and UNSB's at the Kaggle recipe's image size). A UNSB step
draws its step of the bridge at random, so its cost varies from step to step (t passes without gradients).

Every row times the family's Trainer.train_step on images already on the device (the loop keeps data on
the device too), so it measures the model and optimiser, not data loading. Each row is also given as a
fraction of the device's peak: the step's FLOPs (counted by PyTorch) per second over the device's
measured peak (timing.peak_flops). On a CPU each preset's own step (its batch; fp32, as AMP is CUDA-only)
with channels_last off and on; on a GPU also batch 1, 4 and 16 with AMP, channels_last and torch.compile
on and off.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..config import Config, load_config
from ..training.family import get_family
from ..training.runtime import setup
from .timing import count_flops, median_seconds, peak_flops

PRESETS = ("kaggle", "kaggle-cut", "kaggle-unsb", "default")


@dataclass(frozen=True)
class Variant:
    batch: int
    amp: bool
    channels_last: bool
    compile: bool = False

    @property
    def label(self) -> str:
        return (f"batch {self.batch}, {'AMP' if self.amp else 'fp32'}, channels_last "
                f"{'on' if self.channels_last else 'off'}{', compiled' if self.compile else ''}")


GPU_VARIANTS = [Variant(1, False, False), Variant(1, False, True), Variant(1, True, False),
                Variant(4, False, False), Variant(4, True, False), Variant(4, True, True),
                Variant(16, False, False), Variant(16, True, False), Variant(16, True, True),
                Variant(16, True, False, compile=True)]


def variants(cfg: Config, gpu: bool) -> list[Variant]:
    """The preset's own step first; then on a GPU every other batch and option, on a CPU (where a step at
    256 px takes seconds) the other memory format only."""
    own = Variant(cfg.train.batch_size, gpu and cfg.hardware.amp, cfg.hardware.channels_last,
                  gpu and cfg.hardware.compile)
    others = GPU_VARIANTS if gpu else [dataclasses.replace(own, channels_last=not own.channels_last)]
    return [own] + [v for v in others if v != own]


def bench_train(sets: list[str], presets: tuple[str, ...] = PRESETS) -> list[dict]:
    """One row per preset and variant: pairs/s of its step at its image size, and the fraction of peak."""
    device = setup(load_config(presets[0], sets).hardware).device
    peak, peak_how = peak_flops(device)
    rows = []
    for preset in presets:
        cfg = load_config(preset, sets)
        for v in variants(cfg, device.type == "cuda"):
            row = _time_variant(cfg, v, peak)
            rows.append({"preset": preset, "model": get_family(cfg.train.model).summary(cfg.model_settings),
                         "size": f"{cfg.train.image_size} px", **row,
                         "peak": f"{peak / 1e12:.2f} TFLOP/s ({peak_how})"})
    return rows


def _time_variant(cfg: Config, v: Variant, peak: float) -> dict:
    step, device = _step(cfg, v)
    gpu = device.type == "cuda"
    # The counter cannot trace a compiled graph: an eager step does the same work. On a CPU the counted
    # step is also the warm-up.
    flops = count_flops(step if not v.compile else _step(cfg, dataclasses.replace(v, compile=False))[0])
    seconds = median_seconds(step, device, warmup=3 if gpu else 0, reps=5 if gpu else 2)
    del step
    if gpu:
        torch.cuda.empty_cache()
    return {"row": v.label, "batch": v.batch, "amp": v.amp, "channels_last": v.channels_last,
            "compile": v.compile, "steps_per_s": 1 / seconds, "images_per_s": v.batch / seconds,
            "flops_per_image": flops / v.batch, "fraction_of_peak": flops / seconds / peak}


def _step(cfg: Config, v: Variant) -> tuple[Callable[[], None], torch.device]:
    """One training step of cfg's family with variant v, on random images already on the device."""
    rt = setup(dataclasses.replace(cfg.hardware, amp=v.amp, channels_last=v.channels_last, compile=v.compile))
    t = dataclasses.replace(cfg.train, batch_size=v.batch)
    family = get_family(cfg.train.model)
    trainer = family.trainer_class()(family, t, cfg.model_settings, rt)
    gen = torch.Generator(device=rt.device).manual_seed(0)
    size = t.image_size
    batch = {k: torch.rand(n, 3, size, size, device=rt.device, generator=gen) * 2 - 1
             for k, n in family.images_per_step(t, cfg.model_settings).items()}
    if v.channels_last:
        batch = {k: x.contiguous(memory_format=torch.channels_last) for k, x in batch.items()}
    return (lambda: trainer.train_step(batch, 0.0)), rt.device
