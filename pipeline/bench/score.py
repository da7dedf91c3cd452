"""Benchmark of the scorer against pytorch-fid's own command, on the same images and weights file.

Two views: Inception feature throughput in-process (ours vs pytorch-fid's `get_activations`, the
same network), and the whole scoring as a user runs it, command against command, cold (fresh
process, no cached real statistics): `python -m pipeline score --images A --real B` against
`python -m pytorch_fid A B --dims 2048`. pytorch-fid takes no weights path, so its command gets
ours through a private torch hub folder (TORCH_HOME) holding the file under its official name,
which is where it looks before downloading. Usage: `python -m pipeline.bench.score A B WEIGHTS`.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from pytorch_fid.fid_score import get_activations

from ..data.images import list_images
from ..metrics.features import WEIGHTS_FILE, InceptionFeatures, load_inception, open_images
from ..training.runtime import pick_device
from .timing import sync


def bench_score(images_dir: Path, real_dir: Path, weights: Path, device: str = "auto",
                batch_size: int = 50) -> dict[str, Any]:
    """Time our scorer and pytorch-fid's on `images_dir` vs `real_dir` (folders of JPEGs); returns the
    numbers."""
    images_dir, real_dir, weights = (Path(images_dir).resolve(), Path(real_dir).resolve(),
                                     Path(weights).resolve())
    dev = pick_device(device)
    workers = min(8, os.cpu_count() or 1)  # pytorch-fid's default DataLoader workers
    files = list_images(images_dir)

    # a full batch tunes cuDNN for its shape
    warm = min(batch_size if dev.type == "cuda" else 4, len(files) - 1)
    ours = InceptionFeatures(weights, dev, batch_size, progress=False)
    with open_images(images_dir) as image_set:
        ours.of_set(image_set.sample(warm, 0))  # warm-up: allocator, kernels
        sync(dev)
        start = time.perf_counter()
        ours.of_set(image_set)
        sync(dev)
        ours_feat_s = time.perf_counter() - start
    theirs = load_inception(weights).to(dev)
    get_activations(files[:warm], theirs, batch_size, device=dev, num_workers=0)  # the same warm-up
    sync(dev)
    start = time.perf_counter()
    get_activations(files, theirs, batch_size, device=dev, num_workers=workers)
    sync(dev)
    theirs_feat_s = time.perf_counter() - start

    with tempfile.TemporaryDirectory(prefix="bench-score-") as tmp:
        ours_cmd_s, ours_result = _our_command(images_dir, real_dir, weights, dev, batch_size, Path(tmp))
        theirs_cmd_s, theirs_fid = _pytorch_fid_command(images_dir, real_dir, weights, dev, batch_size,
                                                        Path(tmp))
    return {
        "device": str(dev), "torch": torch.__version__, "n_gen": len(files), "n_real": ours_result["n_real"],
        "batch_size": batch_size,
        "features_img_s": len(files) / ours_feat_s, "pytorch_fid_features_img_s": len(files) / theirs_feat_s,
        "features_speedup": theirs_feat_s / ours_feat_s,
        "command_s": ours_cmd_s, "pytorch_fid_command_s": theirs_cmd_s, "ratio": theirs_cmd_s / ours_cmd_s,
        "fid": ours_result["fid"], "pytorch_fid_fid": theirs_fid,
        "fid_rel_diff": abs(ours_result["fid"] - theirs_fid) / abs(theirs_fid),
        "distance": ours_result["distance"], "mifid": ours_result["mifid"],
    }


def _our_command(images: Path, real: Path, weights: Path, device: torch.device, batch_size: int,
                 tmp: Path) -> tuple[float, dict[str, Any]]:
    out = tmp / "ours.json"
    sets = [f"paths.data={tmp / 'data'}", f"paths.submissions={tmp / 'submissions'}",
            f"score.weights={weights}", f"hardware.device={device}", f"score.batch_size={batch_size}"]
    cmd = [sys.executable, "-m", "pipeline", "score", *[a for s in sets for a in ("--set", s)],
           "--images", str(images), "--real", str(real), "--out", str(out)]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return time.perf_counter() - start, json.loads(out.read_text())


def _pytorch_fid_command(images: Path, real: Path, weights: Path, device: torch.device, batch_size: int,
                         tmp: Path) -> tuple[float, float]:
    hub = tmp / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / WEIGHTS_FILE).symlink_to(weights)
    env = {**os.environ, "TORCH_HOME": str(tmp / "torch")}
    cmd = [sys.executable, "-m", "pytorch_fid", str(images), str(real), "--dims", "2048",
           "--device", str(device), "--batch-size", str(batch_size)]
    start = time.perf_counter()
    done = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise RuntimeError(f"pytorch_fid failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    match = re.search(r"FID:\s+([-+0-9.eE]+)", done.stdout)
    if not match:
        raise RuntimeError(f"pytorch_fid printed no FID: {done.stdout[-300:]} {done.stderr[-300:]}")
    return seconds, float(match.group(1))


if __name__ == "__main__":
    if len(sys.argv) not in (4, 5):
        sys.exit("usage: python -m pipeline.bench.score IMAGES_DIR REAL_DIR WEIGHTS [DEVICE]")
    print(json.dumps(bench_score(*map(Path, sys.argv[1:4]), *sys.argv[4:]), indent=2))
