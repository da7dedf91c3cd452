"""What the leaderboard page says about each run: one entry per run that was trained here or scored.

A trained run is a folder data/runs/<run>/ (config.toml, losses.csv, checkpoints, sample grids, loss plot,
GIF). A scored set is a row of leaderboard.csv, filed under the run its provenance record names: the
scorings of one run join its folder's entry, the scorings of a Kaggle kernel version make an entry of their
own (its training files are the version's fetched output, submissions/kaggle/<version>/run/), and each set
of unknown origin is an entry by itself. Reading all this needs no torch.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ..config import Config, load_config, tomllib
from ..engine.errors import UserError
from ..generate.provenance import UNKNOWN_RUN
from ..scoring import table

COMPARED = ("augment", "train")  # with the family's own section: what makes one run differ from another
NOT_COMPARED = {("train", "run")}  # the name, not a setting of the model
_KERNEL_VERSION = re.compile(r"\bv(\d+)$")


@dataclass
class Entry:
    """One row of the page."""

    key: str  # unique: the run, "run (owner/slug vN)" for a Kaggle version, or "unknown <images>"
    run: str
    kernel: str = ""  # "owner/slug vN" for a Kaggle kernel version's images
    trained_by: str = ""  # "owner/slug-train-3 vN": the train kernel whose run the images came from
    family: str = ""
    run_dir: Path | None = None  # its training files, when they are here
    changed: list[str] = field(default_factory=list)  # settings that differ from its preset: "train.epochs=5"
    steps: int | None = None
    seconds: float | None = None
    scored: table.Row | None = None  # the leaderboard row whose FID, d and MiFID are shown
    public: float | None = None  # Kaggle's public MiFID
    latest: datetime = table.NEVER  # of the last training or scoring: the order of entries with no MiFID
    images: list[Path] = field(default_factory=list)  # scored sets of this entry, newest first

    @property
    def local_mifid(self) -> float:
        return self.scored.mifid if self.scored and self.scored.mifid is not None else float("inf")


def collect(cfg: Config) -> list[Entry]:
    """Every entry, best first: by local MiFID where known, then by public MiFID, then newest first. The runs
    of a local sweep's or search's trials are left to their sections (their scores are of a subset, not a
    submission's)."""
    entries: dict[str, Entry] = {}
    runs_dir, trials = cfg.data_dir / "runs", trial_runs(cfg.submissions_dir)
    for folder in sorted(runs_dir.iterdir()) if runs_dir.is_dir() else []:
        if (folder / "config.toml").is_file() and not folder.name.startswith(trials):
            entries[folder.name] = Entry(key=folder.name, run=folder.name, run_dir=folder)
    for row in table.read(table.csv_path(cfg.submissions_dir)):
        key = _key(row)
        if key not in entries:
            entries[key] = _kaggle_entry(cfg, key, row) if row.kernel else Entry(
                key=key, run=row.run or UNKNOWN_RUN)
        _add_row(entries[key], row)
    for entry in entries.values():
        _read_run(entry)
    newest_first = sorted(entries.values(), key=lambda e: e.latest, reverse=True)
    return sorted(newest_first, key=_rank)  # stable: entries without a MiFID stay newest first


def trial_runs(submissions: Path) -> tuple[str, ...]:
    """What the run folders of every sweep's and search's trials begin with (none without one: optuna, which
    the search package imports, is then not needed)."""
    journals = [(kind, p.parent.name) for kind, home in (("sweep", "sweeps"), ("search", "search"))
                for p in sorted((Path(submissions) / home).glob("*/journal.log"))]
    if not journals:
        return ()
    from ..search.local import run_prefix

    return tuple(run_prefix(kind, name) for kind, name in journals)


def _key(row: table.Row) -> str:
    run = row.run or UNKNOWN_RUN
    if row.kernel:
        return f"{run} ({row.kernel})"
    return f"{UNKNOWN_RUN} {row.images}" if run == UNKNOWN_RUN else run


def _kaggle_entry(cfg: Config, key: str, row: table.Row) -> Entry:
    """A Kaggle kernel version's entry, with its fetched output where it is here: the training files the
    notebook keeps under run/ (or, for images generated from a train kernel's run, that run's fetched
    summary), and its images.zip."""
    entry = Entry(key=key, run=row.run or UNKNOWN_RUN, kernel=row.kernel, trained_by=row.trained_by)
    found = _KERNEL_VERSION.search(row.kernel)
    fetched = cfg.submissions_dir / "kaggle" / found.group(1) if found else None
    trainer = entry.trained_by.split(" ")[0].rpartition("/")[2]
    trained = cfg.submissions_dir / "kaggle" / "train" / trainer / "runs" / entry.run if trainer else None
    if trained is not None and (trained / "config.toml").is_file():
        entry.run_dir = trained
    elif fetched is not None and (fetched / "run").is_dir():
        entry.run_dir = fetched / "run"
    if fetched is not None and (fetched / "images.zip").is_file():
        entry.images.append(fetched / "images.zip")
    return entry


def _add_row(entry: Entry, row: table.Row) -> None:
    """Fold one leaderboard row into its entry (the scoring shown: table.standing)."""
    entry.family = entry.family or row.model
    entry.public = row.public_mifid if row.public_mifid is not None else entry.public
    entry.latest = max(entry.latest, row.time or table.NEVER)
    if row.images:
        entry.images.insert(0, Path(row.images))
    entry.scored = table.standing([r for r in (entry.scored, row) if r is not None])


def _read_run(entry: Entry) -> None:
    """Family, settings changed from the preset, steps and training time, from the run's own files."""
    if entry.run_dir is None:
        return
    settings = _settings(entry.run_dir / "config.toml")
    if settings:
        entry.family = settings.get("train", {}).get("model", entry.family)
        entry.changed = changed_settings(settings)
    last = _last_log_row(entry.run_dir / "losses.csv")
    if last:
        entry.steps, entry.seconds = int(float(last["step"])), float(last["seconds"])
        mtime = (entry.run_dir / "losses.csv").stat().st_mtime
        entry.latest = max(entry.latest, datetime.fromtimestamp(mtime))


def _settings(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
        values = tomllib.loads(text)
    except (OSError, tomllib.TOMLDecodeError):
        return {}
    first = text.splitlines()[0] if text else ""
    values["preset"] = first.removeprefix("# preset:").strip() if first.startswith("# preset:") else "default"
    return values


def changed_settings(settings: dict[str, Any]) -> list[str]:
    """`section.key=value` for each model-deciding setting of a run's config.toml that its preset does not
    have; keys only one side knows (an older or newer pipeline's) are left out."""
    preset = settings["preset"]
    try:
        base = load_config(preset)
    except UserError:
        return [f"(preset '{preset}' is not here: settings not compared)"]
    model = settings.get("train", {}).get("model", base.train.model)
    sections = base.sections()
    changed = []
    for name in (*COMPARED, model):
        if name not in sections:
            continue
        theirs = json.loads(json.dumps(dataclasses.asdict(sections[name])))  # tuples as lists, as in TOML
        changed += [f"{name}.{k}={json.dumps(v)}" for k, v in settings.get(name, {}).items()
                    if (name, k) not in NOT_COMPARED and k in theirs and theirs[k] != v]
    return changed


def _last_log_row(path: Path) -> dict[str, str] | None:
    """The last complete row of a run's losses.csv (a row cut short by a kill is skipped)."""
    try:
        with open(path, newline="") as fh:
            rows = [r for r in csv.DictReader(fh) if r.get("step") and r.get("seconds")]
    except OSError:
        return None
    for row in reversed(rows):
        try:
            float(row["step"]), float(row["seconds"])
        except ValueError:
            continue
        return row
    return None


def _rank(entry: Entry) -> tuple[int, float]:
    if entry.local_mifid < float("inf"):
        return (0, entry.local_mifid)
    if entry.public is not None:
        return (1, entry.public)
    return (2, 0.0)
