"""Training throughput of the family's step (train.model) at several batch sizes and with each speed option.

Every row times the real training step (the family's Trainer.train_step) on images already on
the device, so it measures the model and optimiser, not data loading (the loop keeps data on the
device too). Each row is also given as a fraction of its floor: the step's counted FLOPs over the
device's measured matrix rate.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from ..config import Config
from ..training.runtime import setup
from .timing import count_flops, median_seconds, peak_flops


@dataclass(frozen=True)
class Variant:
    batch: int
    amp: bool
    channels_last: bool
    compile: bool = False

    @property
    def label(self) -> str:
        return (f"batch {self.batch}, {'AMP' if self.amp else 'fp32'}, channels_last "
                f"{'on' if self.channels_last else 'off'}"
                f"{', compiled' if self.compile else ''}")


def variants(gpu: bool) -> list[Variant]:
    """The baseline (fp32, batch 1, no options) first; then each option alone, then larger batches."""
    if not gpu:  # AMP is CUDA-only and batch 16 takes minutes on a CPU
        return [Variant(1, False, False), Variant(1, False, True), Variant(4, False, False)]
    return [Variant(1, False, False), Variant(1, False, True), Variant(1, True, False),
            Variant(4, False, False), Variant(4, True, False), Variant(4, True, True),
            Variant(16, False, False), Variant(16, True, False), Variant(16, True, True),
            Variant(16, True, False, compile=True)]


def bench_train(cfg: Config, size: int, reps: int) -> list[dict]:
    """Images/s (per bank: pairs for a photo family) of the training step of cfg's family and architecture at
    `size` px, per variant."""
    rows: list[dict] = []
    base_rt = setup(cfg.hardware)
    peak, peak_how = peak_flops(base_rt.device)
    t = dataclasses.replace(cfg.train, image_size=size)
    for v in variants(base_rt.device.type == "cuda"):
        rows.append(_time_variant(cfg, t, v, size, reps, peak, rows[0]["images_per_s"] if rows else None))
    flops_by_batch = {r["batch"]: r["flops_per_image"] for r in rows if "flops_per_image" in r}
    for r in rows:
        if "flops_per_image" not in r and r["batch"] in flops_by_batch:  # compiled rows: same work per image
            r["flops_per_image"] = flops_by_batch[r["batch"]]
            r["fraction_of_floor"] = r["flops_per_image"] / peak * r["images_per_s"]
        r["peak"] = f"{peak / 1e12:.2f} TFLOP/s ({peak_how})"
    return rows


def _time_variant(cfg: Config, t, v: Variant, size: int, reps: int, peak: float,
                  baseline: float | None) -> dict:
    rt = setup(dataclasses.replace(cfg.hardware, amp=v.amp, channels_last=v.channels_last, compile=v.compile))
    t = dataclasses.replace(t, batch_size=v.batch)
    family = cfg.family
    trainer = family.trainer_class()(family, t, cfg.model_settings, rt, 10_000)
    gen = torch.Generator(device=rt.device).manual_seed(0)
    batch = {k: torch.rand(n, 3, size, size, device=rt.device, generator=gen) * 2 - 1
             for k, n in family.images_per_step(t, cfg.model_settings).items()}
    if v.channels_last:
        batch = {k: x.contiguous(memory_format=torch.channels_last) for k, x in batch.items()}

    def step() -> None:
        trainer.train_step(batch, 0.0)

    flops = count_flops(step) if not v.compile else None  # the counter cannot trace a compiled graph
    seconds = median_seconds(step, rt.device, warmup=3 if v.compile else 2, reps=reps)
    per_image = v.batch / seconds
    row = {"row": v.label, "batch": v.batch, "amp": v.amp, "channels_last": v.channels_last,
           "compile": v.compile,
           "steps_per_s": 1 / seconds, "images_per_s": per_image,
           "speedup": per_image / baseline if baseline else 1.0}
    if flops:
        row["flops_per_image"] = flops / v.batch
        # the floor: counted FLOPs at the measured peak rate
        row["fraction_of_floor"] = (flops / peak) / seconds
    if rt.device.type == "cuda":
        del trainer, batch
        torch.cuda.empty_cache()
    return row
