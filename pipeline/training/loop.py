"""The train stage: one training loop for every model family, resumable, observable, multi-GPU ready.

`_train` reads top to bottom in sections: data (every training image loaded once onto the device, each
rank's shard of every step), family (its trainer: networks, optimisers and step, from the registry),
resume (the newest readable checkpoint), then the steps, each followed by its bookkeeping in `_Session`:
logging every log_every steps (the only time it waits for the device), sample grids, keeping best.pt by
MiFID when asked, checkpointing by steps, by seconds, on Ctrl-C and when the time budget is spent. The run
folder is built in place: checkpoints are atomic, and the stage's stamp is written only when the loop has
finished. What differs between families (which banks, how many images per step, at what size, the step
itself) is asked of the family, never tested by name here. How long the run trains and how its learning
rate falls is the plan's (plan.py): the nominal length, or with a time budget what fits the clock.
"""
from __future__ import annotations

import functools
import time
from collections import deque
from collections.abc import Callable
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
from ..engine.text import duration
from ..images import list_images
from .banks import ImageBank, Shards, load_bank
from .family import Family, get_family
from .log import TrainLog
from .plan import ANNOUNCE_AT, Plan, fit_to_clock, moved, remaining_work, revise
from .rng import seed_everything
from .runtime import Runtime, setup, teardown
from .selection import Selector, keep_best, selector_or_none
from .state import SESSIONS_FILE, Progress, read_sessions, resume, save_checkpoint
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
    session = _Session.start(cfg, out, rt, trainer, data, progress, session_start)
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


RECENT_ROWS = 3  # the log rows the recent step rate is measured over


@dataclass
class _Rate:
    """How fast the session trains, in steps and in work: the clock's rates for the plan (measured on rank 0).

    The slower of two measures: since the warm-up, and over the last RECENT_ROWS log rows. The mean since the
    warm-up lags a machine that has just slowed down (a plan fitted to it overruns the budget and is cut short
    before its learning rate has decayed); the recent rate alone would follow every hiccup. So a plan shrinks
    as soon as the steps slow down, and grows only once both measures say they are faster."""

    work: float = 0.0  # the steps' summed Family.step_cost, where the family's steps differ in cost
    warm: tuple[float, int, float] | None = None  # (time, step, work) after the warm-up: the rates' origin
    steps_per_s: float = 0.0
    work_per_s: float = 0.0  # the clock's rate where steps differ in cost
    recent: deque = field(default_factory=lambda: deque(maxlen=RECENT_ROWS + 1))  # (time, step, work) per row

    def measure(self, now: float, step: int, origin: tuple[float, int, float]) -> None:
        """The rates from `origin` (time, step, work) to now, or over the last rows where those are slower."""
        self.recent.append((now, step, self.work))
        since = max((point for point in (origin, self.recent[0]) if point[0] < now), key=lambda p: p[0],
                    default=origin)
        rates = [self._rates(now, step, point) for point in (origin, since)]
        self.steps_per_s, self.work_per_s = min(r[0] for r in rates), min(r[1] for r in rates)

    def _rates(self, now: float, step: int, point: tuple[float, int, float]) -> tuple[float, float]:
        seconds = max(1e-9, now - point[0])
        return (step - point[1]) / seconds, (self.work - point[2]) / seconds


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
    session_start: float  # when this call of train began (its budget's clock)
    session: int  # its number in the run (1 for the first)
    # -- how far it trains: the plan, this session's end of it, and why it stopped before
    cost: Callable[[float], float] | None = field(init=False)  # steps differ in cost: plan by work
    plan: Plan = field(init=False)  # set by follow()
    end: int = field(init=False)  # the plan's end, or in a run over several sessions this one's share
    first_step: int = field(init=False)  # the step it began at, and when: its own rate in the summary
    loop_start: float = field(init=False)
    stopped: str = field(default="", init=False)  # why it ended before the last step (the budget, its share)
    rate: _Rate = field(default_factory=_Rate, init=False)
    # -- the bookkeeping after the steps
    losses: _Losses = field(default_factory=_Losses, init=False)
    pace: Pace = field(default_factory=Pace, init=False)  # off a terminal: one line per progress_every_s
    log: TrainLog = field(init=False)
    fixed: torch.Tensor = field(init=False)  # the inputs of every sample grid
    selector: Selector | None = field(init=False)  # keeps best.pt by MiFID (rank 0, train.select_by_mifid)
    last_save: float = field(init=False)

    @classmethod
    def start(cls, cfg: Config, out: Path, rt: Runtime, trainer: Trainer, data: Data, progress: Progress,
              session_start: float) -> _Session:
        """Begin the run's next session: count it in `progress` (the checkpoints keep the count) and say the
        plan it trains by."""
        progress.sessions += 1
        session = cls(cfg, out, rt, trainer, data, progress, session_start, progress.sessions)
        t = cfg.train
        if rt.is_main:
            fitted = (f"; train.time_budget_min={t.time_budget_min:g}: re-planned to fit the clock after a "
                      "warm-up") if t.time_budget_min > 0 else ""
            print(f"train: {session.plan.describe()}{fitted}")
        return session

    def __post_init__(self) -> None:
        t = self.cfg.train
        self.log = TrainLog(self.out, self.rt.is_main, self.progress.step)
        self.fixed = self.trainer.sample_inputs(self.data.banks)
        self.selector = selector_or_none(self.cfg, self.rt.device) if t.select_by_mifid and self.rt.is_main \
            else None
        self.last_save = self.loop_start = time.monotonic()
        self.first_step = self.progress.step
        step_cost = functools.partial(self.trainer.family.step_cost, t, self.trainer.settings)
        self.cost = step_cost if step_cost(0.0) is not None else None
        saved = self.progress.plan
        self.follow(saved if saved is not None and saved.by_clock and t.time_budget_min > 0 else Plan(
            self.data.nominal, t.decay_start))
        if self.end <= self.first_step < self.plan.total:  # an earlier session went past this one's share
            # (its plan shrank): train to the first log row, whose re-fit may move the share, before judging
            self.end = min(self.plan.total, (self.first_step // t.log_every + 1) * t.log_every)

    def run(self) -> None:
        per_epoch = self.data.steps_per_epoch
        while self.progress.step < self.end and not self.stopped:
            epoch = self.progress.step // per_epoch
            epochs = -(-self.plan.total // per_epoch)
            # A context: the bar is closed on errors too, so an error message never lands on the bar's line.
            # Off a terminal: lines with the losses of the last log row (the bar never asks the device).
            with progress_bar(per_epoch, f"epoch {epoch + 1}/{epochs}", "step",
                              every_s=self.cfg.hardware.progress_every_s,
                              initial=self.progress.step % per_epoch,
                              disable=not self.rt.is_main, leave=True, pace=self.pace,
                              dynamic_ncols=True) as bar:
                while self.progress.step < min(self.end, (epoch + 1) * per_epoch) and not self.stopped:
                    self.step()
                    bar.update()
                    self.after_step(epoch, bar)

    # -- the step ----------------------------------------------------------------------------------------
    def step(self) -> None:
        step, progress = self.progress.step, self.plan.progress(self.progress.step)
        self.trainer.set_lr_factor(self.plan.lr_factor(step))
        losses = self.trainer.train_step(self.data.batch(step), progress)
        self.rate.work += self.cost(progress) if self.cost else 1.0
        self.losses.add(losses)
        self.progress.step += 1

    def after_step(self, epoch: int, bar: Bar) -> None:
        t, step = self.cfg.train, self.progress.step
        due = step % t.checkpoint_every == 0
        if step % t.log_every == 0 or step >= self.end:
            due = self.log_row(epoch, bar) or due
        last = step >= self.end  # the plan's end, or this session's share (as re-fitted by that row)
        due = due or last
        if self.rt.is_main and (step % t.sample_every == 0 or last or self.stopped):
            self.log.grid(step, *self.trainer.sample(self.fixed))  # -- sampling
        if self.selector is not None and step % t.select_by_mifid == 0:
            self.progress.best_mifid, line = keep_best(self.out, self.trainer, step, self.progress.best_mifid,
                                                       self.selector)  # -- selection
            bar.write(line)
        if due:
            self.save()

    # -- logging and the budget ---------------------------------------------------------------------------
    def log_row(self, epoch: int, bar: Bar) -> bool:
        """Write a loss row (one wait for the device), re-plan by the clock; True when a checkpoint is due by
        time or budget."""
        t, step, now = self.cfg.train, self.progress.step, time.monotonic()
        elapsed = self.progress.seconds + now - self.session_start
        session_left, run_left = self.budget_left(now)
        means, overdue, spent, planned = _sync(self.rt, self.losses.sums, self.losses.n, [
            now - self.last_save >= t.checkpoint_every_s,
            t.time_budget_min > 0 and session_left <= 0,
            self.fit_plan(now, run_left)])
        _check_finite(means, step, self.out)
        self.log.row({"step": step, "epoch": epoch + 1, "seconds": round(elapsed, 2), "lr": self.trainer.lr(),
                      **self.trainer.log_fields(self.plan.progress(step - 1)), **means})
        bar.set_postfix({k: f"{v:.3f}" for k, v in means.items()}, refresh=False)
        self.losses = _Losses()
        if planned:
            self.adopt(Plan(int(planned), t.decay_start, by_clock=True), elapsed, bar)
        if spent and step < self.plan.total:
            self.stopped = (f"stopped by train.time_budget_min={t.time_budget_min:g}" if t.sessions == 1 else
                            f"session {self.session} of {t.sessions} ended at its "
                            f"train.time_budget_min={t.time_budget_min:g}")
        elif self.end <= step < self.plan.total:
            left = f", with {duration(session_left)} of its budget left" if t.time_budget_min > 0 else ""
            self.stopped = (f"session {self.session} of {t.sessions} ended at its share of the plan, step "
                            f"{step:,} of {self.plan.total:,}{left}")
        return overdue or bool(self.stopped)

    def budget_left(self, now: float) -> tuple[float, float]:
        """Seconds of train.time_budget_min left to this session, and to the whole run. With one session the
        budget counts every call of train (a larger one continues the run); with train.sessions = N each
        session has the budget, and the run has the later sessions' too."""
        t = self.cfg.train
        budget = t.time_budget_min * 60
        if t.sessions == 1:
            left = budget - (self.progress.seconds + now - self.session_start)
            return left, left
        left = budget - (now - self.session_start)
        return left, left + max(0, t.sessions - self.session) * budget

    # -- the plan ----------------------------------------------------------------------------------------
    def fit_plan(self, now: float, left: float) -> float:
        """Rank 0's plan for the run's `left` seconds at the step rate since the warm-up (the session's first
        log row: data loading, compilation and cuDNN's search are behind it), as a step count; 0 = keep the
        plan."""
        t, step = self.cfg.train, self.progress.step
        if t.time_budget_min <= 0 or not self.rt.is_main:
            return 0.0
        origin = self.rate.warm
        if origin is None:
            self.rate.warm = (now, step, self.rate.work)
            if step < self.end:
                return 0.0
            origin = (self.loop_start, self.first_step, 0.0)  # its end came first: measure the session so far
        self.rate.measure(now, step, origin)
        slack = 2 * t.log_every
        rate = self.rate.work_per_s if self.cost else self.rate.steps_per_s
        fitted = fit_to_clock(self.data.nominal, t.decay_start, step, rate, left, slack, self.cost)
        def ends_in_time(total: int) -> bool:
            return self.seconds_to(total) + slack / max(1e-9, self.rate.steps_per_s) <= left

        revised = revise(self.plan, fitted, step, ends_in_time(self.plan.total), ends_in_time(fitted.total))
        return 0.0 if revised is None else float(revised.total)

    def seconds_to(self, total: int) -> float:
        """Seconds from this step to `total` at the rate measured since the warm-up."""
        step = self.progress.step
        if self.cost:
            return remaining_work(step, total, self.cost) / max(1e-9, self.rate.work_per_s)
        return (total - step) / max(1e-9, self.rate.steps_per_s)

    def adopt(self, plan: Plan, elapsed: float, bar: Bar) -> None:
        """Every rank takes rank 0's plan; rank 0 says so when it is the first fitted or moves by 5%."""
        if self.rt.is_main and (not self.plan.by_clock or moved(self.plan, plan, ANNOUNCE_AT)):
            minutes = (elapsed + self.seconds_to(plan.total)) / 60
            bar.write(f"train: {plan.describe(minutes, self.cfg.train.sessions)} (measured "
                      f"{self.rate.steps_per_s:.2f} steps/s at step {self.progress.step:,})")
        self.follow(plan)

    def follow(self, plan: Plan) -> None:
        """Train by `plan` from here on: to its end, or in a run over several sessions to this one's share."""
        self.plan = self.progress.plan = plan
        self.end = plan.share(self.session, self.cfg.train.sessions, self.cost)

    # -- checkpointing ------------------------------------------------------------------------------------
    def save(self) -> None:
        now = time.monotonic()
        save_checkpoint(self.out, self.trainer, self.rt, self.progress,
                        self.progress.seconds + now - self.session_start)
        self.last_save = time.monotonic()

    def finish(self) -> str:
        """Close the log (loss plot, samples.gif) and say what the session did in one line."""
        self.log.finish()
        t, data, rt, step = self.cfg.train, self.data, self.rt, self.progress.step
        if step > self.first_step:
            rate = (step - self.first_step) / max(1e-9, time.monotonic() - self.loop_start)
            done = f"{step:,}/{self.plan.total:,} steps at {rate:.1f} steps/s"
        else:  # nothing left to train: the rate the run was trained at
            rate = step / max(1e-9, self.progress.seconds)
            done = f"{step:,}/{self.plan.total:,} steps, trained earlier at {rate:.1f} steps/s"
        done += f" ({self.stopped})" if self.stopped else ""
        trained = ", ".join(f"{len(b):,} {k}" for k, b in data.banks.items())
        grids = len(list(self.log.samples_dir.glob("step_*.png")))
        if t.sessions > 1 and rt.is_main:
            print(self.record_session(rate))
        return (f"{t.model} {done}, epochs of {data.steps_per_epoch:,} steps over the {data.epoch_bank}s, "
                f"on {trained} x{rt.world_size} {rt.device.type}; {grids} sample grids")

    def record_session(self, rate: float) -> str:
        """Add this session to the run's sessions.json (a session run again replaces itself and those after
        it) and return its line: `session 2 of 3: steps 18,400 → 36,900 of 55,000; lr 1.6e-4`."""
        t, step = self.cfg.train, self.progress.step
        lr = f"{self.trainer.lr():.1e}".replace("e-0", "e-")
        line = (f"session {self.session} of {t.sessions}: steps {self.first_step:,} → {step:,} of "
                f"{self.plan.total:,}; lr {lr}")
        record = {"session": self.session, "sessions": t.sessions, "from_step": self.first_step,
                  "to_step": step, "total": self.plan.total, "lr": self.trainer.lr(),
                  "steps_per_s": round(rate, 3), "seconds": round(time.monotonic() - self.session_start, 1),
                  "stopped": self.stopped, "device": f"{self.rt.world_size} x {self.rt.device.type}",
                  "line": line}
        atomic.write_json(self.out / SESSIONS_FILE, [r for r in read_sessions(self.out)
                                                     if r["session"] < self.session] + [record])
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
    bad = {k: v for k, v in means.items() if not np.isfinite(v)}
    if bad:
        raise UserError(f"training diverged at step {step:,} "
                        f"({', '.join(f'{k}={v}' for k, v in bad.items())}); the "
                        f"checkpoints in {out} are kept; lower train.lr / train.lr_d, then re-run with "
                        "--force")
