"""How many steps a run trains and where its learning rate decays: fixed by the epochs, or fitted to the
clock.

Without a time budget the run trains its family's nominal length (train.epochs epochs for most) and the
learning rate is constant until `decay_start` of it, then falls linearly to zero (CycleGAN's schedule).
With a budget, that schedule would stop wherever the time ran out, usually at the full learning rate; so
the loop measures its step rate after a warm-up and plans the steps that fit what is left of the budget
(never more than the nominal length), and the same schedule runs over the plan. For the whole session it is
re-planned whenever the measured rate moves the plan's end (a load that comes and goes, resumed on other
hardware, a slower GPU), either way: a longer plan after the decay has begun raises the learning rate to what
its own schedule has there and decays it again, where keeping the shorter plan would make a passing slowdown
cost the rest of the run. The plan is saved in every checkpoint and decided by rank 0 for all ranks, so a
resume continues the same schedule; a run over several sessions divides it into equal shares of its work,
one a session.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

REPLAN_AT = 0.01  # a re-plan is adopted when it moves the end by more than 1% of the plan (rate noise)
ANNOUNCE_AT = 0.05  # and printed when it moves it by more than 5% (the first plan is always printed)
FINISH_RESERVE = 0.95  # plan for this share of the time left: the last checkpoint and grid take some too


@dataclass(frozen=True)
class Plan:
    """The run's planned length in steps and the step its linear LR decay begins at."""

    total: int
    decay_start: float  # fraction of `total` trained at the full learning rate (train.decay_start)
    by_clock: bool = False  # fitted to train.time_budget_min (else the nominal length)

    @property
    def decay_from(self) -> int:
        return int(self.total * self.decay_start)

    def lr_factor(self, step: int) -> float:
        """1 until decay_from, then linearly down to 0 at the last step."""
        if step < self.decay_from:
            return 1.0
        return max(0.0, (self.total - step) / max(1, self.total - self.decay_from))

    def progress(self, step: int) -> float:
        """The fraction of the plan done before `step` (what a family's schedule follows)."""
        return min(1.0, step / max(1, self.total))

    def share(self, session: int, sessions: int, cost: Callable[[float], float] | None = None) -> int:
        """The step session `session` of a run over `sessions` trains to: the first step where the plan's work
        (its steps, or their summed `cost` where steps differ in cost) done reaches session/sessions of the
        whole; the plan's end for the last session."""
        if session >= sessions:
            return self.total

        def left(step: int) -> float:
            return remaining_work(step, self.total, cost) if cost else float(self.total - step)
        later = left(0) * (1 - session / sessions)  # the later sessions' work
        lo, hi = 0, self.total  # the first step that leaves them no more, by bisection
        while lo < hi:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if left(mid) <= later else (mid + 1, hi)
        return lo

    def describe(self, minutes: float | None = None, sessions: int = 1) -> str:
        """'planned 41,200 steps in 226 min; decay from step 20,600' (the run's minutes where known, and the
        sessions they span)."""
        when = "" if minutes is None else f" in {minutes:,.{0 if minutes >= 10 else 1}f} min"
        over = f" over {sessions} sessions" if sessions > 1 else ""
        return f"planned {self.total:,} steps{when}{over}; decay from step {self.decay_from:,}"

    def as_dict(self) -> dict[str, float | int | bool]:
        return {"total": self.total, "decay_start": self.decay_start, "by_clock": self.by_clock}

    @classmethod
    def from_dict(cls, saved: dict) -> Plan:
        return cls(int(saved["total"]), float(saved["decay_start"]), bool(saved["by_clock"]))


def fit_to_clock(nominal: int, decay_start: float, step: int, rate: float, seconds_left: float,
                 slack_steps: int = 0, cost: Callable[[float], float] | None = None) -> Plan:
    """The plan that ends when the budget does at `rate` (steps, or with `cost` units of work, per second),
    `slack_steps` early (the budget is only checked every log_every steps, and a rate measured between checks
    can be that far off): at most the nominal length, and at least one step past `step` short of that.

    `cost(progress)` is a step's relative cost where steps differ (ProGAN's grow with the resolution): the
    plan is then the longest whose remaining work fits, its phases compressed alike."""
    work = max(0.0, seconds_left) * FINISH_RESERVE * rate
    if cost is None:
        total = step + max(0, int(work) - slack_steps)
    else:
        def fits(total: int) -> bool:
            return remaining_work(step, total, cost) + slack_steps * cost(step / total) <= work
        lo, hi = step, nominal  # the longest plan that fits, by bisection (the work grows with the length)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if fits(mid) else (lo, mid - 1)
        total = lo
    return Plan(min(nominal, max(step + 1, total)), decay_start, by_clock=True)


def remaining_work(step: int, total: int, cost: Callable[[float], float], samples: int = 256) -> float:
    """The work of steps step .. total - 1 of a `total`-step plan: their costs summed (sampled at `samples`
    evenly spread steps where there are more)."""
    n = total - step
    if n <= 0:
        return 0.0
    k = min(n, samples)
    return n / k * sum(cost((step + (i + 0.5) * n / k) / total) for i in range(k))


def moved(old: Plan, new: Plan, share: float) -> bool:
    """Whether `new` ends more than `share` of `old`'s length away from it."""
    return abs(new.total - old.total) > share * old.total


def revise(current: Plan, fitted: Plan, step: int, fits: bool, fitted_fits: bool = True) -> Plan | None:
    """The plan to follow from `step` on, None to keep `current`: the first fitted one; then, all session
    long, one that moves the end by more than REPLAN_AT either way (less is rate noise), or any shorter one
    once `current` no longer ends inside the budget at the measured rate (`fits`: near the end, 1% of a long
    plan is more than the time left). A longer one only where it ends inside the budget itself
    (`fitted_fits`): out of time, a fit still asks for one more step, which must not extend the run."""
    if fitted.total <= step or fitted.total > current.total and not fitted_fits:
        return None
    overruns = not fits and fitted.total < current.total
    return fitted if not current.by_clock or moved(current, fitted, REPLAN_AT) or overruns else None
