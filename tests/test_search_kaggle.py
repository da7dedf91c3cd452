"""make search on the fake Kaggle: trials' sessions as train kernels through the one job runner, never more
than two at once, successive halving between sessions (a pruned trial gets no second session, a promoted
one's second session attaches its first's output), nothing pushed twice after a kill between a push and its
record, and a quota that runs out stops the pushing in one line."""
from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from helpers import TINY_KAGGLE, cli, one_line_error

from pipeline.cli import main
from pipeline.kaggle import api as kaggle_api
from pipeline.search.scheduler import Scheduler

SEARCH = "duo"
TRIALS = 4


def search_file(tmp_path: Path) -> Path:
    path = tmp_path / f"{SEARCH}.toml"
    path.write_text(f"""preset = "kaggle"
set = {json.dumps(list(TINY_KAGGLE))}
[search]
trials = {TRIALS}
gpu_hours = 100
sessions = 2
first_hours = 0.5
eta = 2
seed = 0
backend = "kaggle"
[search.space]
"train.lr" = {{choices = [0.0001, 0.0002, 0.0003, 0.0004]}}
""")
    return path


def kernel(trial: int, session: int) -> str:
    return f"tester/monet-pipeline-{SEARCH}-t{trial}-train-{session}"


@pytest.fixture
def fake_kaggle(fake_kaggle):
    """Each trial session's output: a score.json whose MiFID is lower for a lower trial number."""
    for trial in range(TRIALS):
        for session in (1, 2):
            score = {"fid": 40.0 + trial, "distance": 0.3, "mifid": 40.0 + trial - session, "n_gen": 6}
            fake_kaggle.outputs_by_kernel[kernel(trial, session)] = {
                "sweep/score.json": json.dumps(score).encode(), "runs/r/losses.csv": b"step,seconds\n5,1.0\n"}
    fake_kaggle.dataset_files["tester/fid-weights"] = ["pt_inception-2015-12-05-6726825d.pth"]
    return fake_kaggle


def search(tmp_path: Path, *sets: str) -> list[str]:
    args = cli(tmp_path, "search", "kernel.weights_dataset=tester/fid-weights", "submit.poll_interval_s=0.01",
               "submit.retry_delay_s=0", *sets)
    return [args[0], str(search_file(tmp_path)), *args[1:]]


@pytest.mark.slow
def test_a_search_prunes_between_sessions_two_at_once_and_runs_again_to_nothing(tmp_path, fake_kaggle,
                                                                                capsys):
    assert main(search(tmp_path)) == 0
    slugs = [p["slug"] for p in fake_kaggle.pushes]
    assert sorted(slugs) == sorted([kernel(t, 1) for t in range(TRIALS)] + [kernel(0, 2), kernel(1, 2)])
    assert max(fake_kaggle.scripted_running) == 2  # never three sessions at once
    # a promoted trial's second session resumes from its first's output; the pruned ones got none
    for trial in (0, 1):
        [body] = [p for p in fake_kaggle.pushes if p["slug"] == kernel(trial, 2)]
        assert body["kernelDataSources"] == [kernel(trial, 1)]
    journal = tmp_path / "submissions" / "search" / SEARCH / "journal.log"
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    study = optuna.load_study(study_name=SEARCH, storage=storage)
    states = {t.number: t.state.name for t in study.trials}
    assert states == {0: "COMPLETE", 1: "COMPLETE", 2: "PRUNED", 3: "PRUNED"}
    assert study.best_trial.number == 0 and study.best_value == pytest.approx(38.0)
    out = capsys.readouterr().out
    assert "search: trial 2 session 1 of 2: local MiFID 41.000 (waiting)" in out
    # run again: a finished search pushes and trains nothing
    assert main(search(tmp_path)) == 0 and len(fake_kaggle.pushes) == 6
    capsys.readouterr()
    assert main([*search(tmp_path), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [r["number"] for r in listed][:2] == [0, 1] and listed[0]["mifid"] == [39.0, 38.0]


@pytest.mark.slow
def test_a_kill_between_a_push_and_its_record_pushes_nothing_twice(tmp_path, fake_kaggle, monkeypatch):
    real_push = kaggle_api.push_kernel

    def killed_after_sending(*args, **kwargs):
        monkeypatch.setattr(kaggle_api, "push_kernel", real_push)
        real_push(*args, **kwargs)  # Kaggle got it; the command died before recording the version
        raise KeyboardInterrupt

    monkeypatch.setattr(kaggle_api, "push_kernel", killed_after_sending)
    assert main(search(tmp_path)) == 130
    assert len(fake_kaggle.pushes) == 1
    assert main(search(tmp_path)) == 0
    slugs = [p["slug"] for p in fake_kaggle.pushes]
    assert len(slugs) == 6 and len(set(slugs)) == 6  # the first push followed, not sent again


def test_a_quota_that_runs_out_stops_the_pushing_in_one_line(tmp_path, fake_kaggle, capsys):
    fake_kaggle.quota = (29.2, 30.0, "2026-12-06T00:00:00Z")  # 0.8 h: one half-hour session, not two at once
    assert main(search(tmp_path)) == 2
    err = one_line_error(capsys)
    assert err.startswith(f"search: error: search {SEARCH}: GPU quota: 0.8 h left of 30 h (0.5 h held")
    assert "run the same command again when there is quota" in err
    assert len(fake_kaggle.pushes) == 1  # and the one pushed was followed to its end and reported
    journal = tmp_path / "submissions" / "search" / SEARCH / "journal.log"
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    trials = optuna.load_study(study_name=SEARCH, storage=storage).trials
    # the trial asked for as the quota stopped the pushing waits, unpushed, for the next run
    assert {t.number: list(t.intermediate_values.values()) for t in trials} == {0: [39.0], 1: []}


@pytest.mark.slow
def test_a_kill_between_a_sessions_end_and_its_report_reads_it_again_and_pushes_nothing_twice(
        tmp_path, fake_kaggle, monkeypatch, capsys):
    real_report = Scheduler.report

    def killed_before_reporting(*args, **kwargs):
        monkeypatch.setattr(Scheduler, "report", real_report)
        raise KeyboardInterrupt  # the kernel ended and its output was fetched; the report never happened

    monkeypatch.setattr(Scheduler, "report", killed_before_reporting)
    assert main(search(tmp_path)) == 130
    pushed = len(fake_kaggle.pushes)
    capsys.readouterr()
    assert main(search(tmp_path)) == 0
    out = capsys.readouterr().out
    assert "ended (complete) before an earlier call could read it: reading its output" in out
    slugs = [p["slug"] for p in fake_kaggle.pushes]
    assert pushed >= 1 and len(slugs) == 6 and len(set(slugs)) == 6  # the ended one read, not pushed again
