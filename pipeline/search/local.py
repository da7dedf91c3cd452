"""search backend local: each trial session a process of this machine (sweeps/variant.py: download, augment,
train, then render and score a subset), one per GPU of the local sweep's pool at a time, or one at a time on
a CPU.

Trial n is the run data/runs/search-<search>-t<n>; session k trains it again with train.time_budget_min the
rung's minutes (train.sessions = search.sessions: the run is planned for every session it could get, each
session training its share and resuming the last), then scores a fixed subset into
submissions/search/<name>/t<n>/s<k>/score.json. A session's folder holds its settings, log, pid and, once it
finished, done.json, so a command killed at any moment and run again waits for a session whose process still
runs, reports one that finished unreported, and starts again one whose process is gone (its stages resume).
Several commands (on this machine or others sharing the journal's folder) run different trials: the
scheduler hands each session to one of them (scheduler.py).
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..config import Config, to_toml
from ..engine import atomic
from ..jobs.push import QuotaExhausted
from ..sweeps import results
from ..sweeps.local import CPU, POLL_S, VARIANT_MODULE, Slots, alive, gpu_count
from ..sweeps.variant import DONE
from .scheduler import Scheduler, Session
from .spec import Search


def run_name(search: Search, trial: int) -> str:
    return f"search-{search.name}-t{trial}"


def settings(cfg: Config, search: Search, session: Session, folder: Path, extra: tuple[str, ...]) -> Config:
    """A trial session's settings as it runs here: this machine's data, its own run and submissions folder,
    the rung's training minutes and a scoring subset of sweep.score_images."""
    return search.settings(session.params, (*extra, f'paths.submissions="{folder}"',
                                            f'download.source="{cfg.download.source}"',
                                            f"train.run={run_name(search, session.trial)}",
                                            f"train.sessions={search.sessions}",
                                            f"train.time_budget_min={session.hours * 60:g}",
                                            f"generate.subset={cfg.sweep.score_images}"))


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
        while not stopped and slots.free():
            try:
                session = scheduler.next(running.keys())
            except QuotaExhausted as exc:
                stopped = str(exc)
                print(f"search: stops starting sessions: {exc}", flush=True)
                break
            if session is None:
                break
            key = (session.trial, session.session)
            running[key] = _start(cfg, search, session, root, extra, slots.take(str(key)) or CPU)
        if not running:
            return stopped
        time.sleep(POLL_S)
        for key, r in list(running.items()):
            if r.proc.poll() is None if r.proc is not None else alive(r.pid):
                continue
            del running[key]
            slots.give_back(str(key))
            _report(scheduler, r)


def _start(cfg: Config, search: Search, session: Session, root: Path, extra: tuple[str, ...],
           slot: str) -> _Running:
    """Start the session's process, or follow the one an earlier call started and that still runs."""
    folder = root / f"t{session.trial}" / f"s{session.session}"
    folder.mkdir(parents=True, exist_ok=True)
    pid = _pid(folder)
    if (folder / DONE).is_file() or alive(pid):
        print(f"search: trial {session.trial} session {session.session} started by an earlier call: "
              f"{'finished' if (folder / DONE).is_file() else f'still running (pid {pid})'}", flush=True)
        return _Running(session, folder, None, pid)
    atomic.write_text(folder / "settings.toml", to_toml(settings(cfg, search, session, folder, extra)))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if slot != CPU:
        env["CUDA_VISIBLE_DEVICES"] = slot
    with open(folder / "log.txt", "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", VARIANT_MODULE, str(folder / "settings.toml")],
                                stdout=log, stderr=subprocess.STDOUT, env=env)
    atomic.write_text(folder / "pid", str(proc.pid))
    where = "the CPU" if slot == CPU else f"GPU {slot}"
    print(f"search: trial {session.trial} session {session.session} of {search.sessions} "
          f"({session.hours * 60:.1f} min): running on {where} (log: {folder / 'log.txt'})", flush=True)
    return _Running(session, folder, proc, proc.pid)


def _report(scheduler: Scheduler, r: _Running) -> None:
    """What the session's process left: its MiFID reported, or the trial failed with its log's last line."""
    trial, k = r.session.trial, r.session.session
    hours = r.session.hours  # its training budget: the data it prepared once is not the trial's cost
    mifid = results.mifid_in(r.folder / "score.json") if (r.folder / DONE).is_file() else None
    if mifid is None:
        error = (results.last_line(r.folder / "log.txt") or "stopped before its end"
                 if not (r.folder / DONE).is_file() else "not scored: the FID weights are not here "
                 "(score.weights)")
        scheduler.failed(trial, k, error, hours)
        print(f"search: trial {trial} session {k}: failed ({error})", flush=True)
        return
    outcome = scheduler.report(trial, k, mifid, hours)
    print(f"search: trial {trial} session {k}: local MiFID {mifid:.3f} ({outcome})", flush=True)


def _pid(folder: Path) -> int:
    try:
        return int((folder / "pid").read_text())
    except (OSError, ValueError):
        return 0
