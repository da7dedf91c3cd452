"""The leaderboard page's section per sweep: one row per variant, best (lowest local MiFID) first.

Each row: the variant, its state (queued, running, done, failed with its log's last line), the settings that
differ from the sweep's base, steps and training time, FID, d and MiFID of its scoring subset (the same photos
and reference for every variant), and the same fixed photos turned into Monets by it: rendered through its
checkpoint where the run is here (local), else the pictures its Kaggle kernel kept (sweep/thumbs/).
"""
from __future__ import annotations

import html
from pathlib import Path
from urllib.parse import quote

from ..sweeps.state import SweepState, VariantState, folders
from . import thumbs
from .runs import Entry

COLUMNS = ("#", "variant", "state", "settings changed from the base", "steps", "training time", "FID", "d",
           "local MiFID", "fixed photos &rarr; Monet")
CLASSES = ("rank", "variant", "state", "settings", "steps", "time", "fid", "distance", "mifid", "pictures")


def sections(submissions: Path, assets: Path, photos: list[Path]) -> tuple[str, set[str]]:
    """The HTML of every sweep's section, and the asset folders it uses."""
    parts, used = [], set()
    for folder in folders(submissions):
        state = SweepState.load(folder / "state.json")
        rows = []
        for rank, v in enumerate(state.ranked(), 1):
            name = f"sweep-{state.name}-{_safe(v.name)}"
            used.add(name)
            rows.append(_row(rank, v, assets, name, photos))
        parts.append(_section(state, rows))
    return "".join(parts), used


def _section(state: SweepState, rows: list[str]) -> str:
    header = "<tr>" + "".join(f"<th>{c}</th>" for c in COLUMNS) + "</tr>"
    submitted = f"; submitted: {_e(state.submitted)}" if state.submitted else ""
    return (f"<h2>Sweep {_e(state.name)}</h2>\n<p>{len(rows)} variants on {_e(state.backend)}, from "
            f"<code>{_e(state.file)}</code>; best first by local MiFID (the same photos and reference "
            f"paintings for every variant){submitted}.</p>\n"
            f'<table class="sweep" data-sweep="{_e(state.name)}">\n<thead>{header}</thead>\n<tbody>\n'
            + "\n".join(rows) + "\n</tbody>\n</table>\n")


def _row(rank: int, v: VariantState, assets: Path, name: str, photos: list[Path]) -> str:
    run_dir = Path(v.run_dir) if v.run_dir else None
    entry = Entry(key=name, run=run_dir.name if run_dir else v.name, run_dir=run_dir,
                  images=[Path(v.thumbs)] if v.thumbs else [])
    folder = assets / name
    folder.mkdir(parents=True, exist_ok=True)
    names, kind = thumbs.pictures(entry, photos, folder)
    pictures = "".join(f'<img class="{kind}" src="{quote(assets.name)}/{quote(name)}/{quote(n)}" '
                       f'alt="{_e(v.name)} {i + 1}">' for i, n in enumerate(names)) or "no pictures yet"
    scores = (f"{x:.{digits}f}" if x is not None else "-"
              for x, digits in ((v.fid, 3), (v.distance, 4), (v.mifid, 3)))
    cells = [str(rank), f"<b>{_e(v.name)}</b>", _e(v.state + (f": {v.error}" if v.error else "")),
             "<br>".join(_e(c) for c in v.changed) or "the base",
             f"{v.steps:,}" if v.steps is not None else "-", _minutes(v.seconds), *scores, pictures]
    tds = "".join(f'<td class="{c}">{cell}</td>' for c, cell in zip(CLASSES, cells, strict=True))
    return f'<tr class="variant" data-variant="{_e(v.name)}">{tds}</tr>'


def _minutes(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds / 60:.1f} min"


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name)


def _e(text: str) -> str:
    return html.escape(text, quote=True)
