"""The search part of `make bench`: successive halving against the full grid, on synthetic learning curves.

No training: each of 27 configurations (a 3 x 3 x 3 grid of choices) has a seeded learning curve,
MiFID(t) = a + b * t^(-c) after t GPU-hours, times a measurement noise of 0.5% fixed per (configuration, t).
The asymptote a is a sum of three main effects and a configuration's own part; the early excess b and the
rate c vary per configuration, so the rank after the first hour and the final rank agree only partly (their
Spearman correlation, about 0.7, is measured and printed: early stopping can be wrong).

(a) the grid trains every configuration the full length (13 h: 1 + 3 + 9); (b) the search, built as
`make search` builds it (open_study on a journal in a temp folder: the grid sampler, SuccessiveHalvingPruner,
eta 3), runs 27 trials of up to 3 sessions (1 h, 3 h more, 9 h more) through the search's own Scheduler.
Each reports the GPU-hours it spent until it held a trial within 2% of the grid's best final MiFID.
"""
from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np
from optuna.distributions import CategoricalDistribution
from scipy.stats import spearmanr

from ..search.scheduler import Scheduler
from ..search.spec import Search
from ..search.study import open_study

LEVELS = 3  # values per dimension
DIMENSIONS = ("model.a", "model.b", "model.c")  # names only: nothing is loaded from them
SESSIONS, ETA, FIRST_H = 3, 3, 1.0
WITHIN = 0.02  # "found": a trial within 2% of the grid's best final MiFID
NOISE = 0.005  # a MiFID measurement's relative noise (a scoring subset's)
SEEDS = 10


def bench_search(work: Path, seeds: int = SEEDS) -> list[dict]:
    """A row per seed, then one over all of them (the mean Spearman, the median GPU-hours): each side's
    GPU-hours until it held a trial within 2% of the grid's best, and in all."""
    rows = [one_seed(seed, work / f"seed-{seed}") for seed in range(seeds)]
    return [*rows, summary(rows)]


def one_seed(seed: int, folder: Path) -> dict[str, Any]:
    curves = Curves(seed)
    full_h = FIRST_H * sum(ETA ** k for k in range(SESSIONS))
    final = {p: curves.mifid(p, full_h) for p in curves.points}
    target = min(final.values()) * (1 + WITHIN)
    order = np.random.default_rng([seed, 1]).permutation(len(curves.points))  # the grid run in some order
    grid_hit = next(i + 1 for i, j in enumerate(order) if final[curves.points[j]] <= target) * full_h
    search_hit, search_h, best = _search(seed, curves, folder, target)
    row = {"seed": seed, "spearman": curves.spearman(FIRST_H, full_h), "grid_best": min(final.values()),
           "search_best": best, "found": "yes" if search_hit is not None else "no", "search_h": search_h,
           "grid_hit_h": grid_hit, "grid_h": full_h * len(curves.points)}
    return row if search_hit is None else {**row, "search_hit_h": search_hit}


def summary(rows: list[dict]) -> dict[str, Any]:
    """Over all seeds: how often the search found it within half the grid's hours, and the medians."""
    found = [r["search_hit_h"] for r in rows if r.get("search_hit_h", math.inf) <= r["grid_h"] / 2]
    median = {key: float(np.median([r[key] for r in rows])) for key in ("search_h", "grid_hit_h", "grid_h")}
    return {"seed": f"all {len(rows)}", "spearman": float(np.mean([r["spearman"] for r in rows])),
            "found": f"{len(found)} of {len(rows)} within half the grid's GPU-h",
            **({"search_hit_h": float(np.median(found))} if found else {}), **median}


class Curves:
    """The seed's 27 learning curves; a measurement is the curve times a noise fixed per (point, hours)."""

    def __init__(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.seed = seed
        self.points = list(itertools.product(range(LEVELS), repeat=len(DIMENSIONS)))
        n = len(self.points)
        effects = rng.normal(0.0, 2.0, (len(DIMENSIONS), LEVELS))  # each dimension's value matters ...
        self.a = 40.0 + np.array([sum(effects[d][v] for d, v in enumerate(p)) for p in self.points]) \
            + rng.normal(0.0, 2.0, n)  # ... and so does the combination
        self.b = 40.0 * np.exp(rng.normal(0.0, 0.5, n))
        self.c = rng.uniform(0.3, 0.9, n)

    def mifid(self, point: tuple[int, ...], hours: float) -> float:
        i = self.points.index(point)
        noise = np.random.default_rng([self.seed, i, round(hours * 1000)]).normal(0.0, NOISE)
        return float((self.a[i] + self.b[i] * hours ** -self.c[i]) * (1 + noise))

    def spearman(self, early_h: float, late_h: float) -> float:
        """The rank correlation of every point's MiFID after `early_h` hours with that after `late_h`."""
        return float(spearmanr([self.mifid(p, early_h) for p in self.points],
                               [self.mifid(p, late_h) for p in self.points])[0])


def _search(seed: int, curves: Curves, folder: Path, target: float) -> tuple[float | None, float, float]:
    """The search over the curves, session after session as its scheduler hands them out: the GPU-hours
    spent until a reported MiFID was within the target (None: never), in all, and its best."""
    space = {name: CategoricalDistribution(list(range(LEVELS))) for name in DIMENSIONS}
    search = Search("bench-search", folder / "search.toml", "demo", (), "synthetic learning curves",
                    trials=len(curves.points), gpu_hours=float("inf"), sessions=SESSIONS, first_hours=FIRST_H,
                    eta=ETA, seed=seed, backend="local", space=space)
    scheduler = Scheduler(open_study(search, folder), search, FIRST_H * ETA ** (SESSIONS - 1), folder)
    spent, hit, best = 0.0, None, float("inf")
    while (session := scheduler.next()) is not None:
        point = tuple(session.params[name] for name in DIMENSIONS)
        mifid = curves.mifid(point, FIRST_H * search.step(session.session))
        scheduler.report(session.trial, session.session, mifid, session.hours)
        spent += session.hours
        best = min(best, mifid)
        if hit is None and mifid <= target:
            hit = spent
    return hit, spent, best
