"""The search's scheduler over a real Optuna journal, driven by a synthetic MiFID: successive halving's shape
(9 x 1, the best 3 x 3 more, the best 1 x 9 more), decisions that survive a restart, the gpu_hours cap, and
two processes sharing one journal without ever running the same session."""
from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from pipeline import plugins
from pipeline.jobs.push import QuotaExhausted
from pipeline.leaderboard import searches
from pipeline.search import spec
from pipeline.search.scheduler import Scheduler, rows
from pipeline.search.study import open_study

SEARCH = """preset = "demo"
[search]
trials = {trials}
gpu_hours = {gpu_hours}
sessions = 3
first_hours = 1.0
eta = 3
seed = 0
backend = "local"
[search.space]
"train.lr" = {{low = 1e-5, high = 1e-3, log = true}}
"""


def search_file(tmp_path: Path, trials: int = 9, gpu_hours: float = 27) -> spec.Search:
    path = tmp_path / "shape.toml"
    path.write_text(SEARCH.format(trials=trials, gpu_hours=gpu_hours))
    return spec.load(str(path))


def mifid(params: dict, session: int) -> float:
    """A learning curve: a lower learning rate is better here, and every session improves a trial."""
    return 50 + 1e4 * params["train.lr"] + 20 / session


def scheduler(search: spec.Search, folder: Path) -> Scheduler:
    """A scheduler on the journal in `folder`, opened anew: what a command run again starts from."""
    return Scheduler(open_study(search, folder), search, 9.0, folder)


def run_one(sched: Scheduler) -> tuple[int, int] | None:
    """Hand out one session and report it at once; None when nothing is left."""
    session = sched.next()
    if session is None:
        return None
    sched.report(session.trial, session.session, mifid(session.params, session.session), session.hours)
    return session.trial, session.session


def test_successive_halving_over_sessions_and_a_restart_after_every_report(tmp_path):
    search = search_file(tmp_path)
    ran = []
    while (done := run_one(scheduler(search, tmp_path / "journal"))) is not None:  # a new process each time
        ran.append(done)
    assert [k for _, k in ran].count(1) == 9 and [k for _, k in ran].count(2) == 3
    assert [k for _, k in ran].count(3) == 1  # 9 x 1 h + 3 x 3 h + 1 x 9 h = 27 h
    rows = scheduler(search, tmp_path / "journal").rows()
    assert [r.state for r in rows].count("complete") == 1 and [r.state for r in rows].count("pruned") == 8
    best = rows[0]
    assert best.state == "complete" and len(best.mifid) == 3 and best.hours == pytest.approx(13.0)
    # the promoted ones are the best at each rung: the best trial is the lowest learning rate of all
    assert best.params["train.lr"] == min(r.params["train.lr"] for r in rows)
    third = sorted((r for r in rows if len(r.mifid) >= 2), key=lambda r: r.params["train.lr"])
    assert len(third) == 3 and third[0].number == best.number
    # a finished search, run again, hands out nothing
    assert scheduler(search, tmp_path / "journal").next() is None


def test_the_page_draws_each_trials_mifid_over_its_sessions(tmp_path):
    search = search_file(tmp_path, trials=3)
    folder = tmp_path / "submissions" / "search" / search.name
    while run_one(scheduler(search, folder)) is not None:
        pass
    page = searches.sections(tmp_path / "submissions")
    assert "<h2>Search shape</h2>" in page and page.count('<tr class="trial"') == 3
    assert page.count("<polyline") == 3  # one line a trial, over the sessions it got
    chart = page[page.index("<svg"):page.index("</svg>")]
    assert chart.count('fill="#bbbbbb"') == sum(len(r.mifid) for r in rows(open_study(search, folder))
                                               if r.state == "pruned")  # the pruned ones grey
    assert searches.sections(tmp_path / "elsewhere") == ""  # no search, no section (and no optuna import)


def test_a_session_handed_out_and_never_reported_is_handed_out_again(tmp_path):
    search = search_file(tmp_path, trials=2)
    first = scheduler(search, tmp_path / "j").next()
    again = scheduler(search, tmp_path / "j").next()  # the command was killed before the session ended
    assert (again.trial, again.session) == (first.trial, first.session)


def test_the_search_stops_handing_out_sessions_at_its_gpu_hours(tmp_path):
    search = search_file(tmp_path, trials=9, gpu_hours=5)
    sched = scheduler(search, tmp_path / "j")
    for _ in range(5):
        run_one(sched)
    with pytest.raises(QuotaExhausted, match="would pass its gpu_hours = 5 .5.0 h spent or held."):
        sched.next()


def _worker(folder: str, path: str, out: str) -> None:
    plugins.load()  # a spawned process starts bare, as every entry point of the pipeline does
    search = spec.load(path)
    sched = scheduler(search, Path(folder))
    ran = []
    while (done := run_one(sched)) is not None:
        ran.append(done)
    Path(out).write_text("\n".join(f"{t} {k}" for t, k in ran))


def test_two_processes_on_one_journal_never_run_the_same_session(tmp_path):
    search = search_file(tmp_path, trials=6, gpu_hours=100)
    open_study(search, tmp_path / "shared")  # created once, as the first command would
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=(str(tmp_path / "shared"), str(search.path),
                                               str(tmp_path / f"ran-{i}"))) for i in (1, 2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    ran = [tuple(line.split()) for i in (1, 2) for line in (tmp_path / f"ran-{i}").read_text().splitlines()]
    assert len(ran) == len(set(ran))  # no session twice
    assert sum(k == "1" for _, k in ran) == 6  # every trial's first session, between the two of them
