"""Pushing a kernel once, within what Kaggle allows.

Once: the push is recorded as under way before it is sent and with its version after (record.py), so a command
run again follows the run it started instead of paying for another; one killed between sending and recording
finds the version that landed through the kernel's latest version number.

Within what Kaggle allows: each user has some 30 GPU-hours a week (`kaggle quota` reads the exact figure, what
running sessions hold in reserve and when it refreshes) and at most two GPU sessions at once, a third push
being refused with "Maximum batch GPU session count of 2 reached" (KAGGLE.md, "Sessions, quota, concurrency").
A kernel the quota left cannot cover is not pushed (it would be stopped part-way): one line says how much is
left and which setting asks for less. A push refused for the session cap is tried again as sessions end. Every
push asks Kaggle for a session timeout of the job's own limit, so a hung notebook never burns more.
"""
from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timezone
from pathlib import Path

from ..config import Config
from ..engine.errors import UserError
from ..engine.poll import Poll
from ..kaggle import api as kaggle_api
from ..kaggle.status import KernelStatus
from .record import PushedKernel, PushStore, utc_now


class QuotaExhausted(UserError):
    """The GPU hours left cannot cover the kernel: nothing was pushed."""


def push_once(cfg: Config, folder: Path, retry: kaggle_api.Retry, command: str, needs: str, store: PushStore,
              name: str, key: str) -> PushedKernel:
    """The push of the built kernel `folder` (cfg: the builder's settings) recorded as `name` in `store`: the
    one an earlier call made with the same settings `key` where its run has not ended, else a new one. `needs`
    names what it runs in messages ("session 2", "the submission notebook")."""
    ref = json.loads((folder / "kernel-metadata.json").read_text())["id"]
    earlier = unfinished(store, name, key)
    if earlier is not None and earlier.version:
        print(f"{command}: following {earlier.label}, pushed earlier and not finished")
        return earlier
    latest = landed(ref, retry)
    if earlier is not None and latest > earlier.before:
        print(f"{command}: {ref} version {latest} was pushed by an earlier call that stopped before "
              "recording it: following it")
        url = f"https://www.kaggle.com/code/{ref}"
        landed_now = dataclasses.replace(earlier, version=latest, url=url, status=KernelStatus.PUSHED)
        return store.put(name, landed_now)
    left = check_quota(cfg, needs, retry, command)
    record = store.put(name, PushedKernel(ref, 0, "", KernelStatus.PUSHING, utc_now(), key, latest, left))
    ref, version, url = push(cfg, folder, retry, command)
    print(f"{command}: pushed {needs}: {ref} version {version}: {url}", flush=True)
    return store.put(name, dataclasses.replace(record, ref=ref, version=version, url=url,
                                               status=KernelStatus.PUSHED))


def unfinished(store: PushStore, name: str, key: str) -> PushedKernel | None:
    """The record `name` where it is a push of these settings whose run has not ended: push_once follows
    it."""
    earlier = store.get(name)
    return earlier if earlier is not None and earlier.key == key and not earlier.status.ended else None


def push(cfg: Config, folder: Path, retry: kaggle_api.Retry, command: str) -> tuple[str, int, str]:
    """Push the built kernel `folder` with the job's session timeout, waiting out the session cap; returns
    (owner/slug, version, URL)."""
    poll = Poll(cfg.submit.poll_timeout_min * 60, cfg.submit.poll_interval_s)
    while True:
        try:
            return kaggle_api.push_kernel(folder, retry, cfg.kernel.limit_min * 60)
        except kaggle_api.SessionCapReached as exc:
            def say(pause: float, exc: Exception = exc) -> None:
                print(f"{command}: Kaggle already runs as many GPU sessions of yours as it allows ({exc}); "
                      f"nothing was pushed, trying again in {pause:.0f} s", flush=True)

            if not poll.wait(say):
                raise UserError(f"{exc}; still refused after {poll.elapsed_s / 60:.0f} min "
                                "(submit.poll_timeout_min): wait for a GPU session of yours to end, then run "
                                f"the same {command} again") from None


def landed(ref: str, retry: kaggle_api.Retry) -> int:
    """The latest version of the kernel `ref`, 0 where Kaggle does not know it (it answers 403)."""
    try:
        return kaggle_api.kernel_version(ref, retry)
    except kaggle_api.KaggleUnavailable:
        raise
    except UserError:
        return 0


def check_quota(cfg: Config, needs: str, retry: kaggle_api.Retry, command: str) -> float | None:
    """The GPU hours left (what running sessions reserve counted as spent); QuotaExhausted in one line when
    they cannot cover the job's limit. None for a kernel without a GPU."""
    k = cfg.kernel
    if not k.machine_shape:
        return None
    hours = k.limit_min / 60
    quota = kaggle_api.gpu_quota(retry)
    left = (f"GPU quota: {quota.left_h:.1f} h left of {quota.total_h:g} h"
            + (f" ({quota.reserved_h:.1f} h held by running sessions)" if quota.reserved_h else "")
            + f", refreshes {refreshes(quota.refresh)}")
    if quota.left_h < hours:
        raise QuotaExhausted(f"{left}; {needs} can use up to {hours:g} h: lower {k.job.limit_setting} or "
                             "wait")
    print(f"{command}: {left}; {needs} can use up to {hours:g} h")
    return quota.left_h


def refreshes(when: datetime | None, now: datetime | None = None) -> str:
    """'in 2 days', 'in 5 h', 'within the hour' ('at an unknown time' without a date)."""
    if when is None:
        return "at an unknown time"
    hours = (when - (now or datetime.now(timezone.utc))).total_seconds() / 3600
    if hours >= 48:
        return f"in {hours / 24:.0f} days"
    return f"in {hours:.0f} h" if hours >= 1 else "within the hour"
