"""`python -m pipeline sweep NAME|PATH [--status] [--json] [--force]` (make sweep SWEEP=NAME|PATH): a sweep's
variants run where the user has GPUs (sweep.backend: kaggle or local), each scored the same way, shown side by
side (the table here, a section of the leaderboard page) and, with sweep.submit=best, the best one submitted
through a notebook that only generates from its training kernel's run.

A sweep is a search whose trials are given: each variant an enqueued trial of an Optuna study, run to its end
with no pruner, by the search's one scheduler and backends (scheduler.py, local.py, on_kaggle.py). Its state
is the study's journal, submissions/sweeps/<name>/journal.log: run the command again after an interruption and
it follows what runs and never pushes or trains a variant twice; a variant whose settings changed runs anew;
--force runs the failed ones again. --status prints the table and does nothing else; --json prints it as a
list, best first. A sweep folder of the version before (state.json) is refused in one line saying what to do.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from ..config import Config, load_for_kaggle
from ..config.jobs import GenerateFrom
from ..engine import store
from ..engine.errors import UserError
from ..engine.keys import digest
from ..jobs.store import JobStore
from ..jobs.submit import submit_command
from ..sweeps import spec
from . import local, on_kaggle
from .scheduler import Scheduler, Session
from .spec import VARIANT, Search, from_sweep
from .study import existing, journal, open_study
from .variants import VariantRow, VariantStatus, table, variant_rows

OLD_STATE = "state.json"  # what a sweep folder held before sweeps were searches


def command(cfg: Config, args: argparse.Namespace) -> int:
    extra = tuple(args.set)
    sweep = spec.load(args.sweep, extra)
    # how to run it (sweep.*, kernel.*): as the sweep file's base sets it, the command's --set winning
    cfg = load_for_kaggle(args.config, [*spec.machine_items(sweep.sets), *extra])
    search = replace(from_sweep(sweep, extra), backend=cfg.sweep.backend)
    folder = cfg.submissions_dir / "sweeps" / sweep.name
    _refuse_old(folder)
    if args.status or args.json:  # reads only: the journal as it stands, nothing written
        study = existing(folder, sweep.name)
        rows = variant_rows(study) if study else [VariantRow(v.name, v.changed, VariantStatus.QUEUED)
                                                  for v in sweep.variants]
        if args.json:
            store_ = JobStore(cfg.submissions_dir)
            kernels = {r.name: store_.get(on_kaggle.job_name(search, _session(search, r.name))) for r in rows}
            print(json.dumps([r.as_json(kernels[r.name].label if kernels[r.name] else "") for r in rows],
                             indent=2))
        else:
            print(table(sweep.name, search.backend, rows))
        return 0
    if cfg.sweep.submit == "best" and search.backend != "kaggle":
        raise UserError("sweep.submit=best needs sweep.backend=kaggle: this competition scores a notebook's "
                        "output, so the best run is submitted through a Kaggle kernel that generates from it")
    wanted = {v.name: digest([search.backend, _what_it_runs(sweep.settings(v, extra))])
              for v in sweep.variants}
    study = open_study(search, folder, wanted, force=args.force)
    study.set_user_attr("backend", search.backend)
    scheduler = Scheduler(study, search, cfg.kernel.train_limit_min / 60, folder)
    print(f"sweep {sweep.name}: {len(sweep.variants)} variants ({', '.join(v.name for v in sweep.variants)}) "
          f"on {search.backend}; journal {journal(folder)}", flush=True)
    if search.backend == "local":
        stopped = local.run(cfg, search, scheduler, folder, extra)
    else:
        stopped = on_kaggle.run(cfg, search, scheduler, folder, extra, args.yes)
    rows = variant_rows(study)
    print(table(sweep.name, search.backend, rows))
    _say_unscored(sweep.name, search.backend, rows)
    if stopped:
        raise UserError(f"sweep {sweep.name}: {stopped}; run the same sweep again then: the variants still "
                        "queued are pushed, nothing is pushed twice")
    if cfg.sweep.submit == "best":
        return submit_best(cfg, search, rows, folder, extra, args)
    return 0


def _refuse_old(folder: Path) -> None:
    """A sweep folder written before sweeps were searches: its state.json is not read."""
    if (folder / OLD_STATE).is_file():
        raise UserError(f"{folder / OLD_STATE}: written by an earlier version of the sweep command, which "
                        f"kept a sweep's state there; this one keeps it in an Optuna journal: move {folder} "
                        f"away (mv {folder} {folder}.old) and run the sweep again (a local variant's stages "
                        "are still cached in data/runs)")


def _session(search: Search, variant: str) -> Session:
    """A variant's one session, as its kernel is named and built."""
    return Session(0, 1, {VARIANT: variant}, search.first_hours)


def _what_it_runs(settings: Config) -> dict[str, object]:
    """A variant's settings without those that only say where and how the sweep runs: a variant is run
    again when these change, not when the command polls Kaggle more often."""
    where = ("kernel", "paths", "submit")
    return {k: v for k, v in spec.flat(settings).items()
            if k.split(".", 1)[0] not in where and k not in ("sweep.parallel", "sweep.submit")}


def _say_unscored(name: str, backend: str, rows: list[VariantRow]) -> None:
    """What to do about variants that ran to their end without scores."""
    n = sum(r.state == VariantStatus.FAILED and r.error.startswith("not scored") for r in rows)
    if n and backend == "local":
        print(f"sweep {name}: {n} variant(s) not scored: the FID weights are not here (their logs say where "
              "they go; or --set score.weights=PATH); run the same sweep again then: only the scoring runs "
              "again")
    elif n:
        print(f"sweep {name}: {n} variant(s) not scored in their notebooks: attach the FID weights "
              "(kernel.weights_dataset) or let the kernels download them (kernel.enable_internet=true), then "
              "run the sweep again with --force")


def submit_best(cfg: Config, search: Search, rows: list[VariantRow], folder: Path, extra: tuple[str, ...],
                args: argparse.Namespace) -> int:
    """Submit the variant with the lowest local MiFID through a notebook attached to its training kernel."""
    study = existing(folder, search.name)
    if study is not None and study.user_attrs.get("submitted"):
        print(f"sweep {search.name}: submitted earlier: {study.user_attrs['submitted']}")
        return 0
    scored = [r for r in rows if r.state == VariantStatus.DONE and r.mifid is not None]
    if not scored:
        left = sum(r.state == VariantStatus.QUEUED for r in rows)
        raise UserError(f"sweep {search.name}: no variant has a local MiFID to choose by ({left} queued): "
                        "attach the FID weights to the variants' kernels (kernel.weights_dataset) and run it "
                        "again")
    best = scored[0]
    kernel = JobStore(cfg.submissions_dir).get(on_kaggle.job_name(search, _session(search, best.name)))
    if kernel is None:
        raise UserError(f"sweep {search.name}: {best.name}'s kernel is not in the job records of this "
                        "machine: run the sweep again with --force to train it anew")
    kcfg = on_kaggle.kernel_settings(cfg, search, _session(search, best.name), extra)
    message = f"sweep {search.name}: {best.name} ({', '.join(best.changed) or 'the base'})"
    generate = replace(cfg.kernel, preset=search.preset, set=kcfg.kernel.set).doing(GenerateFrom(kernel.ref))
    scfg = replace(cfg, kernel=generate, submit=replace(cfg.submit, message=cfg.submit.message or message))
    print(f"sweep {search.name}: the best is {best.name} (local MiFID {best.mifid:.3f}): submitting it from "
          f"{kernel.ref}'s run")
    code = submit_command(scfg, args)
    if code == 0 and not cfg.submit.dry_run and study is not None:
        with store.locked(journal(folder)):
            study.set_user_attr("submitted", f"{best.name}: {kernel.label}")
    return code
