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

import hashlib
from dataclasses import replace
from pathlib import Path

from ..config import Config
from ..config.jobs import SweepVariant
from ..engine import text
from ..engine.errors import UserError
from ..engine.poll import Poll
from ..kaggle import api as kaggle_api
from ..kaggle.status import KernelStatus
from ..kernels.cost import announce
from ..kernels.push import QuotaExhausted, push_once
from ..kernels.record import PushedKernel, PushStore
from ..kernels.stage import KERNEL
from . import results
from .spec import Sweep, Variant
from .state import DONE, FAILED, QUEUED, RUNNING, SweepState, VariantState

NOT_IN_NOTEBOOK = ("kernel", "paths", "submit")  # settings that describe this machine and the kernel
MAX_SLUG = 42  # Kaggle titles stop at 50 characters: room for "-train-1"


def kernel_settings(cfg: Config, sweep: Sweep, variant: Variant, extra: tuple[str, ...]) -> Config:
    """The builder's settings for the variant's train kernel: its slug, one train session of a sweep variant,
    the sweep's preset with the base's, the variant's and the command's items as kernel.set."""
    slug = text.slug(f"{cfg.kernel.slug}-{sweep.name}-{variant.slug}")
    if len(slug) > MAX_SLUG:
        slug = f"{slug[:MAX_SLUG - 7].rstrip('-')}-{hashlib.sha1(slug.encode()).hexdigest()[:6]}"
    items = tuple(i for i in (*sweep.sets, *variant.sets, *extra)
                  if i.split(".", 1)[0].strip() not in NOT_IN_NOTEBOOK)
    kernel = replace(cfg.kernel, slug=slug, title=slug.replace("-", " ").capitalize(), preset=sweep.preset,
                     set=items).doing(SweepVariant(1, f"{sweep.name}/{variant.name}"))
    return replace(cfg, kernel=kernel, train=replace(cfg.train, sessions=1))


def record_name(sweep: str, variant: str) -> str:
    """The variant's kernel in the push records (kernels/record.py)."""
    return f"sweep/{sweep}/{variant}"


def run(cfg: Config, sweep: Sweep, state: SweepState, extra: tuple[str, ...], yes: bool) -> str:
    """Push, follow and fetch every variant not ended yet; returns "" once all have ended, or the line that
    stopped the pushing (the quota) once the pushed ones have ended. `yes`: answers the cost question."""
    retry = kaggle_api.Retry(tries=cfg.submit.retries, delay_s=cfg.submit.retry_delay_s)
    store, root = PushStore(cfg.submissions_dir), state.path.parent
    queue = [v for v in sweep.variants if state.variants[v.name].state == QUEUED]
    if queue:
        submits = cfg.sweep.submit == "best"
        minutes = len(queue) * cfg.kernel.train_limit_min + (cfg.kernel.generate_limit_min if submits else 0)
        hours = minutes / 60
        what = (f"sweep {sweep.name}: {len(queue)} variant(s) of the {sweep.preset} preset to train, "
                f"{cfg.sweep.parallel} at once" + (", then the best submitted" if submits else ""))
        announce(cfg, "sweep", what, hours, yes, retry)
    running = {v.name: store.get(record_name(sweep.name, v.name)) for v in sweep.variants
               if state.variants[v.name].state == RUNNING}
    stopped, poll = "", _poll(cfg)
    while running or queue and not stopped:
        while queue and len(running) < cfg.sweep.parallel and not stopped:
            variant = queue[0]
            kcfg = kernel_settings(cfg, sweep, variant, extra)
            v = state.variants[variant.name]
            try:
                running[variant.name] = push_once(kcfg, KERNEL.run(kcfg), retry, "sweep",
                                                  f"variant {variant.name}", store,
                                                  record_name(sweep.name, variant.name), v.digest)
            except QuotaExhausted as exc:
                stopped = str(exc)
                print(f"sweep: stops pushing ({len(queue)} variant(s) still queued): {exc}")
                break
            queue.pop(0)
            v.state, poll = RUNNING, _poll(cfg)
            state.save()
        for name, kernel in list(running.items()):
            try:
                status, failure = kaggle_api.kernel_status(kernel.ref, kernel.version, retry)
            except kaggle_api.KaggleUnavailable as exc:  # a blip: ask again next round
                print(f"sweep: {exc}; still following")
                continue
            if status.ended:
                del running[name]
                kernel = store.put(record_name(sweep.name, name), kernel.now(status))
                v = state.variants[name]
                _fetch(v, kernel, root / sweep.variant(name).slug, failure, retry)
                state.save()
                print(f"sweep: {name}: {v.state}" + (f" ({v.error})" if v.error else ""), flush=True)
        if (running or queue and not stopped) and not poll.wait():
            raise UserError(f"sweep {sweep.name}: {', '.join(running)} still running after "
                            f"{poll.timeout_s / 60:.0f} min; they keep running on Kaggle: run the same sweep "
                            "again to keep following them")
    return stopped


def _poll(cfg: Config) -> Poll:
    """How long the sweep follows its kernels after its latest push: the longest a train session may run."""
    limit_min = max(cfg.submit.poll_timeout_min, cfg.kernel.train_limit_min + 60)
    return Poll(limit_min * 60, cfg.submit.poll_interval_s)


def _fetch(v: VariantState, kernel: PushedKernel, folder: Path, failure: str,
           retry: kaggle_api.Retry) -> None:
    """The variant's output without its checkpoints, read into its record."""
    kaggle_api.kernel_output(kernel.ref, kernel.version, folder, retry,
                             wanted=lambda name: not name.endswith(".pt"))
    if kernel.status is not KernelStatus.COMPLETE:
        log = folder / f"{kernel.ref.split('/')[1]}.log"
        v.state, v.error = FAILED, results.last_line(log) or failure or kernel.status.value
        return
    v.state = DONE
    run = next((p for p in sorted((folder / "runs").glob("*")) if p.is_dir()), folder / "runs")
    results.read(v, run, folder / "sweep" / "score.json")
    v.thumbs = str(folder / "sweep" / "thumbs")
