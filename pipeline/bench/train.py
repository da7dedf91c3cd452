"""Training throughput of the CycleGAN step at several batch sizes and with each speed option on or off.

Every row times the real training step (pipeline.families.CycleGAN.train_step) on images already on
the device, so it measures the model and optimiser, not data loading (the loop keeps data on the
device too). Each row is also given as a fraction of its floor: the step's counted FLOPs over the
device's measured matrix rate.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from ..config import Config
from ..device import setup
from ..families import CycleGAN
from .timing import count_flops, median_seconds, peak_flops


@dataclass(frozen=True)
class Variant:
    batch: int
    amp: bool
    channels_last: bool
    compile: bool = False

    @property
    def label(self) -> str:
        return (f"batch {self.batch}, {'AMP' if self.amp else 'fp32'}, channels_last {'on' if self.channels_last else 'off'}"
                f"{', compiled' if self.compile else ''}")


def variants(gpu: bool) -> list[Variant]:
    """The baseline (fp32, batch 1, no options) first; then each option, then them together at larger batches."""
    rows = [Variant(1, False, False), Variant(1, False, True), Variant(1, True, False), Variant(1, True, True),
            Variant(4, False, True), Variant(4, True, True), Variant(16, False, True), Variant(16, True, True)]
    if gpu:
        rows += [Variant(1, True, True, compile=True), Variant(16, True, True, compile=True)]
    else:  # fp32 and AMP are the same on the CPU (AMP is CUDA-only); large batches take minutes there
        rows = [v for v in rows if not v.amp and v.batch <= 4]
    return rows


def bench_train(cfg: Config, size: int, reps: int) -> list[dict]:
    """Images/s of the CycleGAN training step of cfg.train's architecture at `size` px for each variant."""
    rows = []
    base_rt = setup(cfg.hardware)
    peak, peak_how = peak_flops(base_rt.device)
    t = dataclasses.replace(cfg.train, image_size=size, model="cyclegan")
    for v in variants(base_rt.device.type == "cuda"):
        hw = dataclasses.replace(cfg.hardware, amp=v.amp, channels_last=v.channels_last, compile=v.compile)
        rt = setup(hw)
        family = CycleGAN(dataclasses.replace(t, batch_size=v.batch), rt, total_steps=10_000)
        gen = torch.Generator(device=rt.device).manual_seed(0)
        batch = {k: torch.rand(v.batch, 3, size, size, device=rt.device, generator=gen) * 2 - 1 for k in ("monet", "photo")}
        if v.channels_last:
            batch = {k: x.contiguous(memory_format=torch.channels_last) for k, x in batch.items()}
        step = lambda: family.train_step(batch, 0.0)  # noqa: E731
        flops = count_flops(step) if not v.compile else rows[0]["flops_per_image"] * v.batch
        seconds = median_seconds(step, rt.device, warmup=3 if v.compile else 2, reps=reps)
        per_image = v.batch / seconds
        floor = flops / peak  # seconds per step no implementation can beat at the measured rate
        rows.append({"row": v.label, "batch": v.batch, "amp": v.amp, "channels_last": v.channels_last,
                     "compile": v.compile, "steps_per_s": 1 / seconds, "images_per_s": per_image,
                     "flops_per_image": flops / v.batch, "fraction_of_floor": floor / seconds,
                     "speedup": per_image / rows[0]["images_per_s"] if rows else 1.0})
        del family, batch
        if rt.device.type == "cuda":
            torch.cuda.empty_cache()
    for r in rows:
        r["peak"] = f"{peak / 1e12:.1f} TFLOP/s ({peak_how})"
    return rows
