"""`train-kaggle` (make train-kaggle SESSIONS=N [SUBMIT=1]): one run trained over N Kaggle sessions, then
submitted from its last checkpoint.

Session k is a train kernel `<slug>-train-<k>` (kernel.role=train): session 1 measures the step rate and plans
the whole run's steps for N sessions (one learning-rate schedule), each later one attaches the previous
session's output and resumes its checkpoint (pipeline/notebook/attached.py). This command pushes session 1,
follows it (its log streamed as `submit` does), fetches its output without the checkpoints (the losses, plots,
sessions.json) into submissions/kaggle/train/, pushes the next session, and so on; with --submit it then runs
`submit` with kernel.checkpoint_from the last session's kernel: a notebook that only generates and zips.
Interrupted, it follows a session pushed earlier instead of pushing it again (chain.py, record.py); a failed
session is pushed again from its predecessor's output, never from scratch.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from ..config import Config
from ..config.jobs import GenerateFrom
from ..kaggle import api as kaggle_api
from ..kaggle.status import KernelStatus
from . import chain
from .builder import kernel_settings
from .cost import announce, describe
from .follow import Following, report_failure, wait
from .push import push_once, unfinished
from .record import PushStore
from .stage import KERNEL
from .submit import submit_command

COMMAND = "train-kaggle"


def train_command(cfg: Config, args: argparse.Namespace) -> int:
    """Train cfg's run over train.sessions Kaggle sessions; with --submit, submit it."""
    n, store = cfg.train.sessions, PushStore(cfg.submissions_dir)
    chain.start(store, cfg, fresh=args.force)
    retry = kaggle_api.Retry(tries=cfg.submit.retries, delay_s=cfg.submit.retry_delay_s)
    _announce(cfg, store, args, retry)
    for k in range(1, n + 1):
        done = chain.completed(store, cfg, k)
        if done is not None:
            slug = chain.session_settings(cfg, k).kernel.kernel_slug
            print(f"{COMMAND}: session {k} of {n} finished earlier: "
                  f"{session_line(chain.folder(cfg) / slug) or done.label}")
            continue
        if not run_session(cfg, store, k, retry):
            return 1
    last = store.get(chain.record_name(cfg, n)).ref
    if not getattr(args, "submit", False):
        print(f"{COMMAND}: the run is trained; submit it with: make submit SET=kernel.checkpoint_from={last}")
        return 0
    print(f"{COMMAND}: submitting from {last}'s run")
    return submit_command(replace(cfg, kernel=cfg.kernel.doing(GenerateFrom(last))), args)


def _announce(cfg: Config, store: PushStore, args: argparse.Namespace, retry: kaggle_api.Retry) -> None:
    """The cost line of the sessions still to push (and the submission after them), where there are any."""
    n, key = cfg.train.sessions, chain.chain_key(cfg)
    to_push = [k for k in range(1, n + 1) if chain.completed(store, cfg, k) is None
               and unfinished(store, chain.record_name(cfg, k), key) is None]
    if not to_push:
        return
    submits = getattr(args, "submit", False)
    minutes = len(to_push) * cfg.kernel.train_limit_min + (cfg.kernel.generate_limit_min if submits else 0)
    hours = minutes / 60
    kcfg = kernel_settings(chain.session_settings(cfg, to_push[0]))
    doing = (f"trained over {n} session(s), {len(to_push)} still to run"
             + (", then a submission generated from it" if submits else ""))
    announce(cfg, COMMAND, describe(cfg, kcfg, doing), hours, getattr(args, "yes", False), retry)


def run_session(cfg: Config, store: PushStore, k: int, retry: kaggle_api.Retry) -> bool:
    """Push session k (or follow it, pushed earlier), wait for it, fetch its summary; False when it failed."""
    scfg, n = chain.session_settings(cfg, k), cfg.train.sessions
    name = chain.record_name(cfg, k)
    kernel = push_once(scfg, KERNEL.run(scfg), retry, COMMAND, f"session {k} of {n}", store, name,
                       chain.chain_key(cfg))
    how = Following(COMMAND, max(cfg.submit.poll_timeout_min, scfg.kernel.train_limit_min + 60),
                    cfg.submit.poll_interval_s)
    status, failure = wait(kernel, retry, how)
    dest = chain.folder(cfg) / scfg.kernel.kernel_slug
    kaggle_api.kernel_output(kernel.ref, kernel.version, dest, retry, wanted=lambda f: not f.endswith(".pt"))
    kernel = store.put(name, kernel.now(status))
    if status is not KernelStatus.COMPLETE:
        report_failure(COMMAND, kernel, failure, dest / f"{scfg.kernel.kernel_slug}.log")
        start = f"from session {k - 1}'s output" if k > 1 else "the run anew"
        print(f"{COMMAND}: session {k} of {n} failed; run the same command again to push it again ({start})")
        return False
    print(f"{COMMAND}: {session_line(dest) or f'session {k} of {n}: complete'}")
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
