"""The generate, score and demo parts of `make bench`, each on data made for the occasion in a temp folder."""
from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
import time
from pathlib import Path

import torch

from ..config import Config, PathsConfig
from ..data.demo import write_demo
from ..engine.errors import StageSkipped
from ..metrics.features import find_weights
from ..stages import STAGES
from ..training import checkpoint
from ..training.runtime import pick_device
from .timing import median_seconds

REPO = Path(__file__).resolve().parents[2]
SCORE_MID = 2000  # pytorch-fid's command at this many vs 300: its start-up, and a FID to check ours


def work_config(cfg: Config, work: Path) -> Config:
    """cfg with data and submissions in `work` (never the user's own folders)."""
    return dataclasses.replace(cfg, paths=PathsConfig(data=str(work / "data"),
                                                      submissions=str(work / "submissions")))


def write_bench_data(cfg: Config, work: Path, n_photos: int, n_monet: int, size: int = 256) -> Config:
    """Demo photos and paintings at the competition's size (or `size`) in `work`; the config that reads
    them."""
    wcfg = work_config(cfg, work)
    write_demo(wcfg.raw_dir, n_monet=n_monet, n_photos=n_photos, size=size, seed=0)
    return wcfg


def bench_generate(cfg: Config, work: Path, n: int, size: int = 256) -> list[dict]:
    """End to end (read photo -> model -> JPEG on disk) for `n` demo photos, and the model alone; for a family
    that makes several passes per image (UNSB), the model alone at each number of passes, with the time of
    the competition's 7,038 photos derived from it."""
    wcfg = write_bench_data(cfg, work, n_photos=n, n_monet=10, size=size)
    torch.manual_seed(0)
    # speed does not depend on weights
    loaded = checkpoint.untrained_generator(wcfg.train, wcfg.model_settings)
    G = loaded.generator
    checkpoint.save(wcfg.checkpoint_path, {**checkpoint.header(wcfg.train, wcfg.model_settings, 0),
                                           "models": {loaded.family.generator_key: G.state_dict()}})
    STAGES["generate"].run(wcfg, force=True)  # warm-up run: allocator, cuDNN autotuning, nvJPEG
    start = time.perf_counter()
    STAGES["generate"].run(wcfg, force=True)
    seconds = time.perf_counter() - start

    device = pick_device(cfg.hardware.device)
    batch = min(cfg.generate.batch_size, n)
    G = G.to(device)
    x = (torch.rand(batch, 3, size, size, device=device) * 2 - 1 if loaded.family.takes_photos
         else torch.randn(batch, loaded.z_dim, device=device))
    amp = device.type == "cuda" and cfg.hardware.amp
    gpu = device.type == "cuda"

    def model_seconds(net: torch.nn.Module) -> float:
        def forward() -> None:
            with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                net(x)

        return median_seconds(forward, device, warmup=2 if gpu else 1, reps=5 if gpu else 2)

    px = "" if size == 256 else f", {size} px"
    model_s = model_seconds(G)
    rows = [{"row": "end to end: read photo, model, JPEG on disk", "n": n, "seconds": seconds,
             "images_per_s": n / seconds},
            {"row": f"model alone (batch {batch}{', bf16' if amp else ''}{px})", "n": n,
             "seconds": model_s * n / batch, "images_per_s": batch / model_s}]
    passes = loaded.family.generate_steps(loaded.settings)
    for k in range(1, passes + 1) if passes > 1 else ():
        k_s = model_seconds(loaded.family.for_generate(G, k, cfg.generate.seed))
        rows.append({"row": f"model alone, {k} of {passes} steps (batch {batch}{px}): 7,038 photos, derived",
                     "n": 7038, "seconds": k_s * 7038 / batch, "images_per_s": batch / k_s})
    return rows


def bench_score_part(cfg: Config, work: Path, data: Path | None, full: bool) -> dict:
    """Our scorer against pytorch-fid's command at 7,000 vs 300 (see score.py) on the photos and paintings
    of `data` (laid out like the competition's), else of cfg's raw data, else of the demo generator.

    The photos stand in for generated images: the time does not depend on what the pictures show."""
    from .score import N_GEN, N_REAL, bench_score, lay_out

    source = data or cfg.raw_dir
    if data is None and not _has_images(source, N_GEN, N_REAL):
        source = write_bench_data(cfg, work / "demo", n_photos=N_GEN, n_monet=N_REAL).raw_dir
    try:
        weights, kind = find_weights(cfg.score.weights), "the real FID weights"
    except StageSkipped:  # offline: timings do not depend on the weights' values, so a stand-in serves
        sys.path.insert(0, str(REPO / "tests"))
        from inception_weights import make_inception_weights

        weights, kind = make_inception_weights(work / "stand-in-inception.pth"), "a random stand-in"
    sets = lay_out(source / "photo_jpg", source / "monet_jpg", work / "sets", n_mid=SCORE_MID)
    result = bench_score(sets, weights, str(pick_device(cfg.hardware.device)), cfg.score.batch_size,
                         work / "runs", full)
    return {**result, "weights_kind": kind, "data": "the demo generator's" if source.is_relative_to(work)
            else str(source)}


def _has_images(folder: Path, n_photos: int, n_monets: int) -> bool:
    def count(sub: str) -> int:
        return len(list((folder / sub).glob("*.jpg"))) if (folder / sub).is_dir() else 0

    return count("photo_jpg") >= n_photos and count("monet_jpg") >= n_monets


def bench_demo(work: Path) -> list[dict]:
    """`make demo`'s stages, each as its own `python -m pipeline` process, in a fresh folder."""
    sets = ["--set", f'paths.data="{work / "demo" / "data"}"', "--set",
            f'paths.submissions="{work / "demo" / "sub"}"']
    rows = []
    for stage in ("download", "augment", "train", "generate", "score", "zip"):
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "pipeline", stage, "--config", "demo", *sets],
                              check=False, capture_output=True, text=True, cwd=REPO)
        seconds = time.perf_counter() - start
        # The stage's summary (`stage: ... [1.2s] -> out`; else its last line naming it, a skip or an error),
        # less its name, its time and the temp folder.
        lines = (done.stdout + "\n" + done.stderr).strip().splitlines() or [""]
        named = [line for line in lines if line.startswith(f"{stage}: ")]
        last = ([line for line in named if re.search(r" \[[0-9.]+s\] -> ", line)] or named or lines)[-1]
        summary = re.sub(r" \[[0-9.]+s\]$", "", last.rsplit(" -> ", 1)[0].removeprefix(f"{stage}: "))
        status = "" if done.returncode in (0, 3) else f"failed ({done.returncode}): "
        rows.append({"stage": stage, "seconds": seconds, "summary": status + summary[:110]})
        if done.returncode not in (0, 3):
            break
    rows.append({"stage": "total", "seconds": sum(r["seconds"] for r in rows), "summary": ""})
    return rows
