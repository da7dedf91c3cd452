"""The plan's clock: how fast this session trains, and what the loop asks of the time budget.

The loop asks, once per log row, through one `Pacer`: whether the budget is spent, whether a checkpoint is
due by the clock, and whether the measured rate moves the plan (plan.py: what fits, when to re-fit); then
every rank takes rank 0's answers, and the Pacer says the plan to follow, this session's end of it (its
share of a run over several sessions) and why it stopped early, if it did.

The clock is injected by whoever trains (`loop.build(cfg, out, clock=...)`): the wall clock in a run, or a
`StepClock` that moves a fixed amount per step, so that a test's plan is the same however loaded the
machine is. A process that cannot be handed one (a notebook run by a test) reads STEP_CLOCK_ENV.
"""
from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from ..config import TrainConfig
from ..engine.text import duration
from .plan import ANNOUNCE_AT, Plan, fit_to_clock, moved, remaining_work, revise
from .state import Progress

STEP_CLOCK_ENV = "PIPELINE_STEP_CLOCK_S"  # seconds a training step takes on a StepClock (tests of notebooks)
RECENT_ROWS = 3  # the log rows the recent step rate is measured over


class Clock(Protocol):
    """What the loop reads the time from."""

    def now(self) -> float:
        """Seconds on a monotonic clock."""

    def step(self) -> None:
        """A training step has ended (a StepClock moves; the wall clock has moved by itself)."""


class WallClock:
    """The machine's monotonic clock."""

    def now(self) -> float:
        return time.monotonic()

    def step(self) -> None:
        pass


@dataclass
class StepClock:
    """A clock moved only by training steps: `seconds` a step, or `seconds(n)` for its n-th step (from 1)."""

    seconds: float | Callable[[int], float] = 0.1
    at: float = 0.0
    steps: int = 0

    def now(self) -> float:
        return self.at

    def step(self) -> None:
        self.steps += 1
        self.at += self.seconds(self.steps) if callable(self.seconds) else self.seconds

    def __str__(self) -> str:
        each = "" if callable(self.seconds) else f" of {self.seconds:g} s a step"
        return f"a step clock{each}, not this machine's time"


def default_clock() -> Clock:
    """The wall clock, or a StepClock where the environment's STEP_CLOCK_ENV gives a step's seconds."""
    seconds = os.environ.get(STEP_CLOCK_ENV)
    return StepClock(float(seconds)) if seconds else WallClock()


@dataclass
class Rate:
    """How fast the session trains, in steps and in work (measured on rank 0).

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
class Pacer:
    """One session's plan against its clock. `progress` is the loop's (its step; the plan is kept there for
    the checkpoints); `decides` on rank 0, which measures the rate and re-fits for every rank."""

    train: TrainConfig
    progress: Progress
    nominal: int  # the run's length without a budget: the most a plan may be
    cost: Callable[[float], float] | None  # a step's cost where steps differ (plan by work), else None
    clock: Clock
    started: float  # when this call of train began, on `clock` (its budget counts from there)
    decides: bool
    plan: Plan = field(init=False)
    end: int = field(init=False)  # the plan's end, or in a run over several sessions this one's share
    first_step: int = field(init=False)  # the step the session began at, and when: its own rate
    began: float = field(init=False)
    last_save: float = field(init=False)
    stopped: str = field(default="", init=False)  # why it ended before the plan's end (the budget, its share)
    rate: Rate = field(default_factory=Rate, init=False)

    def __post_init__(self) -> None:
        t, saved = self.train, self.progress.plan
        self.first_step, self.began = self.progress.step, self.clock.now()
        self.last_save = self.began
        self.follow(saved if saved is not None and saved.by_clock and t.time_budget_min > 0 else Plan(
            self.nominal, t.decay_start))
        if self.end <= self.first_step < self.plan.total:  # an earlier session went past this one's share
            # (its plan shrank): train to the first log row, whose re-fit may move the share, before judging
            self.end = min(self.plan.total, (self.first_step // t.log_every + 1) * t.log_every)

    @property
    def session(self) -> int:
        """This session's number in the run (1 for the first)."""
        return self.progress.sessions

    def describe(self) -> str:
        """The plan the session starts by, and whether the clock will re-plan it."""
        t = self.train
        fitted = (f"; train.time_budget_min={t.time_budget_min:g}: re-planned to fit the clock after a "
                  "warm-up" if t.time_budget_min > 0 else "")
        on = f" (on {self.clock})" if fitted and isinstance(self.clock, StepClock) else ""
        return f"train: {self.plan.describe()}{fitted}{on}"

    def stepped(self, progress: float) -> None:
        """A step at `progress` of the plan has ended: count its work."""
        self.rate.work += self.cost(progress) if self.cost else 1.0
        self.clock.step()

    def seconds(self, now: float | None = None) -> float:
        """The run's training time so far: the earlier sessions', and this one's until `now`."""
        return self.progress.seconds + (self.clock.now() if now is None else now) - self.started

    def saved(self) -> None:
        self.last_save = self.clock.now()

    def session_rate(self) -> tuple[float, float]:
        """This session's steps per second (where it trained none, the rate the run was trained at earlier)
        and its seconds so far."""
        now, step = self.clock.now(), self.progress.step
        rate = ((step - self.first_step) / max(1e-9, now - self.began) if step > self.first_step
                else step / max(1e-9, self.progress.seconds))
        return rate, now - self.started

    # -- at a log row -------------------------------------------------------------------------------------
    def decide(self, now: float) -> list[float]:
        """Rank 0's answers at a log row, as numbers for one collective: a checkpoint is due by
        train.checkpoint_every_s, the budget is spent, and the re-fitted plan's length (0 = keep the plan)."""
        t = self.train
        session_left, run_left = self.budget_left(now)
        return [now - self.last_save >= t.checkpoint_every_s, t.time_budget_min > 0 and session_left <= 0,
                self.fit(now, run_left)]

    def settle(self, now: float, spent: float, planned: float) -> str:
        """Every rank takes rank 0's answers: its plan, and whether the session stops here. Returns rank 0's
        line announcing a new plan ("" where there is none to say)."""
        t, step = self.train, self.progress.step
        line = self.adopt(Plan(int(planned), t.decay_start, by_clock=True), now) if planned else ""
        budget = f"train.time_budget_min={t.time_budget_min:g}"
        if spent and step < self.plan.total:
            self.stopped = (f"stopped by {budget}" if t.sessions == 1 else
                            f"session {self.session} of {t.sessions} ended at its {budget}")
        elif self.end <= step < self.plan.total:
            left = (f", with {duration(self.budget_left(now)[0])} of its budget left" if t.time_budget_min > 0
                    else "")
            self.stopped = (f"session {self.session} of {t.sessions} ended at its share of the plan, step "
                            f"{step:,} of {self.plan.total:,}{left}")
        return line

    def budget_left(self, now: float) -> tuple[float, float]:
        """Seconds of train.time_budget_min left to this session, and to the whole run. With one session the
        budget counts every call of train (a larger one continues the run); with train.sessions = N each
        session has the budget, and the run has the later sessions' too."""
        t = self.train
        budget = t.time_budget_min * 60
        if t.sessions == 1:
            left = budget - self.seconds(now)
            return left, left
        left = budget - (now - self.started)
        return left, left + max(0, t.sessions - self.session) * budget

    def fit(self, now: float, left: float) -> float:
        """Rank 0's plan for the run's `left` seconds at the step rate since the warm-up (the session's first
        log row: data loading, compilation and cuDNN's search are behind it), as a step count; 0 = keep the
        plan."""
        t, step = self.train, self.progress.step
        if t.time_budget_min <= 0 or not self.decides:
            return 0.0
        origin = self.rate.warm
        if origin is None:
            self.rate.warm = (now, step, self.rate.work)
            if step < self.end:
                return 0.0
            origin = (self.began, self.first_step, 0.0)  # its end came first: measure the session so far
        self.rate.measure(now, step, origin)
        slack = 2 * t.log_every
        rate = self.rate.work_per_s if self.cost else self.rate.steps_per_s
        fitted = fit_to_clock(self.nominal, t.decay_start, step, rate, left, slack, self.cost)

        def ends_in_time(total: int) -> bool:
            return self.seconds_to(total) + slack / max(1e-9, self.rate.steps_per_s) <= left

        revised = revise(self.plan, fitted, step, ends_in_time(self.plan.total), ends_in_time(fitted.total))
        return 0.0 if revised is None else float(revised.total)

    def seconds_to(self, total: int) -> float:
        """Seconds from this step to `total` at the rate measured."""
        step = self.progress.step
        if self.cost:
            return remaining_work(step, total, self.cost) / max(1e-9, self.rate.work_per_s)
        return (total - step) / max(1e-9, self.rate.steps_per_s)

    def adopt(self, plan: Plan, now: float) -> str:
        """Follow rank 0's `plan`; rank 0's line saying so when it is the first fitted or moves by 5%."""
        line = ""
        if self.decides and (not self.plan.by_clock or moved(self.plan, plan, ANNOUNCE_AT)):
            minutes = (self.seconds(now) + self.seconds_to(plan.total)) / 60
            line = (f"train: {plan.describe(minutes, self.train.sessions)} (measured "
                    f"{self.rate.steps_per_s:.2f} steps/s at step {self.progress.step:,})")
        self.follow(plan)
        return line

    def follow(self, plan: Plan) -> None:
        """Train by `plan` from here on: to its end, or in a run over several sessions to this one's share."""
        self.plan = self.progress.plan = plan
        self.end = plan.share(self.session, self.train.sessions, self.cost)
