"""Training checkpoints: atomic writes, a pruned history, and falling back past a damaged file.

A run folder holds `ckpt_<step>.pt` (the last `keep_last`), `last.pt` (a hard link to the newest, so
it costs no second write) and optionally `best.pt`. Every file is written to a temp path and renamed,
so a kill -9 leaves either the old file or the new one; a file damaged some other way (a full disk,
a copy cut short) is reported by path and the one before it is used.
"""
from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from . import atomic

FORMAT = 1
_HISTORY = re.compile(r"ckpt_(\d+)\.pt")


def save(path: Path, payload: dict[str, Any]) -> None:
    """Write a checkpoint atomically. Through a Python file, not a path: torch's own writer turns a full disk
    into an opaque RuntimeError ("unexpected pos"), a Python file raises OSError(ENOSPC) that the CLI reports."""
    with atomic.atomic_path(path) as tmp, open(tmp, "wb") as fh:
        torch.save(payload, fh)


def read(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The checkpoint's contents; ValueError with the reason when the file is damaged or not ours.

    weights_only: a checkpoint holds tensors, numbers and strings only, so loading one never runs code.
    """
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a cut-short zip, a pickle error, a missing file: all "unusable"
        first = str(exc).split(". ")[0].splitlines()[0][:100] if str(exc) else ""
        raise ValueError(f"{type(exc).__name__}: {first}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT or "models" not in payload:
        raise ValueError("not a checkpoint written by this pipeline")
    return payload


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
