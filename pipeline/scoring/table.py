"""submissions/leaderboard.csv: one row per scoring of a set of images, and Kaggle's public score beside it.

A row is written by every `score` (local MiFID of a folder or zip, filed under the run that made the
images) and by `submit` (the kernel version's public MiFID, joined to the row of that version's images,
or a row of its own when those were not scored here). Every other module sees a row as a `Row` of typed
values; the CSV's text is read and written here only. Columns are only ever appended: a file written by an
older version loads as it is (config/legacy.py: its rows leave the new cells empty) and is rewritten with
the full header on its next change, always under the file's lock (engine/store.py), so two commands
scoring at once both keep their rows. A cell that cannot be read as its type (a hand-edited file) reads as
empty.
"""
from __future__ import annotations

import csv
import enum
import io
import typing
from collections.abc import Callable, Iterable
from dataclasses import astuple, dataclass, fields, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from ..config.legacy import upgrade_row
from ..engine import atomic, store
from ..engine.text import aligned
from ..generate.provenance import Provenance

SHOWN = 15  # rows printed
NEVER = datetime.min  # the time of a row whose time cell is empty or damaged: older than any other


class Scope(enum.Enum):
    """How much of a set of images a scoring saw."""

    FULL = "full"
    SUBSET = "subset"  # a seeded random subset (score.limit)


@dataclass(frozen=True)
class Row:
    """One scoring, or one public score; the fields, in order, are the CSV's columns (new ones go last)."""

    time: datetime | None = None  # local time of the scoring (or of the public score)
    source: str = ""  # where the images were made: local | kaggle
    run: str = ""  # the run that made the images (their provenance record), "unknown" without one
    model: str = ""  # its family
    config_hash: str = ""
    n_images: int | None = None  # images scored
    fid: float | None = None
    distance: float | None = None  # the memorisation distance d
    mifid: float | None = None  # the local MiFID
    scope: Scope | None = None
    images: str = ""  # the folder or zip scored
    n_real: int | None = None  # reference paintings
    left_out: int | None = None  # training paintings left out of the reference set
    step: int | None = None  # training steps behind the weights
    weights: str = ""  # raw | ema
    kernel: str = ""  # "owner/slug vN": the Kaggle kernel version that made the images
    submission: int | None = None  # Kaggle's number of the submission of those images
    public_mifid: float | None = None  # Kaggle's public score of that submission
    trained_by: str = ""  # "owner/slug-train-3 vN": the train kernel whose run made the images

    @classmethod
    def filed_under(cls, made_by: Provenance, **values: Any) -> Row:
        """A row filed under the run (and kernel version) that made the images; `values` give the rest."""
        return cls(run=made_by.run, model=made_by.family, config_hash=made_by.config_hash,
                   step=made_by.step or None, weights=made_by.weights if made_by.family else "",
                   kernel=made_by.kernel, trained_by=made_by.trained_by, **values)

    @classmethod
    def from_cells(cls, cells: dict[str, str]) -> Row:
        """The row of a CSV line's cells (a missing or unreadable cell is empty)."""
        return cls(**{name: _READ[name](cells.get(name) or "") for name in COLUMNS})

    def cells(self) -> dict[str, str]:
        """The row as the CSV's text ("" for an empty cell): also how a table or the page shows a value."""
        return {name: text(value) for name, value in zip(COLUMNS, astuple(self), strict=True)}


COLUMNS = tuple(f.name for f in fields(Row))
PRINTED = COLUMNS[:10] + ("public_mifid",)  # the text table: what ranks runs, and the public number


def text(value: Any) -> str:
    """A value as a cell of the CSV: "" for none; a float in the fewest digits that read back as it."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    return str(value.value if isinstance(value, enum.Enum) else value)


def number(cell: str) -> float | None:
    """A float from a cell or from Kaggle's text of a score; None for an empty or damaged one."""
    try:
        return float(cell)
    except ValueError:
        return None


def _whole(cell: str) -> int | None:
    try:
        return int(cell)
    except ValueError:
        return None


def _time(cell: str) -> datetime | None:
    """An ISO time as local time without a zone, as the pipeline writes it (one with a zone is converted)."""
    try:
        when = datetime.fromisoformat(cell)
    except ValueError:
        return None
    return when.astimezone().replace(tzinfo=None) if when.tzinfo else when


def _scope(cell: str) -> Scope | None:
    try:
        return Scope(cell)
    except ValueError:
        return None


_READERS: dict[Any, Callable[[str], Any]] = {str: str, int | None: _whole, float | None: number,
                                               datetime | None: _time, Scope | None: _scope}
_READ = {name: _READERS[kind] for name, kind in typing.get_type_hints(Row).items()}


def csv_path(submissions_dir: Path) -> Path:
    return Path(submissions_dir) / "leaderboard.csv"


def read(path: Path) -> list[Row]:
    """Every row, in the order they were written (an older file's rows with its missing cells empty)."""
    try:
        with open(path, newline="") as fh:
            return [Row.from_cells(upgrade_row(cells, COLUMNS)) for cells in csv.DictReader(fh)]
    except FileNotFoundError:
        return []


def _write(path: Path, rows: Iterable[Row]) -> None:
    """Rewrite the file atomically with the current header (only under its lock: append, record_public)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(row.cells() for row in rows)
    atomic.write_text(path, buf.getvalue())


def append(path: Path, row: Row) -> list[Row]:
    """Add one row (under the file's lock: a command scoring at the same time loses nothing); returns every
    row."""
    return store.update(path, read, _write, lambda rows: [*rows, row])


def record_public(path: Path, row: Row) -> list[Row]:
    """Set the public score `row` carries (submission, public_mifid) on the rows of its kernel version; a
    version with no row yet (its images were not scored here) gets `row` as its own. Returns every row."""
    def change(rows: list[Row]) -> list[Row]:
        if not any(r.kernel == row.kernel for r in rows):
            return [*rows, row]
        return [r if r.kernel != row.kernel else
                replace(r, submission=row.submission, public_mifid=row.public_mifid)
                for r in rows]

    return store.update(path, read, _write, change)


def standing(rows: Iterable[Row]) -> Row | None:
    """The scoring that stands for a set of rows: a full one over a subset, then the latest (of equals, the
    last written); None where none has a local MiFID."""
    scored = [r for r in rows if r.mifid is not None]
    return max(reversed(scored), key=lambda r: (r.scope is Scope.FULL, r.time or NEVER)) if scored else None


def format_table(rows: list[Row]) -> str:
    """The rows as an aligned text table, best (lowest) local MiFID first, unscored last; '-' for an empty
    cell."""
    ranked = sorted(rows, key=lambda r: (r.mifid is None, r.mifid or 0.0))
    lines = aligned([("rank", *PRINTED)] + [(str(i), *(r.cells()[c] or "-" for c in PRINTED))
                                            for i, r in enumerate(ranked[:SHOWN], 1)])
    more = f"\n... and {len(ranked) - SHOWN} more in the CSV" if len(ranked) > SHOWN else ""
    return "local leaderboard (lower MiFID is better):\n" + "\n".join(lines) + more
