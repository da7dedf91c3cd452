"""The leaderboard page's section per sweep: one row per variant, best (lowest local MiFID) first.

Each row: the columns of the table `sweep` prints, from the same description (search/variants.py COLUMNS:
the variant, its state, MiFID, FID and d of its scoring subset, steps, training time, the settings that differ
from the sweep's base), then the same fixed photos turned into Monets by it: rendered through its checkpoint
where the run is here (local), else the pictures its Kaggle kernel kept (sweep/thumbs/). Read from each
sweep's journal (submissions/sweeps/<name>/journal.log) alone.
"""
from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from ..engine.text import slug
from . import thumbs
from .runs import Entry

if TYPE_CHECKING:
    from ..search.variants import VariantRow


def sections(submissions: Path, assets: Path, photos: list[Path]) -> tuple[str, set[str]]:
    """The HTML of every sweep's section, and the asset folders it uses (none without a sweep: optuna is then
    never imported, so the page is written where it is not installed)."""
    journals = sorted((Path(submissions) / "sweeps").glob("*/journal.log"))
    if not journals:
        return "", set()
    from ..search.local import run_prefix
    from ..search.study import existing
    from ..search.variants import variant_rows

    parts, used = [], set()
    for journal in journals:
        name = journal.parent.name
        study = existing(journal.parent, name)
        rows = []
        for rank, v in enumerate(variant_rows(study), 1):
            folder = f"{run_prefix('sweep', name)}{slug(v.name)}"  # named as the variant's run folder
            used.add(folder)
            rows.append(_row(rank, v, assets, folder, photos))
        attrs = study.user_attrs
        parts.append(_section(name, attrs.get("backend", ""), attrs.get("file", ""),
                              attrs.get("submitted", ""), rows))
    return "".join(parts), used


def _section(name: str, backend: str, file: str, submitted: str, rows: list[str]) -> str:
    from ..search.variants import COLUMNS

    titles = ("rank", *(c.title for c in COLUMNS), "fixed photos &rarr; Monet")
    header = "<tr>" + "".join(f"<th>{t}</th>" for t in titles) + "</tr>"
    said = f"; submitted: {_e(submitted)}" if submitted else ""
    return (f"<h2>Sweep {_e(name)}</h2>\n<p>{len(rows)} variants on {_e(backend)}, from "
            f"<code>{_e(file)}</code>; best first by local MiFID (the same photos and reference "
            f"paintings for every variant){said}.</p>\n"
            f'<table class="sweep" data-sweep="{_e(name)}">\n<thead>{header}</thead>\n<tbody>\n'
            + "\n".join(rows) + "\n</tbody>\n</table>\n")


def _row(rank: int, v: VariantRow, assets: Path, name: str, photos: list[Path]) -> str:
    from ..search.variants import COLUMNS

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
