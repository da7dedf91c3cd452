"""The stage contract and its cache.

A stage is a function `build(cfg, out) -> summary` named by "module:function". It declares its inputs
(paths made by earlier stages), the slice of settings that affects it, and its output path. Its cache key
is hash(stage name, the meaning of the code it runs (keys.py), its settings slice, the fingerprints of its
inputs); a stamp holding that key is written beside the output only once the output is complete. When
the stamp matches, the stage prints `<stage>: up to date` and returns at once. The machinery knows no
settings type: a stage's settings are whatever its functions read (engine imports nothing of the domain).

Atomic stages build into a temp path that is renamed into place at the end, so an interrupted
stage never leaves a half output that looks done. Resumable stages (train) build in place, keep
their own atomic checkpoints, and still get their stamp written last.
"""
from __future__ import annotations

import contextlib
import ctypes
import fcntl
import importlib
import importlib.util
import json
import os
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from . import atomic
from .errors import UserError
from .fingerprint import fingerprint
from .keys import PACKAGE_ROOT, code_hash, digest


class Settings(Protocol):
    """What the stage machinery needs of a stage's settings: where fingerprints are cached."""

    @property
    def cache_dir(self) -> Path: ...


@dataclass(frozen=True)
class Stage:
    name: str
    help: str
    # "module:function", the module relative to this package (".data.download:build") or absolute;
    # build(cfg, out) -> one-line summary. Imported only when it must run, so that an up-to-date check never
    # pays for importing torch.
    build: str
    output: Callable[[Any], Path]
    inputs: Callable[[Any], list[Path]]
    settings: Callable[[Any], Any]
    atomic: bool = True
    # modules whose code decides the output besides what `build` imports: plug-ins a registry finds by name
    # (the model family's networks and step)
    plugins: Callable[[Any], list[str]] = lambda cfg: []

    @property
    def module(self) -> str:
        """The full name of the module that builds the stage's output."""
        return importlib.util.resolve_name(self.build.partition(":")[0], PACKAGE_ROOT.name)

    def builder(self) -> Callable[[Any, Path], str]:
        return getattr(importlib.import_module(self.module), self.build.partition(":")[2])

    def key(self, cfg: Settings) -> str:
        parts = {
            "stage": self.name,
            "code": self.code_key(cfg),
            "settings": self.settings(cfg),
            "inputs": {str(p): fingerprint(p, cfg.cache_dir) for p in self.inputs(cfg)},
        }
        return digest(parts)

    def code_key(self, cfg: Any) -> str:
        """The part of the key that follows the code: the meaning of `build`'s module and of the plug-ins,
        with every pipeline module they import."""
        return code_hash([self.module, *self.plugins(cfg)])

    def run(self, cfg: Settings, force: bool = False) -> Path:
        out = self.output(cfg)
        start = time.perf_counter()
        for missing in (p for p in self.inputs(cfg) if not p.exists()):
            raise UserError(f"{self.name}: input {missing} is missing; run the earlier stage first "
                            f"(e.g. `make demo` or `python -m pipeline <stage>`)")
        key = self.key(cfg)
        if not force and out.exists() and read_stamp(out).get("key") == key:
            print(f"{self.name}: up to date ({out})")
            return out
        main = is_main_process()
        with output_lock(out, self.name) if main else contextlib.nullcontext():
            if main:
                atomic.remove_stale_temps(out.parent, out.name)
            summary = self._build(cfg, out, key, start, force, main)
        if not main:
            return out
        print(f"{self.name}: {summary} [{time.perf_counter() - start:.1f}s] -> {out}")
        return out

    def _build(self, cfg: Settings, out: Path, key: str, start: float, force: bool, main: bool) -> str:
        stamp = stamp_path(out)
        if self.atomic:
            with atomic.atomic_path(out) as tmp:
                summary = self.builder()(cfg, tmp)
                if tmp.is_dir():  # the stamp travels inside the folder, renamed with it
                    _write_stamp(stamp_path(tmp), key, summary, start)
            if out.is_file():
                _write_stamp(stamp, key, summary, start)
        else:
            if main:
                stamp.unlink(missing_ok=True)
                if force:  # a resumable stage goes on from what its folder holds: --force starts it over
                    shutil.rmtree(out, ignore_errors=True)
                out.mkdir(parents=True, exist_ok=True)
            summary = self.builder()(cfg, out)
            if main:
                _write_stamp(stamp, key, summary, start)
        return summary


@contextlib.contextmanager
def output_lock(out: Path, stage: str) -> Iterator[None]:
    """Hold an exclusive lock on `out` while a stage writes it: a second run on the same output (two
    `make train` on one run folder) refuses instead of corrupting it. The OS drops the lock when its holder
    dies, even by kill -9, so a stale lock file never blocks a later run."""
    out.parent.mkdir(parents=True, exist_ok=True)
    path = out.parent / f".{out.name}.lock"
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            raise UserError(f"{stage}: {out} is being written by {holder}; wait for it to finish, or write "
                            "elsewhere (e.g. another train.run)") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}")
        fh.flush()
        _HELD.fds.add(fh.fileno())
        _HELD.owner = os.getpid()
        try:
            yield
        finally:
            _HELD.fds.discard(fh.fileno())
            fh.truncate(0)
            fcntl.flock(fh, fcntl.LOCK_UN)


@dataclass
class HeldLocks:
    """The output locks this process holds, as a process forked from it must see them."""

    fds: set[int] = field(default_factory=set)  # their file descriptors
    owner: int = 0  # the pid of the process that took them (the parent, seen from a forked child)


_HELD = HeldLocks()
PR_SET_PDEATHSIG = 1  # linux/prctl.h
try:  # looked up here, not in the forked child: loading libraries after a fork can deadlock
    _prctl: Callable[..., int] | None = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux
    _prctl = None


def _stage_worker_forked() -> None:
    """A process forked while a stage holds its output lock is one of the stage's workers (augment's and the
    demo set's process pools): it must not outlive the stage. Without this, a kill -9 of the stage
    (`kill -9 PID`, the OOM killer) leaves its workers running on: they keep writing into the dead run's temp
    folder and, since a flock belongs to the open file that fork shares, keep the output locked, so every
    re-run refuses it. So: close the inherited lock files (closing never unlocks the parent's), and on Linux
    ask to be killed when the parent dies (strictly: the thread that forked it; the stages make their pools
    on their own thread)."""
    if not _HELD.fds:
        return
    for fd in _HELD.fds:
        with contextlib.suppress(OSError):
            os.close(fd)
    _HELD.fds.clear()
    if _prctl is not None:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != _HELD.owner:  # the parent died before prctl took effect
            os._exit(1)


os.register_at_fork(after_in_child=_stage_worker_forked)


def is_main_process() -> bool:
    """Under `torchrun` every process runs the stage; only rank 0 touches its output folder and stamp."""
    return os.environ.get("RANK", "0") == "0"


def stamp_path(out: Path) -> Path:
    """The stamp of a folder lives inside it; the stamp of a file lives beside it as a dotfile."""
    if out.suffix and not out.is_dir():
        return out.with_name(f".{out.name}.stage.json")
    return out / ".stage.json"


def read_stamp(out: Path) -> dict[str, Any]:
    try:
        return json.loads(stamp_path(out).read_text())
    except (OSError, ValueError):
        return {}


def _write_stamp(path: Path, key: str, summary: str, start: float) -> None:
    atomic.write_json(path, {"key": key, "summary": summary, "seconds": round(time.perf_counter() - start, 2),
                             "finished": time.strftime("%Y-%m-%dT%H:%M:%S")})
