"""search backend kaggle: each trial session a train kernel given to the job runner (jobs/runner.py).

Trial n's session k is the kernel `<slug>-<search>-t<n>-train-<k>`: a train session of a run trained over
search.sessions kernels (the notebook plans the run for every session it could get and trains its share,
kernel.train_limit_min being this rung's hours), session k > 1 attaching session k-1's output and resuming
its run; like a sweep variant it then renders and scores a subset with the attached FID weights and leaves
score.json. Its output (without checkpoints) is fetched into submissions/search/<name>/t<n>/s<k>/ and its
local MiFID reported to the scheduler, which decides what runs next. Never more than two at once (Kaggle's
GPU sessions), the quota and the search's own gpu_hours checked before each push.
"""
from __future__ import annotations

import hashlib
from collections.abc import Collection
from dataclasses import replace
from pathlib import Path

from ..config import Config
from ..config.jobs import SweepVariant
from ..engine import text
from ..engine.keys import digest
from ..jobs.record import JobKind, JobName
from ..jobs.runner import Cost, Ended, JobSpec, Plan, Runner, no_checkpoints
from ..sweeps import results
from .scheduler import Scheduler, Session
from .spec import Search

NOT_IN_NOTEBOOK = ("kernel", "paths", "submit")  # settings that describe this machine and the kernel
MAX_SLUG = 40  # Kaggle titles stop at 50 characters: room for "-train-<k>"


def trial_slug(cfg: Config, search: Search, trial: int) -> str:
    """The base slug of trial `trial`'s kernels (session k's is `<this>-train-<k>`)."""
    slug = text.slug(f"{cfg.kernel.slug}-{search.name}-t{trial}")
    if len(slug) > MAX_SLUG:
        slug = f"{slug[:MAX_SLUG - 7].rstrip('-')}-{hashlib.sha1(slug.encode()).hexdigest()[:6]}"
    return slug


def kernel_settings(cfg: Config, search: Search, session: Session, extra: tuple[str, ...]) -> Config:
    """The builder's settings for one trial session's kernel."""
    slug = trial_slug(cfg, search, session.trial)
    items = tuple(i for i in (*search.sets, *search.items(session.params), *extra)
                  if i.split(".", 1)[0].strip() not in NOT_IN_NOTEBOOK)
    kernel = replace(cfg.kernel, slug=slug, title=slug.replace("-", " ").capitalize(), preset=search.preset,
                     set=items, train_limit_min=session.hours * 60)
    kernel = kernel.doing(SweepVariant(session.session, f"{search.name}/t{session.trial}"))
    return replace(cfg, kernel=kernel, train=replace(cfg.train, sessions=search.sessions))


def job_name(search: Search, trial: int, session: int) -> JobName:
    return JobName(JobKind.SEARCH, search.name, str(trial), session)


def run(cfg: Config, search: Search, scheduler: Scheduler, folder: Path, extra: tuple[str, ...],
        yes: bool) -> str:
    """Run the search's sessions on Kaggle until nothing is left to run or the pushing stopped (the quota or
    gpu_hours); returns "" or the line that stopped it."""
    hours = max(0.0, search.most_hours(scheduler.limit_h) - scheduler.spent_h())
    what = (f"search {search.name}: {search.trials} trial(s) of the {search.preset} preset, up to "
            f"{search.sessions} session(s) each, {cfg.sweep.parallel} at once")
    runner = Runner(cfg, "search", parallel=min(cfg.sweep.parallel, 2), cost=Cost(what, hours), yes=yes)
    return runner.run(Trials(cfg, search, scheduler, folder, extra))


class Trials(Plan):
    """The scheduler's sessions as jobs: whatever it hands out next, reported back as each ends."""

    def __init__(self, cfg: Config, search: Search, scheduler: Scheduler, folder: Path,
                 extra: tuple[str, ...]) -> None:
        self.cfg, self.search, self.scheduler, self.folder, self.extra = cfg, search, scheduler, folder, extra
        self.hours: dict[JobName, float] = {}

    def next(self, running: Collection[JobName]) -> JobSpec | None:
        session = self.scheduler.next({(int(n.member), n.session) for n in running})
        if session is None:
            return None
        kcfg = kernel_settings(self.cfg, self.search, session, self.extra)
        name = job_name(self.search, session.trial, session.session)
        self.hours[name] = session.hours
        return JobSpec(name, kcfg, digest({"kernel": kcfg.kernel, "sessions": self.search.sessions}),
                       f"trial {session.trial} session {session.session} of {self.search.sessions}",
                       self.folder / f"t{session.trial}" / f"s{session.session}", no_checkpoints,
                       show_log=False)

    def ended(self, result: Ended) -> None:
        trial, session = int(result.spec.name.member), result.spec.name.session
        hours = self.hours.get(result.spec.name, result.job.limit_min / 60)
        mifid = results.mifid_in(result.folder / "sweep" / "score.json") if result.ok else None
        if mifid is None:
            error = (results.last_line(result.log) or result.failure or result.job.status.value
                     if not result.ok else "not scored: attach the FID weights (kernel.weights_dataset)")
            self.scheduler.failed(trial, session, error, hours)
            print(f"search: trial {trial} session {session}: failed ({error})", flush=True)
            return
        outcome = self.scheduler.report(trial, session, mifid, hours)
        print(f"search: trial {trial} session {session}: local MiFID {mifid:.3f} ({outcome})",
              flush=True)
