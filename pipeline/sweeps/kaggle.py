"""sweep.backend=kaggle: each variant is a train kernel (`<slug>-<sweep>-<variant>-train-1`, one session) that
also renders sweep.score_images images of the same photos and scores them in the notebook where the FID
weights are attached (kernel.weights_dataset) or can be downloaded (kernel.enable_internet=true: allowed for
a kernel that is not submitted), leaving score.json and the fixed photos through it (notebook/runtime.py).

At most sweep.parallel kernels run at once (Kaggle's cap on concurrent GPU sessions), the rest queued; the
GPU quota is read before every push, and when what is left cannot cover a variant the sweep stops pushing,
saying when the quota refreshes, and follows the ones already running. Each variant's output (its run's
summary without the checkpoints, score.json, the pictures) is fetched as it completes; a failed one is
recorded with the last line of its log while the others go on.
"""
from __future__ import annotations

import dataclasses
import hashlib
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..config import Config
from ..kaggle import api as kaggle_api
from ..kernels.push import QuotaExhausted, push_recorded
from ..stages import STAGES
from . import results
from .spec import Sweep, Variant, slugify
from .state import DONE, FAILED, QUEUED, RUNNING, SweepState, VariantState

NOT_IN_NOTEBOOK = ("kernel", "paths", "submit")  # settings that describe this machine and the kernel
MAX_SLUG = 42  # Kaggle titles stop at 50 characters: room for "-train-1"


def kernel_settings(cfg: Config, sweep: Sweep, variant: Variant, extra: tuple[str, ...]) -> Config:
    """The builder's settings for the variant's train kernel: its slug, role train (one session), the sweep's
    preset with the base's, the variant's and the command's items as kernel.set."""
    slug = slugify(f"{cfg.kernel.slug}-{sweep.name}-{variant.slug}")
    if len(slug) > MAX_SLUG:
        slug = f"{slug[:MAX_SLUG - 7].rstrip('-')}-{hashlib.sha1(slug.encode()).hexdigest()[:6]}"
    items = [i for i in (*sweep.sets, *variant.sets, *extra)
             if i.split(".", 1)[0].strip() not in NOT_IN_NOTEBOOK]
    kernel = replace(cfg.kernel, slug=slug, title=slug.replace("-", " ").capitalize(), role="train",
                     session=1, sweep=f"{sweep.name}/{variant.name}", preset=sweep.preset,
                     set=";".join(items))
    return replace(cfg, kernel=kernel, train=replace(cfg.train, sessions=1))


def run(cfg: Config, sweep: Sweep, state: SweepState, extra: tuple[str, ...]) -> str:
    """Push, follow and fetch every variant not ended yet; returns "" once all have ended, or the line that
    stopped the pushing (the quota) once the pushed ones have ended."""
    retry = kaggle_api.Retry(tries=cfg.submit.retries, delay_s=cfg.submit.retry_delay_s)
    root = state.path.parent
    queue = [v for v in sweep.variants if state.variants[v.name].state == QUEUED]
    running = [v for v in sweep.variants if state.variants[v.name].state == RUNNING]
    for v in running:
        print(f"sweep: {v.name}: following {state.variants[v.name].ref} version "
              f"{state.variants[v.name].version}, pushed earlier")
    stopped = ""
    while running or queue and not stopped:
        while queue and len(running) < cfg.sweep.parallel and not stopped:
            variant = queue[0]
            kcfg = kernel_settings(cfg, sweep, variant, extra)
            v = state.variants[variant.name]
            try:
                ref, version, url = push_recorded(kcfg, STAGES["kernel"].run(kcfg), retry, "sweep",
                                                  f"variant {variant.name}", dataclasses.asdict(v),
                                                  lambda values, v=v: _record(state, v, values))
            except QuotaExhausted as exc:
                stopped = str(exc)
                print(f"sweep: stops pushing ({len(queue)} variant(s) still queued): {exc}")
                break
            queue.pop(0)
            v.state = RUNNING
            state.save()
            running.append(variant)
            print(f"sweep: {variant.name}: pushed {ref} version {version}: {url}", flush=True)
        time.sleep(cfg.submit.poll_interval_s)
        for variant in list(running):
            v = state.variants[variant.name]
            try:
                status, failure = kaggle_api.kernel_status(v.ref, retry)
            except kaggle_api.KaggleUnavailable as exc:  # a blip: ask again next round
                print(f"sweep: {exc}; still following")
                continue
            if status in ("complete", "error", "cancel_acknowledged"):
                running.remove(variant)
                _fetch(v, root / variant.slug, status, failure, retry)
                state.save()
                print(f"sweep: {variant.name}: {v.state}" + (f" ({v.error})" if v.error else ""), flush=True)
    return stopped


def _record(state: SweepState, v: VariantState, values: dict[str, Any]) -> None:
    """Keep a push of the variant's kernel, under way or done, before anything else happens."""
    v.ref, v.version, v.url, v.pushing = values["ref"], values["version"], values["url"], values["pushing"]
    v.before = values.get("before", v.before)
    state.save()


def _fetch(v: VariantState, folder: Path, status: str, failure: str, retry: kaggle_api.Retry) -> None:
    """The variant's output without its checkpoints, read into its record."""
    kaggle_api.kernel_output(v.ref, folder, retry, wanted=lambda name: not name.endswith(".pt"))
    if status != "complete":
        log = folder / f"{v.ref.split('/')[1]}.log"
        v.state, v.error = FAILED, results.last_line(log) or failure or status
        return
    v.state = DONE
    run = next((p for p in sorted((folder / "runs").glob("*")) if p.is_dir()), folder / "runs")
    results.read(v, run, folder / "sweep" / "score.json")
    v.thumbs = str(folder / "sweep" / "thumbs")
