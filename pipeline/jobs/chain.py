"""A run trained over several Kaggle sessions, as the push records see it: session k's kernel is recorded as
`train/<slug>/<k>` (record.py) under the chain's key, the kernels' settings with the session number aside, so
that `train-kaggle` run again skips the sessions that completed, follows the one that runs, pushes a failed
one again, and starts a new chain when the settings changed. The fetched summary of each session (its output
without the checkpoints) lies in submissions/kaggle/train/<session's kernel slug>/.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..config import Config
from ..config.jobs import TrainSession
from ..engine.keys import digest
from ..kaggle.status import KernelStatus
from .record import Job, JobKind, JobName
from .store import JobStore


def session_settings(cfg: Config, session: int) -> Config:
    """The settings that build session `session`'s train kernel."""
    return replace(cfg, kernel=cfg.kernel.doing(TrainSession(session)))


def folder(cfg: Config) -> Path:
    """Where the sessions' fetched summaries lie."""
    return cfg.submissions_dir / "kaggle" / "train"


def job_name(cfg: Config, session: int) -> JobName:
    return JobName(JobKind.TRAIN, cfg.kernel.slug, session=session)


def chain_key(cfg: Config) -> str:
    """What makes a chain the same chain: every session's kernel settings but its number, and how many."""
    return digest({"kernel": session_settings(cfg, 1).kernel, "sessions": cfg.train.sessions})


def completed(store: JobStore, cfg: Config, session: int) -> Job | None:
    """Session `session` of this chain where it completed, else None."""
    record = store.get(job_name(cfg, session))
    ok = record is not None and record.key == chain_key(cfg) and record.status is KernelStatus.COMPLETE
    return record if ok else None


def start(store: JobStore, cfg: Config, fresh: bool) -> None:
    """Forget the chain's records where `fresh` (--force), and say so where they are of other settings."""
    jobs = store.all(JobKind.TRAIN, cfg.kernel.slug)
    if fresh:
        store.drop(jobs)
    elif any(job.key != chain_key(cfg) for job in jobs.values()):
        print(f"train-kaggle: the settings differ from the chain recorded in {store.path}: a new chain "
              "starts at session 1")


def trained_version(cfg: Config, ref: str) -> str:
    """'owner/slug v3': the train kernel `ref` with the version of its run's last session, where a chain on
    this machine recorded it complete; else `ref` as it is."""
    versions = [r.version for r in JobStore(cfg.submissions_dir).all(JobKind.TRAIN).values()
                if r.ref == ref and r.status is KernelStatus.COMPLETE]
    return f"{ref} v{max(versions)}" if versions else ref
