"""sweep.backend=local: the variants as ordinary runs on this machine, one per visible GPU at a time
(CUDA_VISIBLE_DEVICES), or one after another on a CPU.

Each variant is a process of its own (variant.py) with its own run folder (data/runs/sweep-<sweep>-<variant>)
and its own submissions folder (submissions/sweeps/<sweep>/<variant>: the subset's images, score.json, its
log), so its stages are cached like any run's. The data is shared, unless a variant changes how it is
downloaded or augmented. Interrupted and run again, the sweep waits for a variant whose process still runs,
and starts again one whose process is gone: its stages are up to date or resume, nothing is trained twice.
Each variant's GPU is recorded in state.json, so one still running keeps its GPU to itself (one whose GPU is
not known keeps them all until it ends): no two variants ever share a GPU.
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
from .state import SweepState, VariantState, VariantStatus, run_name
from .variant import DONE as DONE_FILE

POLL_S = 2.0
CPU = "cpu"  # the one slot of a machine without GPUs

VARIANT_MODULE = f"{__package__}.variant"  # what each variant's process runs (python -m)


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
    slots = Slots(gpu_count())
    running: dict[str, subprocess.Popen | None] = {}  # None: started by an earlier call, followed by its pid
    for v in state.variants.values():  # still running from an earlier call of the sweep: wait for it
        if v.state == VariantStatus.RUNNING and alive(v.pid):
            running[v.name] = None
            where = _where(v.gpu) if slots.claim(v.name, v.gpu) else \
                "a device not known here (nothing starts until it ends)"
            print(f"sweep: {v.name} still runs (pid {v.pid}) on {where} from an earlier call: waiting for it")
    queue = [v for v in sweep.variants if not state.variants[v.name].ended and v.name not in running]
    while queue or running:
        while queue and (slot := slots.take(queue[0].name)) is not None:
            variant = queue.pop(0)
            running[variant.name] = _start(cfg, sweep, variant, extra, root, slot, state)
        time.sleep(POLL_S)
        for name, proc in list(running.items()):
            v = state.variants[name]
            if (proc.poll() is None) if proc is not None else alive(v.pid):
                continue
            del running[name]
            slots.give_back(name)
            variant = sweep.variant(name)
            _finish(v, root / variant.slug, settings(cfg, sweep, variant, extra, root))
            state.save()
            print(f"sweep: {name}: {v.state}" + (f" ({v.error})" if v.error else ""))


class Slots:
    """Where variants run: each of this machine's GPUs lent to one variant at a time, or on a machine without
    GPUs its CPU, to one variant at a time. The slots are fixed when the sweep starts and one comes back only
    from the variant it was lent to, so the pool never gains one it did not have and no two variants share
    one."""

    def __init__(self, gpus: int) -> None:
        self.slots = tuple(str(i) for i in range(gpus)) or (CPU,)
        self.lent: dict[str, str] = {}  # slot -> the variant running there
        self.unplaced: set[str] = set()  # running on a slot not known here: every slot is theirs meanwhile

    def claim(self, name: str, slot: str) -> bool:
        """Lend `slot` to `name`, a variant an earlier call started there and that still runs. False where the
        slot is not known (not recorded, not one of this machine's, or lent already): the variant then holds
        every slot until it ends, since any one of them could be the one it uses."""
        if slot in self.slots and slot not in self.lent:
            self.lent[slot] = name
            return True
        self.unplaced.add(name)
        return False

    def free(self) -> bool:
        """A slot is free now."""
        return not self.unplaced and any(s not in self.lent for s in self.slots)

    def take(self, name: str) -> str | None:
        """A free slot, lent to `name`; None while there is none."""
        free = [s for s in self.slots if s not in self.lent]
        if self.unplaced or not free:
            return None
        self.lent[free[0]] = name
        return free[0]

    def give_back(self, name: str) -> None:
        """`name` has ended: its slot is free again."""
        self.unplaced.discard(name)
        self.lent = {s: n for s, n in self.lent.items() if n != name}


def _start(cfg: Config, sweep: Sweep, variant: Variant, extra: tuple[str, ...], root: Path, slot: str,
           state: SweepState) -> subprocess.Popen:
    folder = root / variant.slug
    folder.mkdir(parents=True, exist_ok=True)
    (folder / DONE_FILE).unlink(missing_ok=True)
    atomic.write_text(folder / "settings.toml", to_toml(settings(cfg, sweep, variant, extra, root)))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if slot != CPU:
        env["CUDA_VISIBLE_DEVICES"] = slot
    with open(folder / "log.txt", "w") as log:
        command = [sys.executable, "-m", VARIANT_MODULE, str(folder / "settings.toml")]
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    v = state.variants[variant.name]
    v.state, v.pid, v.gpu, v.error = VariantStatus.RUNNING, proc.pid, slot, ""
    state.save()
    print(f"sweep: {variant.name}: running on {_where(slot)} (log: {folder / 'log.txt'})", flush=True)
    return proc


def _where(slot: str) -> str:
    return "the CPU" if slot == CPU else f"GPU {slot}"


def _finish(v: VariantState, folder: Path, cfg: Config) -> None:
    """What the variant's process left: done (with its run and scores) or failed (its log's last line)."""
    v.pid = 0
    if not (folder / DONE_FILE).is_file():
        v.state = VariantStatus.FAILED
        v.error = results.last_line(folder / "log.txt") or "stopped before its end"
        return
    v.state = VariantStatus.DONE
    results.read(v, cfg.run_dir, cfg.submissions_dir / "score.json")


def alive(pid: int) -> bool:
    """Whether `pid` is a sweep variant's process that still runs."""
    try:
        return pid > 0 and VARIANT_MODULE in Path(f"/proc/{pid}/cmdline").read_text()
    except OSError:
        return False


def gpu_count() -> int:
    import torch

    return torch.cuda.device_count()
