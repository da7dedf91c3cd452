"""`push` and `submit` against the fake Kaggle, in-process and as a `python -m pipeline submit` subprocess."""
from __future__ import annotations

import argparse
import csv
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest
from conftest import make_jpegs, tiny_config
from fake_kaggle import serving

from pipeline import kaggle_api
from pipeline.errors import UserError
from pipeline.submit import push_command, submit_command

REF = "tester/monet-pipeline"
SMALL = ("zip.min_images=3", "zip.max_images=10", "zip.image_size=32", "generate.count=5",
         "submit.poll_interval_s=0.01", "submit.retry_delay_s=0")


@pytest.fixture
def fake_kaggle(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the kernel stage writes kernels/<slug> in the working folder
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no FID weights unless a test brings them
    with serving(tmp_path, monkeypatch) as fake:
        fake.log_lines(*[f"step {i}" for i in range(100)], "Traceback (most recent call last):", "OSError: boom")
        yield fake


def images_zip(tmp_path: Path, n: int = 4) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for path in make_jpegs(tmp_path / "kernel-images", n, size=32):
            zf.write(path, path.name)
    return buf.getvalue()


def run(command, cfg, force: bool = False) -> int:
    return command(cfg, argparse.Namespace(force=force))


def test_push_builds_and_kaggle_receives_the_kernel(tmp_path, fake_kaggle, capsys):
    assert run(push_command, tiny_config(tmp_path, *SMALL)) == 0
    assert f"{REF} version 1 is running on Kaggle: http://localhost/code/{REF}" in capsys.readouterr().out
    body = fake_kaggle.pushes[0]
    assert body["slug"] == REF and body["newTitle"] == "Monet pipeline" and body["kernelType"] == "notebook"
    assert body["competitionDataSources"] == ["gan-getting-started"] and "datasetDataSources" not in body  # empty lists are not sent
    assert body["isPrivate"] is True and body["enableGpu"] is True and body["enableInternet"] is False
    nb = nbformat.reads(body["text"], as_version=4)
    nbformat.validate(nb)
    assert any('STAGES["train"].run(cfg)' in cell.source for cell in nb.cells)
    assert fake_kaggle.key not in body["text"]


def test_submit_follows_the_run_checks_the_zip_and_submits(tmp_path, fake_kaggle, capsys):
    fake_kaggle.statuses = [("queued", ""), ("running", ""), ("running", ""), ("complete", "")]
    fake_kaggle.output_files = {"images.zip": images_zip(tmp_path), "run/loss.png": b"png"}
    cfg = tiny_config(tmp_path, *SMALL)
    assert run(submit_command, cfg) == 0
    dest = cfg.submissions_dir / "kaggle" / "1"
    assert (dest / "images.zip").read_bytes() == fake_kaggle.output_files["images.zip"]
    assert (dest / "run" / "loss.png").is_file() and (dest / "monet-pipeline.log").is_file()
    assert fake_kaggle.calls.count("GetKernelSessionStatus") == 4
    [sub] = fake_kaggle.submissions
    assert (sub["kernelOwner"], sub["kernelSlug"], sub["kernelVersion"], sub["fileName"]) == (
        "tester", "monet-pipeline", 1, "images.zip")
    from pipeline.kernel import kernel_settings

    assert sub["submissionDescription"].startswith(f"kaggle {kernel_settings(cfg).train_hash()[:8]} ")
    out = capsys.readouterr().out
    assert "4 images" in out and "local score skipped" in out
    assert "https://www.kaggle.com/competitions/gan-getting-started/submissions" in out
    assert not (cfg.submissions_dir / "kaggle" / "pending.json").exists()


def test_failed_kernel_shows_the_log_tail_and_exits_non_zero(tmp_path, fake_kaggle, capsys):
    fake_kaggle.statuses = [("running", ""), ("error", "Your notebook tried to allocate more memory")]
    assert run(submit_command, tiny_config(tmp_path, *SMALL)) == 1
    err = capsys.readouterr().err
    assert "OSError: boom" in err and "step 99" in err and "step 10\n" not in err  # the tail, not the whole log
    assert "ended with status 'error': Your notebook tried to allocate more memory" in err
    assert fake_kaggle.submissions == []


def test_dry_run_does_everything_but_submit(tmp_path, fake_kaggle, capsys):
    fake_kaggle.output_files = {"images.zip": images_zip(tmp_path)}
    cfg = tiny_config(tmp_path, *SMALL, "submit.dry_run=true")
    assert run(submit_command, cfg) == 0
    assert "dry run" in capsys.readouterr().out
    assert fake_kaggle.submissions == [] and fake_kaggle.calls.count("ListKernelSessionOutput") == 1
    assert (cfg.submissions_dir / "kaggle" / "1" / "images.zip").is_file()
    # then submitting that checked run as it is: no second push, no second run
    assert run(submit_command, tiny_config(tmp_path, *SMALL, "submit.version=1")) == 0
    assert len(fake_kaggle.pushes) == 1 and [s["kernelVersion"] for s in fake_kaggle.submissions] == [1]
    with pytest.raises(UserError, match="no fetched output"):
        run(submit_command, tiny_config(tmp_path, *SMALL, "submit.version=2"))


@pytest.mark.parametrize("files, message", [
    ({"submission.csv": b"id\n"}, "no images.zip"),
    ({"images.zip": b"<html>signed URL expired</html>"}, "images.zip"),
])
def test_output_without_a_valid_images_zip_is_not_submitted(tmp_path, fake_kaggle, files, message):
    fake_kaggle.output_files = files
    with pytest.raises(UserError, match=message):
        run(submit_command, tiny_config(tmp_path, *SMALL))
    assert fake_kaggle.submissions == []


def test_too_few_images_is_refused_by_the_zip_checker(tmp_path, fake_kaggle):
    fake_kaggle.output_files = {"images.zip": images_zip(tmp_path, n=2)}
    with pytest.raises(UserError):
        run(submit_command, tiny_config(tmp_path, *SMALL))
    assert fake_kaggle.submissions == []


def test_interrupted_submit_resumes_without_pushing_again(tmp_path, fake_kaggle, monkeypatch, capsys):
    fake_kaggle.output_files = {"images.zip": images_zip(tmp_path)}
    cfg = tiny_config(tmp_path, *SMALL)
    real_status = kaggle_api.kernel_status

    def interrupted_once(ref, retry=None):
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


def test_poll_timeout_keeps_following_possible(tmp_path, fake_kaggle):
    fake_kaggle.statuses = [("running", "")]
    cfg = tiny_config(tmp_path, *SMALL, "submit.poll_timeout_min=0.002")
    with pytest.raises(UserError, match="still running after 0.002 min.*keeps running on Kaggle"):
        run(submit_command, cfg)
    assert json.loads((cfg.submissions_dir / "kaggle" / "pending.json").read_text())["version"] == 1


def test_kaggle_output_is_scored_locally_when_the_weights_are_here(tmp_path, fake_kaggle, inception_weights):
    make_jpegs(tmp_path / "data" / "raw" / "monet_jpg", 6, size=32, seed=5)
    fake_kaggle.output_files = {"images.zip": images_zip(tmp_path, n=6)}
    cfg = tiny_config(tmp_path, *SMALL, f"score.weights={inception_weights}", "submit.dry_run=true")
    assert run(submit_command, cfg) == 0
    with open(cfg.submissions_dir / "leaderboard.csv", newline="") as fh:
        [row] = list(csv.DictReader(fh))
    assert row["source"] == "kaggle" and row["run"] == "kaggle" and row["n_images"] == "6"
    assert (cfg.submissions_dir / "kaggle" / "1" / "images.zip.score.json").is_file()


def test_submit_in_a_subprocess_leaks_no_credentials(tmp_path, fake_kaggle):
    fake_kaggle.statuses = [("running", ""), ("complete", "")]
    fake_kaggle.output_files = {"images.zip": images_zip(tmp_path)}
    sets = [f"paths.data={tmp_path / 'data'}", f"paths.submissions={tmp_path / 'submissions'}", *SMALL,
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
