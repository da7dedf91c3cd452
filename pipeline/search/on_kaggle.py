"""backend kaggle: each trial session a train kernel given to the job runner (jobs/runner.py).

Trial n's session k is the kernel `<slug>-<name>-<label>-train-<k>` (the label `t<n>`, or a sweep's variant's
slug): a train session of a run trained over search.sessions kernels (the notebook plans the run for every
session it could get and trains its share, kernel.train_limit_min being this rung's hours), session k > 1
attaching session k-1's output and resuming its run; it then renders and scores a subset with the attached
FID weights and leaves score.json and the fixed photos through it. Its output (without checkpoints) is
fetched into submissions/<search|sweeps>/<name>/<label>/s<k>/ and its local MiFID reported to the scheduler,
which decides what runs next. Never more than sweep.parallel (at most two: Kaggle's GPU sessions) at once,
the quota and the search's own gpu_hours checked before each push. A session's job is pushed once: a command
killed after its kernel ended and before its report fetches it again instead of pushing it again.
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
from . import results
from .scheduler import Scheduler, Session, TrialStatus
from .spec import VARIANT, Search

NOT_IN_NOTEBOOK = ("kernel", "paths", "submit")  # settings that describe this machine and the kernel
MAX_SLUG = 40  # Kaggle titles stop at 50 characters: room for "-train-<k>"


def trial_slug(cfg: Config, search: Search, session: Session) -> str:
    """The base slug of a trial's kernels (session k's is `<this>-train-<k>`)."""
    slug = text.slug(f"{cfg.kernel.slug}-{search.name}-{search.label(session.trial, session.params)}")
    if len(slug) > MAX_SLUG:
        slug = f"{slug[:MAX_SLUG - 7].rstrip('-')}-{hashlib.sha1(slug.encode()).hexdigest()[:6]}"
    return slug


def kernel_settings(cfg: Config, search: Search, session: Session, extra: tuple[str, ...]) -> Config:
    """The builder's settings for one trial session's kernel."""
    slug = trial_slug(cfg, search, session)
    items = tuple(i for i in (*search.sets, *search.items(session.params), *extra)
                  if i.split(".", 1)[0].strip() not in NOT_IN_NOTEBOOK)
    kernel = replace(cfg.kernel, slug=slug, title=slug.replace("-", " ").capitalize(), preset=search.preset,
                     set=items, train_limit_min=session.hours * 60)
    label = search.label(session.trial, session.params)
    kernel = kernel.doing(SweepVariant(session.session, f"{search.name}/{label}"))
    return replace(cfg, kernel=kernel, train=replace(cfg.train, sessions=search.sessions))


def job_name(search: Search, session: Session) -> JobName:
    """A session's kernel among the job records (jobs/store.py): `search/<name>/<trial>/<k>`, or a sweep's
    `sweep/<name>/<variant>`."""
    if search.sweep is not None:
        return JobName(JobKind.SWEEP, search.name, session.params[VARIANT])
    return JobName(JobKind.SEARCH, search.name, str(session.trial), session.session)


def run(cfg: Config, search: Search, scheduler: Scheduler, folder: Path, extra: tuple[str, ...],
        yes: bool) -> str:
    """Run the search's sessions on Kaggle until nothing is left to run or the pushing stopped (the quota or
    gpu_hours); returns "" or the line that stopped it."""
    runner = Runner(cfg, search.kind, parallel=min(cfg.sweep.parallel, 2), cost=cost(cfg, search, scheduler),
                    yes=yes)
    return runner.run(Trials(cfg, search, scheduler, folder, extra))


def cost(cfg: Config, search: Search, scheduler: Scheduler) -> Cost:
    """The cost line's most GPU-hours: what the search's shape and cap leave (a sweep: its queued variants'
    sessions), with a submission's generate-only kernel where the best is submitted."""
    if search.sweep is None:
        hours = max(0.0, search.most_hours(scheduler.limit_h) - scheduler.spent_h())
        return Cost(f"search {search.name}: {search.trials} trial(s) of the {search.preset} preset, up to "
                    f"{search.sessions} session(s) each, {cfg.sweep.parallel} at once", hours)
    queued = sum(r.state is TrialStatus.QUEUED for r in scheduler.rows())
    submits = cfg.sweep.submit == "best"
    minutes = queued * cfg.kernel.train_limit_min + (cfg.kernel.generate_limit_min if submits else 0)
    what = (f"sweep {search.name}: {queued} variant(s) of the {search.preset} preset to train, "
            f"{cfg.sweep.parallel} at once" + (", then the best submitted" if submits else ""))
    return Cost(what, minutes / 60)


class Trials(Plan):
    """The scheduler's sessions as jobs: whatever it hands out next, reported back as each ends."""

    def __init__(self, cfg: Config, search: Search, scheduler: Scheduler, folder: Path,
                 extra: tuple[str, ...]) -> None:
        self.cfg, self.search, self.scheduler, self.folder, self.extra = cfg, search, scheduler, folder, extra
        self.sessions: dict[JobName, Session] = {}

    def next(self, running: Collection[JobName]) -> JobSpec | None:
        session = self.scheduler.next({(s.trial, s.session) for s in map(self.sessions.get, running) if s})
        if session is None:
            return None
        kcfg = kernel_settings(self.cfg, self.search, session, self.extra)
        name = job_name(self.search, session)
        self.sessions[name] = session
        # the trial's number makes it another job where a sweep runs a variant again (--force, new settings)
        key = digest({"kernel": kcfg.kernel, "sessions": self.search.sessions, "trial": session.trial,
                      "token": self.scheduler.study.user_attrs.get("token", "")})
        folder = self.folder / self.search.label(session.trial, session.params) / f"s{session.session}"
        return JobSpec(name, kcfg, key, self.search.what(session), folder, no_checkpoints, show_log=False,
                       once=True)

    def ended(self, result: Ended) -> None:
        session = self.sessions[result.spec.name]
        folder, what = result.folder, self.search.what(session)
        run = next((p for p in sorted((folder / "runs").glob("*")) if p.is_dir()), folder / "runs")
        found = results.details(run, folder / "sweep" / "score.json", folder / "sweep" / "thumbs")
        if not result.ok or found["mifid"] is None:
            error = (results.last_line(result.log) or result.failure or result.job.status.value
                     if not result.ok else "not scored: attach the FID weights (kernel.weights_dataset)")
            self.scheduler.failed(session.trial, session.session, error, session.hours, found)
            print(f"{self.search.kind}: {what}: failed ({error})", flush=True)
            return
        outcome = self.scheduler.report(session.trial, session.session, found["mifid"], session.hours, found)
        print(f"{self.search.kind}: {what}: local MiFID {found['mifid']:.3f} ({outcome})", flush=True)

