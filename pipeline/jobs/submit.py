"""`push` and `submit`: the kernel goes to Kaggle, runs there, and its images.zip is checked before it is
submitted.

submit = build the kernel, push it, follow its run, fetch its output into submissions/kaggle/<version>/,
check images.zip against the competition's rules, score it locally when the FID weights are here,
then submit that kernel version and wait for its public score (scores.py). Nothing is submitted that was
not checked here first. The fetched zip gets a provenance record beside it naming the kernel version, so
its leaderboard rows (local and public) are that version's own.

The run is one job given to the runner (runner.py): pushed once, followed through Ctrl-C, a closed laptop or
a timeout, and the next `submit` with an unchanged kernel follows that version instead of pushing (and
paying for) another run. With kernel.checkpoint_from the notebook trains nothing: it generates from the run
a train kernel left (train.py), in minutes.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from ..account.cost import describe
from ..config import Config
from ..engine.errors import StageSkipped, UserError
from ..engine.stage import read_stamp
from ..generate import provenance
from ..kaggle import api as kaggle_api
from ..kaggle.status import SubmissionStatus
from ..kernels.builder import kernel_settings
from ..stages import KERNEL
from . import scores
from .chain import trained_version
from .record import JobKind, JobName
from .runner import Cost, Ended, JobSpec, Plan, Runner, retry_of

COMMAND = "submit"


def push_command(cfg: Config, args: argparse.Namespace) -> int:
    """Build the kernel and push it (recorded as submit's job: `make submit` then follows it); prints its URL
    and version."""
    spec = _job(cfg, force=args.force)
    runner = Runner(cfg, "push", cost=_cost(cfg), yes=getattr(args, "yes", False))
    job = runner.push(spec)
    print(f"push: {job.ref} version {job.version} is running on Kaggle: {job.url}")
    return 0


def submit_command(cfg: Config, args: argparse.Namespace) -> int:
    """Push (or resume), wait, fetch, check, score, submit; non-zero exit when the kernel failed."""
    retry = retry_of(cfg)
    if cfg.submit.version:  # a run already fetched (and checked) by an earlier submit, e.g. a dry run
        ref = kaggle_api.kernel_id(KERNEL.run(cfg))
        version, dest = cfg.submit.version, _output_dir(cfg, cfg.submit.version)
        if not (dest / "images.zip").is_file():
            raise UserError(f"submit.version={version}: no fetched output in {dest}; run submit without "
                            "submit.version to run the kernel and fetch it")
        return _check_and_submit(cfg, ref, version, dest / "images.zip", retry)
    plan = OneJob(_job(cfg, force=args.force))
    stopped = Runner(cfg, COMMAND, cost=_cost(cfg), yes=getattr(args, "yes", False)).run(plan)
    if stopped:
        raise UserError(stopped)
    result = plan.result
    if not result.ok:
        return 1
    zip_path = result.folder / "images.zip"
    if not zip_path.is_file():
        names = ", ".join(p.name for p in result.files) or "nothing"
        raise UserError(f"submit: kernel {result.job.label} produced {names} but no images.zip; "
                        f"see its log ({result.log})")
    return _check_and_submit(cfg, result.job.ref, result.job.version, zip_path, retry)


class OneJob(Plan):
    """A plan of one job: the submission notebook."""

    def __init__(self, spec: JobSpec) -> None:
        self.spec = spec
        self.result: Ended | None = None

    def next(self, running: object) -> JobSpec | None:
        return self.spec if self.result is None and self.spec.name not in running else None

    def ended(self, result: Ended) -> None:
        self.result = result


def _job(cfg: Config, force: bool) -> JobSpec:
    """The submission notebook as a job; --force forgets an earlier push of it, whatever still runs."""
    folder = KERNEL.run(cfg, force=force)
    spec = JobSpec(JobName(JobKind.SUBMIT, cfg.kernel.kernel_slug), cfg, read_stamp(folder).get("key", ""),
                   _needs(cfg), cfg.submissions_dir / "kaggle", per_version=True)
    if force:
        Runner(cfg, COMMAND).store.drop([spec.name])
    return spec


def _cost(cfg: Config) -> Cost:
    return Cost(describe(cfg, kernel_settings(cfg), f"in {_needs(cfg)}"), cfg.kernel.limit_min / 60)


def _check_and_submit(cfg: Config, ref: str, version: int, zip_path: Path, retry: kaggle_api.Retry) -> int:
    from ..submission.archive import check_zip

    summary = check_zip(zip_path, cfg.zip, workers=cfg.hardware.workers)
    print(f"submit: {zip_path}: {summary}")
    label = scores.kernel_label(ref, version)
    made_by = replace(provenance.read(zip_path) or provenance.UNKNOWN, kernel=label)
    if made_by.trained_by:  # the train kernel's version, where this machine pushed it
        made_by = replace(made_by, trained_by=trained_version(cfg, made_by.trained_by))
    provenance.write_beside(zip_path, made_by)  # the version's own leaderboard row, however it is scored
    _score(cfg, zip_path)
    kcfg = kernel_settings(cfg)
    run = (f"{made_by.run} {made_by.config_hash}" if made_by.run != provenance.UNKNOWN_RUN
           else f"{kcfg.run_dir.name} {kcfg.train_hash()[:8]}")
    message = scores.describe(cfg.submit.message or run, label)
    if cfg.submit.dry_run:
        print(f"submit: dry run: {zip_path} is checked and was not submitted. To submit this run as it is: "
              f"make submit SET=submit.version={version} (plus the same CONFIG/SET)")
        return 0
    competition = cfg.download.competition
    limits = kaggle_api.submissions_left(competition, retry)
    kept, again = f"the checked zip stays in {zip_path.parent}", f"make submit SET=submit.version={version}"
    if not limits.entered:
        raise UserError(f"submit: you have not joined {competition}: accept its rules at "
                        f"{kaggle_api.RULES_URL.format(competition=competition)}, then {again} ({kept})")
    if limits.left == 0 and limits.lifetime_cap:
        raise UserError(f"submit: {competition} takes no more submissions from you (its limit on all "
                        f"submissions is reached); {kept}")
    if limits.left == 0:
        raise UserError(f"submit: no submission left today for {competition} ({limits.made_today} of "
                        f"{limits.per_day} made); {kept}: submit it after 00:00 UTC with {again}")
    print(f"submit: {limits.left} submission(s) left today (this one included)")
    answer = kaggle_api.submit_code(cfg.download.competition, ref, version, "images.zip", message, retry)
    print(f"submit: {answer}: {ref} version {version} ('{message}'); "
          f"https://www.kaggle.com/competitions/{cfg.download.competition}/submissions")
    if not cfg.submit.wait_score_min:
        print(f"submit: not waiting for the public score (submit.wait_score_min=0): {scores.LATER}")
        return 0
    scored = scores.wait_for_public(cfg, label, retry)
    if scored is None:
        print(f"submit: no public score after {cfg.submit.wait_score_min:g} min (submit.wait_score_min): "
              f"{scores.LATER}")
        return 0
    outcome = scores.record(cfg, made_by, scored)
    done = scored.status is SubmissionStatus.COMPLETE
    print(f"submit: {outcome}", file=sys.stdout if done else sys.stderr)
    return 0 if done else 1


def _output_dir(cfg: Config, version: int) -> Path:
    return cfg.submissions_dir / "kaggle" / str(version)


def _needs(cfg: Config) -> str:
    return "the submission notebook" + ("" if cfg.kernel.job.trains else " (generate only)")


def _score(cfg: Config, zip_path: Path) -> None:
    """Local MiFID of the kernel's images.zip against the reference paintings (score.real, else the local
    Monets), as a leaderboard row marked kaggle under the kernel version, when the FID weights are here."""
    monets = cfg.raw_dir / "monet_jpg"
    if not monets.is_dir() and not cfg.score.real:
        print(f"submit: local score skipped: no Monets at {monets} to score against (make download)")
        return
    from ..scoring.score import score_images

    try:
        score_images(cfg, zip_path, source="kaggle")
    except StageSkipped as exc:
        print(f"submit: local score skipped: {exc}")
