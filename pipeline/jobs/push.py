"""Pushing a job's kernel once, within what Kaggle allows.

Once: the push is recorded as under way before it is sent and with its version after (store.py), so a command
run again follows the run it started instead of paying for another; one killed between sending and recording
finds the version that landed through the kernel's latest version number.

Within what Kaggle allows: each user has some 30 GPU-hours a week and at most two GPU sessions at once, a
third push being refused with "Maximum batch GPU session count of 2 reached" (KAGGLE.md, "Sessions, quota,
concurrency"). A kernel the quota left cannot cover is not pushed (it would be stopped part-way): one line
says how much is left and which setting asks for less. A push refused for the session cap is tried again as
sessions end. Every push asks Kaggle for a session timeout of the job's own limit, so a hung notebook never
burns more.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from ..config import Config
from ..engine.errors import UserError
from ..engine.poll import Poll
from ..engine.text import utc_now
from ..kaggle import api as kaggle_api
from ..kaggle.status import KernelStatus
from .record import Job, JobName
from .store import JobStore


class QuotaExhausted(UserError):
    """The GPU hours left (or a search's own cap) cannot cover the job: nothing was pushed."""


def push_once(cfg: Config, folder: Path, name: JobName, key: str, needs: str, store: JobStore,
              command: str, retry: kaggle_api.Retry,
              check: Callable[[], float | None]) -> Job:
    """The push of the built kernel `folder` (cfg: the builder's settings) recorded as `name`: the one an
    earlier call made with the same settings `key` where its run has not ended, else a new one, pushed after
    `check()` (which reads the quota once, says it, and raises QuotaExhausted where it cannot cover the job)
    allowed it. `needs` names what it runs in messages ("session 2 of 3", "the submission notebook")."""
    ref = kaggle_api.kernel_id(folder)
    earlier = store.unfinished(name, key)
    if earlier is not None and earlier.version:
        print(f"{command}: following {earlier.label}, pushed earlier and not finished")
        return earlier
    if earlier is not None:  # a push under way when an earlier call stopped: did it land?
        latest = landed(ref, retry)
        if latest > earlier.before:
            print(f"{command}: {ref} version {latest} was pushed by an earlier call that stopped before "
                  "recording it: following it")
            return store.put(dataclasses.replace(earlier, version=latest, url=f"https://www.kaggle.com/code/{ref}",
                                                 status=KernelStatus.PUSHED))
    left = check()  # the quota, read before anything else is asked of Kaggle for a new push
    latest = landed(ref, retry)
    record = store.put(Job(name, ref, 0, "", KernelStatus.PUSHING, utc_now(), key, cfg.kernel.limit_min,
                           latest, left))
    ref, version, url = push(cfg, folder, retry, command)
    print(f"{command}: pushed {needs}: {ref} version {version}: {url}", flush=True)
    return store.put(dataclasses.replace(record, ref=ref, version=version, url=url,
                                         status=KernelStatus.PUSHED))


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


def check_quota(quota: kaggle_api.Quota, cfg: Config, needs: str, command: str) -> float:
    """Say the quota (as Kaggle's CLI shows it) and what the job can use; QuotaExhausted in one line when what
    running sessions do not hold cannot cover the job's limit. Returns the hours left."""
    k, hours = cfg.kernel, cfg.kernel.limit_min / 60
    if quota.free_h < hours:
        raise QuotaExhausted(f"{quota.describe()}; {needs} can use up to {hours:g} h: lower "
                             f"{k.job.limit_setting} or wait")
    print(f"{command}: {quota.describe()}; {needs} can use up to {hours:g} h")
    return quota.left_h
