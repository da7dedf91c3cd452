"""The one lifecycle of a Kaggle job: push it once, follow it (several at once, never more than the command's
share of Kaggle's two GPU sessions), fetch its finished version's output, record it, report a failure in one
line, and tell the command's plan, which may then hand out more jobs.

A command is a `Plan`, a short description of its jobs: `submit` is one job, `train-kaggle` sessions in
sequence, a sweep or a search trials side by side. The plan answers "what may be pushed now?" from its own
state and the jobs already running, and hears of each job that ends; the runner does the rest, the same way
for every command:
- the quota is read once per push, and that one answer is shown, checked and (before the first push) put in
  the command's cost line; when it cannot cover a job, the runner stops pushing, says so, and follows what
  runs; the command decides what that means (an error, or "run it again next week");
- every question about a run names its version (a question that names none may be answered with the
  previous version's session right after a push);
- Ctrl-C, a closed laptop or the follow limit stop the following, never the runs: the records say what runs,
  and the same command run again follows it instead of pushing again.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path

from ..account.cost import announce
from ..config import Config
from ..engine.errors import UserError
from ..engine.poll import Poll
from ..engine.text import duration
from ..kaggle import api as kaggle_api
from ..kaggle.status import KernelStatus
from ..stages import KERNEL
from .follow import LogFollower, progress, report_failure
from .push import QuotaExhausted, check_quota, push_once
from .record import Job, JobName
from .store import JobStore

LOG_FINAL_READ_S = 15.0  # after the run ends: how long the follower may take to show the rest of the log


def everything(name: str) -> bool:
    return True


def no_checkpoints(name: str) -> bool:
    """A run's summary without its checkpoints: what a command needs of a training job's output."""
    return not name.endswith(".pt")


@dataclass(frozen=True)
class JobSpec:
    """One job as a plan describes it: the settings its kernel is built from, the digest that makes it the
    same job, how messages name it, where its output goes and which of its files are wanted."""

    name: JobName
    settings: Config  # the builder's settings for its kernel
    key: str
    needs: str  # "session 2 of 3", "variant wide", "the submission notebook"
    output: Path  # where its output is fetched (into a folder per version, with `per_version`)
    wanted: Callable[[str], bool] = everything
    show_log: bool = True  # stream its log while it runs (one job at a time reads well; a sweep's do not)
    per_version: bool = False
    once: bool = False  # its run ended and fetched under this key is its result: never pushed again

    def folder(self, job: Job) -> Path:
        """Where this push's output is fetched."""
        return self.output / str(job.version) if self.per_version else self.output

    @property
    def follow_min(self) -> float:
        """How long to follow it: the submission notebook as submit.poll_timeout_min says; other jobs at least
        their session limit and an hour in Kaggle's queue."""
        s = self.settings
        if s.kernel.job.submitted:
            return s.submit.poll_timeout_min
        return max(s.submit.poll_timeout_min, s.kernel.limit_min + 60)


@dataclass(frozen=True)
class Ended:
    """A job whose run has ended, its output fetched."""

    spec: JobSpec
    job: Job
    failure: str  # Kaggle's failure message, if any
    files: list[Path]

    @property
    def ok(self) -> bool:
        return self.job.status is KernelStatus.COMPLETE

    @property
    def folder(self) -> Path:
        return self.spec.folder(self.job)

    @property
    def log(self) -> Path:
        return log_path(self.folder, self.job.ref)


def log_path(folder: Path, ref: str) -> Path:
    """Where a fetched version's log lies: <output>/<slug>.log."""
    return Path(folder) / f"{ref.split('/', 1)[1]}.log"


class Plan:
    """A command's description of its jobs: what may be pushed now, and what to do as they start and end."""

    def next(self, running: Collection[JobName]) -> JobSpec | None:
        """The next job that may be pushed (or followed, where an earlier call pushed it) now, none of those
        `running`; None when there is none now. May raise QuotaExhausted (a cap of the plan's own)."""
        raise NotImplementedError

    def started(self, spec: JobSpec, job: Job) -> None:
        """The job is pushed (or taken up) and followed from now on."""

    def ended(self, result: Ended) -> None:
        """A job has ended and its output is fetched."""
        raise NotImplementedError


@dataclass(frozen=True)
class Cost:
    """What the command's cost line says before its first push: what runs, and the most GPU-hours it takes."""

    what: str
    hours: float


@dataclass
class _Following:
    spec: JobSpec
    job: Job
    status: KernelStatus
    since: float = field(default_factory=time.monotonic)
    follower: LogFollower | None = None

    def finish(self, wait_s: float) -> None:
        if self.follower is not None:
            self.follower.finish(wait_s)


@dataclass
class Runner:
    """Runs a plan's jobs on Kaggle for `command`, at most `parallel` at once."""

    cfg: Config
    command: str
    parallel: int = 1
    cost: Cost | None = None
    yes: bool = False  # answers the cost line's question
    stopped: str = ""  # why pushing stopped ("" while it goes on)
    store: JobStore = field(init=False)
    retry: kaggle_api.Retry = field(init=False)
    _announced: bool = field(init=False, default=False)
    _poll: Poll = field(init=False)

    def __post_init__(self) -> None:
        self.store = JobStore(self.cfg.submissions_dir)
        self.retry = retry_of(self.cfg)

    def run(self, plan: Plan) -> str:
        """Push, follow, fetch and record until the plan has nothing left and nothing runs; returns "" or the
        line that stopped the pushing (the quota, or the plan's own cap)."""
        running: dict[JobName, _Following] = {}
        try:
            while True:
                self._fill(plan, running)
                if not running:
                    return self.stopped
                ended = self._ask(plan, running)
                if ended and len(running) < self.parallel and not self.stopped:
                    continue  # a slot is free: the plan may have the next job
                if running and not self._poll.wait():
                    raise UserError(self._gave_up(running))
        except KeyboardInterrupt:
            for f in running.values():
                print(f"\n{self.command}: stopped following {f.job.label}; the kernel keeps running on "
                      f"Kaggle ({f.job.url}). Run the same {self.command} again to resume (it will not push "
                      f"again), check it with `kaggle kernels status {f.job.versioned_ref}`, or stop it with "
                      "Cancel run on its page", file=sys.stderr)
            raise
        finally:
            for f in running.values():
                f.finish(0)

    def _fill(self, plan: Plan, running: dict[JobName, _Following]) -> None:
        """Push (or take up) the plan's next jobs while a slot is free and nothing stopped the pushing."""
        while len(running) < self.parallel and not self.stopped:
            try:
                spec = plan.next(running.keys())
                if spec is None:
                    return
                if (done := self._fetched(spec)) is not None:
                    plan.ended(done)  # ended and fetched before an earlier call could tell its plan
                    continue
                job = self._push(spec)
            except QuotaExhausted as exc:
                self.stopped = str(exc)
                print(f"{self.command}: stops pushing: {exc}", flush=True)
                return
            follow = _Following(spec, job, job.status)
            if spec.show_log:
                follow.follower = LogFollower(job.ref, job.version, self.retry)
                follow.follower.start()
            running[spec.name] = follow
            plan.started(spec, job)
            # from the latest push: asked about soon at first (a broken kernel fails fast), followed as long
            # as the longest of them may run
            limit_min = max(f.spec.follow_min for f in running.values())
            self._poll = Poll(limit_min * 60, self.cfg.submit.poll_interval_s)

    def push(self, spec: JobSpec) -> Job:
        """Push one job (or take up the push an earlier call made) without following it."""
        return self._push(spec)

    def _push(self, spec: JobSpec) -> Job:
        folder = KERNEL.run(spec.settings)
        return push_once(spec.settings, folder, spec.name, spec.key, spec.needs, self.store, self.command,
                         self.retry, lambda: self._check(spec))

    def _check(self, spec: JobSpec) -> float | None:
        """Read the quota once for this push: the cost line before the first push, then the check."""
        quota = kaggle_api.gpu_quota(self.retry) if spec.settings.kernel.machine_shape else None
        if self.cost is not None and not self._announced:
            announce(self.cfg, self.command, self.cost.what, self.cost.hours, self.yes, quota, self.retry)
            self._announced = True
        return check_quota(quota, spec.settings, spec.needs, self.command) if quota is not None else None

    def _fetched(self, spec: JobSpec) -> Ended | None:
        """A `once` job whose run ended and whose output was fetched under this key, as it ended."""
        job = self.store.get(spec.name)
        if not spec.once or job is None or job.key != spec.key or not job.status.ended or not job.output:
            return None
        print(f"{self.command}: {job.label} ended ({job.status.value}) before an earlier call could read it: "
              "reading its output", flush=True)
        return Ended(spec, job, "", sorted(p for p in spec.folder(job).rglob("*") if p.is_file()))

    def _ask(self, plan: Plan, running: dict[JobName, _Following]) -> bool:
        """Ask Kaggle where each running job stands; fetch, record and hand to the plan those that ended."""
        ended = False
        for name, f in list(running.items()):
            label, elapsed = f.job.label, duration(time.monotonic() - f.since)
            try:
                status, failure = kaggle_api.kernel_status(f.job.ref, f.job.version, self.retry)
            except kaggle_api.KaggleUnavailable as exc:  # a network blip must not end hours of waiting
                print(f"\n{self.command}: {exc}; still waiting", file=sys.stderr)
                continue
            if not status.ended:
                progress(self.command, f"{label}: {status.value}, {elapsed} (gives up following after "
                         f"{f.spec.follow_min:g} min)", status != f.status)
                f.status = status
                continue
            f.finish(LOG_FINAL_READ_S)  # the last lines of the log come before the verdict
            progress(self.command, f"{label}: {status.value} after {elapsed}", True)
            del running[name]
            plan.ended(self._fetch(f, status, failure))
            ended = True
        return ended

    def _fetch(self, f: _Following, status: KernelStatus, failure: str) -> Ended:
        """The ended version's wanted output and log, then its record: fetched before recorded, so a command
        killed in between fetches it again."""
        spec, folder = f.spec, f.spec.folder(f.job)
        files = kaggle_api.kernel_output(f.job.ref, f.job.version, folder, self.retry, wanted=spec.wanted)
        job = self.store.put(f.job.now(status, output=str(folder)))
        result = Ended(spec, job, failure, files)
        if not result.ok:
            report_failure(self.command, job, failure, result.log)
        return result

    def _gave_up(self, running: dict[JobName, _Following]) -> str:
        still = ", ".join(f"{f.job.label} is still {f.status.value}" for f in running.values())
        urls = ", ".join(f.job.url for f in running.values())
        limit = max(f.spec.follow_min for f in running.values())
        return (f"{self.command}: {still} after {limit:g} min; it keeps running on Kaggle ({urls}): run the "
                f"same {self.command} again to keep following it")


def retry_of(cfg: Config) -> kaggle_api.Retry:
    """How the Kaggle calls of a command retry, as [submit] says."""
    return kaggle_api.Retry(tries=cfg.submit.retries, delay_s=cfg.submit.retry_delay_s)
