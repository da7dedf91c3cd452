"""What a finished variant left, read into its record: the steps and training time of its run (losses.csv),
and its scores (score.json: FID, d, MiFID, images) where the FID weights were there."""
from __future__ import annotations

import csv
import json
from pathlib import Path

from ..kaggle import log as kaggle_log
from .state import VariantState


def read(v: VariantState, run_dir: Path, score_json: Path) -> None:
    v.run_dir = str(run_dir)
    rows = _rows(run_dir / "losses.csv")
    if rows:
        v.steps, v.seconds = int(float(rows[-1]["step"])), float(rows[-1]["seconds"])
    try:
        score = json.loads(score_json.read_text())
    except (OSError, ValueError):
        return
    v.fid, v.distance, v.mifid, v.n_images = (float(score["fid"]), float(score["distance"]),
                                              float(score["mifid"]), int(score["n_gen"]))


def mifid_in(score_json: Path) -> float | None:
    """The local MiFID a score stage wrote (None where it wrote none: no FID weights, or it never ran)."""
    try:
        return float(json.loads(Path(score_json).read_text())["mifid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def last_line(log: Path) -> str:
    """The last line a variant printed (Kaggle's JSON log or plain text); "" without a log."""
    try:
        lines = kaggle_log.lines(kaggle_log.read(log))
    except OSError:
        return ""
    return next((line.strip() for line in reversed(lines) if line.strip()), "")[:300]


def _rows(path: Path) -> list[dict[str, str]]:
    try:
        with open(path, newline="") as fh:
            return list(csv.DictReader(fh))
    except OSError:
        return []
