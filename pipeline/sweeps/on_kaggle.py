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
from collections.abc import Collection
from dataclasses import replace

from ..config import Config
from ..config.jobs import SweepVariant
from ..engine import text
from ..jobs.record import Job, JobKind, JobName
from ..jobs.runner import Cost, Ended, JobSpec, Plan, Runner, no_checkpoints
from . import results
from .spec import Sweep, Variant
from .state import SweepState, VariantState, VariantStatus

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


def job_name(sweep: str, variant: str) -> JobName:
    """The variant's kernel among the job records (jobs/store.py)."""
    return JobName(JobKind.SWEEP, sweep, variant)


def run(cfg: Config, sweep: Sweep, state: SweepState, extra: tuple[str, ...], yes: bool) -> str:
    """Push, follow and fetch every variant not ended yet; returns "" once all have ended, or the line that
    stopped the pushing (the quota) once the pushed ones have ended. `yes`: answers the cost question."""
    plan = Variants(cfg, sweep, state, extra)
    queued = sum(v.state == VariantStatus.QUEUED for v in state.variants.values())
    cost = None
    if queued:
        submits = cfg.sweep.submit == "best"
        minutes = queued * cfg.kernel.train_limit_min + (cfg.kernel.generate_limit_min if submits else 0)
        what = (f"sweep {sweep.name}: {queued} variant(s) of the {sweep.preset} preset to train, "
                f"{cfg.sweep.parallel} at once" + (", then the best submitted" if submits else ""))
        cost = Cost(what, minutes / 60)
    return Runner(cfg, "sweep", parallel=cfg.sweep.parallel, cost=cost, yes=yes).run(plan)


class Variants(Plan):
    """The sweep's variants side by side: those running (pushed by an earlier call) first, then the queued
    ones in the file's order; each fetched and read into its record as it ends."""

    def __init__(self, cfg: Config, sweep: Sweep, state: SweepState, extra: tuple[str, ...]) -> None:
        self.cfg, self.sweep, self.state, self.extra = cfg, sweep, state, extra

    def next(self, running: Collection[JobName]) -> JobSpec | None:
        waiting = [v for v in self.sweep.variants if not self.state.variants[v.name].ended
                   and job_name(self.sweep.name, v.name) not in running]
        waiting.sort(key=lambda v: self.state.variants[v.name].state != VariantStatus.RUNNING)
        if not waiting:
            return None
        variant = waiting[0]
        record = self.state.variants[variant.name]
        return JobSpec(job_name(self.sweep.name, variant.name),
                       kernel_settings(self.cfg, self.sweep, variant, self.extra), record.digest,
                       f"variant {variant.name}", self.state.path.parent / variant.slug, no_checkpoints,
                       show_log=False)

    def started(self, spec: JobSpec, job: Job) -> None:
        v = self.state.variants[spec.name.member]
        if v.state != VariantStatus.RUNNING:
            v.state = VariantStatus.RUNNING
            self.state.save()

    def ended(self, result: Ended) -> None:
        v = self.state.variants[result.spec.name.member]
        _read(v, result)
        self.state.save()
        print(f"sweep: {v.name}: {v.state}" + (f" ({v.error})" if v.error else ""), flush=True)


def _read(v: VariantState, result: Ended) -> None:
    """The variant's fetched output (its run's summary, score.json, the pictures) into its record."""
    folder = result.folder
    if not result.ok:
        v.state = VariantStatus.FAILED
        v.error = results.last_line(result.log) or result.failure or result.job.status.value
        return
    v.state = VariantStatus.DONE
    run = next((p for p in sorted((folder / "runs").glob("*")) if p.is_dir()), folder / "runs")
    results.read(v, run, folder / "sweep" / "score.json")
    v.thumbs = str(folder / "sweep" / "thumbs")
