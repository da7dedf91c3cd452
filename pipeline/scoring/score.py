"""The score stage and command: local MiFID of a set of images, and a row on the local leaderboard.

The stage scores submissions/images against the reference paintings (score.real, by default the training
paintings raw/monet_jpg) into submissions/score.json. `python -m pipeline score --images PATH [--real PATH]
[--out FILE]` scores any two sets (folders of JPEGs or zips) with the same code; its JSON goes to --out,
else beside the scored set as `<PATH>.score.json` (never inside a folder of images, whose fingerprint would
change). A reference set other than the training paintings is scored without the training paintings it
holds (pipeline/metrics/reference.py). Every scoring appends a row to submissions/leaderboard.csv, filed
under the run the images' provenance record names (`unknown` without one), and prints the table sorted by
MiFID: the numbers a competitor checks before spending one of the day's Kaggle submissions.
"""
from __future__ import annotations

import argparse
from datetime import datetime
from pathlib import Path
from typing import Any

from ..config import Config
from ..engine import atomic
from ..engine.errors import UserError
from ..generate import provenance
from ..metrics.extractor import inception_features
from ..metrics.features import ImageSet, find_weights, open_images
from ..metrics.mifid import real_features, score_features
from ..metrics.reference import Reference, without_training
from ..training import tensorboard
from ..training.runtime import pick_device
from . import table


def build(cfg: Config, out: Path) -> str:
    """Stage: score submissions/images against the Monets into `out` (score.json)."""
    result = score_images(cfg, cfg.images_dir, out=out)
    return (f"MiFID {result['mifid']:.3f} (FID {result['fid']:.3f}, d {result['distance']:.4f}) "
            f"on {_scope(result)}")


def command(cfg: Config, args: argparse.Namespace) -> int:
    """`score --images PATH [--real PATH] [--out FILE]`: any two sets of images (plain `score`: the stage)."""
    if args.images is None:
        raise UserError("--real and --out go with --images PATH; without --images, score scores "
                        f"{cfg.images_dir} as a stage against score.real "
                        f"(output {cfg.submissions_dir / 'score.json'})")
    score_images(cfg, Path(args.images), Path(args.real) if args.real else None,
                 Path(args.out) if args.out else None)
    return 0


def result_path(images: Path) -> Path:
    """Where the JSON of scoring `images` goes without --out: `<images>.score.json` beside it."""
    images = Path(images).resolve()
    return images.with_name(images.name + ".score.json")


def score_images(cfg: Config, images: Path, real: Path | None = None, out: Path | None = None,
                 source: str = "local") -> dict[str, Any]:
    """Score `images` (folder or zip) against `real` (default: score.real, else the training paintings),
    write the JSON, add a leaderboard row under the run that made the images (and, where that run's folder
    is here, its settings with this score as TensorBoard hparams).

    `source` marks where the images were made: "local", or "kaggle" for the images.zip of a Kaggle
    kernel run (the submit command). Raises StageSkipped when the FID weights are not available.
    """
    real = Path(real) if real is not None else Path(cfg.score.real or cfg.raw_dir / "monet_jpg")
    for path in (Path(images), real):  # before loading a network for nothing
        if not path.exists():
            raise UserError(f"{path}: not found; give a folder of JPEGs or a zip of them")
    weights = find_weights(cfg.score.weights)
    made_by = provenance.read(images) or provenance.UNKNOWN
    extractor = inception_features(cfg, weights, pick_device(cfg.hardware.device))
    with open_images(real) as real_set:
        reference = reference_set(cfg, real_set)
        real_feats = real_features(reference.images, extractor, cfg.cache_dir)
    with open_images(images) as image_set:
        chosen = image_set.sample(cfg.score.limit, cfg.score.seed)
        gen_feats = extractor.of_set(chosen, desc="score", cache_dir=cfg.cache_dir)
    score = score_features(gen_feats, real_feats, cfg.score.epsilon)
    result: dict[str, Any] = {
        **score.as_dict(), "weights": str(weights), "subset": len(chosen.names) < len(image_set.names),
        "n_available": len(image_set.names), "seed": cfg.score.seed, "epsilon": cfg.score.epsilon,
        "images": str(images), "real": str(real), "source": source, "left_out": reference.left_out,
        "same_pixels": reference.same_pixels, "provenance": made_by.as_dict(),
        "time": datetime.now().isoformat(timespec="seconds")}
    atomic.write_json(Path(out) if out is not None else result_path(images), result)
    rows = table.append(table.csv_path(cfg.submissions_dir), leaderboard_row(result, made_by))
    # the run's settings with this score, as TensorBoard hparams, where its folder is here
    tensorboard.record_score(cfg.data_dir / "runs" / made_by.run, made_by.config_hash, made_by.step,
                             {"mifid": result["mifid"], "fid": result["fid"]})
    if reference.note:
        print(f"score: {reference.note}")
    print(f"score: MiFID {result['mifid']:.3f}  FID {result['fid']:.3f}  d {result['distance']:.4f}"
          f"{_penalty(result)}  on {_scope(result)}; filed under run {made_by.label}")
    print(table.format_table(rows))
    return result


def reference_set(cfg: Config, real_set: ImageSet) -> Reference:
    """The reference images: a set other than the training paintings without the training paintings it
    holds; the training paintings themselves as they are (see pipeline/metrics/reference.py)."""
    training = cfg.raw_dir / "monet_jpg"
    if real_set.path.resolve() == training.resolve():
        return Reference(real_set)
    if not training.is_dir():
        return Reference(real_set, note=f"the training paintings ({training}) are not here, so none could be "
                                        f"left out of {real_set.path}")
    return without_training(real_set, training, cfg.hardware.workers)


def leaderboard_row(result: dict[str, Any], made_by: provenance.Provenance) -> table.Row:
    """The leaderboard's row for one scoring, filed under the run that made the images (the numbers to the
    digits that rank runs)."""
    return table.Row.filed_under(
        made_by, time=datetime.fromisoformat(result["time"]), source=result["source"],
        n_images=result["n_gen"], fid=round(result["fid"], 4), distance=round(result["distance"], 5),
        mifid=round(result["mifid"], 4), scope=table.Scope.SUBSET if result["subset"] else table.Scope.FULL,
        images=result["images"], n_real=result["n_real"], left_out=result["left_out"])


def _scope(result: dict[str, Any]) -> str:
    subset = f" (random subset of {result['n_available']:,})" if result["subset"] else ""
    return f"{result['n_gen']:,} images{subset} vs {result['n_real']:,} real"


def _penalty(result: dict[str, Any]) -> str:
    if result["distance"] < result["epsilon"]:
        return f" (memorisation penalty: d < {result['epsilon']}, FID divided by d)"
    return ""
