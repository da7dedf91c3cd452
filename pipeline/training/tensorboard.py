"""A run's TensorBoard event files, beside losses.csv and the PNG plot: the curves where PyTorch users look.

They are written into the run folder itself (`data/runs/<run>/events.out.tfevents.*`), so `tensorboard
--logdir data/runs` (`make tensorboard`) shows each run under its folder's name, and whatever carries the
folder (a Kaggle train kernel's output, a copy) carries them:

- while training (TrainLog, rank 0 alone): every column of each losses.csv row as a scalar `train/<column>`
  at the row's step (the losses, the learning rate, epoch and seconds), and every sample grid as the image
  `samples`. A resumed run hides the events past its checkpoint's step (purge_step), as losses.csv drops
  those rows: the steps are trained again.
- when the score stage scores images a run made (`record_score`): the run's settings (its config.toml's
  [train] and family sections) as hparams, with the local MiFID and FID as their metrics. Written then and
  not at the end of training: the MiFID exists only once the images are generated and scored, and the
  HParams dashboard compares runs by a metric, so settings without it would be a row with nothing to
  compare. Each scoring replaces the run's previous record (a file of its own): the run's latest score.

TensorBoard is optional: without the `tensorboard` package (`pip install tensorboard`, or the project's
`tensorboard` extra) no event files are written, and training says how to get them in one line.
"""
from __future__ import annotations

import dataclasses
import functools
import sys
import types
from pathlib import Path
from typing import Any

import torch

from ..config import build_config, tomllib
from ..engine.errors import UserError

HPARAMS_SUFFIX = ".hparams"  # the event file of the run's settings and score, replaced at each scoring


@functools.cache
def writer_class() -> Any:
    """torch's SummaryWriter, or None (said once per process) where the tensorboard package is missing."""
    # TensorBoard's writer uses TensorFlow's file API when TensorFlow is installed (Kaggle's image has it):
    # seconds of importing and its CUDA warnings in the training log, for files its own stub writes the
    # same. An empty module under this name is the switch TensorBoard reads to take its stub.
    sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf"))
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        print("TensorBoard: no event files: the tensorboard package is not installed (pip install "
              "tensorboard, or the project's extra: pip install -e '.[tensorboard]')")
        return None
    return SummaryWriter


class Board:
    """The event files of one training session (rank 0)."""

    def __init__(self, writer: Any) -> None:
        self.writer = writer

    @classmethod
    def open(cls, run_dir: Path, resume_step: int) -> Board | None:
        """A writer into `run_dir` that hides what earlier sessions wrote past `resume_step`; None without
        the package."""
        summary_writer = writer_class()
        if summary_writer is None:
            return None
        return cls(summary_writer(log_dir=str(run_dir), purge_step=resume_step + 1))

    def row(self, values: dict[str, float | int]) -> None:
        """One losses.csv row, flushed as the CSV is, so a killed run keeps what it logged."""
        step = int(values["step"])
        for name, value in values.items():
            if name != "step":
                self.writer.add_scalar(f"train/{name}", float(value), step)
        self.writer.flush()

    def grid(self, step: int, image: torch.Tensor) -> None:
        """A sample grid: 3 x H x W uint8."""
        self.writer.add_image("samples", image, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def record_score(run_dir: Path, config_hash: str, step: int, scores: dict[str, float]) -> bool:
    """Write the run's settings with `scores` ({"mifid": ..., "fid": ...}, at the checkpoint `step` the
    images were made from) as its hparams, replacing the previous record. Only where `run_dir` holds the
    run that made them (its settings hash to `config_hash`); False where nothing was written."""
    hparams = run_settings(run_dir, config_hash)
    summary_writer = writer_class() if hparams is not None else None
    if summary_writer is None:
        return False
    from torch.utils.tensorboard.summary import hparams as hparams_summaries

    metrics = {f"score/{name}": float(value) for name, value in scores.items()}
    for old in run_dir.glob(f"events.out.tfevents.*{HPARAMS_SUFFIX}"):
        old.unlink()
    with summary_writer(log_dir=str(run_dir), filename_suffix=HPARAMS_SUFFIX) as writer:
        for summary in hparams_summaries(hparams, metrics):
            writer.file_writer.add_summary(summary)
        for tag, value in metrics.items():
            writer.add_scalar(tag, value, step)
    return True


def run_settings(run_dir: Path, config_hash: str) -> dict[str, Any] | None:
    """The [train] and family settings of the run in `run_dir` as flat `section.key` values, or None where
    the folder holds no settings, unreadable ones or another run's (a folder of the same name)."""
    try:
        cfg = build_config(tomllib.loads((run_dir / "config.toml").read_text()))
    except (OSError, ValueError, UserError):
        return None
    if not config_hash or cfg.train_hash()[:8] != config_hash:
        return None
    sections = {"train": cfg.train, cfg.train.model: cfg.model_settings}
    flat = {f"{name}.{key}": value for name, section in sections.items()
            for key, value in dataclasses.asdict(section).items()}
    # TensorBoard takes numbers, strings and booleans (None: left out); anything else goes as its text.
    return {k: v if isinstance(v, (bool, int, float, str)) else str(v) for k, v in flat.items()}
