"""Training checkpoints: atomic writes, a pruned history, and falling back past a damaged file.

A run folder holds `ckpt_<step>.pt` (the last `keep_last`), `last.pt` (a hard link to the newest, so
it costs no second write) and optionally `best.pt`. Every file is written to a temp path and renamed,
so a kill -9 leaves either the old file or the new one; a file damaged some other way (a full disk,
a copy cut short) is reported by path and the one before it is used.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..config import TrainConfig, legacy
from ..engine import atomic
from ..engine.errors import UserError
from .family import Family, get_family

FORMAT = 1
_HISTORY = re.compile(r"ckpt_(\d+)\.pt")


def save(path: Path, payload: dict[str, Any]) -> None:
    """Write a checkpoint atomically. Through a Python file, not a path: torch's own writer turns a full disk
    into an opaque RuntimeError ("unexpected pos"), a Python file raises OSError(ENOSPC) that the CLI
    reports."""
    with atomic.atomic_path(path) as tmp, open(tmp, "wb") as fh:
        torch.save(payload, fh)


def read(path: Path, map_location: str | torch.device = "cpu", mmap: bool = False) -> dict[str, Any]:
    """The checkpoint's contents in today's layout (an older one's read through config/legacy.py); ValueError
    with the reason when the file is damaged or not ours.

    weights_only: a checkpoint holds tensors, numbers and strings only, so loading one never runs code. mmap:
    the tensors are read only when used (a look at a large checkpoint's header costs nothing).
    """
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except Exception as exc:  # a cut-short zip, a pickle error, a missing file: all "unusable"
        first = str(exc).split(". ")[0].splitlines()[0][:100] if str(exc) else ""
        raise ValueError(f"{type(exc).__name__}: {first}") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT or "models" not in payload:
        raise ValueError("not a checkpoint written by this pipeline")
    return legacy.upgrade_checkpoint(payload)


def history(run_dir: Path) -> list[Path]:
    """The kept `ckpt_<step>.pt` files, newest first."""
    found = [(int(m.group(1)), p) for p in run_dir.glob("ckpt_*.pt") if (m := _HISTORY.fullmatch(p.name))]
    return [p for _, p in sorted(found, reverse=True)]


def write(run_dir: Path, payload: dict[str, Any], keep_last: int) -> Path:
    """Write the step's checkpoint, point last.pt at it, and prune the history to `keep_last` files."""
    last = run_dir / "last.pt"
    if keep_last == 0:
        save(last, payload)
    else:
        save(run_dir / f"ckpt_{payload['step']:06d}.pt", payload)
        _link(run_dir / f"ckpt_{payload['step']:06d}.pt", last)
    for old in history(run_dir)[keep_last:]:
        old.unlink(missing_ok=True)
    return last


def _link(source: Path, target: Path) -> None:
    """Atomically make `target` the same file as `source` (a copy where hard links are not allowed)."""
    with atomic.atomic_path(target) as tmp:
        try:
            os.link(source, tmp)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()
            tmp.write_bytes(source.read_bytes())


def load_newest(run_dir: Path, map_location: str | torch.device = "cpu",
                report: Callable[[str], None] = print) -> tuple[Path, dict[str, Any]] | None:
    """The newest readable checkpoint of a run with full training state, or None when there is none."""
    # Newest written first: last.pt shares its time with the file it links, and outlives a pruned history.
    candidates = sorted((p for p in history(run_dir) + [run_dir / "last.pt"] if p.exists()),
                        key=lambda p: p.stat().st_mtime_ns, reverse=True)
    for path in candidates:
        try:
            payload = read(path, map_location)
        except ValueError as exc:
            report(f"checkpoint {path} is damaged ({exc}); trying the previous one")
            continue
        if "training" in payload:
            return path, payload
    return None


# -- what a checkpoint says about its run, and loading a trained generator ----------------------------------

def header(train: TrainConfig, settings: Any, step: int) -> dict[str, Any]:
    """The part of every checkpoint that says how it was made: enough to rebuild its networks.

    "train" holds the [train] section, "family" the family's own ([cyclegan], ...).
    """
    family = get_family(train.model)
    return {"format": FORMAT, "kind": train.model, "step": step, "train": dataclasses.asdict(train),
            "family": dataclasses.asdict(settings), "architecture": family.architecture(train, settings)}


def train_settings(payload: dict[str, Any]) -> tuple[TrainConfig, Any]:
    """The [train] section and the family's section a checkpoint (as `read` returns it) was made with."""
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    train = TrainConfig(**{k: v for k, v in payload["train"].items() if k in known})
    return train, get_family(train.model).settings_from(payload["family"])


@dataclass(frozen=True)
class LoadedGenerator:
    """What generate needs from a run: the generator, ready for inference, and how it was trained."""

    kind: str  # the family's name (train.model)
    family: Family  # what it maps from (family.takes_photos: photos -> Monet, else noise -> Monet)
    generator: nn.Module  # the family's generator_key network; eval mode, on the device
    z_dim: int  # a noise family's noise length (feed torch.randn(n, z_dim)); 0 for a photo family
    train: TrainConfig  # the settings the checkpoint was trained with
    settings: Any  # and its family's section
    step: int  # training steps behind these weights
    ema: bool = False  # the weights are the generator's average (train.ema), not its last step's


def untrained_generator(train: TrainConfig, settings: Any,
                        device: str | torch.device = "cpu") -> LoadedGenerator:
    """A generator of these settings with fresh weights (the notebook's clock times one before training)."""
    family = get_family(train.model)
    generator = family.build_generator(train, settings).to(device).eval()
    return LoadedGenerator(kind=train.model, family=family, generator=generator,
                           z_dim=family.noise_dim(settings), train=train, settings=settings, step=0)


def load_generator(path: Path, device: str | torch.device = "cpu", use_ema: bool = True) -> LoadedGenerator:
    """Rebuild the generator saved in a checkpoint (last.pt, best.pt or ckpt_<step>.pt) of any run: its
    averaged weights when the checkpoint has them and `use_ema`, else its last step's.

    The networks are rebuilt from the settings stored in the checkpoint, not from the current
    settings, so generate works whatever the preset says. A missing, truncated or foreign file is a
    UserError naming the path.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: checkpoint not found; run `python -m pipeline train` first (same "
                        "--config/--set)")
    try:
        payload = read(path, map_location="cpu")
    except ValueError as exc:
        raise UserError(f"{path}: unreadable checkpoint ({exc}); re-run train, or pick another with "
                        "generate.checkpoint=PATH") from None
    train, settings = train_settings(payload)
    loaded = untrained_generator(train, settings)
    key = loaded.family.generator_key
    ema = use_ema and key in (payload.get("ema") or {})
    loaded.generator.load_state_dict(payload["ema"][key] if ema else payload["models"][key])
    loaded.generator.to(device)
    return dataclasses.replace(loaded, step=int(payload["step"]), ema=ema)
