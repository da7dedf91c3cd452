"""backend local: each trial session a process of this machine (session.py: download, augment, train, then
render and score a subset), one per visible GPU at a time (CUDA_VISIBLE_DEVICES), or one at a time on a CPU.

A trial is a run of its own, data/runs/<search|sweep>-<name>-<label> (a search's labels are `<token>-t<n>`,
the token drawn with its journal, so a search started afresh under an old name trains anew; a sweep's are its
variants' slugs, so a variant whose settings did not change finds its stages cached). A search's session k
trains it again with train.time_budget_min the rung's minutes (train.sessions = search.sessions: the run is
planned for every session it could get, each session training its share and resuming the last); a sweep's
one session trains as its settings say. Then it scores a fixed subset into
submissions/<search|sweeps>/<name>/<label>/s<k>/score.json. The data is shared, unless a trial changes how it
is downloaded or augmented.

A session's folder holds its settings, log, started.json (its trial, pid and GPU) and, once it finished,
done.json, so a
command killed at any moment and run again waits for a session whose process still runs (on the GPU it has:
one whose GPU is not known holds them all until it ends), reports one that finished unreported, and starts
again one whose process is gone (its stages resume). No two sessions ever share a GPU. Several commands (on
this machine or others sharing the journal's folder) run different trials: the scheduler hands each session
to one of them (scheduler.py).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Config, load_config, to_toml
from ..engine import atomic
from ..jobs.push import QuotaExhausted
from . import results
from .scheduler import Scheduler, Session
from .session import DONE
from .spec import Search

POLL_S = 2.0
CPU = "cpu"  # the one slot of a machine without GPUs
SESSION_MODULE = f"{__package__}.session"  # what each session's process runs (python -m)
STARTED = "started.json"  # in a session's folder: the trial, pid and GPU of the process that runs it


def run_prefix(kind: str, name: str) -> str:
    """What the run folders of the trials of the search (or sweep: `kind`) `name` begin with."""
    return f"{kind}-{name}-"


def run_name(search: Search, scheduler: Scheduler, session: Session) -> str:
    """The run folder of a trial (data/runs/<this>)."""
    label = search.label(session.trial, session.params)
    token = f"{scheduler.study.user_attrs['token']}-" if search.sweep is None else ""
    return f"{run_prefix(search.kind, search.name)}{token}{label}"


def settings(cfg: Config, search: Search, scheduler: Scheduler, session: Session, folder: Path,
             extra: tuple[str, ...]) -> Config:
    """A trial session's settings as it runs here: this machine's data (the trial's own where it changes how
    the data is made) and download source, its own run and submissions folder, a search's rung minutes and a
    scoring subset of sweep.score_images."""
    items = search.items(session.params)
    data = Path(cfg.paths.data)
    if any(i.startswith(("download.", "augment.")) for i in items):
        data = data / search.home / search.name / search.label(session.trial, session.params)
    rung = () if search.sweep is not None else (f"train.sessions={search.sessions}",
                                                f"train.time_budget_min={session.hours * 60:g}")
    return search.settings(session.params, (*extra, f'paths.data="{data}"', f'paths.submissions="{folder}"',
                                            f'download.source="{cfg.download.source}"',
                                            f"train.run={run_name(search, scheduler, session)}", *rung,
                                            f"generate.subset={cfg.sweep.score_images}"))


def folder_of(root: Path, search: Search, session: Session) -> Path:
    """Where a session's settings, log and scores are: <root>/<label>/s<k>."""
    return root / search.label(session.trial, session.params) / f"s{session.session}"


@dataclass
class _Running:
    session: Session
    folder: Path
    proc: subprocess.Popen | None  # None: started by an earlier call, followed by its pid
    pid: int


def run(cfg: Config, search: Search, scheduler: Scheduler, root: Path, extra: tuple[str, ...]) -> str:
    """Run sessions as the scheduler hands them out until nothing is left; returns "" or the line that stopped
    new sessions (the search's gpu_hours)."""
    slots, stopped = Slots(gpu_count()), ""
    running: dict[tuple[int, int], _Running] = {}
    while True:
        while not stopped:
            # those an earlier call started that still run are taken over (on their GPUs), free slot or not
            earlier = None if slots.free() else _still_running(root) - running.keys()
            if earlier == set():
                break
            try:
                session = scheduler.next(running.keys(), earlier)
            except QuotaExhausted as exc:
                stopped = str(exc)
                print(f"{search.kind}: stops starting sessions: {exc}", flush=True)
                break
            if session is None:
                break
            key = (session.trial, session.session)
            running[key] = _start(cfg, search, scheduler, session, root, extra, slots)
        if not running:
            return stopped
        time.sleep(POLL_S)
        for key, r in list(running.items()):
            if r.proc.poll() is None if r.proc is not None else alive(r.pid):
                continue
            del running[key]
            slots.give_back(str(key))
            _report(search, scheduler, r)


def _start(cfg: Config, search: Search, scheduler: Scheduler, session: Session, root: Path,
           extra: tuple[str, ...], slots: Slots) -> _Running:
    """Start the session's process on a free slot, or follow the one an earlier call started (on the slot it
    was given) and that still runs."""
    key, name = str((session.trial, session.session)), search.what(session)
    folder = folder_of(root, search, session)
    folder.mkdir(parents=True, exist_ok=True)
    earlier = _started(folder)
    pid = int(earlier.get("pid", 0)) if earlier.get("trial") == session.trial else 0
    if pid and (folder / DONE).is_file():
        print(f"{search.kind}: {name} finished in an earlier call", flush=True)
        return _Running(session, folder, None, pid)
    if alive(pid):
        gpu = str(earlier.get("gpu", ""))
        where = _where(gpu) if slots.claim(key, gpu) else "a device not known here (nothing starts until " \
            "it ends)"
        print(f"{search.kind}: {name} still runs (pid {pid}) on {where} from an earlier call: waiting for it",
              flush=True)
        return _Running(session, folder, None, pid)
    slot = slots.take(key) or CPU
    atomic.write_text(folder / "settings.toml",
                      to_toml(settings(cfg, search, scheduler, session, folder, extra)))
    (folder / DONE).unlink(missing_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if slot != CPU:
        env["CUDA_VISIBLE_DEVICES"] = slot
    with open(folder / "log.txt", "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", SESSION_MODULE, str(folder / "settings.toml")],
                                stdout=log, stderr=subprocess.STDOUT, env=env)
    atomic.write_json(folder / STARTED, {"trial": session.trial, "pid": proc.pid, "gpu": slot})
    length = f" ({session.hours * 60:.1f} min)" if search.sweep is None else ""
    print(f"{search.kind}: {name}{length}: running on {_where(slot)} (log: {folder / 'log.txt'})", flush=True)
    return _Running(session, folder, proc, proc.pid)



def _report(search: Search, scheduler: Scheduler, r: _Running) -> None:
    """What the session's process left: its MiFID reported, or the trial failed with its log's last line."""
    trial, k, finished = r.session.trial, r.session.session, (r.folder / DONE).is_file()
    hours = r.session.hours  # its training budget: the data it prepared once is not the trial's cost
    found = results.details(_run_dir(r.folder), r.folder / "score.json")
    name = search.what(r.session)
    if found["mifid"] is None:
        unscored = "not scored: the FID weights are not here (score.weights)"
        error = unscored if finished else results.last_line(r.folder / "log.txt") or "stopped before its end"
        scheduler.failed(trial, k, error, hours, {**found, "unscored": finished})
        print(f"{search.kind}: {name}: failed ({error})", flush=True)
        return
    outcome = scheduler.report(trial, k, found["mifid"], hours, found)
    print(f"{search.kind}: {name}: local MiFID {found['mifid']:.3f} ({outcome})", flush=True)


def _run_dir(folder: Path) -> Path:
    """The run a session trained: the settings it ran with say where."""
    return load_config(str(folder / "settings.toml")).run_dir


def _still_running(root: Path) -> set[tuple[int, int]]:
    """The sessions under `root` whose process (started by any call of this machine) still runs."""
    found = set()
    for path in root.glob(f"*/s*/{STARTED}"):
        started = _started(path.parent)
        if alive(int(started.get("pid", 0))):
            found.add((int(started["trial"]), int(path.parent.name[1:])))
    return found


def _started(folder: Path) -> dict[str, Any]:
    """What started.json says of the session's process: its trial, pid and GPU ({} where there is none)."""
    try:
        found = json.loads((folder / STARTED).read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def _where(slot: str) -> str:
    return "the CPU" if slot == CPU else f"GPU {slot}"


class Slots:
    """Where sessions run: each of this machine's GPUs lent to one session at a time, or on a machine without
    GPUs its CPU, to one at a time. The slots are fixed when the command starts and one comes back only from
    the session it was lent to, so the pool never gains one it did not have and no two sessions share one."""

    def __init__(self, gpus: int) -> None:
        self.slots = tuple(str(i) for i in range(gpus)) or (CPU,)
        self.lent: dict[str, str] = {}  # slot -> the session running there
        self.unplaced: set[str] = set()  # running on a slot not known here: every slot is theirs meanwhile

    def claim(self, name: str, slot: str) -> bool:
        """Lend `slot` to `name`, a session an earlier call started there and that still runs. False where the
        slot is not known (not recorded, not one of this machine's, or lent already): the session then holds
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


def alive(pid: int) -> bool:
    """Whether `pid` is a session's process that still runs."""
    try:
        return pid > 0 and SESSION_MODULE in Path(f"/proc/{pid}/cmdline").read_text()
    except OSError:
        return False


def gpu_count() -> int:
    import torch

    return torch.cuda.device_count()
