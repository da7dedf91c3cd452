"""`python -m pipeline bench` (`make bench`): training, generation and scoring throughput, and `make demo`
stage by stage; and a search against the full grid on synthetic learning curves.

Writes submissions/bench/bench.md (a table per part; device, versions, date and load on top) and
bench.json, and prints the tables. Every row says the size it measured: the training step of the `kaggle`
and `default` presets at their image size, scoring at 7,000 generated vs 300 real (pytorch-fid's time
derived from a smaller run where the full one would take too long on a CPU, and labelled so; --full
measures it). About 20 minutes on 2 CPU cores. Its options (--only, --data, --full) are declared with the
command in pipeline/cli.py; --config, --set and the errors are the CLI's.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import platform
import re
import shutil
import tempfile
import time
from pathlib import Path

import torch

from ..config import Config
from ..engine import atomic
from ..engine.errors import UserError
from ..training.runtime import pick_device
from .parts import bench_demo, bench_generate, bench_score_part
from .search import bench_search
from .train import PRESETS, bench_train

PARTS = ("train", "generate", "score", "demo", "search")


def command(cfg: Config, args: argparse.Namespace) -> int:
    """Run the parts `args.only` names (all by default) and write the report; a user error stops it before
    any work."""
    parts = chosen_parts(args.only)
    device = pick_device(cfg.hardware.device)
    gpu = device.type == "cuda"
    report: dict = {"device": torch.cuda.get_device_name(device) if gpu else cpu_name(),
                    "torch": torch.__version__, "config": args.config, "sets": args.set,
                    "date": time.strftime("%Y-%m-%d %H:%M"), "load_before": os.getloadavg()[0]}
    work = Path(tempfile.mkdtemp(prefix="pipeline-bench-"))
    try:
        tables = _run_parts(cfg, parts, args, gpu, work, report)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report["load_after"] = os.getloadavg()[0]
    head = (f"# Benchmarks\n\n{report['device']}, torch {report['torch']}, preset `{args.config}`, "
            f"{report['date']}; load average {report['load_before']:.1f} before, {report['load_after']:.1f} "
            "after (other processes on the cores slow every row)\n")
    markdown = head + "\n" + "\n".join(tables)
    out = Path(cfg.paths.submissions) / "bench"
    atomic.write_text(out / "bench.md", markdown)
    atomic.write_json(out / "bench.json", report)
    print(markdown)
    print(f"bench: written to {out}/bench.md and bench.json")
    return 0


def chosen_parts(only: str | None) -> list[str]:
    """The parts a comma-separated --only names, in its order (every part when it is not given)."""
    parts = [p.strip() for p in (only or ",".join(PARTS)).split(",") if p.strip()]
    if unknown := set(parts) - set(PARTS):
        raise UserError(f"--only: unknown part(s) {', '.join(sorted(unknown))}; "
                        f"choose from {', '.join(PARTS)}")
    return parts


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), its cores and torch's threads."""
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        if found := re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M):
            model = found.group(1).strip()
    return f"CPU: {model}, {os.cpu_count()} cores, torch on {torch.get_num_threads()} threads"


def _run_parts(cfg: Config, parts: list[str], args: argparse.Namespace, gpu: bool, work: Path,
               report: dict) -> list[str]:
    tables: list[str] = []
    if "train" in parts:
        print("bench: train, the presets' step (" + ", ".join(PRESETS) + ") ...", flush=True)
        report["train"] = rows = bench_train(args.set)
        tables.append(_table(f"Train: the presets' step at their size; peak {rows[0]['peak']}", rows,
                             [("preset", "preset", "{}"), ("model", "model", "{}"), ("size", "size", "{}"),
                              ("row", "variant", "{}"), ("images_per_s", "pairs/s", "{:.3f}"),
                              ("steps_per_s", "steps/s", "{:.3f}"),
                              ("flops_per_image", "GFLOP/pair", "{:.0f}", 1e-9),
                              ("fraction_of_peak", "of peak", "{:.1%}")]))
    if "generate" in parts:
        print("bench: generate ...", flush=True)
        report["generate"] = gen = bench_generate(cfg, work / "generate", n=7038 if gpu else 8)
        tables.append(_table(f"Generate: {gen[0]['n']:,} photos -> JPEGs on disk", gen,
                             [("row", "what", "{}"), ("images_per_s", "images/s", "{:.1f}"),
                              ("seconds", "seconds", "{:.2f}")]))
    if "score" in parts:
        print("bench: score, 7,000 vs 300, ours and pytorch-fid's command ...", flush=True)
        report["score"] = sc = bench_score_part(cfg, work / "score", args.data, args.full)
        tables.append(_table(f"Score: MiFID of {sc['n_gen']:,} generated vs {sc['n_real']} real images "
                             f"(weights: {sc['weights_kind']}; images: {sc['data']})", sc["rows"],
                             [("case", "case", "{}"), ("size", "size", "{}"), ("ours_s", "ours s", "{:.1f}"),
                              ("ours_how", "how", "{}"), ("pytorch_fid_s", "pytorch-fid s", "{:.1f}"),
                              ("pytorch_fid_how", "how", "{}"), ("ratio", "pytorch-fid / ours", "{:.2f}x")]))
        tables.append(_table("Score: our FID against pytorch-fid's command's, same files", sc["fid_checks"],
                             [("size", "size", "{}"), ("fid", "our FID", "{:.4f}"),
                              ("pytorch_fid_fid", "pytorch-fid FID", "{:.4f}"),
                              ("fid_rel_diff", "rel. diff", "{:.1e}"), ("distance", "our d", "{:.5f}"),
                              ("mifid", "our MiFID", "{:.3f}"), ("note", "note", "{}")]))
    if "demo" in parts:
        print("bench: make demo, stage by stage ...", flush=True)
        report["demo"] = demo = bench_demo(work)
        tables.append(_table("`make demo` stage by stage (fresh folder)", demo,
                             [("stage", "stage", "{}"), ("seconds", "seconds", "{:.1f}"),
                              ("summary", "result", "{}")]))
    if "search" in parts:
        print("bench: search against the full grid, synthetic learning curves ...", flush=True)
        report["search"] = search = bench_search(work / "search")
        tables.append(_table("Search against the full grid, on synthetic learning curves: GPU-hours until a "
                             "trial within 2% of the grid's best final MiFID", search,
                             [("seed", "seed", "{}"), ("spearman", "Spearman 1 h vs 13 h", "{:.2f}"),
                              ("grid_best", "grid's best", "{:.2f}"),
                              ("search_best", "search's best", "{:.2f}"),
                              ("found", "found", "{}"), ("search_hit_h", "search GPU-h to 2%", "{:.0f}"),
                              ("search_h", "search GPU-h", "{:.0f}"),
                              ("grid_hit_h", "grid GPU-h to 2% (random order)", "{:.0f}"),
                              ("grid_h", "grid GPU-h", "{:.0f}")]))
    return tables


def _table(title: str, rows: list[dict], columns: list[tuple]) -> str:
    """A markdown table; a column is (key, heading, format[, scale])."""
    lines = [f"## {title}\n", "| " + " | ".join(c[1] for c in columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        lines.append("| " + " | ".join(c[2].format(r[c[0]] * (c[3] if len(c) > 3 else 1)) if c[0] in r else ""
                                       for c in columns) + " |")
    return "\n".join(lines) + "\n"

