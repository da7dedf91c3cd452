"""`make bench`: training, generation and scoring throughput, and `make demo` stage by stage.

Writes submissions/bench/bench.md (a table per part, device and versions on top) and bench.json, and
prints the table. On a CPU it runs small sizes (minutes); on a GPU the competition's sizes.
Usage: python -m pipeline.bench [--config PRESET] [--set k=v ...] [--only train,generate,score,demo]
"""
from __future__ import annotations

import argparse
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

from ..config import Config, load_config
from ..engine import atomic
from ..engine.errors import UserError
from ..training.runtime import pick_device
from .parts import bench_demo, bench_generate, bench_score_part
from .train import bench_train

PARTS = ("train", "generate", "score", "demo")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="default")
    parser.add_argument("--set", action="append", default=[])
    parser.add_argument("--force", action="store_true", help="ignored (make passes it through)")
    parser.add_argument("--only", default=",".join(PARTS),
                        help=f"comma-separated parts of: {', '.join(PARTS)}")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config, args.set)
        parts = [p.strip() for p in args.only.split(",") if p.strip()]
        if unknown := set(parts) - set(PARTS):
            raise UserError(f"--only: unknown part(s) {', '.join(sorted(unknown))}; "
                            f"choose from {', '.join(PARTS)}")
        device = pick_device(cfg.hardware.device)
    except UserError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return 2
    gpu = device.type == "cuda"
    report: dict = {"device": torch.cuda.get_device_name(device) if gpu
                    else f"CPU ({platform.processor() or platform.machine()}, "
                    f"{torch.get_num_threads()} threads)", "torch": torch.__version__, "config": args.config,
                    "sets": args.set, "date": time.strftime("%Y-%m-%d %H:%M")}
    work = Path(tempfile.mkdtemp(prefix="pipeline-bench-"))
    try:
        tables = _run_parts(cfg, parts, gpu, work, report)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    head = (f"# Benchmarks\n\n{report['device']}, torch {report['torch']}, preset `{args.config}`, "
            f"{report['date']}\n")
    markdown = head + "\n" + "\n".join(tables)
    out = Path(cfg.paths.submissions) / "bench"
    atomic.write_text(out / "bench.md", markdown)
    atomic.write_json(out / "bench.json", report)
    print(markdown)
    print(f"bench: written to {out}/bench.md and bench.json")
    return 0


def _run_parts(cfg: Config, parts: list[str], gpu: bool, work: Path, report: dict) -> list[str]:
    tables: list[str] = []
    if "train" in parts:
        size, reps = (256, 5) if gpu else (64, 3)
        print(f"bench: train at {size} px ...", flush=True)
        report["train"] = rows = bench_train(cfg, size, reps)
        tables.append(_table(f"Train: {cfg.family.summary(cfg.model_settings)} step ({size} px); "
                             f"floor from {rows[0]['peak']}",
                             rows, [("row", "variant", "{}"), ("images_per_s", "pairs/s", "{:.1f}"),
                                    ("steps_per_s", "steps/s", "{:.2f}"),
                                    ("speedup", "vs fp32 batch 1", "{:.2f}x"),
                                    ("fraction_of_floor", "of floor", "{:.1%}")]))
    if "generate" in parts:
        print("bench: generate ...", flush=True)
        report["generate"] = gen = bench_generate(cfg, work / "generate", n=7038 if gpu else 8)
        tables.append(_table(f"Generate: {gen[0]['n']:,} photos -> JPEGs on disk", gen,
                             [("row", "what", "{}"), ("images_per_s", "images/s", "{:.1f}"),
                              ("seconds", "seconds", "{:.2f}")]))
    if "score" in parts:
        print("bench: score ...", flush=True)
        report["score"] = sc = bench_score_part(cfg, work / "score", *((7038, 300) if gpu else (40, 30)))
        tables.append(_table(f"Score: MiFID of {sc['n_gen']:,} vs {sc['n_real']:,} images "
                             f"(weights: {sc['weights_kind']})",
                             [sc], [("features_img_s", "features img/s", "{:.1f}"),
                                    ("pytorch_fid_features_img_s", "pytorch-fid img/s", "{:.1f}"),
                                    ("command_s", "our command s", "{:.1f}"),
                                    ("pytorch_fid_command_s", "pytorch-fid command s", "{:.1f}"),
                                    ("ratio", "ratio", "{:.2f}x"),
                                    ("fid_rel_diff", "FID rel. diff", "{:.1e}")]))
    if "demo" in parts:
        print("bench: make demo, stage by stage ...", flush=True)
        report["demo"] = demo = bench_demo(work)
        tables.append(_table("`make demo` stage by stage (fresh folder)", demo,
                             [("stage", "stage", "{}"), ("seconds", "seconds", "{:.1f}"),
                              ("summary", "result", "{}")]))
    return tables


def _table(title: str, rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    lines = [f"## {title}\n", "| " + " | ".join(c[1] for c in columns) + " |",
             "|" + "---|" * len(columns)]
    for r in rows:
        lines.append("| " + " | ".join(fmt.format(r[k]) if k in r else "" for k, _, fmt in columns) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
