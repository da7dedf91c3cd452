"""The leaderboard page's section per sweep: one row per variant, best (lowest local MiFID) first.

Each row: the columns of the table `sweep` prints, from the same description (sweeps/state.py COLUMNS: the
variant, its state, MiFID, FID and d of its scoring subset, steps, training time, the settings that differ
from the sweep's base), then the same fixed photos turned into Monets by it: rendered through its checkpoint
where the run is here (local), else the pictures its Kaggle kernel kept (sweep/thumbs/).
"""
from __future__ import annotations

import html
from pathlib import Path
from urllib.parse import quote

from ..engine.text import slug
from ..sweeps.state import COLUMNS, SweepState, VariantState, folders, run_name
from . import thumbs
from .runs import Entry


def sections(submissions: Path, assets: Path, photos: list[Path]) -> tuple[str, set[str]]:
    """The HTML of every sweep's section, and the asset folders it uses."""
    parts, used = [], set()
    for folder in folders(submissions):
        state = SweepState.load(folder / "state.json")
        rows = []
        for rank, v in enumerate(state.ranked(), 1):
            name = run_name(state.name, slug(v.name))
            used.add(name)
            rows.append(_row(rank, v, assets, name, photos))
        parts.append(_section(state, rows))
    return "".join(parts), used


def _section(state: SweepState, rows: list[str]) -> str:
    titles = ("rank", *(c.title for c in COLUMNS), "fixed photos &rarr; Monet")
    header = "<tr>" + "".join(f"<th>{t}</th>" for t in titles) + "</tr>"
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
    cells = "".join(f'<td class="{c.key}">' + "<br>".join(map(_e, c.lines(v))) + "</td>" for c in COLUMNS)
    return (f'<tr class="variant" data-variant="{_e(v.name)}"><td class="rank">{rank}</td>{cells}'
            f'<td class="pictures">{pictures}</td></tr>')


def _e(text: str) -> str:
    return html.escape(text, quote=True)
