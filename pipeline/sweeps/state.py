"""Where a sweep stands: submissions/sweeps/<name>/state.json, one record per variant, written after every
change, so that a sweep interrupted and run again follows what runs and never trains or pushes a variant
twice; and the table the command prints and the leaderboard page shows, best (lowest local MiFID) first.

A variant is queued, running (a local process, or a Kaggle kernel version), done (with its scores where the
FID weights were there) or failed (with the last line of its log). Each record also keeps the settings that
differ from the base, the digest of the variant's whole settings (a record whose settings changed starts
over), and where its run and pictures are.
"""
from __future__ import annotations

import dataclasses
import enum
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..engine import atomic
from ..engine.text import aligned, duration, slug


class VariantStatus(enum.StrEnum):
    """Where a sweep's variant stands (its text is what state.json, --json and the table show)."""

    QUEUED = "queued"
    RUNNING = "running"  # a local process, or a Kaggle kernel version
    DONE = "done"
    FAILED = "failed"


@dataclass
class VariantState:
    name: str
    changed: list[str]  # the settings that differ from the base
    digest: str  # of the variant's whole settings
    state: VariantStatus = VariantStatus.QUEUED
    error: str = ""  # failed: the last line of its log
    pid: int = 0  # local: the process running it (on Kaggle: its kernel is a job record, jobs/store.py)
    gpu: str = ""  # local: the GPU it was started on ("cpu": none); "" where not recorded
    run_dir: str = ""  # its run folder (local), or the run's summary fetched from its kernel's output
    thumbs: str = ""  # kaggle: the folder of the fixed photos through it, fetched
    steps: int | None = None
    seconds: float | None = None
    n_images: int = 0
    fid: float | None = None
    distance: float | None = None
    mifid: float | None = None

    @property
    def ended(self) -> bool:
        return self.state in (VariantStatus.DONE, VariantStatus.FAILED)


@dataclass
class SweepState:
    path: Path
    name: str
    backend: str
    file: str  # the sweep file it runs
    variants: dict[str, VariantState] = field(default_factory=dict)
    submitted: str = ""  # what sweep.submit=best submitted ("variant: kernel version")

    @classmethod
    def load(cls, path: Path, name: str = "", backend: str = "", file: str = "") -> SweepState:
        """The recorded state at `path` (a fresh one with these values where there is none)."""
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return cls(path, name, backend, file)
        fields = {f.name for f in dataclasses.fields(VariantState)}
        variants = {k: VariantState(**{**{f: v for f, v in record.items() if f in fields},
                                       "state": VariantStatus(record.get("state", "queued"))})
                    for k, record in data.get("variants", {}).items()}
        return cls(path, data.get("name", name), data.get("backend", backend), data.get("file", file),
                   variants, data.get("submitted", ""))

    def save(self) -> None:
        variants = {k: dataclasses.asdict(v) for k, v in self.variants.items()}
        atomic.write_json(self.path, {"name": self.name, "backend": self.backend, "file": self.file,
                                      "submitted": self.submitted, "variants": variants})

    def ranked(self) -> list[VariantState]:
        """Best first: by local MiFID, then the others done, running, queued, failed; by name within."""
        order = {status: i for i, status in enumerate((VariantStatus.DONE, VariantStatus.RUNNING,
                                                       VariantStatus.QUEUED, VariantStatus.FAILED))}
        return sorted(self.variants.values(), key=lambda v: (
            v.mifid if v.mifid is not None else float("inf"), order[v.state], v.name))


def run_name(sweep: str, variant_slug: str) -> str:
    """The run folder of a local sweep's variant (data/runs/<this>)."""
    return f"sweep-{sweep}-{variant_slug}"


def local_runs(submissions: Path) -> set[str]:
    """The run folders of every local sweep's variants: the sweeps' own section of the page shows them."""
    names = set()
    for folder in folders(submissions):
        state = SweepState.load(folder / "state.json")
        if state.backend == "local":
            names |= {run_name(state.name, slug(v.name)) for v in state.variants.values()}
    return names


def folders(submissions: Path) -> list[Path]:
    """The folders of every sweep recorded under `submissions`."""
    root = Path(submissions) / "sweeps"
    return sorted(p.parent for p in root.glob("*/state.json")) if root.is_dir() else []


def row(v: VariantState, kernel: str = "") -> dict[str, Any]:
    """One variant as the --json list has it (`kernel`: its kernel version, on Kaggle)."""
    return {"name": v.name, "state": v.state, "fid": v.fid, "distance": v.distance, "mifid": v.mifid,
            "settings": v.changed, "steps": v.steps, "seconds": v.seconds, "images": v.n_images,
            "error": v.error, "kernel": kernel}


@dataclass(frozen=True)
class Column:
    """A column of the sweep table, the same in the text the command prints and on the leaderboard page."""

    title: str
    key: str  # the page's class for its cells
    lines: Callable[[VariantState], list[str]]  # what a cell holds: one line, or one a setting changed


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


def table(state: SweepState) -> str:
    """The variants as an aligned text table, best first."""
    lines = [("rank", *(c.title for c in COLUMNS))]
    lines += [(str(i), *(", ".join(c.lines(v)) for c in COLUMNS)) for i, v in enumerate(state.ranked(), 1)]
    return (f"sweep {state.name} ({state.backend}; lower MiFID is better, local: against the reference "
            f"paintings):\n" + "\n".join(aligned(lines)))
