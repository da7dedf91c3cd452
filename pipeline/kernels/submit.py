"""`push` and `submit`: the kernel goes to Kaggle, runs there, and its images.zip is checked before it is
submitted.

submit = build the kernel, push it, follow its run, fetch its output into submissions/kaggle/<version>/,
check images.zip against the competition's rules, score it locally when the FID weights are here,
then submit that kernel version and wait for its public score (scores.py). Nothing is submitted that was
not checked here first. The fetched zip gets a provenance record beside it naming the kernel version, so
its leaderboard rows (local and public) are that version's own.

A Kaggle run takes hours, so following it must survive Ctrl-C, a closed laptop or a timeout (follow.py): the
pushed version is recorded in submissions/kaggle/kernels.json (record.py), and the next `submit` with an
unchanged kernel follows that version instead of pushing (and paying for) another run. With
kernel.checkpoint_from the notebook trains nothing: it generates from the run a train kernel left
(sessions.py), in minutes.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from ..config import Config
from ..engine.errors import StageSkipped, UserError
from ..engine.stage import read_stamp
from ..generate import provenance
from ..kaggle import api as kaggle_api
from ..kaggle.status import KernelStatus, SubmissionStatus
from . import scores
from .builder import kernel_settings
from .chain import trained_version
from .cost import announce, describe
from .follow import Following, report_failure, wait
from .push import check_quota, push, push_once, unfinished
from .record import PushStore
from .stage import KERNEL


def push_command(cfg: Config, args: argparse.Namespace) -> int:
    """Build the kernel and push it; prints its URL and version."""
    folder = KERNEL.run(cfg, force=args.force)
    retry = _retry(cfg)
    announce(cfg, "push", describe(cfg, kernel_settings(cfg), f"in {_needs(cfg)}"), cfg.kernel.limit_min / 60,
             getattr(args, "yes", False), retry)
    check_quota(cfg, _needs(cfg), retry, "push")
    ref, version, url = push(cfg, folder, retry, "push")
    print(f"push: {ref} version {version} is running on Kaggle: {url}")
    return 0


def submit_command(cfg: Config, args: argparse.Namespace) -> int:
    """Push (or resume), wait, fetch, check, score, submit; non-zero exit when the kernel failed."""
    retry = _retry(cfg)
    if cfg.submit.version:  # a run already fetched (and checked) by an earlier submit, e.g. a dry run
        folder = KERNEL.run(cfg)
        ref = json.loads((folder / "kernel-metadata.json").read_text())["id"]
        version, dest = cfg.submit.version, _output_dir(cfg, cfg.submit.version)
        if not (dest / "images.zip").is_file():
            raise UserError(f"submit.version={version}: no fetched output in {dest}; run submit without "
                            "submit.version to run the kernel and fetch it")
    else:
        store = PushStore(cfg.submissions_dir)
        folder = KERNEL.run(cfg, force=args.force)
        name, key = f"submit/{cfg.kernel.kernel_slug}", read_stamp(folder).get("key", "")
        if args.force:
            store.drop([name])  # --force pushes a new run, whatever an earlier submit left running
        if unfinished(store, name, key) is None:
            announce(cfg, "submit", describe(cfg, kernel_settings(cfg), f"in {_needs(cfg)}"),
                     cfg.kernel.limit_min / 60, getattr(args, "yes", False), retry)
        kernel = push_once(cfg, folder, retry, "submit", _needs(cfg), store, name, key)
        how = Following("submit", cfg.submit.poll_timeout_min, cfg.submit.poll_interval_s)
        status, failure = wait(kernel, retry, how)
        ref, version = kernel.ref, kernel.version
        dest = _output_dir(cfg, version)
        files = kaggle_api.kernel_output(ref, version, dest, retry)  # that version's own output
        kernel = store.put(name, kernel.now(status))  # ended either way: the next submit pushes anew
        log = dest / f"{ref.split('/')[1]}.log"
        if status is not KernelStatus.COMPLETE:
            report_failure("submit", kernel, failure, log)
            return 1
        if not (dest / "images.zip").is_file():
            names = ", ".join(p.name for p in files) or "nothing"
            raise UserError(f"submit: kernel {kernel.label} produced {names} but no images.zip; "
                            f"see its log ({log})")
    return _check_and_submit(cfg, ref, version, dest / "images.zip", retry)


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


def _retry(cfg: Config) -> kaggle_api.Retry:
    return kaggle_api.Retry(tries=cfg.submit.retries, delay_s=cfg.submit.retry_delay_s)


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
