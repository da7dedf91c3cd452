"""Kaggle's public score beside the local one, so a user learns how the two relate for their runs.

After `submit`, the list of your submissions is polled (backing off up to submit.poll_interval_s, for at
most submit.wait_score_min) until Kaggle has scored the one just made; its public MiFID goes into the
leaderboard row of that kernel version, beside the local MiFID of the same images.zip.
`python -m pipeline submissions` does the same for every earlier submission and prints public and local
side by side. A submission is tied to its kernel version by the "(owner/slug vN)" that submit puts at the
end of every submission's description (submissions made before this existed carry it too).
"""
from __future__ import annotations

import argparse
import re
import sys
from dataclasses import replace
from datetime import datetime

from ..config import Config
from ..engine.poll import Poll
from ..engine.text import aligned
from ..generate import provenance
from ..kaggle import api as kaggle_api
from ..kaggle.status import SubmissionStatus
from ..scoring import table

_KERNEL = re.compile(r"\(([\w.-]+/[\w.-]+ v\d+)\)")  # "(owner/slug vN)" in a description
LATER = "`python -m pipeline submissions` fetches its public score later"


def kernel_label(ref: str, version: int) -> str:
    """How the leaderboard names a kernel version, and what ends the description of its submission."""
    return f"{ref} v{version}"


def describe(message: str, label: str) -> str:
    """The submission's description: the message, ending with the kernel version it came from."""
    return message if f"({label})" in message else f"{message} ({label})"


def wait_for_public(cfg: Config, label: str, retry: kaggle_api.Retry) -> kaggle_api.Submission | None:
    """The newest submission of kernel version `label` (the one just made) once Kaggle has scored it (or
    failed to), else None when submit.wait_score_min ran out. Ctrl-C stops the waiting, never the scoring."""
    poll = Poll(cfg.submit.wait_score_min * 60, cfg.submit.poll_interval_s)
    print(f"submit: waiting up to {cfg.submit.wait_score_min:g} min for the public score "
          "(submit.wait_score_min)", flush=True)
    try:
        while True:
            try:
                mine = [s for s in kaggle_api.list_submissions(cfg.download.competition, retry)
                        if _label(s.description) == label]
            except kaggle_api.KaggleUnavailable as exc:  # a blip must not end the wait
                print(f"submit: {exc}; still waiting", file=sys.stderr)
                mine = []
            if mine and mine[0].status is not SubmissionStatus.PENDING:
                return mine[0]
            if not poll.wait():
                return None
    except KeyboardInterrupt:
        print(f"\nsubmit: stopped waiting; Kaggle scores the submission anyway: {LATER}", file=sys.stderr)
        raise


def record(cfg: Config, made_by: provenance.Provenance, submission: kaggle_api.Submission) -> str:
    """Write the public score into the leaderboard row(s) of the kernel version; returns what to print."""
    public = table.number(submission.public_score)
    if submission.status is not SubmissionStatus.COMPLETE or public is None:
        return (f"Kaggle did not score submission {submission.ref} ({submission.status.value}"
                f"{': ' + submission.error if submission.error else ''})")
    rows = table.record_public(table.csv_path(cfg.submissions_dir), table.Row.filed_under(
        made_by, time=datetime.now().replace(microsecond=0), source="kaggle", submission=submission.ref,
        public_mifid=public))
    local = local_mifid(rows, made_by.kernel)
    return (f"public MiFID {submission.public_score} for {made_by.label} "
            f"(local MiFID {'not scored here' if local is None else local})")


def local_mifid(rows: list[table.Row], kernel: str) -> float | None:
    """The local MiFID of a kernel version's images: its latest full scoring, else its latest."""
    standing = table.standing(r for r in rows if r.kernel == kernel)
    return standing.mifid if standing else None


def submissions_command(cfg: Config, args: argparse.Namespace) -> int:
    """`submissions`: fetch the list of your submissions, record their public scores, print both."""
    found = kaggle_api.list_submissions(cfg.download.competition,
                                        kaggle_api.Retry(cfg.submit.retries, cfg.submit.retry_delay_s))
    if not found:
        print(f"submissions: none yet to {cfg.download.competition}")
        return 0
    for submission in reversed(found):  # oldest first: a version submitted twice keeps its newest score
        label = _label(submission.description)
        if label and submission.status is SubmissionStatus.COMPLETE:
            record(cfg, _made_by(cfg, label), submission)
    rows = table.read(table.csv_path(cfg.submissions_dir))
    lines = [("date", "submission", "kernel", "run", "status", "public MiFID", "local MiFID")]
    for s in found:
        label = _label(s.description)
        run = next((r.run for r in rows if label and r.kernel == label), "")
        local = local_mifid(rows, label) if label else None
        lines.append((s.date[:16].replace("T", " "), str(s.ref), label or "-", run or "-", s.status.value,
                      s.public_score or "-", table.text(local) or "-"))
    print(f"submissions to {cfg.download.competition}, newest first (lower MiFID is better; local = against "
          "this machine's reference paintings):")
    print("\n".join(aligned(lines)))
    return 0


def _label(description: str) -> str:
    """The kernel version a submission's description names ("" for one made elsewhere)."""
    found = _KERNEL.search(description)
    return found.group(1) if found else ""


def _made_by(cfg: Config, label: str) -> provenance.Provenance:
    """The record of a kernel version's images from its fetched output (submissions/kaggle/<version>/), else
    one that knows only the version."""
    version = label.rsplit(" v", 1)[1]
    found = provenance.read(cfg.submissions_dir / "kaggle" / version / "images.zip")
    if found is None or found.kernel not in ("", label):  # another kernel's version of that number
        found = provenance.UNKNOWN
    return replace(found, kernel=label)
