"""The one job lifecycle (pipeline/jobs): names built and parsed by one type, one locked store that keeps
every record when two processes write at once, and one runner that follows several jobs within its share of
Kaggle's sessions, fetches each finished version's own output and tells the command's plan."""
from __future__ import annotations

import multiprocessing
from dataclasses import replace
from pathlib import Path

import pytest
from helpers import TINY_SUBMIT, tiny_config

from pipeline.jobs.record import Job, JobKind, JobName
from pipeline.jobs.runner import Ended, JobSpec, Plan, Runner
from pipeline.jobs.store import JobStore
from pipeline.kaggle.status import KernelStatus


@pytest.mark.parametrize("name", [JobName(JobKind.SUBMIT, "monet-pipeline"),
                                  JobName(JobKind.TRAIN, "monet-pipeline", session=3),
                                  JobName(JobKind.SWEEP, "recipe", "no-ema"),
                                  JobName(JobKind.SEARCH, "recipe", "7", 2)])
def test_a_job_name_is_built_and_parsed_by_one_type(name):
    assert JobName.parse(str(name)) == name


@pytest.mark.parametrize("text", ["submit", "train/slug", "sweep/a", "search/a/1", "upload/x", "train/x/y"])
def test_a_name_of_another_shape_is_refused(text):
    with pytest.raises(ValueError):
        JobName.parse(text)


def _put_many(folder: str, writer: int, n: int) -> None:
    store = JobStore(Path(folder))
    for i in range(n):
        name = JobName(JobKind.SEARCH, "s", f"{writer}-{i}", 1)
        store.put(Job(name, "tester/k", i + 1, "", KernelStatus.PUSHED, "2026-12-07T00:00:00Z"))


@pytest.mark.slow
def test_two_processes_recording_jobs_at_once_lose_none(tmp_path):
    ctx = multiprocessing.get_context("fork")
    writers = [ctx.Process(target=_put_many, args=(str(tmp_path), w, 200)) for w in (1, 2)]
    for p in writers:
        p.start()
    for p in writers:
        p.join(60)
    assert [p.exitcode for p in writers] == [0, 0]
    assert len(JobStore(tmp_path).all(JobKind.SEARCH)) == 400


class Trio(Plan):
    """Three jobs side by side; what the runner told it, in order."""

    def __init__(self, cfg, tmp_path: Path) -> None:
        self.specs = [JobSpec(JobName(JobKind.SWEEP, "trio", n), _slugged(cfg, f"trio-{n}"), "k", f"job {n}",
                              tmp_path / "out" / n, show_log=False) for n in ("a", "b", "c")]
        self.events: list[tuple[str, str]] = []
        self.results: dict[str, Ended] = {}

    def next(self, running):
        done = {name for _, name in self.events}
        return next((s for s in self.specs if s.name.member not in done and s.name not in running), None)

    def started(self, spec, job):
        self.events.append(("start", spec.name.member))

    def ended(self, result):
        self.events.append(("end", result.spec.name.member))
        self.results[result.spec.name.member] = result


def _slugged(cfg, slug: str):
    return replace(cfg, kernel=replace(cfg.kernel, slug=slug, title=slug))


def test_the_runner_follows_several_within_its_share_and_fetches_each_versions_own_output(tmp_path,
                                                                                       fake_kaggle):
    fake_kaggle.statuses = [("queued", ""), ("running", ""), ("complete", "")]
    fake_kaggle.output_files = {"run/loss.csv": b"step\n", "run/last.pt": b"weights"}
    cfg = tiny_config(tmp_path, *TINY_SUBMIT)
    plan = Trio(cfg, tmp_path)
    assert Runner(cfg, "test", parallel=2).run(plan) == ""
    # two at once, the third pushed only once one of them had ended
    assert plan.events[:2] == [("start", "a"), ("start", "b")]
    third = plan.events.index(("start", "c"))
    assert any(e == "end" for e, _ in plan.events[:third])
    assert len(fake_kaggle.pushes) == 3 and all(r.ok for r in plan.results.values())
    for name, result in plan.results.items():
        assert result.folder == tmp_path / "out" / name and (result.folder / "run" / "loss.csv").is_file()
        job = JobStore(cfg.submissions_dir).get(JobName(JobKind.SWEEP, "trio", name))
        assert job.status is KernelStatus.COMPLETE and job.output == str(tmp_path / "out" / name)
        assert job.limit_min == cfg.kernel.limit_min  # the GPU time it may take, recorded with it
    # run again: every job is recorded complete, the plan asks for nothing, nothing is pushed
    again = Trio(cfg, tmp_path)
    again.events = [("end", n) for n in ("a", "b", "c")]
    assert Runner(cfg, "test", parallel=2).run(again) == "" and len(fake_kaggle.pushes) == 3


def test_a_quota_that_runs_out_stops_the_pushing_in_one_line_and_follows_what_runs(tmp_path, fake_kaggle,
                                                                                capsys):
    cfg = tiny_config(tmp_path, *TINY_SUBMIT, "kernel.time_limit_min=240")
    fake_kaggle.quota = (23.0, 30.0, "2026-12-06T00:00:00Z")  # 7 h: one 4-hour job, not two (it holds 4 h)
    plan = Trio(cfg, tmp_path)
    stopped = Runner(cfg, "test", parallel=2).run(plan)
    assert stopped.startswith("GPU quota: 7.0 h left of 30 h (4.0 h held by running sessions)")
    assert stopped.endswith("job b can use up to 4 h: lower kernel.time_limit_min or wait")
    assert plan.events == [("start", "a"), ("end", "a")] and len(fake_kaggle.pushes) == 1
    assert f"test: stops pushing: {stopped}" in capsys.readouterr().out
