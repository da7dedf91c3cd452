"""The train stage: one training loop for every model family, resumable, observable, multi-GPU ready.

The loop, in order: pick the device (and join the process group under torchrun), load every training
image once onto it, build the family (CycleGAN or DCGAN: it supplies the step), resume from the newest
readable checkpoint, then train, logging every log_every steps (the only time it waits for the
device), drawing sample grids, keeping best.pt by MiFID when asked, and checkpointing by steps, by
seconds, on Ctrl-C and when the time budget is spent. The run folder is built in place: checkpoints
are atomic, and the stage's stamp is written only when the loop has finished.
"""
from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import Config, TrainConfig, to_toml
from ..data.images import list_images
from ..engine import atomic
from ..engine.errors import StageSkipped, UserError
from ..engine.progress import Bar, Pace
from ..engine.progress import progress as progress_bar
from . import checkpoint
from .banks import Shards, load_bank
from .families import FAMILIES, Family
from .log import TrainLog
from .models import architecture
from .runtime import Runtime, setup, teardown


@dataclass
class Progress:
    """Where training stands: what a checkpoint records besides the networks."""

    step: int = 0
    seconds: float = 0.0  # time spent by earlier sessions of this run (train.time_budget_min counts them all)
    best_mifid: float = float("inf")


def build(cfg: Config, out: Path) -> str:
    """Train cfg.train into the run folder `out`, resuming what is there; returns a one-line summary."""
    session_start = time.monotonic()
    rt = setup(cfg.hardware)
    try:
        return _train(cfg, out, rt, session_start)
    finally:
        teardown()


def _train(cfg: Config, out: Path, rt: Runtime, session_start: float) -> str:
    t = cfg.train
    say = print if rt.is_main else (lambda *a, **k: None)
    family_cls = FAMILIES[t.model]
    per_step = family_cls.images_per_step(t)
    files = {"monet": list_images(cfg.augmented_dir / "monet")}
    steps_per_epoch = max(1, len(files["monet"]) // (per_step["monet"] * rt.world_size))
    total = t.epochs * steps_per_epoch
    if "photo" in per_step:
        files["photo"] = _photo_subset(list_images(cfg.raw_dir / "photo_jpg"), total * per_step["photo"] * rt.world_size,
                                       t.seed)
    banks = {k: load_bank(f, rt.device, t.image_size, rt.channels_last, k, cfg.hardware.workers, rt.is_main,
                          progress_every_s=cfg.hardware.progress_every_s)
             for k, f in files.items()}
    shards = {k: Shards(len(banks[k]), n, rt.rank, rt.world_size, t.seed + i, rt.device)
              for i, (k, n) in enumerate(per_step.items())}

    _seed_everything(t.seed)  # the same initial weights on every rank (DDP also broadcasts rank 0's)
    family = family_cls(t, rt, total)
    progress = _resume(out, t, family, rt, say)
    if rt.is_main:
        atomic.remove_stale_temps(out)  # half-written checkpoints of a killed run (they can be large)
        atomic.remove_stale_temps(out / "samples")
        atomic.write_text(out / "config.toml", to_toml(cfg))
    log = TrainLog(out, rt.is_main, progress.step)
    fixed = family.sample_inputs(banks)
    selector = _make_selector(cfg, rt) if t.select_by_mifid and rt.is_main else None

    def save() -> None:
        _save(out, t, family, rt, progress, session_start)

    stopped, last_save, acc, n_acc = "", time.monotonic(), {}, 0
    pace = Pace()  # off a terminal: one progress line per hardware.progress_every_s however short the epochs
    loop_start, first_step = time.monotonic(), progress.step
    try:
        while progress.step < total and not stopped:
            epoch = progress.step // steps_per_epoch
            # A context: the bar is closed on errors too, so an error message never lands on the bar's line.
            # Off a terminal: lines with the losses of the last log row (the bar never asks the device).
            with progress_bar(steps_per_epoch, f"epoch {epoch + 1}/{t.epochs}", "step",
                              every_s=cfg.hardware.progress_every_s, initial=progress.step % steps_per_epoch,
                              disable=not rt.is_main, leave=True, pace=pace, dynamic_ncols=True) as bar:
                while progress.step < min(total, (epoch + 1) * steps_per_epoch):
                    batch = {k: banks[k].take(shards[k].indices(epoch, progress.step % steps_per_epoch)) for k in banks}
                    losses = family.train_step(batch, progress.step / total)
                    acc = {k: acc.get(k, 0) + v for k, v in losses.items()}  # device tensors: no wait here
                    n_acc += 1
                    progress.step += 1
                    bar.update()
                    step = progress.step
                    due = step % t.checkpoint_every == 0 or step == total
                    if step % t.log_every == 0 or step == total:
                        elapsed = progress.seconds + time.monotonic() - session_start
                        means, overdue, spent = _sync(rt, acc, n_acc, [
                            time.monotonic() - last_save >= t.checkpoint_every_s,
                            t.time_budget_min > 0 and elapsed >= t.time_budget_min * 60])
                        _check_finite(means, step, out)
                        log.row({"step": step, "epoch": epoch + 1, "seconds": round(elapsed, 2),
                                 "lr": family.lr(), **means})
                        bar.set_postfix({k: f"{v:.3f}" for k, v in means.items()}, refresh=False)
                        acc, n_acc, due = {}, 0, due or overdue
                        if spent and step < total:
                            stopped, due = f"stopped by train.time_budget_min={t.time_budget_min:g}", True
                    if rt.is_main and (step % t.sample_every == 0 or step == total or stopped):
                        log.grid(step, *family.sample(fixed))
                    if selector is not None and step % t.select_by_mifid == 0:
                        _select(out, t, family, progress, selector, bar)
                    if due:
                        save()
                        last_save = time.monotonic()
                    if stopped:
                        break
    except KeyboardInterrupt:
        # The weights may hold part of the interrupted step (G updated, D not yet): harmless for training on.
        if not rt.distributed and progress.step > 0:  # under torchrun the other ranks are gone: no gather
            save()
            say(f"train: interrupted at step {progress.step:,}; checkpoint saved, re-run the same command to go on")
        raise
    log.finish()
    rate = (progress.step - first_step) / max(1e-9, time.monotonic() - loop_start)
    done = f"{progress.step:,}/{total:,} steps at {rate:.1f} steps/s" + (f" ({stopped})" if stopped else "")
    trained = ", ".join(f"{len(b):,} {k}" for k, b in banks.items())
    return (f"{t.model} {done}, {t.epochs} epoch(s) of {steps_per_epoch:,} steps on {trained} "
            f"x{rt.world_size} {rt.device.type}; {len(list(log.samples_dir.glob('step_*.png')))} sample grids")


def _photo_subset(files: list[Path], needed: int, seed: int) -> list[Path]:
    """Only the photos training will draw (a seeded random subset): a short run need not decode all 7,038."""
    if needed >= len(files):
        return files
    pick = np.random.default_rng(seed).choice(len(files), needed, replace=False)
    return [files[i] for i in sorted(pick)]


def _seed_everything(*key: int) -> None:
    seed = int(np.random.SeedSequence(list(key)).generate_state(1)[0])
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _rng_state(device: torch.device) -> dict[str, Any]:
    """Every random generator training draws from (pool choices, DiffAugment, crops, noise), as plain data."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"python": random.getstate(), "numpy": (name, keys.tolist(), pos, has_gauss, cached),
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else torch.empty(0)}


def _set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    random.setstate(state["python"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"].cpu())
    if device.type == "cuda" and state["cuda"].numel():
        torch.cuda.set_rng_state(state["cuda"].cpu(), device)


def _resume(out: Path, t: TrainConfig, family: Family, rt: Runtime, say: Callable[..., None]) -> Progress:
    """Load the newest readable checkpoint into `family`; a fresh run seeds each rank's own randomness."""
    found = checkpoint.load_newest(out, map_location=rt.device, report=say)
    if found is None:
        _seed_everything(t.seed, rt.rank, 1)
        return Progress()
    path, payload = found
    saved, now = payload["architecture"], architecture(t)
    if saved != now:
        changed = ", ".join(f"{k}={saved.get(k)!r} -> {now.get(k)!r}" for k in sorted(set(saved) | set(now))
                            if saved.get(k) != now.get(k))
        raise UserError(f"{path} was trained with other model settings ({changed}); add --force to start over, "
                        "or name another run with --set train.run=NAME")
    family.load_state_dict({"models": payload["models"], **payload["training"]})
    ranks = payload["training"]["ranks"]
    if len(ranks) == rt.world_size:
        family.load_rank_state(ranks[rt.rank]["family"])
        _set_rng_state(ranks[rt.rank]["rng"], rt.device)
    else:  # another number of processes: the weights carry over, the per-rank randomness starts afresh
        _seed_everything(t.seed, rt.rank, payload["step"])
    say(f"resuming from step {payload['step']:,} ({path.name})")
    return Progress(payload["step"], payload["seconds"], payload["best_mifid"])


def _save(out: Path, t: TrainConfig, family: Family, rt: Runtime, progress: Progress, session_start: float) -> None:
    """Checkpoint everything; every rank contributes its own random state and pools, rank 0 writes."""
    ranks = rt.gather({"rng": _rng_state(rt.device), "family": family.rank_state()})
    if not rt.is_main:
        return
    state = family.state_dict()
    checkpoint.write(out, {**_header(t, progress.step), "models": state.pop("models"),
                           "seconds": progress.seconds + time.monotonic() - session_start,
                           "best_mifid": progress.best_mifid, "training": {**state, "ranks": ranks}}, t.keep_last)


def _header(t: TrainConfig, step: int) -> dict[str, Any]:
    return {"format": checkpoint.FORMAT, "kind": t.model, "step": step, "train": dataclasses.asdict(t),
            "architecture": architecture(t)}


def _sync(rt: Runtime, acc: dict[str, torch.Tensor], n: int, flags: list[bool]) -> tuple[Any, ...]:
    """Mean losses over the interval and all ranks, and rank 0's decisions: one collective, one host wait."""
    names = list(acc)
    vec = torch.stack([acc[k].float() for k in names]
                      + [torch.tensor(float(f and rt.is_main), device=rt.device) for f in flags])
    values = rt.all_reduce_sum(vec).tolist()
    means = {k: v / (n * rt.world_size) for k, v in zip(names, values)}
    return (means, *(v > 0 for v in values[len(names):]))


def _check_finite(means: dict[str, float], step: int, out: Path) -> None:
    bad = {k: v for k, v in means.items() if not np.isfinite(v)}
    if bad:
        raise UserError(f"training diverged at step {step:,} ({', '.join(f'{k}={v}' for k, v in bad.items())}); the "
                        f"checkpoints in {out} are kept; lower train.lr / train.lr_d, then re-run with --force")


def _make_selector(cfg: Config, rt: Runtime) -> Callable[[Callable[[torch.Tensor], torch.Tensor]], float] | None:
    """The MiFID scorer, or None (said in one line) where it cannot run: training goes on without best.pt."""
    from ..metrics.mifid import make_selector  # Inception and its weights only when MiFID selection is on

    try:
        return make_selector(cfg, rt.device)
    except StageSkipped as exc:
        print(f"train: train.select_by_mifid is off for this run: {exc}")
        return None


def _select(out: Path, t: TrainConfig, family: Family, progress: Progress,
            selector: Callable[[Callable[[torch.Tensor], torch.Tensor]], float], bar: Bar) -> None:
    """Score the current generator; keep it as best.pt when its MiFID is the lowest so far."""
    saved = _rng_state(family.rt.device)  # scoring must not move the training RNG, or resuming would not be exact
    with family.inference() as translate:
        score = float(selector(translate))
    _set_rng_state(saved, family.rt.device)
    if score < progress.best_mifid:
        progress.best_mifid = score
        models = {n: net.state_dict() for n, net in family.nets.items() if n in family.generators}
        checkpoint.save(out / "best.pt", {**_header(t, progress.step), "models": models, "mifid": score})
    bar.write(f"step {progress.step:,}: MiFID {score:.2f} (best {progress.best_mifid:.2f}"
              + (", saved best.pt)" if score == progress.best_mifid else ")"))
