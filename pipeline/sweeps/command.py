"""`python -m pipeline sweep NAME|PATH [--status] [--json]` (make sweep SWEEP=NAME|PATH): a sweep's variants
run where the user has GPUs (sweep.backend: kaggle or local), each scored the same way, shown side by side
(the table here, a section of the leaderboard page) and, with sweep.submit=best, the best one submitted
through a notebook that only generates from its training kernel's run.

The sweep's state is submissions/sweeps/<name>/state.json (state.py): run the command again after an
interruption and it follows what runs and never pushes or trains a variant twice; --force runs the failed
ones again. --status prints the table and does nothing else; --json prints it as a list, best first.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import replace

from ..config import Config, load_for_kaggle
from ..config.jobs import GenerateFrom
from ..engine.errors import UserError
from ..engine.keys import digest
from ..jobs.store import JobStore
from ..jobs.submit import submit_command
from . import local, on_kaggle, spec
from .state import SweepState, VariantState, VariantStatus, row, table


def command(cfg: Config, args: argparse.Namespace) -> int:
    extra = tuple(args.set)
    sweep = spec.load(args.sweep, extra)
    # how to run it (sweep.*, kernel.*): as the sweep file's base sets it, the command's --set winning
    cfg = load_for_kaggle(args.config, [*spec.machine_items(sweep.sets), *extra])
    reading = args.status or args.json
    state = _state(cfg, sweep, extra, reading, rerun_failed=args.force)
    if reading:  # reads only: the state as recorded, nothing written
        if args.json:
            store = JobStore(cfg.submissions_dir)
            kernels = {v.name: store.get(on_kaggle.job_name(sweep.name, v.name)) for v in state.ranked()}
            labels = {name: kernel.label if kernel else "" for name, kernel in kernels.items()}
            print(json.dumps([row(v, labels[v.name]) for v in state.ranked()], indent=2))
        else:
            _show(cfg, state)
        return 0
    if cfg.sweep.submit == "best" and cfg.sweep.backend != "kaggle":
        raise UserError("sweep.submit=best needs sweep.backend=kaggle: this competition scores a notebook's "
                        "output, so the best run is submitted through a Kaggle kernel that generates from it")
    state.save()
    print(f"sweep {sweep.name}: {len(sweep.variants)} variants ({', '.join(v.name for v in sweep.variants)}) "
          f"on {cfg.sweep.backend}; state in {state.path}", flush=True)
    stopped = ""
    if cfg.sweep.backend == "local":
        local.run(cfg, sweep, state, extra)
    else:
        stopped = on_kaggle.run(cfg, sweep, state, extra, args.yes)
    _show(cfg, state)
    if stopped:
        raise UserError(f"sweep {sweep.name}: {stopped}; run the same sweep again then: the variants still "
                        "queued are pushed, nothing is pushed twice")
    if cfg.sweep.submit == "best":
        return submit_best(cfg, sweep, state, extra, args)
    return 0


def _state(cfg: Config, sweep: spec.Sweep, extra: tuple[str, ...], reading: bool,
           rerun_failed: bool) -> SweepState:
    """The recorded state (`reading`: as it is). To run: a fresh record for every variant that is new or
    whose settings changed, for every failed one with `rerun_failed` and, locally, for one done without
    scores (its stages are cached: running it again only scores it)."""
    state = SweepState.load(cfg.submissions_dir / "sweeps" / sweep.name / "state.json", sweep.name,
                            cfg.sweep.backend, str(sweep.path))
    state.backend, known = cfg.sweep.backend, state.variants
    state.variants = {}
    for variant in sweep.variants:
        key = digest([cfg.sweep.backend, _what_it_runs(sweep.settings(variant, extra))])
        record = known.get(variant.name)
        unscored = (cfg.sweep.backend == "local" and record is not None
                    and record.state == VariantStatus.DONE and record.mifid is None)
        failed = rerun_failed and record is not None and record.state == VariantStatus.FAILED
        stale = record is None or record.digest != key or failed or unscored
        if record is None or stale and not reading:
            record = VariantState(variant.name, list(variant.changed), key)
        state.variants[variant.name] = record
    return state


def _what_it_runs(settings: Config) -> dict[str, object]:
    """A variant's settings without those that only say where and how the sweep runs: a variant is run
    again when these change, not when the command polls Kaggle more often."""
    where = ("kernel", "paths", "submit")
    return {k: v for k, v in spec.flat(settings).items()
            if k.split(".", 1)[0] not in where and k not in ("sweep.parallel", "sweep.submit")}


def _show(cfg: Config, state: SweepState) -> None:
    """The table, and what to do about variants done without scores."""
    print(table(state))
    n = sum(v.state == VariantStatus.DONE and v.mifid is None for v in state.variants.values())
    if n and cfg.sweep.backend == "local":
        print(f"sweep {state.name}: {n} variant(s) not scored: the FID weights are not here (their logs say "
              "where they go; or --set score.weights=PATH); run the same sweep again then: only the "
              "scoring runs again")
    elif n:
        print(f"sweep {state.name}: {n} variant(s) not scored in their notebooks: attach the FID weights "
              "(kernel.weights_dataset) or let the kernels download them (kernel.enable_internet=true) "
              "before the next sweep")


def submit_best(cfg: Config, sweep: spec.Sweep, state: SweepState, extra: tuple[str, ...],
                args: argparse.Namespace) -> int:
    """Submit the variant with the lowest local MiFID through a notebook attached to its training kernel."""
    if state.submitted:
        print(f"sweep {sweep.name}: submitted earlier: {state.submitted}")
        return 0
    scored = [v for v in state.variants.values() if v.state == VariantStatus.DONE and v.mifid is not None]
    if not scored:
        left = sum(v.state == VariantStatus.QUEUED for v in state.variants.values())
        raise UserError(f"sweep {sweep.name}: no variant has a local MiFID to choose by ({left} queued): "
                        "attach the FID weights to the variants' kernels (kernel.weights_dataset) and run it "
                        "again")
    best = min(scored, key=lambda v: v.mifid)
    store = JobStore(cfg.submissions_dir)
    kernel = store.get(on_kaggle.job_name(sweep.name, best.name))
    if kernel is None:
        raise UserError(f"sweep {sweep.name}: {best.name}'s kernel is not in {store.path}: run the sweep "
                        "again with --force to train it anew")
    kcfg = on_kaggle.kernel_settings(cfg, sweep, sweep.variant(best.name), extra)
    message = f"sweep {sweep.name}: {best.name} ({', '.join(best.changed) or 'the base'})"
    generate = replace(cfg.kernel, preset=sweep.preset, set=kcfg.kernel.set).doing(GenerateFrom(kernel.ref))
    scfg = replace(cfg, kernel=generate, submit=replace(cfg.submit, message=cfg.submit.message or message))
    print(f"sweep {sweep.name}: the best is {best.name} (local MiFID {best.mifid:.3f}): submitting it from "
          f"{kernel.ref}'s run")
    code = submit_command(scfg, args)
    if code == 0 and not cfg.submit.dry_run:
        state.submitted = f"{best.name}: {kernel.label}"
        state.save()
    return code
