"""submissions/leaderboard.csv: one row per scoring of a set of images, and Kaggle's public score beside it.

A row is written by every `score` (local MiFID of a folder or zip, filed under the run that made the
images) and by `submit` (the kernel version's public MiFID, joined to the row of that version's images,
or a row of its own when those were not scored here). Columns are only ever appended: a file written by
an older version loads as it is (its rows leave the new cells empty) and is rewritten with the full header
on its next change.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from pathlib import Path

from ..config.legacy import upgrade_row
from ..engine import atomic, store
from ..engine.text import aligned

COLUMNS = ("time", "source", "run", "model", "config_hash", "n_images", "fid", "distance", "mifid", "scope",
           "images", "n_real", "left_out", "step", "weights", "kernel", "submission", "public_mifid",
           "trained_by")
PRINTED = COLUMNS[:10] + ("public_mifid",)  # the text table: what ranks runs, and the public number
SHOWN = 15  # rows printed


def csv_path(submissions_dir: Path) -> Path:
    return Path(submissions_dir) / "leaderboard.csv"


def read(path: Path) -> list[dict[str, str]]:
    """Every row, each with every column (empty where an older file had none)."""
    try:
        with open(path, newline="") as fh:
            return [upgrade_row(row, COLUMNS) for row in csv.DictReader(fh)]
    except FileNotFoundError:
        return []


def write(path: Path, rows: Iterable[dict[str, str]]) -> None:
    """Rewrite the file atomically with the current header."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore", restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic.write_text(path, buf.getvalue())


def append(path: Path, row: dict[str, str]) -> list[dict[str, str]]:
    """Add one row (under the file's lock: a command scoring at the same time loses nothing); returns every
    row."""
    return store.update(path, read, write, lambda rows: [*rows, upgrade_row(row, COLUMNS)])


def record_public(path: Path, row: dict[str, str]) -> list[dict[str, str]]:
    """Set the public score `row` carries (kernel, submission, public_mifid) on the rows of that kernel
    version; a version with no row yet (its images were not scored here) gets `row` as its own."""
    def change(rows: list[dict[str, str]]) -> list[dict[str, str]]:
        mine = [r for r in rows if r["kernel"] == row["kernel"]]
        for r in mine:
            r.update(submission=row["submission"], public_mifid=row["public_mifid"])
        return rows if mine else [*rows, upgrade_row(row, COLUMNS)]

    return store.update(path, read, write, change)


def as_float(text: str) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return float("inf")  # an empty or damaged cell sorts last instead of breaking the table


def format_table(rows: list[dict[str, str]]) -> str:
    """The rows as an aligned text table, best (lowest) local MiFID first; '-' for an empty cell."""
    ranked = sorted(rows, key=lambda r: as_float(r.get("mifid", "")))
    lines = aligned([("rank", *PRINTED)] + [(str(i), *(r.get(c) or "-" for c in PRINTED))
                                            for i, r in enumerate(ranked[:SHOWN], 1)])
    more = f"\n... and {len(ranked) - SHOWN} more in the CSV" if len(ranked) > SHOWN else ""
    return "local leaderboard (lower MiFID is better):\n" + "\n".join(lines) + more
