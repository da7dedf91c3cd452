"""`kaggle-train` (make train-kaggle SESSIONS=N [SUBMIT=1]): one run trained over N Kaggle sessions, then
submitted from its last checkpoint.

Session k is a train kernel `<slug>-train-<k>` (kernel.role=train): session 1 measures the step rate and plans
the whole run's steps for N sessions (one learning-rate schedule), each later one attaches the previous
session's output and resumes its checkpoint (pipeline/notebook/attached.py). This command pushes session 1,
follows it (its log streamed as `submit` does), fetches its output without the checkpoints (the losses, plots,
sessions.json) into submissions/kaggle/train/, pushes the next session, and so on; with --submit it then runs
`submit` with kernel.checkpoint_from the last session's kernel: a notebook that only generates and zips.
Interrupted, it follows a session pushed earlier instead of pushing it again (chain.py); a failed session is
pushed again from its predecessor's output, never from scratch.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from ..config import Config
from ..kaggle import api as kaggle_api
from ..stages import STAGES
from .chain import Chain, folder, session_settings
from .follow import Following, report_failure, wait
from .push import push_recorded
from .submit import submit_command

COMMAND = "kaggle-train"


def train_command(cfg: Config, args: argparse.Namespace) -> int:
    """Train cfg's run over train.sessions Kaggle sessions; with --submit, submit it."""
    n = cfg.train.sessions
    chain = Chain.load(cfg, fresh=args.force)
    retry = kaggle_api.Retry(tries=cfg.submit.retries, delay_s=cfg.submit.retry_delay_s)
    for k in range(1, n + 1):
        if chain.sessions.get(k, {}).get("status") == "complete":
            print(f"{COMMAND}: session {k} of {n} finished earlier: {chain.sessions[k]['line']}")
            continue
        if not run_session(cfg, chain, k, retry):
            return 1
    last = chain.sessions[n]["ref"]
    if not getattr(args, "submit", False):
        print(f"{COMMAND}: the run is trained; submit it with: make submit SET=kernel.checkpoint_from={last}")
        return 0
    print(f"{COMMAND}: submitting from {last}'s run")
    return submit_command(replace(cfg, kernel=replace(cfg.kernel, role="submit", checkpoint_from=last)), args)


def run_session(cfg: Config, chain: Chain, k: int, retry: kaggle_api.Retry) -> bool:
    """Push session k (or follow it, pushed earlier), wait for it, fetch its summary; False when it failed."""
    scfg, n = session_settings(cfg, k), cfg.train.sessions
    earlier = chain.sessions.get(k, {})
    if earlier.get("status") != "pushed":  # a failed session is pushed again
        earlier = {}
    elif earlier.get("version"):
        print(f"{COMMAND}: following session {k} of {n} ({earlier['ref']} version {earlier['version']}), "
              "pushed earlier")
    ref, version, url = push_recorded(scfg, STAGES["kernel"].run(scfg), retry, COMMAND, f"session {k}",
                                      earlier, lambda values: chain.record(k, **values, status="pushed"))
    if not earlier.get("version"):
        print(f"{COMMAND}: pushed session {k} of {n}: {ref} version {version}: {url}")
    how = Following(COMMAND, max(cfg.submit.poll_timeout_min, scfg.kernel.train_limit_min + 60),
                    cfg.submit.poll_interval_s)
    status, failure = wait(ref, version, url, retry, how)
    dest = folder(cfg) / scfg.kernel.kernel_slug
    kaggle_api.kernel_output(ref, dest, retry, wanted=lambda name: not name.endswith(".pt"))
    if status != "complete":
        chain.record(k, status="failed")
        report_failure(COMMAND, ref, version, status, failure, dest / f"{scfg.kernel.kernel_slug}.log", url)
        start = f"from session {k - 1}'s output" if k > 1 else "the run anew"
        print(f"{COMMAND}: session {k} of {n} failed; run the same command again to push it again ({start})")
        return False
    line = session_line(dest) or f"session {k} of {n}: complete"
    chain.record(k, status="complete", line=line)
    print(f"{COMMAND}: {line}")
    return True


def session_line(dest: Path) -> str:
    """Where the run stands, as the fetched sessions.json's last record says it ("" without one)."""
    for path in sorted(dest.rglob("sessions.json")):
        try:
            records = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if records and isinstance(records, list) and isinstance(records[-1], dict):
            return str(records[-1].get("line", ""))
    return ""
