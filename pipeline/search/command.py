"""`python -m pipeline search NAME|PATH [--status] [--json]` (make search SEARCH=NAME|PATH): the week's
GPU-hours spent where they pay. Trials sampled by Optuna (TPE with the file's seed, or the grid where every
dimension is a choice), each a chain of sessions, pruned between sessions on local MiFID by successive
halving (scheduler.py), on Kaggle (on_kaggle.py: jobs given to the job runner) or on this machine's GPUs
(local.py).

The study is a journal file, submissions/search/<name>/journal.log (`optuna.load_study` opens it; so does
`make search-dashboard`): the command killed at any moment and run again follows what runs, pushes nothing
twice, loses no report, and a finished search trains nothing. When the quota or the search's gpu_hours runs
out it stops pushing, says so, follows what runs, and the same command goes on next week.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import asdict, replace

from ..config import Config, load_for_kaggle
from ..config.jobs import GenerateFrom
from ..datasets.store import weights_dataset
from ..engine.errors import UserError
from ..engine.text import aligned
from ..jobs.store import JobStore
from ..jobs.submit import submit_command
from ..sweeps import spec as sweeps_spec
from . import local, on_kaggle, spec
from .scheduler import Scheduler, Session, TrialRow, TrialStatus
from .study import open_study


def command(cfg: Config, args: argparse.Namespace) -> int:
    extra = tuple(args.set)
    search = spec.load(args.search, extra)
    cfg = load_for_kaggle(args.config, [*sweeps_spec.machine_items(search.sets), *extra])
    folder = cfg.submissions_dir / "search" / search.name
    if args.journal:  # make search-dashboard opens it
        print(folder / "journal.log")
        return 0
    reading = args.status or args.json
    if reading and not (folder / "journal.log").is_file():
        raise UserError(f"search {search.name}: not started yet (no {folder / 'journal.log'}): "
                        f"make search SEARCH={args.search}")
    scheduler = Scheduler(open_study(search, folder), search, cfg.kernel.train_limit_min / 60, folder)
    if reading:
        rows = scheduler.rows()
        print(json.dumps([asdict(r) for r in rows], indent=2) if args.json else table(search.name, rows))
        return 0
    _check_weights(cfg, search.backend)
    print(f"search {search.name}: {search.trials} trial(s), up to {search.sessions} session(s) each "
          f"({', '.join(f'{scheduler.hours(k):g} h' for k in range(1, search.sessions + 1))}), at most "
          f"{search.gpu_hours:g} GPU-hours, on {search.backend}; journal {folder / 'journal.log'}",
          flush=True)
    if search.backend == "local":
        stopped = local.run(cfg, search, scheduler, folder, extra)
    else:
        stopped = on_kaggle.run(cfg, search, scheduler, folder, extra, args.yes)
    print(table(search.name, scheduler.rows()))
    if stopped:
        raise UserError(f"search {search.name}: {stopped}; what ran is recorded: run the same command again "
                        "when there is quota (or a larger search.gpu_hours) to go on")
    if getattr(args, "submit", False):
        return submit_best(cfg, search, scheduler, args)
    return 0


def _check_weights(cfg: Config, backend: str) -> None:
    """A search ranks trials by local MiFID: without the FID weights nothing could be ranked."""
    if backend == "local" and not cfg.score.weights:
        from ..metrics.features import WEIGHTS_FILE, hub_weights_path

        if not hub_weights_path().is_file():
            raise UserError(f"search: the FID weights are not here: put {WEIGHTS_FILE} at "
                            f"{hub_weights_path()} or give --set score.weights=PATH; nothing was trained")
    if backend == "kaggle" and not weights_dataset(cfg):
        raise UserError("search: the trials' kernels need the FID weights to be ranked: make upload-weights "
                        "once (or --set kernel.weights_dataset=OWNER/SLUG); nothing was pushed")


def table(name: str, rows: list[TrialRow]) -> str:
    """The trials, best first: settings, MiFID per session, state, GPU-hours."""
    lines = [("rank", "trial", "state", "MiFID by session", "GPU-hours", "settings")]
    for i, r in enumerate(rows, 1):
        mifid = " -> ".join(f"{v:.3f}" for v in r.mifid) or "-"
        state = r.state + (f": {r.error}" if r.error else "")
        lines.append((str(i), str(r.number), state, mifid, f"{r.hours:.2f}", ", ".join(r.settings())))
    return f"search {name} (lower MiFID is better, local):\n" + "\n".join(aligned(lines))


def submit_best(cfg: Config, search: spec.Search, scheduler: Scheduler, args: argparse.Namespace) -> int:
    """Submit the trial with the lowest MiFID at its last session through a notebook that only generates
    from its last session's kernel."""
    if search.backend != "kaggle":
        raise UserError("search: SUBMIT=1 needs backend kaggle: this competition scores a notebook's output, "
                        "so the best trial is submitted through a kernel that generates from its run")
    ranked = (TrialStatus.COMPLETE, TrialStatus.PRUNED, TrialStatus.WAITING)  # whose MiFID is settled
    scored = [r for r in scheduler.rows() if r.mifid and r.state in ranked]
    if not scored:
        raise UserError(f"search {search.name}: no trial has a local MiFID to choose by yet")
    best = min(scored, key=lambda r: r.value)
    last = Session(best.number, len(best.mifid), best.params, 0.0)
    job = JobStore(cfg.submissions_dir).get(on_kaggle.job_name(search, last))
    if job is None:
        raise UserError(f"search {search.name}: trial {best.number}'s kernel is not in the job records of "
                        "this machine: run the search here first")
    print(f"search {search.name}: the best is trial {best.number} (local MiFID {best.value:.3f}): submitting "
          f"it from {job.ref}'s run")
    kcfg = on_kaggle.kernel_settings(cfg, search, last, tuple(args.set))
    generate = replace(cfg.kernel, preset=search.preset, set=kcfg.kernel.set).doing(GenerateFrom(job.ref))
    message = cfg.submit.message or f"search {search.name}: trial {best.number}"
    return submit_command(replace(cfg, kernel=generate, submit=replace(cfg.submit, message=message)), args)

