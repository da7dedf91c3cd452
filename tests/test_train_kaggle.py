"""Training beyond one Kaggle session: train kernels chained by their outputs, a submit kernel that only
generates from the last one, the GPU quota read before every push and the session cap waited out; against
the fake Kaggle, which runs what it is sent."""
from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from helpers import TINY_KAGGLE, cli, kernel_set, one_line_error, tiny_config

from pipeline.cli import main
from pipeline.engine.text import refreshes
from pipeline.generate import provenance
from pipeline.jobs.record import JobName
from pipeline.jobs.store import JobStore
from pipeline.kaggle import api as kaggle_api
from pipeline.kaggle.status import KernelStatus
from pipeline.stages import KERNEL
from pipeline.training.clock import STEP_CLOCK_ENV
from pipeline.training.log import read_csv

OWNER = "tester"
SCRIPTED = ("zip.min_images=3", "zip.max_images=10", "zip.image_size=32", "generate.count=5",
            "submit.poll_interval_s=0.01", "submit.retry_delay_s=0")


def metadata(tmp_path: Path, *sets: str) -> dict:
    folder = KERNEL.run(tiny_config(tmp_path, "kernel.username=alice", *sets))
    return json.loads((folder / "kernel-metadata.json").read_text())


def test_a_train_kernel_per_session_attached_to_the_last_and_a_submit_kernel_attached_to_the_run(tmp_path,
                                                                                                 monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = metadata(tmp_path, "kernel.role=train", "train.sessions=3")
    assert (first["id"], first["title"], first["kernel_sources"]) == (
        "alice/monet-pipeline-train-1", "Monet pipeline train 1", [])
    assert first["machine_shape"] == "NvidiaTeslaT4" and first["enable_gpu"] is True
    second = metadata(tmp_path, "kernel.role=train", "kernel.session=2", "train.sessions=3")
    assert second["id"] == "alice/monet-pipeline-train-2"
    assert second["kernel_sources"] == ["alice/monet-pipeline-train-1"] and second["machine_shape"]
    submit = metadata(tmp_path, "kernel.checkpoint_from=alice/monet-pipeline-train-3")
    assert submit["id"] == "alice/monet-pipeline" and submit["enable_internet"] is False
    assert submit["kernel_sources"] == ["alice/monet-pipeline-train-3"]


def test_settings_that_cannot_chain_are_refused_before_any_work(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for sets, message in [
        (["kernel.role=train", "kernel.session=4", "train.sessions=3"], "kernel.session=4 is past"),
        (["kernel.enable_internet=true"], "runs offline"),
        (["kernel.role=train", "kernel.checkpoint_from=a/b"], "checkpoint_from is for a submit kernel"),
        (["kernel.checkpoint_from=nothing"], "must be owner/kernel-slug"),
    ]:
        assert main(cli(tmp_path, "kernel", "kernel.username=alice", *sets)) == 2
        assert message in one_line_error(capsys)


def test_a_quota_that_cannot_cover_a_session_stops_before_anything_is_pushed(tmp_path, fake_kaggle, capsys):
    refresh = datetime.now(timezone.utc) + timedelta(days=2, hours=1)
    fake_kaggle.quota = (26.5, 30.0, refresh.strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert main(cli(tmp_path, "train-kaggle", *SCRIPTED, "train.sessions=2")) == 2
    assert one_line_error(capsys) == (
        "train-kaggle: error: GPU quota: 3.5 h left of 30 h, refreshes in 2 days; session 1 of 2 can use up "
        "to 9 h: lower kernel.train_limit_min or wait")
    assert fake_kaggle.pushes == []


def pushed_slugs(fake_kaggle) -> list[str]:
    return [p["slug"].split("/")[1] for p in fake_kaggle.pushes]


def test_a_failed_session_is_recorded_and_pushed_again_from_its_predecessor(tmp_path, fake_kaggle, capsys):
    fake_kaggle.statuses = [("running", ""), ("error", "CUDA out of memory")]
    assert main(cli(tmp_path, "train-kaggle", *SCRIPTED, "train.sessions=2")) == 1
    store = JobStore(tmp_path / "submissions")
    assert store.get(JobName.parse("train/monet-pipeline/1")).status is KernelStatus.ERROR
    assert "session 1 of 2 failed; run the same command again to push it again (the run anew)" in \
        capsys.readouterr().out
    fake_kaggle.statuses = [("running", ""), ("complete", "")]
    assert main(cli(tmp_path, "train-kaggle", *SCRIPTED, "train.sessions=2")) == 0
    assert pushed_slugs(fake_kaggle) == ["monet-pipeline-train-1", "monet-pipeline-train-1",
                                         "monet-pipeline-train-2"]
    assert [store.get(JobName.parse(f"train/monet-pipeline/{k}")).label for k in (1, 2)] == [
        f"{OWNER}/monet-pipeline-train-1 v2", f"{OWNER}/monet-pipeline-train-2 v1"]


def test_a_session_pushed_earlier_is_followed_not_pushed_again(tmp_path, fake_kaggle, monkeypatch, capsys):
    real_status = kaggle_api.kernel_status

    def interrupted_once(ref, version, retry=None):
        monkeypatch.setattr(kaggle_api, "kernel_status", real_status)
        raise KeyboardInterrupt

    monkeypatch.setattr(kaggle_api, "kernel_status", interrupted_once)
    assert main(cli(tmp_path, "train-kaggle", *SCRIPTED, "train.sessions=2")) == 130  # Ctrl-C
    assert main(cli(tmp_path, "train-kaggle", *SCRIPTED, "train.sessions=2")) == 0
    out = capsys.readouterr().out
    assert f"following {OWNER}/monet-pipeline-train-1 v1, pushed earlier and not finished" in out
    assert pushed_slugs(fake_kaggle) == ["monet-pipeline-train-1", "monet-pipeline-train-2"]


def test_a_chain_whose_settings_changed_starts_anew(tmp_path, fake_kaggle, capsys):
    assert main(cli(tmp_path, "train-kaggle", *SCRIPTED, "train.sessions=1")) == 0
    capsys.readouterr()
    # the same again, by the command's older name: nothing to do
    assert main(cli(tmp_path, "kaggle-train", *SCRIPTED, "train.sessions=1")) == 0
    assert "train-kaggle: session 1 of 1 finished earlier" in capsys.readouterr().out
    changed = kernel_set("cyclegan.ngf=8")  # what the notebook trains
    assert main(cli(tmp_path, "train-kaggle", *SCRIPTED, "train.sessions=1", changed)) == 0
    assert "the settings differ from the chain recorded" in capsys.readouterr().out
    assert pushed_slugs(fake_kaggle) == ["monet-pipeline-train-1", "monet-pipeline-train-1"]


def test_a_push_refused_for_the_session_cap_is_tried_again_until_it_goes_through(tmp_path, fake_kaggle,
                                                                                capsys):
    fake_kaggle.refuse_pushes = 2
    assert main(cli(tmp_path, "push", *SCRIPTED)) == 0
    out = capsys.readouterr().out
    assert out.count("Maximum batch GPU session count of 2 reached") == 2 and "nothing was pushed" in out
    assert "version 1 is running on Kaggle" in out and len(fake_kaggle.pushes) == 1
    assert [event for event, _, _ in fake_kaggle.session_log] == ["refused", "refused"]


def test_the_refresh_reads_in_days_or_hours():
    now = datetime(2026, 12, 3, tzinfo=timezone.utc)
    assert refreshes(now + timedelta(days=2, hours=3), now) == "in 2 days"
    assert refreshes(now + timedelta(hours=5, minutes=10), now) == "in 5 h"
    assert refreshes(now + timedelta(minutes=20), now) == "within the hour"
    assert refreshes(None, now) == "at an unknown time"


# -- the whole chain on the executing fake ------------------------------------------------------------------
# The tiny kaggle preset, 15 s of training a session, a log row (and a look at the clock) every other step;
# the notebooks' clock moves STEP_S a step (at most 60 steps a session, however loaded this machine is).
STEP_S = "0.25"
TINY_KERNEL = kernel_set(*TINY_KAGGLE, "train.epochs=1000", "train.log_every=2", "train.sample_every=50",
                        "train.time_budget_min=0.25")


@pytest.mark.slow
def test_two_sessions_then_a_submission_generated_from_the_second_ones_checkpoint(tmp_path, fake_kaggle,
                                                                                 competition, monkeypatch):
    monkeypatch.setenv(STEP_CLOCK_ENV, STEP_S)  # for the notebooks the fake runs
    fake_kaggle.execute_with(competition)
    sets = (f"paths.data={tmp_path / 'data'}", f"paths.submissions={tmp_path / 'submissions'}",
            "zip.min_images=5", "zip.max_images=20", "zip.image_size=32", "generate.count=10",
            "submit.poll_interval_s=1", "submit.retry_delay_s=0", TINY_KERNEL,
            "kernel.accelerator=none", "kernel.margin_min=0", "train.sessions=2")
    # what `make train-kaggle SESSIONS=2 SUBMIT=1` runs
    proc = subprocess.run([sys.executable, "-m", "pipeline", "train-kaggle", "--config", "demo", "--submit",
                           *[arg for s in sets for arg in ("--set", s)]],
                          check=False, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert [p["slug"] for p in fake_kaggle.pushes] == [
        f"{OWNER}/monet-pipeline-train-1", f"{OWNER}/monet-pipeline-train-2", f"{OWNER}/monet-pipeline"]
    one, two, sub = (fake_kaggle.runs[(p["slug"], 1)] for p in fake_kaggle.pushes)
    assert fake_kaggle.pushes[1]["kernelDataSources"] == [f"{OWNER}/monet-pipeline-train-1"]
    assert fake_kaggle.pushes[2]["kernelDataSources"] == [f"{OWNER}/monet-pipeline-train-2"]
    assert fake_kaggle.pushes[2]["enableInternet"] is False
    # session 1 left the run folder as its output (no data copy, no loose images); session 2 resumed it
    first = json.loads((one.working / "runs" / "kaggle" / "sessions.json").read_text())[-1]
    assert (one.working / "runs" / "kaggle" / "last.pt").is_file() and not (one.working / "data").exists()
    log_two = "".join(e["data"] for e in two.log)
    assert f"resuming from step {first['to_step']:,} (session 2 of 2), checkpoint" in log_two
    fetched = tmp_path / "submissions" / "kaggle" / "train" / "monet-pipeline-train-2" / "runs" / "kaggle"
    rows = read_csv(fetched / "losses.csv")
    assert not (fetched / "last.pt").exists()  # the summary is fetched, not the checkpoints
    lrs = [float(row["lr"]) for row in rows]
    # the run ends decayed: its lowest rate last, at the plan's end (to_step == total below)
    assert lrs[-1] == min(lrs) <= 0.05 * lrs[0]
    second = json.loads((fetched / "sessions.json").read_text())[-1]
    assert second["line"] in proc.stdout and second["to_step"] == second["total"]
    # the submission notebook trained nothing: it generated from session 2's last checkpoint
    assert "train:" not in "".join(e["data"] for e in sub.log)
    with zipfile.ZipFile(tmp_path / "submissions" / "kaggle" / "1" / "images.zip") as zf:
        assert len(zf.namelist()) == 10
    made = provenance.read(tmp_path / "submissions" / "kaggle" / "1" / "images.zip")
    assert (made.run, made.step) == ("kaggle", second["to_step"])
    assert made.trained_by == f"{OWNER}/monet-pipeline-train-2 v1"
    assert [s["kernelSlug"] for s in fake_kaggle.submissions] == ["monet-pipeline"]
    [row] = list(csv_rows(tmp_path))
    assert (row["run"], row["trained_by"], row["public_mifid"]) == ("kaggle", made.trained_by, "41.2345")
    # run again: every session is done and nothing is pushed twice (the submission is pushed anew)
    again = subprocess.run([sys.executable, "-m", "pipeline", "train-kaggle", "--config", "demo",
                            *[arg for s in sets for arg in ("--set", s)]],
                           check=False, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and again.stdout.count("finished earlier") == 2
    assert len(fake_kaggle.pushes) == 3


def csv_rows(tmp_path: Path):
    import csv

    with open(tmp_path / "submissions" / "leaderboard.csv", newline="") as fh:
        yield from csv.DictReader(fh)
