"""The score stage and command: local MiFID of a set of images, and the local leaderboard.

The stage scores submissions/images against raw/monet_jpg into submissions/score.json.
`python -m pipeline score --images PATH [--real PATH] [--out FILE]` scores any two sets (folders of
JPEGs or zips) with the same code; its JSON goes to --out, else beside the scored set as
`<PATH>.score.json` (never inside a folder of images, whose fingerprint would change). Every
scoring appends a row to submissions/leaderboard.csv and prints the table sorted by MiFID, the
numbers a competitor checks before spending one of the day's Kaggle submissions.
"""
from __future__ import annotations

import argparse
import csv
import io
import time
from pathlib import Path
from typing import Any

from ..config import Config
from ..engine import atomic
from ..engine.errors import UserError
from ..training.runtime import pick_device
from .features import InceptionFeatures, find_weights, open_images
from .mifid import real_features, score_features

COLUMNS = ("time", "source", "run", "model", "config_hash", "n_images", "fid", "distance", "mifid", "scope",
           "images")
SHOWN = 15  # leaderboard rows printed


def build(cfg: Config, out: Path) -> str:
    """Stage: score submissions/images against the Monets into `out` (score.json)."""
    result = score_images(cfg, cfg.images_dir, out=out)
    return (f"MiFID {result['mifid']:.3f} (FID {result['fid']:.3f}, d {result['distance']:.4f}) "
            f"on {_scope(result)}")


def command(cfg: Config, args: argparse.Namespace) -> int:
    """`score`: the stage, or with --images any two sets of images."""
    from ..engine.chain import STAGES

    if args.images is None:
        if args.real or args.out:
            raise UserError("--real and --out go with --images PATH; without --images, score scores "
                            f"{cfg.images_dir} as a stage (output {cfg.submissions_dir / 'score.json'})")
        STAGES["score"].run(cfg, force=args.force)
        return 0
    score_images(cfg, Path(args.images), Path(args.real) if args.real else None,
                 Path(args.out) if args.out else None)
    return 0


def result_path(images: Path) -> Path:
    """Where the JSON of scoring `images` goes without --out: `<images>.score.json` beside it."""
    images = Path(images).resolve()
    return images.with_name(images.name + ".score.json")


def score_images(cfg: Config, images: Path, real: Path | None = None, out: Path | None = None,
                 source: str = "local") -> dict[str, Any]:
    """Score `images` (folder or zip) against `real` (default: the Monets), write the JSON, add a
    leaderboard row.

    `source` marks where the images were made: "local", or "kaggle" for the images.zip of a Kaggle
    kernel run (the submit command). Raises StageSkipped when the FID weights are not available.
    """
    real = Path(real) if real is not None else cfg.raw_dir / "monet_jpg"
    for path in (Path(images), real):  # before loading a network for nothing
        if not path.exists():
            raise UserError(f"{path}: not found; give a folder of JPEGs or a zip of them")
    weights = find_weights(cfg.score.weights)
    extractor = InceptionFeatures.for_settings(cfg, weights, pick_device(cfg.hardware.device))
    real_feats = real_features(real, extractor, cfg.cache_dir)
    with open_images(images) as image_set:
        chosen = image_set.sample(cfg.score.limit, cfg.score.seed)
        gen_feats = extractor.of_set(chosen, desc="score")
    score = score_features(gen_feats, real_feats, cfg.score.epsilon)
    result: dict[str, Any] = {
        **score.as_dict(), "weights": str(weights), "subset": len(chosen.names) < len(image_set.names),
        "n_available": len(image_set.names), "seed": cfg.score.seed, "epsilon": cfg.score.epsilon,
        "images": str(images), "real": str(real), "source": source,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
    atomic.write_json(Path(out) if out is not None else result_path(images), result)
    rows = append_leaderboard(cfg, result)
    print(f"score: MiFID {result['mifid']:.3f}  FID {result['fid']:.3f}  d {result['distance']:.4f}"
          f"{_penalty(result)}  on {_scope(result)}")
    print(format_leaderboard(rows))
    return result


def append_leaderboard(cfg: Config, result: dict[str, Any]) -> list[dict[str, str]]:
    """Add this scoring to submissions/leaderboard.csv (rewritten atomically); returns every row."""
    path = cfg.submissions_dir / "leaderboard.csv"
    rows = read_leaderboard(path)
    rows.append({
        "time": result["time"], "source": result["source"], "run": cfg.run_dir.name, "model": cfg.train.model,
        "config_hash": cfg.train_hash()[:8], "n_images": str(result["n_gen"]), "fid": f"{result['fid']:.4f}",
        "distance": f"{result['distance']:.5f}", "mifid": f"{result['mifid']:.4f}",
        "scope": "subset" if result["subset"] else "full", "images": result["images"]})
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore", restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic.write_text(path, buf.getvalue())
    return rows


def read_leaderboard(path: Path) -> list[dict[str, str]]:
    try:
        with open(path, newline="") as fh:
            return list(csv.DictReader(fh))
    except FileNotFoundError:
        return []


def format_leaderboard(rows: list[dict[str, str]]) -> str:
    """The rows as an aligned text table, best (lowest) MiFID first."""
    ranked = sorted(rows, key=lambda r: _as_float(r.get("mifid", "")))
    shown = ("rank",) + COLUMNS[:-1]
    table = [shown] + [(str(i),) + tuple(r.get(c, "") for c in COLUMNS[:-1])
                       for i, r in enumerate(ranked[:SHOWN], 1)]
    widths = [max(len(row[i]) for row in table) for i in range(len(shown))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in table]
    more = f"\n... and {len(ranked) - SHOWN} more in the CSV" if len(ranked) > SHOWN else ""
    return "local leaderboard (lower MiFID is better):\n" + "\n".join(lines) + more


def _as_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float("inf")  # a damaged cell sorts last instead of breaking the table


def _scope(result: dict[str, Any]) -> str:
    subset = f" (random subset of {result['n_available']:,})" if result["subset"] else ""
    return f"{result['n_gen']:,} images{subset} vs {result['n_real']:,} real"


def _penalty(result: dict[str, Any]) -> str:
    if result["distance"] < result["epsilon"]:
        return f" (memorisation penalty: d < {result['epsilon']}, FID divided by d)"
    return ""
