"""`train-kaggle` (make train-kaggle SESSIONS=N [SUBMIT=1]): one run trained over N Kaggle sessions, then
submitted from its last checkpoint.

Session k is a train kernel `<slug>-train-<k>` (kernel.role=train): session 1 measures the step rate and plans
the whole run's steps for N sessions (one learning-rate schedule), each later one attaches the previous
session's output and resumes its checkpoint (pipeline/notebook/attached.py). This command describes the
sessions to the runner (runner.py) in sequence: session 1 pushed and followed (its log streamed as `submit`
does), its output fetched without the checkpoints (the losses, plots, sessions.json) into
submissions/kaggle/train/, then the next session, and so on; with --submit it then runs `submit` with
kernel.checkpoint_from the last session's kernel: a notebook that only generates and zips.
Interrupted, it follows a session pushed earlier instead of pushing it again (chain.py, record.py); a failed
session is pushed again from its predecessor's output, never from scratch.
"""
from __future__ import annotations

import argparse
import json
from collections.abc import Collection
from dataclasses import replace
from pathlib import Path

from ..account.cost import describe
from ..config import Config
from ..config.jobs import GenerateFrom
from ..engine.errors import UserError
from ..kernels.builder import kernel_settings
from . import chain
from .record import JobName
from .runner import Cost, Ended, JobSpec, Plan, Runner, no_checkpoints
from .submit import submit_command

COMMAND = "train-kaggle"


def train_command(cfg: Config, args: argparse.Namespace) -> int:
    """Train cfg's run over train.sessions Kaggle sessions; with --submit, submit it."""
    runner = Runner(cfg, COMMAND, yes=getattr(args, "yes", False))
    chain.start(runner.store, cfg, fresh=args.force)
    plan = Sessions(cfg, runner)
    runner.cost = plan.cost(getattr(args, "submit", False))
    stopped = runner.run(plan)
    if stopped:
        raise UserError(stopped)
    if plan.failed:
        return 1
    last = runner.store.get(chain.job_name(cfg, cfg.train.sessions)).ref
    if not getattr(args, "submit", False):
        print(f"{COMMAND}: the run is trained; submit it with: make submit SET=kernel.checkpoint_from={last}")
        return 0
    print(f"{COMMAND}: submitting from {last}'s run")
    return submit_command(replace(cfg, kernel=cfg.kernel.doing(GenerateFrom(last))), args)


class Sessions(Plan):
    """Sessions 1..N of one run, in sequence: session k once k-1 completed; a failed one ends the command
    (run again, it is pushed again from its predecessor's output)."""

    def __init__(self, cfg: Config, runner: Runner) -> None:
        self.cfg, self.store, self.n = cfg, runner.store, cfg.train.sessions
        self.failed = False
        self.said: set[int] = set()

    def to_push(self) -> list[int]:
        """The sessions neither completed nor pushed and still running."""
        key = chain.chain_key(self.cfg)
        return [k for k in range(1, self.n + 1) if chain.completed(self.store, self.cfg, k) is None
                and self.store.unfinished(chain.job_name(self.cfg, k), key) is None]

    def cost(self, submits: bool) -> Cost | None:
        """The cost line of the sessions still to push (and the submission after them), if there are any."""
        to_push = self.to_push()
        if not to_push:
            return None
        minutes = len(to_push) * self.cfg.kernel.train_limit_min + (
            self.cfg.kernel.generate_limit_min if submits else 0)
        kcfg = kernel_settings(chain.session_settings(self.cfg, to_push[0]))
        doing = (f"trained over {self.n} session(s), {len(to_push)} still to run"
                 + (", then a submission generated from it" if submits else ""))
        return Cost(describe(self.cfg, kcfg, doing), minutes / 60)

    def next(self, running: Collection[JobName]) -> JobSpec | None:
        if self.failed or running:
            return None
        for k in range(1, self.n + 1):
            if chain.completed(self.store, self.cfg, k) is None:
                return self.spec(k)
            if k not in self.said:
                self.said.add(k)
                slug = chain.session_settings(self.cfg, k).kernel.kernel_slug
                job = self.store.get(chain.job_name(self.cfg, k))
                done = session_line(chain.folder(self.cfg) / slug) or (job.label if job else "")
                print(f"{COMMAND}: session {k} of {self.n} finished earlier: {done}")
        return None

    def spec(self, k: int) -> JobSpec:
        scfg = chain.session_settings(self.cfg, k)
        return JobSpec(chain.job_name(self.cfg, k), scfg, chain.chain_key(self.cfg),
                       f"session {k} of {self.n}", chain.folder(self.cfg) / scfg.kernel.kernel_slug,
                       no_checkpoints)

    def ended(self, result: Ended) -> None:
        k = result.spec.name.session
        self.said.add(k)
        if not result.ok:
            self.failed = True
            start = f"from session {k - 1}'s output" if k > 1 else "the run anew"
            print(f"{COMMAND}: session {k} of {self.n} failed; run the same command again to push it again "
                  f"({start})")
            return
        print(f"{COMMAND}: {session_line(result.folder) or f'session {k} of {self.n}: complete'}")


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
