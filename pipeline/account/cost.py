"""What a Kaggle command is about to spend, said before it spends it.

A GPU-hour on Kaggle comes out of some 30 a week, and `make submit DRY_RUN=1` sounds cheap while it is a full
five-hour run, so every command that starts GPU time first prints one line: what runs (preset, family,
sessions), the most GPU-hours it can use (the session timeouts it asks for: a hung notebook is stopped there),
what the quota keeps after it and the submissions left today. On a terminal, when it can use more than an
hour, it asks before pushing (YES=1 / --yes answers); without a terminal it never asks, so scripts and CI
never block.
"""
from __future__ import annotations

import sys

from ..config import Config
from ..engine.errors import UserError
from ..engine.text import refreshes
from ..kaggle import api as kaggle_api

ASK_ABOVE_H = 1.0  # a push that can use more GPU-hours than this asks first, on a terminal


def announce(cfg: Config, command: str, what: str, hours: float, yes: bool, quota: kaggle_api.Quota | None,
             retry: kaggle_api.Retry) -> None:
    """Print the cost line of running `what` for up to `hours` (`quota`: as read for the push it comes before,
    None without a GPU); ask on a terminal above ASK_ABOVE_H GPU-hours, UserError (nothing pushed) unless the
    answer is yes."""
    gpu = quota is not None
    parts = [f"{command}: {what}"]
    if gpu:
        held = f"{quota.reserved_h:.1f} h held by running sessions; " if quota.reserved_h else ""
        parts.append(f"up to {hours:g} GPU-hours of the {quota.left_h:.1f} h left "
                     f"({held}{max(0.0, quota.free_h - hours):.1f} h after it; the quota refreshes "
                     f"{refreshes(quota.refresh)})")
    else:
        parts.append(f"up to {hours:g} h on Kaggle's CPU (kernel.accelerator=none: no GPU quota)")
    limits = kaggle_api.submissions_left(cfg.download.competition, retry)
    parts.append(f"{limits.left} submission(s) left today")
    if cfg.submit.dry_run:
        parts.append("DRY_RUN: a full run on Kaggle that does not submit")
    print("; ".join(parts), flush=True)
    if gpu and hours > ASK_ABOVE_H and not yes and sys.stdin.isatty():
        answer = input(f"{command}: push it? [y/N] ").strip()
        if answer.lower() not in ("y", "yes"):
            raise UserError(f"nothing pushed (answered '{answer or 'no'}'); YES=1 (--yes) answers yes "
                            "without asking")


def describe(cfg: Config, kcfg: Config, doing: str) -> str:
    """'the kaggle-cut preset (cut) <doing>': what the notebook built from `cfg` runs (kcfg: its settings)."""
    return f"the {cfg.kernel.preset} preset ({kcfg.train.model}) {doing}"
