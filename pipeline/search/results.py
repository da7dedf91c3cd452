"""What a finished trial session left, read from its folder (local) or its kernel's fetched output: the steps
and training time of its run (losses.csv), its scores (score.json: FID, d, MiFID, images) where the FID
weights were there, and where its run and pictures are. The scheduler keeps them in the journal with the
session's report (the trial's `result_<k>`); the sweep's table and the page show them."""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from ..kaggle import log as kaggle_log


def details(run_dir: Path, score_json: Path, thumbs: Path | None = None) -> dict[str, Any]:
    """The session's run (`run_dir`), scores and fixed photos through it (`thumbs`, where its kernel kept
    them), as the journal keeps them: plain JSON values, None where not known."""
    found: dict[str, Any] = {"run_dir": str(run_dir), "thumbs": str(thumbs) if thumbs else "", "steps": None,
                             "seconds": None, "fid": None, "distance": None, "mifid": None, "n_images": 0}
    rows = _rows(run_dir / "losses.csv")
    if rows:
        found["steps"], found["seconds"] = int(float(rows[-1]["step"])), float(rows[-1]["seconds"])
    try:
        score = json.loads(score_json.read_text())
        found.update(fid=float(score["fid"]), distance=float(score["distance"]), mifid=float(score["mifid"]),
                     n_images=int(score["n_gen"]))
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return found


def last_line(log: Path) -> str:
    """The last line a session printed (Kaggle's JSON log or plain text); "" without a log."""
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
