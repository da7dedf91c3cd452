"""`python -m pipeline doctor`: what Kaggle will say to this setup, asked before any GPU time is spent.

A first `make submit` learns of a wrong credential, rules not accepted or a spent quota only after building
and pushing a notebook, and of a weights dataset it cannot see only in the notebook's log. The doctor asks
Kaggle's API the same questions in seconds, reading only (nothing is pushed, submitted or downloaded), and
prints one table: a row per question, what Kaggle answered, and under a row that is not fine one line saying
what to do. The exit code is 1 when any row is not fine, so a script can stop there.
"""
from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import TypeVar

from ..config import Config
from ..datasets.store import weights_dataset
from ..engine.errors import UserError
from ..engine.text import aligned, refreshes
from ..kaggle import api as kaggle_api
from ..kaggle import datasets as kaggle_datasets

T = TypeVar("T")
OK, FIX, NOTHING = "ok", "FIX", "-"  # NOTHING: nothing to check, or it waits on a row above
DISTRIBUTION = "monet-pipeline"  # this project's name on the package index (pyproject.toml)
RETRY = kaggle_api.Retry(tries=2, delay_s=1.0)  # a doctor answers in seconds: Kaggle down is a row too


@dataclass(frozen=True)
class Row:
    check: str
    state: str  # OK | FIX | NOTHING
    found: str  # what Kaggle (or this machine) answered
    todo: str = ""  # for a row that is not fine: what to do, in one line


def command(cfg: Config, args: argparse.Namespace) -> int:
    """`doctor`: print the table; 1 when a row is not fine."""
    rows = check(cfg)
    lines = aligned([("check", "state", "found")] + [(r.check, r.state, r.found) for r in rows])
    indent = len(lines[0]) - len("found")
    print(f"doctor: Kaggle as `make submit` will find it, for {cfg.download.competition} "
          "(read only: nothing pushed, submitted or downloaded)")
    print(lines[0])
    for row, line in zip(rows, lines[1:], strict=True):
        print(line)
        if row.todo:
            print(f"{' ' * indent}-> {row.todo}")
    to_fix = [r.check for r in rows if r.state == FIX]
    print(f"doctor: {len(to_fix)} to fix: {', '.join(to_fix)}" if to_fix else "doctor: all fine")
    return 1 if to_fix else 0


def check(cfg: Config) -> list[Row]:
    """Every row, in the order a first submission meets them."""
    try:
        who = kaggle_api.account(RETRY)
    except UserError as exc:  # without credentials Kaggle answers nothing else
        waiting = [Row(name, NOTHING, "needs credentials") for name in
                   ("competition", "submissions today", "GPU quota", "competition data", "weights dataset")]
        return [Row("credentials", FIX, "none Kaggle accepts", str(exc)), _client(), *waiting]
    rows = [Row("credentials", OK, f"{who.username}, from {who.source}"), _client()]
    competition = cfg.download.competition
    limits = _asked("competition", lambda: kaggle_api.submissions_left(competition, RETRY))
    if isinstance(limits, Row):
        rows += [limits, Row("submissions today", NOTHING, "waits on the competition")]
    else:
        rows += [_joined(cfg, limits), _submissions(limits)]
    entered = not isinstance(limits, Row) and limits.entered
    rows.append(_asked("GPU quota", lambda: _quota(cfg)))
    rows.append(_asked("competition data", lambda: _data(cfg), quiet=not entered))
    rows.append(_asked("weights dataset", lambda: _weights(cfg, who.username)))
    return rows


def _asked(name: str, ask: Callable[[], T], quiet: bool = False) -> T | Row:
    """What `ask` returns, or a row saying what Kaggle refused (`quiet`: a row that waits on a row above)."""
    try:
        return ask()
    except UserError as exc:
        if quiet:
            return Row(name, NOTHING, "waits on the competition")
        return Row(name, FIX, "Kaggle did not answer", str(exc))


def _client() -> Row:
    """The installed client against the range this project declares (a stale environment fails here)."""
    from packaging.requirements import Requirement

    found = {name: metadata.version(name) for name in ("kaggle", "kagglesdk")}
    versions = f"kaggle {found['kaggle']}, kagglesdk {found['kagglesdk']}"
    try:
        wanted = next(Requirement(r) for r in metadata.requires(DISTRIBUTION) or []
                      if Requirement(r).name == "kaggle")
    except (metadata.PackageNotFoundError, StopIteration):
        return Row("kaggle client", FIX, f"{versions}; {DISTRIBUTION} is not installed",
                   "run make setup (pip install -e .)")
    if wanted.specifier.contains(found["kaggle"], prereleases=True):
        return Row("kaggle client", OK, f"{versions} (needs {wanted})")
    return Row("kaggle client", FIX, f"{versions}; the pipeline needs {wanted}",
               "run make setup (pip install -e .)")


def _joined(cfg: Config, limits: kaggle_api.SubmissionLimits) -> Row:
    competition = cfg.download.competition
    if limits.entered:
        return Row("competition", OK, f"{competition}: joined, rules accepted")
    return Row("competition", FIX, f"{competition}: not joined, its rules not accepted",
               f"accept the rules at {kaggle_api.RULES_URL.format(competition=competition)}, then run "
               "make doctor again")


def _submissions(limits: kaggle_api.SubmissionLimits) -> Row:
    resets = f"the day resets at 00:00 UTC ({refreshes(limits.resets)})"
    if not limits.entered:
        return Row("submissions today", NOTHING, f"{limits.per_day} a day, once you have joined")
    if limits.left == 0 and limits.lifetime_cap:
        return Row("submissions today", FIX, "none: the competition's limit on all submissions is reached",
                   "the checked runs can be compared locally (make leaderboard); Kaggle takes no more")
    if limits.left == 0:
        return Row("submissions today", FIX,
                   f"none left ({limits.made_today} of {limits.per_day} made); {resets}",
                   f"submit after 00:00 UTC ({refreshes(limits.resets)}); make submit DRY_RUN=1 needs none")
    return Row("submissions today", OK, f"{limits.left} of {limits.per_day} left; {resets}")


def _quota(cfg: Config) -> Row:
    """Hours left against what the configured kernel may use (its session timeout)."""
    k, quota = cfg.kernel, kaggle_api.gpu_quota(RETRY)
    when = (f"resets {refreshes(quota.refresh)} ({quota.refresh:%Y-%m-%d %H:%M} UTC)" if quota.refresh
            else "reset time unknown (Kaggle did not say)")
    found = (f"{quota.used_h:.1f} h used, {quota.reserved_h:.1f} h held by running sessions, "
             f"{quota.left_h:.1f} h left of {quota.total_h:g} h; {when}")
    need_h = k.limit_min / 60
    if not k.machine_shape or quota.free_h >= need_h:
        return Row("GPU quota", OK, found)
    if quota.free_h <= 0:
        return Row("GPU quota", FIX, found, f"no GPU hours left: wait until the quota {when}")
    return Row("GPU quota", FIX, found, f"the kernel may run up to {need_h:g} h: lower {k.job.limit_setting} "
                                        f"to fit {quota.free_h:.1f} h, or wait until the quota {when}")


def _data(cfg: Config) -> Row:
    """The competition's folders as Kaggle lists them, against the counts the download expects."""
    d = cfg.download
    folders = kaggle_api.competition_folders(d.competition, RETRY)
    found = ", ".join(f"{name} {n:,}" for name, n in sorted(folders.items())) or "no files"
    expected = {"monet_jpg": d.expect_monet, "photo_jpg": d.expect_photos}
    wrong = [f"{name} {folders.get(name, 0):,} (expected {n:,})" for name, n in expected.items()
             if folders.get(name) != n]
    if not wrong:
        return Row("competition data", OK, found)
    return Row("competition data", FIX, found,
               f"Kaggle lists {', '.join(wrong)}: check download.competition, download.expect_monet and "
               "download.expect_photos")


def _weights(cfg: Config, user: str) -> Row:
    """The dataset the notebook takes its FID weights from (kernel.weights_dataset, else the one `make
    upload-weights` recorded): set, visible to this user, holding the file."""
    ref = weights_dataset(cfg)
    if not ref:
        return Row("weights dataset", NOTHING, "not set (kernel.weights_dataset, or make upload-weights): "
                   "the notebook skips scoring")
    from ..metrics.features import WEIGHTS_FILE  # imports torch: only when there is a dataset to check

    names = kaggle_datasets.dataset_files(ref, RETRY)
    if names is None:
        return Row("weights dataset", FIX, f"{ref}: not visible to {user}",
                   f"check kernel.weights_dataset=owner/slug: a dataset of yours, or a public one, holding "
                   f"{WEIGHTS_FILE}")
    if WEIGHTS_FILE not in {name.rsplit("/", 1)[-1] for name in names}:
        return Row("weights dataset", FIX, f"{ref}: visible, {len(names)} file(s), not {WEIGHTS_FILE}",
                   f"add {WEIGHTS_FILE} to {ref} as a new version")
    return Row("weights dataset", OK, f"{ref}: visible, holds {WEIGHTS_FILE}")
