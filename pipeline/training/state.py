"""What a run keeps between sessions: where training stands (Progress), the checkpoint a session saves, how
the next one resumes from it, and the record of each session (sessions.json).

A checkpoint holds the networks, their EMA averages, optimisers, scaler, each rank's pools and random state,
the step, the plan, the seconds and sessions spent: a resumed run repeats the uninterrupted one. Every rank
resumes from rank 0's checkpoint, also across machines where only rank 0's node has the run folder.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..engine import atomic
from ..engine.errors import UserError
from . import checkpoint
from .family import Family
from .plan import Plan
from .rng import rng_state, seed_everything, set_rng_state
from .runtime import Runtime
from .trainer import Trainer


@dataclass
class Progress:
    """Where training stands: what a checkpoint records besides the networks."""

    step: int = 0
    seconds: float = 0.0  # time spent by earlier sessions of this run (train.time_budget_min counts them all)
    best_mifid: float = float("inf")
    plan: Plan | None = None  # the checkpoint's plan (None: a fresh run, or one from before plans)
    sessions: int = 0  # the calls of train that have trained into the run (this one, once it has begun)


SESSIONS_FILE = "sessions.json"  # in the run folder: one record per session (train.sessions > 1)


def read_sessions(run_dir: Path) -> list[dict[str, Any]]:
    """The run's session records, oldest first ([] for a run of one session, or none yet)."""
    try:
        records = json.loads((run_dir / SESSIONS_FILE).read_text())
    except (OSError, ValueError):
        return []
    return [r for r in records if isinstance(r, dict) and "session" in r] if isinstance(records, list) else []


def add_session(run_dir: Path, record: dict[str, Any]) -> None:
    """Add a session's record to sessions.json: a session run again replaces its record and those after it."""
    kept = [r for r in read_sessions(run_dir) if r["session"] < record["session"]]
    atomic.write_json(run_dir / SESSIONS_FILE, [*kept, record])


def resume(out: Path, family: Family, trainer: Trainer, rt: Runtime, nominal: int,
            say: Callable[..., None]) -> Progress:
    """Load the newest readable checkpoint into `trainer`; a fresh run seeds each rank's own randomness.

    A checkpoint of either format resumes (see checkpoint.header): the architectures it compares are the
    family's, and they read the same in both."""
    t = trainer.train
    found = _shared(checkpoint.load_newest(out, map_location=rt.device, report=say), rt)
    if found is None:
        seed_everything(t.seed, rt.rank, 1)
        return Progress()
    path, payload = found
    saved, now = payload["architecture"], family.architecture(t, trainer.settings)
    if saved != now:
        changed = ", ".join(f"{k}={saved.get(k)!r} -> {now.get(k)!r}" for k in sorted(set(saved) | set(now))
                            if saved.get(k) != now.get(k))
        raise UserError(f"{path} was trained with other model settings ({changed}); add --force to start "
                        "over, or name another run with --set train.run=NAME")
    trainer.load_state_dict({"models": payload["models"], **payload["training"], **_ema_part(payload)})
    ranks = payload["training"]["ranks"]
    if len(ranks) == rt.world_size:
        trainer.load_rank_state(ranks[rt.rank]["family"])
        set_rng_state(ranks[rt.rank]["rng"], rt.device)
    else:  # another number of processes: the weights carry over, the per-rank randomness starts afresh
        seed_everything(t.seed, rt.rank, payload["step"])
    plan = Plan.from_dict(payload["plan"]) if payload.get("plan") else None
    step, sessions = payload["step"], int(payload.get("sessions", 0))
    where = [f"session {sessions + 1} of {t.sessions}"] if t.sessions > 1 else []
    where += [p for p in [trainer.position((plan or Plan(nominal, t.decay_start)).progress(step))] if p]
    say(f"resuming from step {step:,} ({'; '.join(where)}), checkpoint {path.name}" if where
        else f"resuming from step {step:,} ({path.name})")
    return Progress(step, payload["seconds"], payload["best_mifid"], plan, sessions)


def _shared(found: tuple[Path, dict[str, Any]] | None, rt: Runtime) -> tuple[Path, dict[str, Any]] | None:
    """Every rank resumes from rank 0's checkpoint. On one machine each reads the same file; across machines
    (torchrun on several nodes) only rank 0's node has the run folder, so where the ranks found different
    steps rank 0 sends its checkpoint to all (once, on the CPU: each rank moves it to its own device)."""
    if not rt.distributed:
        return found
    steps = rt.gather(found[1]["step"] if found else -1)
    if len(set(steps)) == 1:
        return found
    if rt.is_main and found is not None:
        found = (found[0], checkpoint.read(found[0], map_location="cpu"))
    return rt.broadcast(found if rt.is_main else None)


def _ema_part(payload: dict[str, Any]) -> dict[str, Any]:
    """The generators' averages of a checkpoint, where it has them (see Trainer.load_state_dict)."""
    return {k: payload[k] for k in ("ema", "ema_updates") if k in payload}


def save_checkpoint(out: Path, trainer: Trainer, rt: Runtime, progress: Progress, seconds: float) -> None:
    """Checkpoint everything (`seconds`: the run's training time so far, this session's included); every rank
    contributes its own random state and pools, rank 0 writes."""
    ranks = rt.gather({"rng": rng_state(rt.device), "family": trainer.rank_state()})
    if not rt.is_main:
        return
    state = trainer.state_dict()
    averages = {k: state.pop(k) for k in ("ema", "ema_updates") if k in state}
    checkpoint.write(out, {**checkpoint.header(trainer.train, trainer.settings, progress.step),
                           "models": state.pop("models"), **averages,
                           "plan": progress.plan.as_dict() if progress.plan else None,
                           "seconds": seconds,
                           "sessions": progress.sessions,
                           "best_mifid": progress.best_mifid, "training": {**state, "ranks": ranks}},
                     trainer.train.keep_last)
