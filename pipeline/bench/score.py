"""Scoring at the competition's size, 7,000 generated vs 300 real, as a user runs it: our command against
pytorch-fid's, each a fresh process, on the same files and the same weights file.

`python -m pipeline score --images GEN --real REAL` against `python -m pytorch_fid GEN REAL --dims 2048`.
pytorch-fid takes no weights path, so its command gets ours through a private torch hub folder
(TORCH_HOME) holding the file under its official name, where it looks before downloading.

Our command is measured at the full size: cold (an empty cache), then re-scoring the same folder and
after changing 10 of its images. pytorch-fid's full size takes longer than a CPU bench should, so unless
`full` is set its time is derived from its run at n_mid vs 300 as start-up + images / rate: the rate is
that of its feature loop (from its own progress bars, start-up excluded), the start-up the rest of the run
(imports, weights, its 2048 x 2048 sqrtm). Warm means what each tool caches: pytorch-fid the real set's
statistics (`--save-stats`), ours every image's features; ours with only the real set cached is the cold
run less the time its progress line gives for the real images. `python -m pipeline bench --only score
--data DIR` runs it on a folder of the competition's images.
"""
from __future__ import annotations

import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..engine.errors import UserError
from ..images import encode_jpeg, list_images, read_rgb
from ..metrics.features import WEIGHTS_FILE
from ..metrics.mifid import frechet_distance

N_GEN, N_REAL = 7000, 300  # the competition: 7,000-10,000 generated images, 300 Monets
N_CHANGED = 10
CORES = os.cpu_count() or 1


@dataclass(frozen=True)
class Sets:
    """The folders the commands read: `gen` (N_GEN), `mid` (its first n_mid), `real` (N_REAL) and
    `changed` (N_CHANGED new images to put over some of gen's)."""

    gen: Path
    mid: Path
    real: Path
    changed: Path


@dataclass(frozen=True)
class Fit:
    """A command's seconds = start-up + images / rate."""

    startup_s: float
    rate: float  # images per second

    def seconds(self, n: int) -> float:
        return self.startup_s + n / self.rate

    def how(self, n: int, basis: str) -> str:
        return f"derived: {self.startup_s:.1f} s start-up + {n:,} / {self.rate:.2f} img/s ({basis})"


def lay_out(photos: Path, monets: Path, work: Path, n_mid: int) -> Sets:
    """Copies of the photos and paintings in `work`, split into the sets the commands read."""
    photo_files, monet_files = list_images(photos), list_images(monets)
    if len(photo_files) < N_GEN or len(monet_files) < N_REAL:
        raise UserError(f"{photos.parent}: the score bench needs {N_GEN:,} photos and {N_REAL} paintings; "
                         f"it has {len(photo_files):,} and {len(monet_files)}")
    sets = Sets(*(work / name for name in ("gen", "mid", "real", "changed")))
    for folder, files in ((sets.gen, photo_files[:N_GEN]), (sets.mid, photo_files[:n_mid]),
                          (sets.real, monet_files[:N_REAL])):
        folder.mkdir(parents=True)
        for f in files:
            shutil.copyfile(f, folder / f.name)
    sets.changed.mkdir()
    for f in photo_files[:N_CHANGED]:  # mirrored: new bytes, an image of the same kind
        (sets.changed / f.name).write_bytes(encode_jpeg(read_rgb(f)[:, ::-1].copy()))
    return sets


def bench_score(sets: Sets, weights: Path, device: str, batch_size: int, work: Path,
                full: bool = False) -> dict[str, Any]:
    """Both tools' rows (cold, warm, re-scores) and the FID checks; see the module docstring."""
    ours, theirs = Ours(weights, device, batch_size, work), PytorchFid(weights, device, batch_size, work)
    cold = ours.run(sets.gen, sets.real)
    cached = ours.run(sets.gen, sets.real)
    for f in sets.changed.iterdir():
        shutil.copyfile(f, sets.gen / f.name)
    changed = ours.run(sets.gen, sets.real)
    ours_mid = ours.run(sets.mid, sets.real)  # every feature cached by now: only its FID is used
    n_mid = len(list_images(sets.mid))
    t_mid = theirs.run(sets.mid, sets.real)

    real_s = our_extraction_seconds(cold.log, "real features")
    extraction_s = tqdm_seconds(t_mid.log)
    tfit = Fit(t_mid.seconds - extraction_s, (n_mid + N_REAL) / extraction_s)
    if full:
        real_stats = theirs.save_stats(sets.real, "real")
        t_cold, t_warm = theirs.run(sets.gen, sets.real), theirs.run(sets.gen, real_stats)
        theirs_cold, theirs_warm = t_cold.measured(), t_warm.measured()
    else:
        basis = (f"its {n_mid:,} vs {N_REAL} run: {t_mid.seconds:.0f} s, {extraction_s:.0f} s of them in "
                 f"its feature loop; {t_mid.cores()}")
        theirs_cold = (tfit.seconds(N_GEN + N_REAL), tfit.how(N_GEN + N_REAL, basis))
        theirs_warm = (tfit.seconds(N_GEN), tfit.how(N_GEN, basis))
    size = f"{N_GEN:,} vs {N_REAL}"
    rows = [
        _row("cold: nothing cached", size, cold.measured(), theirs_cold),
        _row("warm: real set cached (ours: its features; pytorch-fid: --save-stats)", size,
             (cold.seconds - real_s, f"derived: the cold run less its {N_REAL} real images' {real_s:.1f} s"),
             theirs_warm),
        _row(f"re-score after {N_CHANGED} images changed", size, changed.measured(), theirs_warm),
        _row("re-score, nothing changed", size, cached.measured(), theirs_warm),
    ]
    checks = [_fid_check(f"{n_mid:,} vs {N_REAL}", ours_mid, t_mid)]
    if full:  # where its sqrtm refused, against its own statistics; against `changed`, our score of the
        # files it read (10 of `cold`'s were replaced since)
        full_fid = theirs.from_stats(sets.gen, real_stats, t_cold.note) if t_cold.note else t_cold
        checks.insert(0, _fid_check(size, changed, full_fid))
    return {"rows": rows, "fid_checks": checks, "n_gen": N_GEN, "n_real": N_REAL, "n_mid": n_mid,
            "pytorch_fid_fit": vars(tfit), "full": full}


def tqdm_seconds(log: str) -> float:
    """Seconds in the loops of tqdm bars, summed over the bars: each bar from its start (`| 0/N [`) to its
    last finished state (`N/N [MM:SS<` or `[H:MM:SS<`), however its redraws were split into lines."""
    state = re.compile(r"(\d+)/(\1) \[(?:(\d+):)?(\d+):(\d+)<")
    finished = [found[-1] for bar in re.split(r"\| 0/\d+ \[", log)[1:] if (found := state.findall(bar))]
    if not finished:
        raise RuntimeError(f"no finished progress bar in pytorch-fid's output: {log[-300:]}")
    return float(sum(int(h or 0) * 3600 + int(m) * 60 + int(s) for _, _, h, m, s in finished))


def our_extraction_seconds(log: str, desc: str) -> float:
    """Seconds of one of our progress bars, from its summary line `desc: img N/N (100%) in ..., R img/s`."""
    found = re.search(rf"^{desc}: img ([\d,]+)/[\d,]+ \(100%\) in \S+, ([\d,.]+) img/s", log, re.M)
    if not found:
        raise RuntimeError(f"no '{desc}' summary line in our command's output: {log[-300:]}")
    n, rate = (float(g.replace(",", "")) for g in found.groups())
    return n / rate


def _row(case: str, size: str, ours: tuple[float, str], theirs: tuple[float, str]) -> dict[str, Any]:
    return {"case": case, "size": size, "ours_s": ours[0], "ours_how": ours[1], "pytorch_fid_s": theirs[0],
            "pytorch_fid_how": theirs[1], "ratio": theirs[0] / ours[0]}


def _fid_check(size: str, ours: Run, theirs: Run) -> dict[str, Any]:
    return {"size": size, "fid": ours.fid, "pytorch_fid_fid": theirs.fid,
            "fid_rel_diff": abs(ours.fid - theirs.fid) / abs(theirs.fid), "distance": ours.distance,
            "mifid": ours.mifid, "note": theirs.note}


@dataclass(frozen=True)
class Timed:
    """A finished command: its wall time, the CPU time of it and its worker processes, its output."""

    seconds: float
    cpu_s: float
    done: subprocess.CompletedProcess


@dataclass(frozen=True)
class Run:
    """One scoring command: its times, its stderr and what it found."""

    seconds: float
    cpu_s: float
    log: str
    fid: float
    distance: float = float("nan")
    mifid: float = float("nan")
    note: str = ""

    def cores(self) -> str:
        """How much of the machine the command had (other processes' work lowers it, and slows the run)."""
        return f"it kept {self.cpu_s / self.seconds / CORES:.0%} of the {CORES} cores busy"

    def measured(self) -> tuple[float, str]:
        return self.seconds, f"measured; {self.cores()}"


def _timed(cmd: list[str], env: dict[str, str] | None = None) -> Timed:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return Timed(seconds, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, done)


def _failed(done: subprocess.CompletedProcess) -> RuntimeError:
    command = " ".join(done.args[:4])
    return RuntimeError(f"{command} ...: exit {done.returncode}: {done.stderr.strip()[-500:]}")


class Ours:
    """`python -m pipeline score`, every run with the same data folder and so the same feature cache."""

    def __init__(self, weights: Path, device: str, batch_size: int, work: Path) -> None:
        home = work / "ours"
        self.sets = [f"score.weights={weights}", f"hardware.device={device}",
                     f"score.batch_size={batch_size}", "score.limit=0",
                     f'paths.data="{home / "data"}"', f'paths.submissions="{home / "submissions"}"']
        self.out = home / "score.json"

    def run(self, images: Path, real: Path) -> Run:
        timed = _timed([sys.executable, "-m", "pipeline", "score", "--config", "default",
                        *[a for s in self.sets for a in ("--set", s)],
                        "--images", str(images), "--real", str(real), "--out", str(self.out)])
        if timed.done.returncode:
            raise _failed(timed.done)
        result = json.loads(self.out.read_text())
        return Run(timed.seconds, timed.cpu_s, timed.done.stderr, result["fid"], result["distance"],
                   result["mifid"])


class PytorchFid:
    """`python -m pytorch_fid` with our weights file where its torch hub cache would hold the real one."""

    def __init__(self, weights: Path, device: str, batch_size: int, work: Path) -> None:
        hub = work / "torch" / "hub" / "checkpoints"
        hub.mkdir(parents=True)
        (hub / WEIGHTS_FILE).symlink_to(Path(weights).resolve())
        self.env = {**os.environ, "TORCH_HOME": str(work / "torch")}
        self.args = ["--dims", "2048", "--device", device, "--batch-size", str(batch_size)]
        self.work = work

    def save_stats(self, images: Path, name: str) -> Path:
        """Its `--save-stats` of a set: the mean and covariance of its features, as an .npz."""
        out = self.work / f"{name}-stats.npz"
        command = [sys.executable, "-m", "pytorch_fid", "--save-stats", str(images), str(out), *self.args]
        done = _timed(command, self.env).done
        if done.returncode:
            raise _failed(done)
        return out

    def from_stats(self, gen: Path, real_stats: Path, refusal: str) -> Run:
        """The FID of its own statistics of both sets by our Fréchet formula (frechet_distance, checked
        against its calculate_frechet_distance by the tests): what its features say where its scipy sqrtm
        refused their product (`refusal`). No time: only the FID is used."""
        gen_stats = self.save_stats(gen, "gen")
        with np.load(gen_stats) as g, np.load(real_stats) as r:
            fid = frechet_distance(g["mu"], g["sigma"], r["mu"], r["sigma"])
        return Run(float("nan"), float("nan"), "", fid,
                   note=f"{refusal}; its --save-stats of both sets, the distance by our formula")

    def run(self, images: Path, real: Path) -> Run:
        """Its time and FID; a FID its own sqrtm refuses (a complex root: it happens with the random
        stand-in's features) is NaN with the reason, the time still its whole run's."""
        timed = _timed([sys.executable, "-m", "pytorch_fid", str(images), str(real), *self.args], self.env)
        out, err = timed.done.stdout, timed.done.stderr
        if match := re.search(r"FID:\s+([-+0-9.eE]+)", out):
            return Run(timed.seconds, timed.cpu_s, err, float(match.group(1)))
        if refusal := re.search(r"ValueError: (Imaginary component.*)", err):
            return Run(timed.seconds, timed.cpu_s, err, float("nan"),
                       note=f"pytorch-fid stopped: {refusal.group(1)}")
        raise _failed(timed.done)

