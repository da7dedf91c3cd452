"""The leaderboard page's section per search: each trial's local MiFID over its sessions, drawn (one line a
trial: the complete ones in colour, the pruned ones grey, where successive halving stopped them) and listed
(the table `search --status` prints: state, MiFID by session, GPU-hours, settings), best first. Read from
each study's journal (submissions/search/<name>/journal.log) alone.
"""
from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..search.scheduler import TrialRow

WIDTH, HEIGHT, PAD = 360, 160, 24
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf")


def sections(submissions: Path) -> str:
    """The HTML of every search's section ("" without a search: optuna is then never imported, so the page
    is written where it is not installed, as in Kaggle's image)."""
    journals = sorted((Path(submissions) / "search").glob("*/journal.log"))
    if not journals:
        return ""
    import optuna

    from ..search.scheduler import rows

    parts = []
    for journal in journals:
        storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
        for summary in optuna.get_all_study_summaries(storage):
            study = optuna.load_study(study_name=summary.study_name, storage=storage)
            parts.append(_section(summary.study_name, journal, rows(study)))
    return "".join(parts)


def _section(name: str, journal: Path, trials: list[TrialRow]) -> str:
    header = "".join(f"<th>{t}</th>" for t in ("rank", "trial", "state", "MiFID by session", "GPU-hours",
                                                "settings"))
    body = "\n".join(
        f'<tr class="trial" data-trial="{r.number}"><td>{i}</td><td>{r.number}</td>'
        f"<td>{_e(r.state + (': ' + r.error if r.error else ''))}</td>"
        f"<td>{' &rarr; '.join(f'{v:.3f}' for v in r.mifid) or '-'}</td><td>{r.hours:.2f}</td>"
        f"<td>{'<br>'.join(map(_e, r.settings()))}</td></tr>" for i, r in enumerate(trials, 1))
    spent = sum(r.hours for r in trials)
    return (f"<h2>Search {_e(name)}</h2>\n<p>{len(trials)} trials, {spent:.1f} GPU-hours spent; local MiFID "
            f"after each session (lower is better), from <code>{_e(str(journal))}</code>.</p>\n"
            f"{_chart(trials)}\n<table class=\"search\" data-search=\"{_e(name)}\">\n<thead><tr>{header}"
            f"</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>\n")


def _chart(trials: list[TrialRow]) -> str:
    """Each trial's MiFID over its sessions as a line (an SVG: the page stays one file with its assets)."""
    from ..search.scheduler import TrialStatus  # optuna: only once there is a search to draw

    values = [v for r in trials for v in r.mifid]
    sessions = max((len(r.mifid) for r in trials), default=0)
    if not values:
        return "<p>no session has reported yet</p>"
    low, high = min(values), max(values)
    span = (high - low) or 1.0

    def point(k: int, v: float) -> tuple[str, str]:
        x = PAD + (WIDTH - 2 * PAD) * (k / max(1, sessions - 1))
        return f"{x:.1f}", f"{PAD + (HEIGHT - 2 * PAD) * (v - low) / span:.1f}"

    lines = []
    for i, r in enumerate(trials):
        colour = "#bbbbbb" if r.state is TrialStatus.PRUNED else COLOURS[i % len(COLOURS)]
        pts = [point(k, v) for k, v in enumerate(r.mifid)]
        dots = "".join(f'<circle cx="{x}" cy="{y}" r="3" fill="{colour}"/>' for x, y in pts)
        lines.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" '
                     f'points="{" ".join(f"{x},{y}" for x, y in pts)}"><title>trial {r.number}: {r.state}'
                     f"</title></polyline>{dots}")
    axis = (f'<text x="{PAD}" y="{HEIGHT - 4}" font-size="10">session 1</text>'
            f'<text x="{WIDTH - PAD - 40}" y="{HEIGHT - 4}" font-size="10">session {sessions}</text>'
            f'<text x="2" y="{PAD - 6}" font-size="10">MiFID {low:.1f} (top) to {high:.1f}</text>')
    return (f'<svg class="search-chart" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" '
            f'role="img" aria-label="MiFID by session">{axis}{"".join(lines)}</svg>')


def _e(text: str) -> str:
    return html.escape(text, quote=True)
