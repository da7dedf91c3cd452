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
from .record import PushedKernel, PushStore


def session_settings(cfg: Config, session: int) -> Config:
    """The settings that build session `session`'s train kernel."""
    return replace(cfg, kernel=cfg.kernel.doing(TrainSession(session)))


def folder(cfg: Config) -> Path:
    """Where the sessions' fetched summaries lie."""
    return cfg.submissions_dir / "kaggle" / "train"


def record_name(cfg: Config, session: int) -> str:
    return f"train/{cfg.kernel.slug}/{session}"


def chain_key(cfg: Config) -> str:
    """What makes a chain the same chain: every session's kernel settings but its number, and how many."""
    return digest({"kernel": session_settings(cfg, 1).kernel, "sessions": cfg.train.sessions})


def completed(store: PushStore, cfg: Config, session: int) -> PushedKernel | None:
    """Session `session` of this chain where it completed, else None."""
    record = store.get(record_name(cfg, session))
    ok = record is not None and record.key == chain_key(cfg) and record.status is KernelStatus.COMPLETE
    return record if ok else None


def start(store: PushStore, cfg: Config, fresh: bool) -> None:
    """Forget the chain's records where `fresh` (--force), and say so where they are of other settings."""
    names = [n for n in store.all() if n.startswith(f"train/{cfg.kernel.slug}/")]
    if fresh:
        store.drop(names)
    elif any(store.get(n).key != chain_key(cfg) for n in names):
        print(f"train-kaggle: the settings differ from the chain recorded in {store.path}: a new chain "
              "starts at session 1")


def trained_version(cfg: Config, ref: str) -> str:
    """'owner/slug v3': the train kernel `ref` with the version of its run's last session, where a chain on
    this machine recorded it complete; else `ref` as it is."""
    versions = [r.version for name, r in PushStore(cfg.submissions_dir).all().items()
                if name.startswith("train/") and r.ref == ref and r.status is KernelStatus.COMPLETE]
    return f"{ref} v{max(versions)}" if versions else ref
