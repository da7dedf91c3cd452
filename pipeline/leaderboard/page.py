"""`python -m pipeline leaderboard`: submissions/leaderboard.html, one static page to choose a run by.

One row per run (trained here or scored, see runs.py), best first: its name, family, the settings that
differ from its preset, steps and training time, FID, d and MiFID where scored, Kaggle's public MiFID where
submitted, the same fixed inputs turned into Monets by it (thumbs.py), and its loss plot and sample GIF.
Everything the page shows is copied into leaderboard_files/ beside it and referenced by relative paths, so
the page needs no server and still works when submissions/ is moved or copied elsewhere. Every `train`,
`score`, `submit` and `submissions` refreshes it (their commands' `after` hook, pipeline/cli.py);
pictures are made again only when their source changed.
A small script marks each image loaded or not once the page has loaded: what `--check` reads back from a
headless Chromium (browser.py).
"""
from __future__ import annotations

import argparse
import hashlib
import html
import shutil
import time
from pathlib import Path
from urllib.parse import quote

from ..config import Config
from ..engine import atomic
from ..engine.text import duration, slug
from ..generate.provenance import UNKNOWN_RUN
from ..scoring import table
from . import searches, sweeps, thumbs
from .runs import Entry, collect

PAGE = "leaderboard.html"
ASSETS = "leaderboard_files"  # beside the page: every picture and file it shows
INPUTS = "_inputs"  # the fixed photos' own thumbnails
LINKED = (("loss_plot.png", "loss plot"), ("samples.gif", "samples"))


def page_path(cfg: Config) -> Path:
    return cfg.submissions_dir / PAGE


def refresh(cfg: Config) -> Path:
    """Write the page from what the runs and the leaderboard hold now; returns its path."""
    target = page_path(cfg)
    assets = _folder(target.parent, ASSETS)
    entries = collect(cfg)
    photos = thumbs.fixed_photos(cfg.raw_dir / "photo_jpg")
    inputs = thumbs.input_pictures(photos, _folder(assets, INPUTS)) if photos else []
    not_scored = _not_scored(cfg)
    rows = [_row(rank, entry, assets, photos, not_scored) for rank, entry in enumerate(entries, 1)]
    sweep_sections, sweep_folders = sweeps.sections(cfg.submissions_dir, assets, photos)
    used = {_slug(e.key) for e in entries} | {INPUTS} | sweep_folders
    for stale in (p for p in assets.iterdir() if p.is_dir() and p.name not in used):
        shutil.rmtree(stale, ignore_errors=True)
    atomic.write_text(target, _document(rows, inputs, len(entries),
                                        sweep_sections + searches.sections(cfg.submissions_dir)))
    print(f"leaderboard: {target} ({len(entries)} run{'s' if len(entries) != 1 else ''})")
    return target


def command(cfg: Config, args: argparse.Namespace) -> int:
    """`leaderboard`: write the page; with --check, then load it in headless Chromium."""
    path = refresh(cfg)
    if args.check:
        from .browser import check_page

        print(f"check-page: {check_page(path)}")
    return 0


def _folder(assets: Path, name: str) -> Path:
    folder = assets / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _slug(key: str) -> str:
    """A folder name for an entry: readable, and unique through a short hash of the whole key."""
    return f"{slug(key)[:48].rstrip('-')}-{hashlib.sha1(key.encode()).hexdigest()[:6]}"


def _not_scored(cfg: Config) -> str:
    """What an entry without a local score says: why it has none."""
    from ..metrics.features import hub_weights_path

    setting = Path(cfg.score.weights).expanduser() if cfg.score.weights else None
    if (setting is not None and setting.is_file()) or hub_weights_path().is_file():
        return "not scored yet (make score)"
    return "not scored: no FID weights"


def _row(rank: int, entry: Entry, assets: Path, photos: list[Path], not_scored: str) -> str:
    where = _slug(entry.key)
    folder = _folder(assets, where)
    names, kind = thumbs.pictures(entry, photos, folder)
    links = [(label, _copy(entry.run_dir / name, folder / name)) for name, label in LINKED
             if entry.run_dir is not None and (entry.run_dir / name).is_file()]
    under = entry.kernel or (str(entry.images[0]) if entry.run == UNKNOWN_RUN and entry.images else "")
    under += f", trained by {entry.trained_by}" if entry.trained_by else ""
    under_line = f'<br><span class="under">{_e(under)}</span>' if under else ""
    settings = ("<br>".join(_e(c) for c in entry.changed) or "as its preset") if entry.run_dir else "-"
    steps = f"{entry.steps:,}" if entry.steps is not None else "-"
    pictures = "".join(f'<img class="{kind}" src="{_src(ASSETS, where, n)}" alt="{_e(entry.run)} {i + 1}">'
                       for i, n in enumerate(names)) or "no pictures"
    files = " ".join(f'<a href="{_src(ASSETS, where, n)}">{label}</a>' for label, n in links) or "-"
    cells = [
        f'<td class="rank">{rank}</td>',
        f'<td class="run"><b>{_e(entry.run)}</b>{under_line}</td>',
        f'<td class="family">{_e(entry.family or UNKNOWN_RUN)}</td>',
        f'<td class="settings">{settings}</td>',
        f'<td class="steps">{steps}</td>',
        f'<td class="time">{duration(entry.seconds) if entry.seconds is not None else "-"}</td>',
        *_score_cells(entry, not_scored),
        f'<td class="public">{_e(table.text(entry.public)) or "-"}</td>',
        f'<td class="pictures">{pictures}</td>',
        f'<td class="files">{files}</td>',
    ]
    return f'<tr class="entry" data-key="{_e(entry.key)}">' + "".join(cells) + "</tr>"


def _score_cells(entry: Entry, not_scored: str) -> list[str]:
    if entry.scored is None:
        return [f'<td class="not-scored" colspan="3">{_e(not_scored)}</td>']
    row, cells = entry.scored, entry.scored.cells()
    against = (f"{cells['n_images'] or '?'} images ({cells['scope']}) vs {cells['n_real'] or '?'} reference "
               "paintings")
    if row.left_out:
        against += f", {row.left_out} training paintings left out"
    return [f'<td class="fid">{_e(cells["fid"])}</td>', f'<td class="distance">{_e(cells["distance"])}</td>',
            f'<td class="mifid" title="{_e(against)}">{_e(cells["mifid"])}</td>']


def _copy(source: Path, target: Path) -> str:
    """Copy a run's file beside the page unless the copy there is already the same; returns its name."""
    stat = source.stat()
    if not (target.is_file() and target.stat().st_size == stat.st_size
            and target.stat().st_mtime_ns == stat.st_mtime_ns):
        with atomic.atomic_path(target) as tmp:
            shutil.copy2(source, tmp)
    return target.name


def _src(*parts: str) -> str:
    return "/".join(quote(p) for p in parts)


def _e(text: str) -> str:
    return html.escape(text, quote=True)


HEAD = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Local leaderboard - Monet pipeline</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; }
th, td { border-bottom: 1px solid #ddd; padding: 6px 8px; vertical-align: top; text-align: left; }
th { background: #f4f4f4; position: sticky; top: 0; }
td.fid, td.distance, td.mifid, td.public, td.steps, td.rank { text-align: right; white-space: nowrap; }
td.mifid, td.public { font-weight: bold; }
td.not-scored { color: #888; font-style: italic; }
td.settings { font: 12px monospace; }
.under { color: #666; font-size: 12px; }
td.pictures, td.run { white-space: nowrap; }
table.sweep td.variant { font-weight: bold; }
img.fixed, img.photo { width: 96px; height: 96px; margin-right: 2px; }
img.grid { width: 384px; }
img[data-loaded="no"] { outline: 3px solid red; }
</style>
</head>
"""

SCRIPT = """<script>
// Marks every image once the page has loaded: what `make check-page` reads back from headless Chromium.
window.addEventListener("load", function () {
  for (const img of document.images) {
    img.dataset.loaded = img.complete && img.naturalWidth > 0 ? "yes" : "no";
  }
  document.body.dataset.images = String(document.images.length);
});
</script>
"""


COLUMNS = ("#", "run", "family", "settings changed from its preset", "steps", "training time", "FID", "d",
           "local MiFID", "public MiFID", "fixed inputs &rarr; Monet", "files")
ABOUT = ("best first: by local MiFID where scored, then by Kaggle's public MiFID, then newest first; lower "
         "is better. A local MiFID is computed against the reference paintings its tooltip names (by default "
         "the 300 training paintings: it ranks runs, it is not the leaderboard's number); the public MiFID "
         "is Kaggle's, for a submitted kernel version.")
INPUTS_NOTE = ("Each run's pictures are these photos turned into Monets (noise families: fixed noise, seed "
               "0; a wide picture is the run's latest sample grid instead).")


def _document(rows: list[str], inputs: list[str], n_runs: int, sweep_sections: str) -> str:
    fixed = "".join(f'<img class="photo" src="{_src(ASSETS, INPUTS, n)}" alt="fixed photo {i + 1}">'
                    for i, n in enumerate(inputs))
    header = "<tr>" + "".join(f"<th>{c}</th>" for c in COLUMNS) + "</tr>"
    rows = rows or [f'<tr><td colspan="{len(COLUMNS)}">No runs yet: <code>make demo</code> or <code>make '
                    'train</code> makes one.</td></tr>']
    return (HEAD + "<body>\n<h1>Local leaderboard</h1>\n"
            f"<p>{n_runs} run{'s' if n_runs != 1 else ''}, {ABOUT} Written {time.strftime('%Y-%m-%d %H:%M')} "
            "by <code>python -m pipeline leaderboard</code>.</p>\n"
            + (f'<p class="inputs">Fixed photos: {fixed}<br>{INPUTS_NOTE}</p>\n' if fixed else "")
            + f'<table id="leaderboard">\n<thead>{header}</thead>\n<tbody>\n' + "\n".join(rows)
            + "\n</tbody>\n</table>\n" + sweep_sections + SCRIPT + "</body>\n</html>\n")
