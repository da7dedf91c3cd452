"""`push`, `submit` and `submissions` against the fake Kaggle, in-process and as `python -m pipeline`
subprocesses."""
from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from helpers import KERNEL_RUN, TINY_KAGGLE, TINY_SUBMIT, images_zip, kernel_set, make_jpegs, tiny_config

from pipeline.cli import main
from pipeline.engine.errors import UserError
from pipeline.jobs.record import JobName
from pipeline.jobs.store import JobStore
from pipeline.jobs.submit import push_command, submit_command
from pipeline.kaggle import api as kaggle_api
from pipeline.kaggle.status import KernelStatus

REF = "tester/monet-pipeline"
@pytest.fixture
def fake_kaggle(fake_kaggle):
    """conftest's fake Kaggle, whose kernels print a hundred steps and then fail."""
    fake_kaggle.log_lines(*[f"step {i}" for i in range(100)], "Traceback (most recent call last):",
                          "OSError: boom")
    return fake_kaggle


def leaderboard(cfg) -> list[dict[str, str]]:
    with open(cfg.submissions_dir / "leaderboard.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def run(command, cfg, force: bool = False) -> int:
    return command(cfg, argparse.Namespace(force=force))


def test_push_builds_and_kaggle_receives_the_kernel(tmp_path, fake_kaggle, capsys):
    assert run(push_command, tiny_config(tmp_path, *TINY_SUBMIT)) == 0
    assert f"{REF} version 1 is running on Kaggle: http://localhost/code/{REF}" in capsys.readouterr().out
    body = fake_kaggle.pushes[0]
    assert body["slug"] == REF and body["newTitle"] == "Monet pipeline" and body["kernelType"] == "notebook"
    # empty lists are not sent
    assert body["competitionDataSources"] == ["gan-getting-started"] and "datasetDataSources" not in body
    assert body["isPrivate"] is True and body["enableGpu"] is True and body["enableInternet"] is False
    nb = nbformat.reads(body["text"], as_version=4)
    nbformat.validate(nb)
    assert any('STAGES["train"].run(cfg)' in cell.source or "notebook.train(cfg" in cell.source
               for cell in nb.cells)
    assert fake_kaggle.key not in body["text"]


def test_submit_follows_the_run_checks_the_zip_and_submits(tmp_path, fake_kaggle, capsys):
    fake_kaggle.statuses = [("queued", ""), ("running", ""), ("running", ""), ("complete", "")]
    fake_kaggle.output_files = {"images.zip": images_zip(tmp_path), "run/loss.png": b"png"}
    cfg = tiny_config(tmp_path, *TINY_SUBMIT)
    assert run(submit_command, cfg) == 0
    dest = cfg.submissions_dir / "kaggle" / "1"
    assert (dest / "images.zip").read_bytes() == fake_kaggle.output_files["images.zip"]
    assert (dest / "run" / "loss.png").is_file() and (dest / "monet-pipeline.log").is_file()
    assert fake_kaggle.calls.count("GetKernelSessionStatus") == 4
    [sub] = fake_kaggle.submissions
    assert (sub["kernelOwner"], sub["kernelSlug"], sub["kernelVersion"], sub["fileName"]) == (
        "tester", "monet-pipeline", 1, "images.zip")
    # named after the run the zip's provenance record names: the images' own
    assert sub["submissionDescription"] == f"kaggle {KERNEL_RUN.config_hash} ({REF} v1)"
    out = capsys.readouterr().out
    assert "4 images" in out and "local score skipped" in out
    assert "https://www.kaggle.com/competitions/gan-getting-started/submissions" in out
    job = JobStore(cfg.submissions_dir).get(JobName.parse("submit/monet-pipeline"))
    assert job.status is KernelStatus.COMPLETE
    # then it waits for Kaggle's score (pending at the first listing) and files it under that version
    assert fake_kaggle.calls.count("ListSubmissions") == 2
    assert f"public MiFID 41.2345 for kaggle ({REF} v1) (local MiFID not scored here)" in out
    [row] = leaderboard(cfg)
    assert (row["source"], row["run"], row["model"], row["kernel"], row["submission"], row["public_mifid"],
            row["mifid"]) == ("kaggle", "kaggle", "cyclegan", f"{REF} v1", "1001", "41.2345", "")


def test_two_submits_in_a_row_check_and_submit_only_their_own_completed_version(tmp_path, fake_kaggle,
                                                                                capsys):
    """Right after a push Kaggle answers a question that names no version with the previous version's status
    and output (the fake does for its first polls): each submit asks by version, so it follows its own run,
    checks its own zip and submits it once complete (the fake refuses a version that is not)."""
    fake_kaggle.statuses = [("queued", ""), ("running", ""), ("running", ""), ("complete", "")]
    fake_kaggle.outputs_by_version = {1: {"images.zip": images_zip(tmp_path, n=4)},
                                      2: {"images.zip": images_zip(tmp_path, n=5)}}
    cfg = tiny_config(tmp_path, *TINY_SUBMIT, "submit.wait_score_min=0")
    assert run(submit_command, cfg) == 0
    assert run(submit_command, cfg) == 0  # the first ended: this one pushes version 2
    assert [s["kernelVersion"] for s in fake_kaggle.submissions] == [1, 2]
    out = capsys.readouterr().out
    assert "images.zip: 4 images" in out and "images.zip: 5 images" in out
    assert out.index("tester/monet-pipeline v2: complete") < out.index("kaggle/2/images.zip: 5 images")
    kaggle_dir = cfg.submissions_dir / "kaggle"
    assert [(kaggle_dir / v / "images.zip").read_bytes() for v in ("1", "2")] == [
        fake_kaggle.outputs_by_version[1]["images.zip"], fake_kaggle.outputs_by_version[2]["images.zip"]]


def test_failed_kernel_shows_the_log_tail_and_exits_non_zero(tmp_path, fake_kaggle, capsys):
    fake_kaggle.statuses = [("running", ""), ("error", "Your notebook tried to allocate more memory")]
    assert run(submit_command, tiny_config(tmp_path, *TINY_SUBMIT)) == 1
    err = capsys.readouterr().err
    # the tail, not the whole log
    assert "OSError: boom" in err and "step 99" in err and "step 10\n" not in err
    assert "ended with status 'error': Your notebook tried to allocate more memory" in err
    assert fake_kaggle.submissions == []


def test_dry_run_does_everything_but_submit(tmp_path, fake_kaggle, capsys):
    fake_kaggle.output_files = {"images.zip": images_zip(tmp_path)}
    cfg = tiny_config(tmp_path, *TINY_SUBMIT, "submit.dry_run=true")
    assert run(submit_command, cfg) == 0
    assert "dry run" in capsys.readouterr().out
    assert fake_kaggle.submissions == [] and fake_kaggle.calls.count("ListKernelSessionOutput") == 1
    assert (cfg.submissions_dir / "kaggle" / "1" / "images.zip").is_file()
    # then submitting that checked run as it is: no second push, no second run
    assert run(submit_command, tiny_config(tmp_path, *TINY_SUBMIT, "submit.version=1")) == 0
    assert len(fake_kaggle.pushes) == 1 and [s["kernelVersion"] for s in fake_kaggle.submissions] == [1]
    with pytest.raises(UserError, match="no fetched output"):
        run(submit_command, tiny_config(tmp_path, *TINY_SUBMIT, "submit.version=2"))


@pytest.mark.parametrize("files, message", [
    ({"submission.csv": b"id\n"}, "no images.zip"),
    ({"images.zip": b"<html>signed URL expired</html>"}, "images.zip"),
])
def test_output_without_a_valid_images_zip_is_not_submitted(tmp_path, fake_kaggle, files, message):
    fake_kaggle.output_files = files
    with pytest.raises(UserError, match=message):
        run(submit_command, tiny_config(tmp_path, *TINY_SUBMIT))
    assert fake_kaggle.submissions == []


def test_too_few_images_is_refused_by_the_zip_checker(tmp_path, fake_kaggle):
    fake_kaggle.output_files = {"images.zip": images_zip(tmp_path, n=2)}
    with pytest.raises(UserError, match="2 images, the competition needs 3-10"):
        run(submit_command, tiny_config(tmp_path, *TINY_SUBMIT))
    assert fake_kaggle.submissions == []


def test_interrupted_submit_resumes_without_pushing_again(tmp_path, fake_kaggle, monkeypatch, capsys):
    fake_kaggle.output_files = {"images.zip": images_zip(tmp_path)}
    cfg = tiny_config(tmp_path, *TINY_SUBMIT)
    real_status = kaggle_api.kernel_status

    def interrupted_once(ref, version, retry=None):
        monkeypatch.setattr(kaggle_api, "kernel_status", real_status)
        raise KeyboardInterrupt

    monkeypatch.setattr(kaggle_api, "kernel_status", interrupted_once)
    with pytest.raises(KeyboardInterrupt):
        run(submit_command, cfg)
    err = capsys.readouterr().err
    assert "the kernel keeps running on Kaggle" in err and "will not push again" in err
    assert run(submit_command, cfg) == 0
    assert len(fake_kaggle.pushes) == 1 and [s["kernelVersion"] for s in fake_kaggle.submissions] == [1]
    assert run(submit_command, cfg) == 0  # finished runs are not resumed: a new submit pushes a new version
    assert len(fake_kaggle.pushes) == 2


def test_a_submit_killed_mid_push_follows_the_push_that_landed_and_resends_one_that_did_not(
        tmp_path, fake_kaggle, monkeypatch):
    fake_kaggle.output_files = {"images.zip": images_zip(tmp_path)}
    cfg = tiny_config(tmp_path, *TINY_SUBMIT)
    assert run(submit_command, cfg) == 0  # version 1: Kaggle knows the kernel from now on
    real_push = kaggle_api.push_kernel

    def killed(sent: bool):
        def push_kernel(*args, **kwargs):
            monkeypatch.setattr(kaggle_api, "push_kernel", real_push)
            if sent:
                real_push(*args, **kwargs)  # Kaggle got it; the answer never reached the command
            raise KeyboardInterrupt
        return push_kernel

    monkeypatch.setattr(kaggle_api, "push_kernel", killed(sent=False))
    with pytest.raises(KeyboardInterrupt):
        run(submit_command, cfg, force=True)
    assert run(submit_command, cfg, force=False) == 0  # version 1 is not mistaken for the lost push
    assert len(fake_kaggle.pushes) == 2 and fake_kaggle.submissions[-1]["kernelVersion"] == 2
    monkeypatch.setattr(kaggle_api, "push_kernel", killed(sent=True))
    with pytest.raises(KeyboardInterrupt):
        run(submit_command, cfg, force=True)
    assert run(submit_command, cfg) == 0
    assert len(fake_kaggle.pushes) == 3  # followed, not pushed again
    assert [s["kernelVersion"] for s in fake_kaggle.submissions] == [1, 2, 3]


def test_poll_timeout_keeps_following_possible(tmp_path, fake_kaggle):
    fake_kaggle.statuses = [("running", "")]
    cfg = tiny_config(tmp_path, *TINY_SUBMIT, "submit.poll_timeout_min=0.002")
    with pytest.raises(UserError, match="still running after 0.002 min.*keeps running on Kaggle"):
        run(submit_command, cfg)
    kernel = JobStore(cfg.submissions_dir).get(JobName.parse("submit/monet-pipeline"))
    assert (kernel.version, kernel.status) == (1, KernelStatus.PUSHED)  # the next submit follows it


@pytest.mark.parametrize("faults", [(0,), (500,) * 30])
def test_the_log_is_shown_while_waiting_and_its_failures_never_break_the_wait(tmp_path, fake_kaggle, capsys,
                                                                            faults):
    fake_kaggle.statuses = [("running", "")] * 3 + [("complete", "")]
    fake_kaggle.output_files = {"images.zip": images_zip(tmp_path)}
    fake_kaggle.fail("logs", *faults)  # a dropped stream is read again; a stream that always fails is left
    assert run(submit_command, tiny_config(tmp_path, *TINY_SUBMIT)) == 0
    assert len(fake_kaggle.submissions) == 1
    out = capsys.readouterr().out
    shown = [line for line in out.splitlines() if line.startswith("kaggle | ")]
    assert shown == ([f"kaggle | step {i}" for i in range(100)]
                     + ["kaggle | Traceback (most recent call last):", "kaggle | OSError: boom"]
                     if len(faults) == 1 else [])
    assert out.index("complete after") > (out.index("kaggle | OSError: boom") if shown else 0)


@pytest.mark.slow
def test_kaggle_output_is_scored_locally_when_the_weights_are_here(tmp_path, fake_kaggle, inception_weights):
    make_jpegs(tmp_path / "data" / "raw" / "monet_jpg", 6, size=32, seed=5)
    fake_kaggle.output_files = {"images.zip": images_zip(tmp_path, n=6)}
    cfg = tiny_config(tmp_path, *TINY_SUBMIT, f"score.weights={inception_weights}", "submit.dry_run=true")
    assert run(submit_command, cfg) == 0
    [row] = leaderboard(cfg)
    assert row["source"] == "kaggle" and row["run"] == "kaggle" and row["n_images"] == "6"
    assert row["kernel"] == f"{REF} v1" and row["step"] == "1834" and row["public_mifid"] == ""
    assert (cfg.submissions_dir / "kaggle" / "1" / "images.zip.score.json").is_file()


@pytest.mark.slow
def test_the_public_score_joins_the_local_one_in_the_versions_row(tmp_path, fake_kaggle, inception_weights,
                                                                  capsys):
    make_jpegs(tmp_path / "data" / "raw" / "monet_jpg", 6, size=32, seed=5)
    fake_kaggle.output_files = {"images.zip": images_zip(tmp_path, n=6)}
    fake_kaggle.pending_lists = 3
    cfg = tiny_config(tmp_path, *TINY_SUBMIT, f"score.weights={inception_weights}")
    assert run(submit_command, cfg) == 0
    [row] = leaderboard(cfg)
    assert (row["run"], row["kernel"], row["public_mifid"], row["submission"]) == (
        "kaggle", f"{REF} v1", "41.2345", "1001")
    assert float(row["mifid"]) > 0 and fake_kaggle.calls.count("ListSubmissions") == 4
    assert f"(local MiFID {row['mifid']})" in capsys.readouterr().out


def test_a_submission_kaggle_cannot_score_fails_the_submit(tmp_path, fake_kaggle, capsys):
    fake_kaggle.output_files = {"images.zip": images_zip(tmp_path)}
    fake_kaggle.submission_error = "Submission Scoring Error: images.zip has too few images"
    assert run(submit_command, tiny_config(tmp_path, *TINY_SUBMIT)) == 1
    assert "Kaggle did not score submission 1001 (error: Submission Scoring Error" in capsys.readouterr().err


def test_submissions_fetches_the_public_scores_it_did_not_wait_for(tmp_path, fake_kaggle, capsys):
    fake_kaggle.output_files = {"images.zip": images_zip(tmp_path)}
    fake_kaggle.pending_lists = 0
    cfg = tiny_config(tmp_path, *TINY_SUBMIT, "submit.wait_score_min=0")
    assert run(submit_command, cfg) == 0
    assert "not waiting for the public score" in capsys.readouterr().out and not Path(
        cfg.submissions_dir / "leaderboard.csv").exists()
    assert "ListSubmissions" not in fake_kaggle.calls
    # one made on kaggle.com by hand: listed, but tied to no kernel version here
    fake_kaggle.submissions.insert(0, {"submissionDescription": "by hand", "fileName": "images.zip"})
    argv = ["submissions", "--config", "demo", "--set", f'paths.data="{tmp_path / "data"}"',
            "--set", f'paths.submissions="{tmp_path / "submissions"}"']
    assert main(argv) == 0
    out = capsys.readouterr().out
    [row] = leaderboard(cfg)
    assert (row["run"], row["kernel"], row["public_mifid"]) == ("kaggle", f"{REF} v1", "41.2345")
    table = out.split("newest first")[1].splitlines()[1:]
    assert table[0].split() == ["date", "submission", "kernel", "run", "status", "public", "MiFID", "local",
                                "MiFID"]
    assert table[1].split()[2:] == ["1002", REF, "v1", "kaggle", "complete", "41.2345", "-"]
    assert table[2].split()[2:] == ["1001", "-", "-", "complete", "41.2345", "-"]
    assert (cfg.submissions_dir / "leaderboard.html").is_file()  # the page shows it too


@pytest.mark.slow
def test_submit_in_a_subprocess_leaks_no_credentials(tmp_path, fake_kaggle):
    fake_kaggle.statuses = [("running", ""), ("complete", "")]
    fake_kaggle.output_files = {"images.zip": images_zip(tmp_path)}
    sets = [f"paths.data={tmp_path / 'data'}", f"paths.submissions={tmp_path / 'submissions'}", *TINY_SUBMIT,
            "submit.dry_run=true"]
    proc = subprocess.run([sys.executable, "-m", "pipeline", "submit", "--config", "demo",
                           *[arg for s in sets for arg in ("--set", s)]],
                          check=False, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "dry run" in proc.stdout and fake_kaggle.submissions == [] and len(fake_kaggle.pushes) == 1
    assert (tmp_path / "kernels" / "monet-pipeline" / "kernel-metadata.json").is_file()
    assert (tmp_path / "submissions" / "kaggle" / "1" / "images.zip").is_file()
    secret = fake_kaggle.key.encode()
    assert secret not in proc.stdout.encode() + proc.stderr.encode()
    config = Path(os.environ["KAGGLE_CONFIG_DIR"])
    written = [p for p in tmp_path.rglob("*") if p.is_file() and config not in p.parents]
    assert len(written) > 5 and not [p for p in written if secret in p.read_bytes()]


# -- against the executing fake: Kaggle runs the pushed notebook in a Python like its image ----------------

# The tiny kaggle preset, one short epoch.
TINY_KERNEL = kernel_set(*TINY_KAGGLE, "train.epochs=1", "train.log_every=2", "train.sample_every=4")


def submit_in_subprocess(tmp_path: Path, *sets: str, timeout: float = 300) -> subprocess.CompletedProcess:
    sets = (f"paths.data={tmp_path / 'data'}", f"paths.submissions={tmp_path / 'submissions'}",
            "zip.min_images=5", "zip.max_images=20", "zip.image_size=32", "generate.count=10",
            "submit.poll_interval_s=1", "submit.retry_delay_s=0", TINY_KERNEL,
            "kernel.accelerator=none", *sets)
    return subprocess.run([sys.executable, "-m", "pipeline", "submit", "--config", "demo",
                           *[arg for s in sets for arg in ("--set", s)]],
                          check=False, cwd=tmp_path, capture_output=True, text=True, timeout=timeout)


def streamed(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith("kaggle | ")]


@pytest.mark.slow
def test_submit_runs_the_notebook_and_submits_its_own_zip(tmp_path, fake_kaggle, competition):
    fake_kaggle.execute_with(competition)
    fake_kaggle.cut_log_stream = [3]  # the first log stream drops after 3 lines: nothing is shown twice
    proc = submit_in_subprocess(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run = fake_kaggle.runs[(REF, 1)]
    assert run.result.ok and len(fake_kaggle.pushes) == 1 and fake_kaggle.pushes[0]["enableGpu"] is False
    [sub] = fake_kaggle.submissions
    assert (sub["kernelSlug"], sub["kernelVersion"], sub["fileName"]) == ("monet-pipeline", 1, "images.zip")
    fetched = tmp_path / "submissions" / "kaggle" / "1"
    assert (fetched / "images.zip").read_bytes() == (run.working / "images.zip").read_bytes()
    assert (fetched / "run" / "config.toml").is_file() and (fetched / "monet-pipeline.log").is_file()
    assert "10 images" in proc.stdout
    # the run's log, line by line, as it happened and before the verdict, each line once
    lines = streamed(proc.stdout)
    expected = [f"kaggle | {part.rsplit(chr(13), 1)[-1]}"
                for entry in run.log for part in entry["data"].splitlines()
                if part.rsplit(chr(13), 1)[-1].strip()]
    assert lines == expected and any("pipeline code unpacked to" in line for line in lines)
    assert fake_kaggle.calls.count("logs") >= 2
    out = proc.stdout.splitlines()
    last_log = max(i for i, line in enumerate(out) if line.startswith("kaggle | "))
    assert last_log < next(i for i, line in enumerate(out) if ": complete after " in line)
    assert any(line.startswith("submit: Your submission was successfully saved") for line in out)
    assert out[-2:] == [f"submit: public MiFID 41.2345 for kaggle ({REF} v1) (local MiFID not scored here)",
                        f"leaderboard: {tmp_path / 'submissions' / 'leaderboard.html'} (1 run)"]


@pytest.mark.slow
def test_a_notebook_that_fails_on_kaggle_submits_nothing(tmp_path, fake_kaggle, competition):
    photoless = tmp_path / "competition" / competition.name
    shutil.copytree(competition / "monet_jpg", photoless / "monet_jpg")  # the photos are missing
    fake_kaggle.execute_with(photoless)
    proc = submit_in_subprocess(tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    run = fake_kaggle.runs[(REF, 1)]
    assert not run.result.ok and fake_kaggle.submissions == []
    assert any("pipeline code unpacked to" in line for line in streamed(proc.stdout))
    assert "photo_jpg" in run.result.failure
    assert f"ended with status 'error': {run.result.failure}" in proc.stderr
    assert "--- last " in proc.stderr and "photo_jpg" in proc.stderr.split("--- last ", 1)[1]
