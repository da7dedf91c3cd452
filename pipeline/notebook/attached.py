"""The run another kernel left: found among the notebook's inputs, checked, and taken over.

A train kernel's output is its run folder (`/kaggle/working/runs/<run>/`: checkpoints with the plan and the
EMA weights, losses, plots, sessions.json). The next session's kernel, or a submit kernel built with
kernel.checkpoint_from, attaches that kernel as an input: Kaggle mounts it read-only under
`/kaggle/input/notebooks/<owner>/<slug>/` (the flat `/kaggle/input/<slug>/` in older notebooks). A run trained
on another machine comes as a dataset instead (`make upload`, kernel.checkpoint_from=dataset:<owner>/<slug>,
mounted under `/kaggle/input/datasets/<owner>/<slug>/`), holding `<run>/config.toml` and the one checkpoint
generate uses. It is looked for anywhere under /kaggle/input (preflight.find_run), that folder first, since
the layout has changed before. Session n + 1 copies the folder into its own data folder and resumes it; a
submit kernel generates from it in place.
"""
from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

from ..config import Config
from ..generate import provenance
from ..training import checkpoint


def continue_run(cfg: Config, folder: Path) -> None:
    """Session n + 1: copy the previous session's run folder into this notebook's; training resumes it."""
    if (cfg.run_dir / "last.pt").exists():
        print(f"continue: {cfg.run_dir} already holds a run; training resumes it")
        return
    shutil.copytree(folder, cfg.run_dir, ignore=shutil.ignore_patterns(".*"), dirs_exist_ok=True)
    step = checkpoint.read(cfg.run_dir / "last.pt", map_location="cpu", mmap=True)["step"]
    print(f"continue: {folder} copied to {cfg.run_dir}; training resumes it at step {step:,}")


def generate_from(cfg: Config, folder: Path) -> Config:
    """A submit kernel's settings for generating from the attached run in place: its checkpoint (best.pt where
    kept, else last.pt) and the [train] and family settings it was trained with, so the images' provenance
    names that run."""
    best = folder / "best.pt"
    ckpt = best if best.is_file() and cfg.generate.checkpoint in ("auto", "best") else folder / "last.pt"
    train, settings = checkpoint.train_settings(checkpoint.read(ckpt, map_location="cpu", mmap=True))
    cfg = replace(cfg, train=replace(train, run=train.run or folder.name),
                  families=replace(cfg.families, **{train.model: settings}),
                  generate=replace(cfg.generate, checkpoint=str(ckpt)))
    print(f"attach: generating from {ckpt} ({train.model}, trained by {cfg.kernel.checkpoint_from})")
    return cfg


def name_trainer(cfg: Config) -> None:
    """Name the kernel that trained the run in the images' provenance record (before the zip carries it)."""
    record = provenance.read(cfg.images_dir)
    if record is not None:
        provenance.write(cfg.images_dir, replace(record, trained_by=cfg.kernel.checkpoint_from))
