"""A sweep as its table shows it: one row per variant (its latest trial in the journal), best (lowest local
MiFID) first, the same columns in the text `sweep` prints and on the leaderboard page.

A variant is queued, running (a local process, or a Kaggle kernel version), done (with its scores where the
FID weights were there) or failed (with the last line of its log); each row also has the settings that differ
from the base and what its session left (steps, training time, its run and pictures), all read from the
journal alone (the trial's user attributes), so the page needs nothing else.
"""
from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import optuna

from ..engine.text import aligned, duration
from .scheduler import TrialStatus, rows
from .spec import VARIANT


class VariantStatus(enum.StrEnum):
    """Where a sweep's variant stands (its text is what --json, the table and the page show)."""

    QUEUED = "queued"
    RUNNING = "running"  # a local process, or a Kaggle kernel version
    DONE = "done"
    FAILED = "failed"


OF_TRIAL = {TrialStatus.QUEUED: VariantStatus.QUEUED, TrialStatus.RUNNING: VariantStatus.RUNNING,
            TrialStatus.WAITING: VariantStatus.RUNNING, TrialStatus.COMPLETE: VariantStatus.DONE,
            TrialStatus.PRUNED: VariantStatus.DONE, TrialStatus.FAILED: VariantStatus.FAILED}


@dataclass(frozen=True)
class VariantRow:
    """A variant as its latest trial left it."""

    name: str
    changed: tuple[str, ...]  # the settings that differ from the base
    state: VariantStatus
    error: str = ""
    details: dict[str, Any] = field(default_factory=dict)  # what its session left (results.details)

    @property
    def mifid(self) -> float | None:
        return self.details.get("mifid")

    @property
    def fid(self) -> float | None:
        return self.details.get("fid")

    @property
    def distance(self) -> float | None:
        return self.details.get("distance")

    @property
    def steps(self) -> int | None:
        return self.details.get("steps")

    @property
    def seconds(self) -> float | None:
        return self.details.get("seconds")

    @property
    def n_images(self) -> int:
        return int(self.details.get("n_images") or 0)

    @property
    def run_dir(self) -> str:
        """Its run folder (local), or the run's summary fetched from its kernel's output."""
        return str(self.details.get("run_dir") or "")

    @property
    def thumbs(self) -> str:
        """On Kaggle: the folder of the fixed photos through it, fetched."""
        return str(self.details.get("thumbs") or "")

    def as_json(self, kernel: str = "") -> dict[str, Any]:
        """As the --json list has it (`kernel`: its kernel version, on Kaggle)."""
        return {"name": self.name, "state": self.state, "fid": self.fid, "distance": self.distance,
                "mifid": self.mifid, "settings": list(self.changed), "steps": self.steps,
                "seconds": self.seconds, "images": self.n_images, "error": self.error, "kernel": kernel}


def variant_rows(study: optuna.Study) -> list[VariantRow]:
    """Each variant's latest trial, best first: by local MiFID, then done, running, queued, failed."""
    latest = {}
    changed = {}
    for trial in study.get_trials(deepcopy=False):
        name = str(trial.user_attrs.get(VARIANT))
        changed[name] = tuple(trial.user_attrs.get("changed", ()))
        latest[name] = trial.number
    found = [VariantRow(r.params[VARIANT], changed[r.params[VARIANT]], OF_TRIAL[r.state], r.error, r.details)
             for r in rows(study) if latest.get(r.params.get(VARIANT)) == r.number]
    order = [VariantStatus.DONE, VariantStatus.RUNNING, VariantStatus.QUEUED, VariantStatus.FAILED]
    return sorted(found, key=lambda v: (v.mifid if v.mifid is not None else float("inf"),
                                        order.index(v.state), v.name))


@dataclass(frozen=True)
class Column:
    """A column of the sweep table, the same in the text the command prints and on the leaderboard page."""

    title: str
    key: str  # the page's class for its cells
    lines: Callable[[VariantRow], list[str]]  # what a cell holds: one line, or one a setting changed


def _num(value: float | int | None, fmt: str, missing: str = "-") -> list[str]:
    return [missing if value is None else fmt.format(value)]


COLUMNS = (  # after the rank
    Column("variant", "variant", lambda v: [v.name]),
    Column("state", "state", lambda v: [v.state + (f": {v.error}" if v.error else "")]),
    Column("local MiFID", "mifid",
           lambda v: _num(v.mifid, "{:.3f}", "not scored" if v.state == VariantStatus.DONE else "-")),
    Column("FID", "fid", lambda v: _num(v.fid, "{:.3f}")),
    Column("d", "distance", lambda v: _num(v.distance, "{:.4f}")),
    Column("steps", "steps", lambda v: _num(v.steps, "{:,}")),
    Column("training time", "time", lambda v: ["-" if v.seconds is None else duration(v.seconds)]),
    Column("settings changed from the base", "settings", lambda v: list(v.changed) or ["the base"]),
)


def table(name: str, backend: str, variants: list[VariantRow]) -> str:
    """The variants as an aligned text table, best first."""
    lines = [("rank", *(c.title for c in COLUMNS))]
    lines += [(str(i), *(", ".join(c.lines(v)) for c in COLUMNS)) for i, v in enumerate(variants, 1)]
    return (f"sweep {name} ({backend}; lower MiFID is better, local: against the reference paintings):\n"
            + "\n".join(aligned(lines)))
