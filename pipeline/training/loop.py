"""The train stage: one training loop for every model family, resumable, observable, multi-GPU ready.

`_train` reads top to bottom in sections: data (every training image loaded once onto the device, each
rank's shard of every epoch), family (its trainer: networks, optimisers and step, from the registry),
resume (the newest readable checkpoint), then the steps, each followed by its bookkeeping in `_Session`:
logging every log_every steps (the only time it waits for the device), sample grids, keeping best.pt by
MiFID when asked, checkpointing by steps, by seconds, on Ctrl-C and when the time budget is spent. The run
folder is built in place: checkpoints are atomic, and the stage's stamp is written only when the loop has
finished. What differs between families (which banks, how many images per step, at what size, the step
itself) is asked of the family, never tested by name here.
"""
from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import Config, to_toml
from ..data.images import list_images
from ..engine import atomic
from ..engine.errors import StageSkipped, UserError
from ..engine.progress import Bar, Pace
from ..engine.progress import progress as progress_bar
from . import checkpoint
from .banks import ImageBank, Shards, load_bank
from .families import Family
from .families.trainer import Trainer
from .log import TrainLog
from .runtime import Runtime, setup, teardown


@dataclass
class Progress:
    """Where training stands: what a checkpoint records besides the networks."""

    step: int = 0
    seconds: float = 0.0  # time spent by earlier sessions of this run (train.time_budget_min counts them all)
    best_mifid: float = float("inf")


@dataclass
class Data:
    """The training images on the device and each rank's shard of every epoch."""

    banks: dict[str, ImageBank]
    shards: dict[str, Shards]
    steps_per_epoch: int
    total: int  # steps of the whole run

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        epoch, at = divmod(step, self.steps_per_epoch)
        return {k: self.banks[k].take(self.shards[k].indices(epoch, at)) for k in self.banks}


def build(cfg: Config, out: Path) -> str:
    """Train cfg.train into the run folder `out`, resuming what is there; returns a one-line summary."""
    session_start = time.monotonic()
    rt = setup(cfg.hardware)
    try:
        summary = _train(cfg, out, rt, session_start)
        rt.barrier()  # no rank leaves the group while rank 0 still writes its last checkpoint
        return summary
    finally:
        teardown()


def _train(cfg: Config, out: Path, rt: Runtime, session_start: float) -> str:
    t, family, settings = cfg.train, cfg.family, cfg.model_settings
    say = print if rt.is_main else (lambda *a, **k: None)

    # -- data: every image training will draw, once, on the device ------------------------------------------
    data = load_data(cfg, family, settings, rt)

    # -- family: its trainer, with the same initial weights on every rank (DDP also broadcasts rank 0's) ----
    _seed_everything(t.seed)
    trainer: Trainer = family.trainer_class()(family, t, settings, rt, data.total)
    trainer.extra_inputs = family.extra_inputs(cfg)  # files besides the banks (pix2pix's teacher)

    # -- resume: the newest readable checkpoint, else a fresh start -----------------------------------------
    progress = _resume(out, family, trainer, rt, say)
    if rt.is_main:
        atomic.remove_stale_temps(out)  # half-written checkpoints of a killed run (they can be large)
        atomic.remove_stale_temps(out / "samples")
        atomic.write_text(out / "config.toml", to_toml(cfg))

    # -- the steps, each followed by logging, sampling, selection, checkpointing and the budget --------------
    session = _Session(cfg, out, rt, trainer, data, progress, session_start)
    try:
        session.run()
    except KeyboardInterrupt:
        # The weights may hold part of the interrupted step (G updated, D not yet): harmless for training on.
        if not rt.distributed and progress.step > 0:  # under torchrun the other ranks are gone: no gather
            session.save()
            say(f"train: interrupted at step {progress.step:,}; checkpoint saved, re-run the same command "
                "to go on")
        raise
    return session.finish()


def load_data(cfg: Config, family: Family, settings: Any, rt: Runtime) -> Data:
    """Load the banks the family draws (at the size it asks) and shard them; an epoch is one pass over the
    augmented Monets, and of every other bank only the seeded subset the run will draw is decoded."""
    t = cfg.train
    per_step = family.images_per_step(t, settings)
    files = {"monet": list_images(cfg.bank_dir("monet"))}
    steps_per_epoch = max(1, len(files["monet"]) // (per_step["monet"] * rt.world_size))
    total = t.epochs * steps_per_epoch
    for bank, n in per_step.items():
        if bank != "monet":
            files[bank] = _subset(list_images(cfg.bank_dir(bank)), total * n * rt.world_size, t.seed)
    size = family.data_size(t, settings)
    banks = {k: load_bank(f, rt.device, size, rt.channels_last, k, cfg.hardware.workers, rt.is_main,
                          progress_every_s=cfg.hardware.progress_every_s)
             for k, f in files.items()}
    shards = {k: Shards(len(banks[k]), n, rt.rank, rt.world_size, t.seed + i, rt.device)
              for i, (k, n) in enumerate(per_step.items())}
    return Data(banks, shards, steps_per_epoch, total)


@dataclass
class _Session:
    """One session of a run: the loop over steps and the bookkeeping after each (the sections below)."""

    cfg: Config
    out: Path
    rt: Runtime
    trainer: Trainer
    data: Data
    progress: Progress
    session_start: float
    stopped: str = ""  # why the session ended before the last step (the time budget)
    # losses summed on the device since the last row
    acc: dict[str, torch.Tensor] = field(default_factory=dict)
    n_acc: int = 0
    # off a terminal: one line per progress_every_s however short the epochs
    pace: Pace = field(default_factory=Pace)

    def __post_init__(self) -> None:
        t = self.cfg.train
        self.log = TrainLog(self.out, self.rt.is_main, self.progress.step)
        self.fixed = self.trainer.sample_inputs(self.data.banks)
        self.selector = _make_selector(self.cfg, self.rt) if t.select_by_mifid and self.rt.is_main else None
        self.last_save = self.loop_start = time.monotonic()
        self.first_step = self.progress.step

    def run(self) -> None:
        per_epoch, total = self.data.steps_per_epoch, self.data.total
        while self.progress.step < total and not self.stopped:
            epoch = self.progress.step // per_epoch
            # A context: the bar is closed on errors too, so an error message never lands on the bar's line.
            # Off a terminal: lines with the losses of the last log row (the bar never asks the device).
            with progress_bar(per_epoch, f"epoch {epoch + 1}/{self.cfg.train.epochs}", "step",
                              every_s=self.cfg.hardware.progress_every_s,
                              initial=self.progress.step % per_epoch,
                              disable=not self.rt.is_main, leave=True, pace=self.pace,
                              dynamic_ncols=True) as bar:
                while self.progress.step < min(total, (epoch + 1) * per_epoch) and not self.stopped:
                    self.step()
                    bar.update()
                    self.after_step(epoch, bar)

    # -- the step ----------------------------------------------------------------------------------------
    def step(self) -> None:
        losses = self.trainer.train_step(self.data.batch(self.progress.step),
                                         self.progress.step / self.data.total)
        self.acc = {k: self.acc.get(k, 0) + v for k, v in losses.items()}  # device tensors: no wait here
        self.n_acc += 1
        self.progress.step += 1

    def after_step(self, epoch: int, bar: Bar) -> None:
        t, step, last = self.cfg.train, self.progress.step, self.progress.step == self.data.total
        due = step % t.checkpoint_every == 0 or last
        if step % t.log_every == 0 or last:
            due = self.log_row(epoch, bar) or due
        if self.rt.is_main and (step % t.sample_every == 0 or last or self.stopped):
            self.log.grid(step, *self.trainer.sample(self.fixed))  # -- sampling
        if self.selector is not None and step % t.select_by_mifid == 0:
            _select(self.out, self.trainer, self.progress, self.selector, bar)  # -- selection
        if due:
            self.save()

    # -- logging and the budget ---------------------------------------------------------------------------
    def log_row(self, epoch: int, bar: Bar) -> bool:
        """Write a loss row (one wait for the device); True when a checkpoint is due by time or budget."""
        t, step = self.cfg.train, self.progress.step
        elapsed = self.progress.seconds + time.monotonic() - self.session_start
        means, overdue, spent = _sync(self.rt, self.acc, self.n_acc, [
            time.monotonic() - self.last_save >= t.checkpoint_every_s,
            t.time_budget_min > 0 and elapsed >= t.time_budget_min * 60])
        _check_finite(means, step, self.out)
        self.log.row({"step": step, "epoch": epoch + 1, "seconds": round(elapsed, 2), "lr": self.trainer.lr(),
                      **means})
        bar.set_postfix({k: f"{v:.3f}" for k, v in means.items()}, refresh=False)
        self.acc, self.n_acc = {}, 0
        if spent and step < self.data.total:
            self.stopped = f"stopped by train.time_budget_min={t.time_budget_min:g}"
        return overdue or bool(self.stopped)

    # -- checkpointing ------------------------------------------------------------------------------------
    def save(self) -> None:
        _save(self.out, self.trainer, self.rt, self.progress, self.session_start)
        self.last_save = time.monotonic()

    def finish(self) -> str:
        """Close the log (loss plot, samples.gif) and say what the session did in one line."""
        self.log.finish()
        t, data, rt, step = self.cfg.train, self.data, self.rt, self.progress.step
        rate = (step - self.first_step) / max(1e-9, time.monotonic() - self.loop_start)
        done = f"{step:,}/{data.total:,} steps at {rate:.1f} steps/s"
        done += f" ({self.stopped})" if self.stopped else ""
        trained = ", ".join(f"{len(b):,} {k}" for k, b in data.banks.items())
        grids = len(list(self.log.samples_dir.glob("step_*.png")))
        return (f"{t.model} {done}, {t.epochs} epoch(s) of {data.steps_per_epoch:,} steps on {trained} "
                f"x{rt.world_size} {rt.device.type}; {grids} sample grids")


def _subset(files: list[Path], needed: int, seed: int) -> list[Path]:
    """Only the images training will draw (a seeded random subset): a short run need not decode all 7,038
    photos."""
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


def _resume(out: Path, family: Family, trainer: Trainer, rt: Runtime, say: Callable[..., None]) -> Progress:
    """Load the newest readable checkpoint into `trainer`; a fresh run seeds each rank's own randomness.

    A checkpoint of either format resumes (see checkpoint.header): the architectures it compares are the
    family's, and they read the same in both."""
    t = trainer.t
    found = checkpoint.load_newest(out, map_location=rt.device, report=say)
    if found is None:
        _seed_everything(t.seed, rt.rank, 1)
        return Progress()
    path, payload = found
    saved, now = payload["architecture"], family.architecture(t, trainer.s)
    if saved != now:
        changed = ", ".join(f"{k}={saved.get(k)!r} -> {now.get(k)!r}" for k in sorted(set(saved) | set(now))
                            if saved.get(k) != now.get(k))
        raise UserError(f"{path} was trained with other model settings ({changed}); add --force to start "
                        "over, "
                        "or name another run with --set train.run=NAME")
    trainer.load_state_dict({"models": payload["models"], **payload["training"]})
    ranks = payload["training"]["ranks"]
    if len(ranks) == rt.world_size:
        trainer.load_rank_state(ranks[rt.rank]["family"])
        _set_rng_state(ranks[rt.rank]["rng"], rt.device)
    else:  # another number of processes: the weights carry over, the per-rank randomness starts afresh
        _seed_everything(t.seed, rt.rank, payload["step"])
    say(f"resuming from step {payload['step']:,} ({path.name})")
    return Progress(payload["step"], payload["seconds"], payload["best_mifid"])


def _save(out: Path, trainer: Trainer, rt: Runtime, progress: Progress, session_start: float) -> None:
    """Checkpoint everything; every rank contributes its own random state and pools, rank 0 writes."""
    ranks = rt.gather({"rng": _rng_state(rt.device), "family": trainer.rank_state()})
    if not rt.is_main:
        return
    state = trainer.state_dict()
    checkpoint.write(out, {**checkpoint.header(trainer.t, trainer.s, progress.step),
                           "models": state.pop("models"),
                           "seconds": progress.seconds + time.monotonic() - session_start,
                           "best_mifid": progress.best_mifid, "training": {**state, "ranks": ranks}},
                     trainer.t.keep_last)


def _sync(rt: Runtime, acc: dict[str, torch.Tensor], n: int, flags: list[bool]) -> tuple[Any, ...]:
    """Mean losses over the interval and all ranks, and rank 0's decisions: one collective, one host wait."""
    names = list(acc)
    vec = torch.stack([acc[k].float() for k in names]
                      + [torch.tensor(float(f and rt.is_main), device=rt.device) for f in flags])
    values = rt.all_reduce_sum(vec).tolist()
    means = {k: v / (n * rt.world_size) for k, v in zip(names, values, strict=False)}
    return (means, *(v > 0 for v in values[len(names):]))


def _check_finite(means: dict[str, float], step: int, out: Path) -> None:
    bad = {k: v for k, v in means.items() if not np.isfinite(v)}
    if bad:
        raise UserError(f"training diverged at step {step:,} "
                        f"({', '.join(f'{k}={v}' for k, v in bad.items())}); the "
                        f"checkpoints in {out} are kept; lower train.lr / train.lr_d, then re-run with "
                        "--force")


def _make_selector(cfg: Config, rt: Runtime) -> Callable[[Callable[[torch.Tensor], torch.Tensor]],
                                                         float] | None:
    """The MiFID scorer, or None (said in one line) where it cannot run: training goes on without best.pt."""
    from ..metrics.mifid import make_selector  # Inception and its weights only when MiFID selection is on

    try:
        return make_selector(cfg, rt.device)
    except StageSkipped as exc:
        print(f"train: train.select_by_mifid is off for this run: {exc}")
        return None


def _select(out: Path, trainer: Trainer, progress: Progress,
            selector: Callable[[Callable[[torch.Tensor], torch.Tensor]], float], bar: Bar) -> None:
    """Score the current generator; keep it as best.pt when its MiFID is the lowest so far."""
    # scoring must not move the training RNG, or resuming would not be exact
    saved = _rng_state(trainer.rt.device)
    with trainer.inference() as translate:
        score = float(selector(translate))
    _set_rng_state(saved, trainer.rt.device)
    if score < progress.best_mifid:
        progress.best_mifid = score
        checkpoint.save(out / "best.pt", {**checkpoint.header(trainer.t, trainer.s, progress.step),
                                          "models": trainer.generator_states(), "mifid": score})
    bar.write(f"step {progress.step:,}: MiFID {score:.2f} (best {progress.best_mifid:.2f}"
              + (", saved best.pt)" if score == progress.best_mifid else ")"))
