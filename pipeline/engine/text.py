"""Text shapes every part of the pipeline prints the same way: a duration, a slug, an aligned table.

One formatter each, so that a time reads alike in a progress line, the sweep table and the leaderboard page,
and a name made into a slug is the same slug for a run folder, a page's asset folder and a Kaggle notebook.
"""
from __future__ import annotations

from datetime import datetime, timezone


def duration(seconds: float) -> str:
    """15m20s, 45s, 2h05m."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def slug(text: str) -> str:
    """Lower-case ASCII words joined by '-': Kaggle's own rule (the kaggle client names a new notebook after
    `slug(title)`), so a slug made here is the one Kaggle makes. Imported here, not at the top: a notebook
    prints durations on an image that need not carry python-slugify."""
    from slugify import slugify

    return slugify(text)


def aligned(lines: list[tuple[str, ...]]) -> list[str]:
    """Rows of cells as text lines, each column as wide as its widest cell."""
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in lines]


def refreshes(when: datetime | None, now: datetime | None = None) -> str:
    """'in 2 days', 'in 5 h', 'within the hour' ('at an unknown time' without a date)."""
    if when is None:
        return "at an unknown time"
    hours = (when - (now or datetime.now(timezone.utc))).total_seconds() / 3600
    if hours >= 48:
        return f"in {hours / 24:.0f} days"
    return f"in {hours:.0f} h" if hours >= 1 else "within the hour"


def utc_now() -> str:
    """Now as an ISO time in UTC, to the second: how records say when something happened."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
