"""Pushing a kernel within what Kaggle allows: the weekly GPU quota read before every push, and a push refused
because the user's GPU sessions are all running waited out instead of failing.

Kaggle gives each user some 30 GPU-hours a week (`kaggle quota`, kaggle >= 2.2.1, reads the exact figure and
when it refreshes) and at most two GPU sessions at once; a third push is refused with "Maximum batch GPU
session count of 2 reached" (KAGGLE.md, "Sessions, quota, concurrency"). A session that the quota cannot cover
would be stopped part-way, so it is not pushed: one line says how much is left, when it refreshes and which
setting asks for less.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..config import Config
from ..engine.errors import UserError
from ..kaggle import api as kaggle_api


class QuotaExhausted(UserError):
    """The GPU hours left cannot cover the kernel: nothing was pushed."""


def push(cfg: Config, folder: Path, retry: kaggle_api.Retry, command: str,
         needs: str) -> tuple[str, int, str]:
    """Push the built kernel `folder` (cfg: the builder's settings); `needs` names what it runs in messages
    ("session 2", "the submission notebook"). Returns (owner/slug, version, URL)."""
    k = cfg.kernel
    if k.machine_shape:
        check_quota(k.limit_min / 60, needs, "kernel.train_limit_min" if k.role == "train"
                    else "kernel.time_limit_min", retry, command)
    timeout_s = k.limit_min * 60 if k.role == "train" else 0  # a train kernel asks for its own, longer limit
    start, pause = time.monotonic(), cfg.submit.poll_interval_s / 8
    while True:
        try:
            return kaggle_api.push_kernel(folder, retry, timeout_s)
        except kaggle_api.SessionCapReached as exc:
            waited = time.monotonic() - start
            if waited + pause > cfg.submit.poll_timeout_min * 60:
                raise UserError(f"{exc}; still refused after {waited / 60:.0f} min "
                                "(submit.poll_timeout_min): wait for a GPU session of yours to end, then run "
                                f"the same {command} again") from None
            print(f"{command}: Kaggle already runs as many GPU sessions of yours as it allows ({exc}); "
                  f"nothing was pushed, trying again in {pause:.0f} s", flush=True)
            time.sleep(pause)
            pause = min(pause * 2, cfg.submit.poll_interval_s)


def push_recorded(cfg: Config, folder: Path, retry: kaggle_api.Retry, command: str, needs: str,
                  earlier: dict[str, Any], record: Callable[[dict[str, Any]], None]) -> tuple[str, int, str]:
    """Push the kernel `folder` once, however the command is interrupted. `earlier` is what an earlier call
    recorded for it: a version (pushed: followed, not pushed again) or a push under way with the kernel's
    latest version before it (a call killed between sending the push and recording its version: if Kaggle's
    latest version is newer now, that push went through and is followed). `record` keeps the push, under way
    first, then with its version."""
    ref = json.loads((folder / "kernel-metadata.json").read_text())["id"]
    if earlier.get("version"):
        return earlier["ref"], int(earlier["version"]), earlier["url"]
    latest = landed(ref, retry)
    if earlier.get("pushing") and latest > int(earlier.get("before", 0)):
        print(f"{command}: {ref} version {latest} was pushed by an earlier call that stopped before "
              "recording it: following it")
        url = f"https://www.kaggle.com/code/{ref}"
        record({"ref": ref, "version": latest, "url": url, "pushing": False})
        return ref, latest, url
    record({"ref": ref, "version": 0, "url": "", "pushing": True, "before": latest})
    ref, version, url = push(cfg, folder, retry, command, needs)
    record({"ref": ref, "version": version, "url": url, "pushing": False})
    return ref, version, url


def landed(ref: str, retry: kaggle_api.Retry) -> int:
    """The latest version of the kernel `ref`, 0 where Kaggle does not know it (it answers 403)."""
    try:
        return kaggle_api.kernel_version(ref, retry)
    except kaggle_api.KaggleUnavailable:
        raise
    except UserError:
        return 0


def check_quota(hours: float, needs: str, setting: str, retry: kaggle_api.Retry, command: str) -> None:
    """Refuse in one line when the GPU hours left cannot cover `hours`; say the quota is unknown where the
    installed client cannot read it, and go on."""
    quota = kaggle_api.gpu_quota(retry)
    if quota is None:
        print(f"{command}: GPU quota unknown (this kaggle client cannot read it; kaggle >= 2.2.1 can): "
              "going on")
        return
    left = (f"GPU quota: {quota.left_h:.1f} h left of {quota.total_h:g} h, refreshes "
            f"{refreshes(quota.refresh)}")
    if quota.left_h < hours:
        raise QuotaExhausted(f"{left}; {needs} needs up to {hours:g} h: lower {setting} or wait")
    print(f"{command}: {left}; {needs} needs up to {hours:g} h")


def refreshes(when: datetime | None, now: datetime | None = None) -> str:
    """'in 2 days', 'in 5 h', 'within the hour' ('at an unknown time' without a date)."""
    if when is None:
        return "at an unknown time"
    hours = (when - (now or datetime.now(timezone.utc))).total_seconds() / 3600
    if hours >= 48:
        return f"in {hours / 24:.0f} days"
    return f"in {hours:.0f} h" if hours >= 1 else "within the hour"
