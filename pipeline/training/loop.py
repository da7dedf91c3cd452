"""The train stage: one training loop for every model family, resumable, observable, multi-GPU ready.

`_train` reads top to bottom in sections: data (every training image loaded once onto the device, each
rank's shard of every step), family (its trainer: networks, optimisers and step, from the registry),
resume (the newest readable checkpoint), then the steps, each followed by its bookkeeping in `_Session`:
logging every log_every steps (the only time it waits for the device), sample grids, keeping best.pt by
MiFID when asked, checkpointing by steps, by seconds, on Ctrl-C and when the time budget is spent. The run
folder is built in place: checkpoints are atomic, and the stage's stamp is written only when the loop has
finished. What differs between families (which banks, how many images per step, at what size, the step
itself) is asked of the family, never tested by name here. How long the run trains and how its learning
rate falls is the plan's (plan.py); with a time budget the loop asks its Pacer (clock.py) at every log row.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import Config, to_toml
from ..engine import atomic
from ..engine.errors import UserError
from ..engine.progress import Bar, Pace
from ..engine.progress import progress as progress_bar
from ..images import list_images
from .banks import ImageBank, Shards, load_bank
from .clock import Clock, Pacer, default_clock
from .family import Family, get_family
from .log import TrainLog
from .rng import seed_everything
from .runtime import Runtime, setup, teardown
from .selection import Selector, keep_best, selector_or_none
from .state import Progress, add_session, resume, save_checkpoint
from .trainer import Trainer


@dataclass
class Data:
    """The training images on the device and each rank's share of every step."""

    banks: dict[str, ImageBank]
    shards: dict[str, Shards]
    epoch_bank: str  # the bank one epoch passes over (train.epoch_over); the others are streamed
    steps_per_epoch: int
    nominal: int  # steps of the whole run without a time budget (the plan's most)

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        epoch, at = divmod(step, self.steps_per_epoch)
        return {k: self.banks[k].take(self.shards[k].indices(epoch, at) if k == self.epoch_bank
                                      else self.shards[k].stream(step)) for k in self.banks}


def build(cfg: Config, out: Path, clock: Clock | None = None) -> str:
    """Train cfg.train into the run folder `out`, resuming what is there; returns a one-line summary.
    `clock` times the budget and the checkpoints by seconds (see clock.py: the wall clock unless given)."""
    clock = clock or default_clock()
    started = clock.now()
    rt = setup(cfg.hardware)
    try:
        summary = _train(cfg, out, rt, clock, started)
        rt.barrier()  # no rank leaves the group while rank 0 still writes its last checkpoint
        return summary
    finally:
        teardown()


def _train(cfg: Config, out: Path, rt: Runtime, clock: Clock, started: float) -> str:
    t, family, settings = cfg.train, get_family(cfg.train.model), cfg.model_settings
    say = print if rt.is_main else (lambda *a, **k: None)

    # -- data: every image training will draw, once, on the device ------------------------------------------
    data = load_data(cfg, family, settings, rt)

    # -- family: its trainer, with the same initial weights on every rank (DDP also broadcasts rank 0's) ----
    seed_everything(t.seed)
    trainer: Trainer = family.trainer_class()(family, t, settings, rt)
    trainer.extra_inputs = family.extra_inputs(cfg)  # files besides the banks (pix2pix's teacher)

    # -- resume: the newest readable checkpoint, else a fresh start -----------------------------------------
    progress = resume(out, family, trainer, rt, data.nominal, say)
    if rt.is_main:
        atomic.remove_stale_temps(out)  # half-written checkpoints of a killed run (they can be large)
        atomic.remove_stale_temps(out / "samples")
        atomic.write_text(out / "config.toml", to_toml(cfg))

    # -- the steps, each followed by logging, sampling, selection, checkpointing and the budget --------------
    session = _Session.start(cfg, out, rt, trainer, data, progress, clock, started)
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
    bank train.epoch_over names, and of every other bank only the seeded subset the run's nominal length
    can draw is decoded (all of it for a long run: a budgeted run may be planned up to that length)."""
    t = cfg.train
    per_step = family.images_per_step(t, settings)
    epoch_bank = "photo" if t.epoch_over == "photos" and "photo" in per_step else "monet"
    if t.epoch_over == "photos" and epoch_bank != "photo" and rt.is_main:
        print(f"train: {t.model} trains on no photos: an epoch is a pass over the paintings "
              "(train.epoch_over=photos applies to the families that do)")
    files = {epoch_bank: list_images(cfg.bank_dir(epoch_bank))}
    steps_per_epoch = max(1, len(files[epoch_bank]) // (per_step[epoch_bank] * rt.world_size))
    nominal = family.total_steps(t, settings, steps_per_epoch)
    for bank, n in per_step.items():
        if bank != epoch_bank:
            files[bank] = _subset(list_images(cfg.bank_dir(bank)), nominal * n * rt.world_size, t.seed)
    size = family.data_size(t, settings)
    banks = {k: load_bank(f, rt.device, size, rt.channels_last, k, cfg.hardware.workers, rt.is_main,
                          progress_every_s=cfg.hardware.progress_every_s)
             for k, f in files.items()}
    shards = {k: Shards(len(banks[k]), n, rt.rank, rt.world_size, t.seed + i, rt.device)
              for i, (k, n) in enumerate(per_step.items())}
    return Data(banks, shards, epoch_bank, steps_per_epoch, nominal)


@dataclass
class _Losses:
    """The losses summed on the device since the last log row: no wait for the device until that row."""

    sums: dict[str, torch.Tensor] = field(default_factory=dict)
    n: int = 0  # steps summed

    def add(self, losses: dict[str, torch.Tensor]) -> None:
        self.sums = {k: self.sums.get(k, 0) + v for k, v in losses.items()}
        self.n += 1


@dataclass
class _Session:
    """One session of a run: the loop over steps and the bookkeeping after each (the sections below).
    `start` begins one; the fields past the constructor's are derived from its arguments when it is built."""

    # -- what it trains, and where
    cfg: Config
    out: Path
    rt: Runtime
    trainer: Trainer
    data: Data
    progress: Progress  # the run's step, plan and sessions so far, kept in its checkpoints
    # -- how far it trains: the plan against the clock, this session's end of it, why it stopped (start())
    pacer: Pacer = field(init=False)
    # -- the bookkeeping after the steps
    losses: _Losses = field(default_factory=_Losses, init=False)
    pace: Pace = field(default_factory=Pace, init=False)  # off a terminal: one line per progress_every_s
    log: TrainLog = field(init=False)
    fixed: torch.Tensor = field(init=False)  # the inputs of every sample grid
    selector: Selector | None = field(init=False)  # keeps best.pt by MiFID (rank 0, train.select_by_mifid)

    @classmethod
    def start(cls, cfg: Config, out: Path, rt: Runtime, trainer: Trainer, data: Data, progress: Progress,
              clock: Clock, started: float) -> _Session:
        """Begin the run's next session: count it in `progress` (the checkpoints keep the count) and say the
        plan it trains by."""
        progress.sessions += 1
        session = cls(cfg, out, rt, trainer, data, progress)
        cost = functools.partial(trainer.family.step_cost, cfg.train, trainer.settings)  # None: steps alike
        session.pacer = Pacer(cfg.train, progress, data.nominal, cost if cost(0.0) is not None else None,
                              clock, started, rt.is_main)  # its own time begins once the rest is ready
        if rt.is_main:
            print(session.pacer.describe())
        return session

    def __post_init__(self) -> None:
        self.log = TrainLog(self.out, self.rt.is_main, self.progress.step)
        self.fixed = self.trainer.sample_inputs(self.data.banks)
        self.selector = selector_or_none(self.cfg, self.rt.device) \
            if self.cfg.train.select_by_mifid and self.rt.is_main else None

    def run(self) -> None:
        per_epoch, pacer = self.data.steps_per_epoch, self.pacer
        while self.progress.step < pacer.end and not pacer.stopped:
            epoch = self.progress.step // per_epoch
            epochs = -(-pacer.plan.total // per_epoch)
            # A context: the bar is closed on errors too, so an error message never lands on the bar's line.
            # Off a terminal: lines with the losses of the last log row (the bar never asks the device).
            with progress_bar(per_epoch, f"epoch {epoch + 1}/{epochs}", "step",
                              every_s=self.cfg.hardware.progress_every_s,
                              initial=self.progress.step % per_epoch,
                              disable=not self.rt.is_main, leave=True, pace=self.pace,
                              dynamic_ncols=True) as bar:
                while self.progress.step < min(pacer.end, (epoch + 1) * per_epoch) and not pacer.stopped:
                    self.step()
                    bar.update()
                    self.after_step(epoch, bar)

    # -- the step ----------------------------------------------------------------------------------------
    def step(self) -> None:
        step, plan = self.progress.step, self.pacer.plan
        self.trainer.set_lr_factor(plan.lr_factor(step))
        losses = self.trainer.train_step(self.data.batch(step), plan.progress(step))
        self.pacer.stepped(plan.progress(step))  # its work, on the pacer's clock
        self.losses.add(losses)
        self.progress.step += 1

    def after_step(self, epoch: int, bar: Bar) -> None:
        t, step = self.cfg.train, self.progress.step
        due = step % t.checkpoint_every == 0
        if step % t.log_every == 0 or step >= self.pacer.end:
            due = self.log_row(epoch, bar) or due
        last = step >= self.pacer.end  # the plan's end, or this session's share (as re-fitted by that row)
        if self.rt.is_main and (step % t.sample_every == 0 or last or self.pacer.stopped):
            self.log.grid(step, *self.trainer.sample(self.fixed))  # -- sampling
        if self.selector is not None and step % t.select_by_mifid == 0:
            self.progress.best_mifid, line = keep_best(self.out, self.trainer, step, self.progress.best_mifid,
                                                       self.selector)  # -- selection
            bar.write(line)
        if due or last:
            self.save()

    # -- logging and the budget ---------------------------------------------------------------------------
    def log_row(self, epoch: int, bar: Bar) -> bool:
        """Write a loss row (one wait for the device, which also gives every rank rank 0's answers from the
        clock), follow the plan they say; True when a checkpoint is due by time or budget."""
        step, pacer, now = self.progress.step, self.pacer, self.pacer.clock.now()
        means, overdue, spent, planned = _sync(self.rt, self.losses.sums, self.losses.n, pacer.decide(now))
        _check_finite(means, step, self.out)
        self.log.row({"step": step, "epoch": epoch + 1, "seconds": round(pacer.seconds(now), 2),
                      "lr": self.trainer.lr(), **self.trainer.log_fields(pacer.plan.progress(step - 1)),
                      **means})
        bar.set_postfix({k: f"{v:.3f}" for k, v in means.items()}, refresh=False)
        self.losses = _Losses()
        announce = pacer.settle(now, spent, planned)
        if announce:
            bar.write(announce)
        return bool(overdue) or bool(pacer.stopped)

    # -- checkpointing ------------------------------------------------------------------------------------
    def save(self) -> None:
        save_checkpoint(self.out, self.trainer, self.rt, self.progress, self.pacer.seconds())
        self.pacer.saved()

    def finish(self) -> str:
        """Close the log (loss plot, samples.gif) and say what the session did in one line."""
        self.log.finish()
        t, data, rt, step, pacer = self.cfg.train, self.data, self.rt, self.progress.step, self.pacer
        rate, seconds = pacer.session_rate()
        earlier = ", trained earlier" if step == pacer.first_step else ""  # nothing left to train
        done = f"{step:,}/{pacer.plan.total:,} steps{earlier} at {rate:.1f} steps/s"
        done += f" ({pacer.stopped})" if pacer.stopped else ""
        trained = ", ".join(f"{len(b):,} {k}" for k, b in data.banks.items())
        grids = len(list(self.log.samples_dir.glob("step_*.png")))
        if t.sessions > 1 and rt.is_main:
            print(self.record_session(rate, seconds))
        return (f"{t.model} {done}, epochs of {data.steps_per_epoch:,} steps over the {data.epoch_bank}s, "
                f"on {trained} x{rt.world_size} {rt.device.type}; {grids} sample grids")

    def record_session(self, rate: float, seconds: float) -> str:
        """Add this session to the run's sessions.json and return its line: `session 2 of 3: steps 18,400 →
        36,900 of 55,000; lr 1.6e-4`."""
        t, step, pacer = self.cfg.train, self.progress.step, self.pacer
        lr = f"{self.trainer.lr():.1e}".replace("e-0", "e-")
        line = (f"session {pacer.session} of {t.sessions}: steps {pacer.first_step:,} → {step:,} of "
                f"{pacer.plan.total:,}; lr {lr}")
        record = {"session": pacer.session, "sessions": t.sessions, "from_step": pacer.first_step,
                  "to_step": step, "total": pacer.plan.total, "lr": self.trainer.lr(),
                  "steps_per_s": round(rate, 3), "seconds": round(seconds, 1), "stopped": pacer.stopped,
                  "device": f"{self.rt.world_size} x {self.rt.device.type}", "line": line}
        add_session(self.out, record)
        return line


def _subset(files: list[Path], needed: int, seed: int) -> list[Path]:
    """Only the images training will draw (a seeded random subset): a short run need not decode all 7,038
    photos."""
    if needed >= len(files):
        return files
    pick = np.random.default_rng(seed).choice(len(files), needed, replace=False)
    return [files[i] for i in sorted(pick)]


def _sync(rt: Runtime, acc: dict[str, torch.Tensor], n: int, decisions: list[float]) -> tuple[Any, ...]:
    """Mean losses over the interval and all ranks, and rank 0's decisions (flags, or numbers below 2**24):
    one collective, one host wait."""
    names = list(acc)
    vec = torch.stack([acc[k].float() for k in names]
                      + [torch.tensor(float(d) if rt.is_main else 0.0, device=rt.device) for d in decisions])
    values = rt.all_reduce_sum(vec).tolist()
    means = {k: v / (n * rt.world_size) for k, v in zip(names, values, strict=False)}
    return (means, *values[len(names):])


def _check_finite(means: dict[str, float], step: int, out: Path) -> None:
    bad = ", ".join(f"{k}={v}" for k, v in means.items() if not np.isfinite(v))
    if bad:
        raise UserError(f"training diverged at step {step:,} ({bad}); the checkpoints in {out} are kept; "
                        "lower train.lr / train.lr_d, then re-run with --force")
