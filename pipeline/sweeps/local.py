"""sweep.backend=local: the variants as ordinary runs on this machine, one per visible GPU at a time
(CUDA_VISIBLE_DEVICES), or one after another on a CPU.

Each variant is a process of its own (variant.py) with its own run folder (data/runs/sweep-<sweep>-<variant>)
and its own submissions folder (submissions/sweeps/<sweep>/<variant>: the subset's images, score.json, its
log), so its stages are cached like any run's. The data is shared, unless a variant changes how it is
downloaded or augmented. Interrupted and run again, the sweep waits for a variant whose process still runs,
and starts again one whose process is gone: its stages are up to date or resume, nothing is trained twice.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from ..config import Config, to_toml
from ..engine import atomic
from . import results
from .spec import Sweep, Variant
from .state import DONE, FAILED, RUNNING, SweepState, VariantState, run_name
from .variant import DONE as DONE_FILE

POLL_S = 2.0


def settings(cfg: Config, sweep: Sweep, variant: Variant, extra: tuple[str, ...], root: Path) -> Config:
    """The variant's settings as it runs here: this machine's data and download source, its own run name and
    submissions folder, a scoring subset of sweep.score_images."""
    own_data = any(c.startswith(("download.", "augment.")) for c in variant.changed)
    data = Path(cfg.paths.data) / "sweeps" / sweep.name / variant.slug if own_data else Path(cfg.paths.data)
    return sweep.settings(variant, (*extra, f'paths.data="{data}"',
                                    f'paths.submissions="{root / variant.slug}"',
                                    f'download.source="{cfg.download.source}"',
                                    f"train.run={run_name(sweep.name, variant.slug)}",
                                    f"generate.subset={cfg.sweep.score_images}"))


def run(cfg: Config, sweep: Sweep, state: SweepState, extra: tuple[str, ...]) -> None:
    """Run every variant not ended yet; return when all have ended."""
    root = state.path.parent
    slots: list[str | None] = [str(i) for i in range(_gpu_count())] or [None]  # None: the CPU
    running: dict[str, tuple[subprocess.Popen | None, str | None]] = {}
    for v in state.variants.values():  # still running from an earlier call of the sweep: wait for it
        if v.state == RUNNING and _alive(v.pid):
            running[v.name] = (None, slots.pop(0) if slots else None)
            print(f"sweep: {v.name} still runs (pid {v.pid}) from an earlier call: waiting for it")
    queue = [v for v in sweep.variants if not state.variants[v.name].ended and v.name not in running]
    while queue or running:
        while queue and slots:
            variant, gpu = queue.pop(0), slots.pop(0)
            running[variant.name] = (_start(cfg, sweep, variant, extra, root, gpu, state), gpu)
        time.sleep(POLL_S)
        for name, (proc, gpu) in list(running.items()):
            v = state.variants[name]
            if (proc.poll() is None) if proc is not None else _alive(v.pid):
                continue
            del running[name]
            slots.append(gpu)
            variant = sweep.variant(name)
            _finish(v, root / variant.slug, settings(cfg, sweep, variant, extra, root))
            state.save()
            print(f"sweep: {name}: {v.state}" + (f" ({v.error})" if v.error else ""))


def _start(cfg: Config, sweep: Sweep, variant: Variant, extra: tuple[str, ...], root: Path, gpu: str | None,
           state: SweepState) -> subprocess.Popen:
    folder = root / variant.slug
    folder.mkdir(parents=True, exist_ok=True)
    (folder / DONE_FILE).unlink(missing_ok=True)
    atomic.write_text(folder / "settings.toml", to_toml(settings(cfg, sweep, variant, extra, root)))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpu
    with open(folder / "log.txt", "w") as log:
        command = [sys.executable, "-m", "pipeline.sweeps.variant", str(folder / "settings.toml")]
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    v = state.variants[variant.name]
    v.state, v.pid, v.error = RUNNING, proc.pid, ""
    state.save()
    where = f"GPU {gpu}" if gpu is not None else "the CPU"
    print(f"sweep: {variant.name}: running on {where} (log: {folder / 'log.txt'})", flush=True)
    return proc


def _finish(v: VariantState, folder: Path, cfg: Config) -> None:
    """What the variant's process left: done (with its run and scores) or failed (its log's last line)."""
    v.pid = 0
    if not (folder / DONE_FILE).is_file():
        v.state, v.error = FAILED, results.last_line(folder / "log.txt") or "stopped before its end"
        return
    v.state = DONE
    results.read(v, cfg.run_dir, cfg.submissions_dir / "score.json")


def _alive(pid: int) -> bool:
    """Whether `pid` is a sweep variant's process that still runs."""
    try:
        return pid > 0 and "pipeline.sweeps.variant" in Path(f"/proc/{pid}/cmdline").read_text()
    except OSError:
        return False


def _gpu_count() -> int:
    import torch

    return torch.cuda.device_count()
