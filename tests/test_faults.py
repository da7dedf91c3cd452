"""Faults tried on purpose: kill -9 in the middle of every stage, a full disk, two runs on one output, Kaggle
failing in the ways it does, and credentials that must never leave kaggle.json.

Covered elsewhere and not repeated: a killed train resumes to the full step count and a truncated checkpoint
falls back (test_train.py); Ctrl-C in a stage (test_stage.py); 401, missing credentials, kaggle.json readable
by others, 5xx and dropped connections retried, a failed kernel, an output without images.zip
(test_kaggle_api.py, test_submit.py).
"""
from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import signal
import subprocess
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from fake_kaggle import zip_bytes
from helpers import (
    REPO,
    TINY,
    TINY_SUBMIT,
    Pause,
    after_step,
    cli,
    images_zip,
    make_data,
    make_jpegs,
    one_line_error,
    save_generator,
    tiny_config,
)

from pipeline.cli import main
from pipeline.engine.stage import read_stamp
from pipeline.scoring import table
from pipeline.training import checkpoint
from pipeline.training.log import read_csv


@pytest.fixture
def start(request: pytest.FixtureRequest) -> Callable[[Path, str, tuple[str, ...], Pause], subprocess.Popen]:
    """Start `python -m pipeline <stage>` and return once it is paused at `pause` (it waits there to be
    killed or let go). In its own process group, killed as a whole when the test ends (should a failing test
    leave the stage or its workers running)."""
    def start(base: Path, stage: str, settings: tuple[str, ...], pause: Pause) -> subprocess.Popen:
        # one thread: no spinning when busy
        env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
        log = base / f"{stage}.stderr"
        with open(log, "wb") as err:  # a file, not a pipe: a full pipe would stall the child
            proc = subprocess.Popen(pause.argv(*cli(base, stage, *settings)), cwd=base, env=env,
                                    stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
        request.addfinalizer(lambda: _kill_group(proc.pid))
        pause.wait(proc, log)
        return proc
    return start


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def kill_9(proc: subprocess.Popen) -> None:
    """kill -9 of the stage's process alone (not its group), as `kill -9 PID` or the OOM killer does."""
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL


def contents(path: Path) -> dict[str, bytes]:
    """Every file of an output (a file or a folder) with its bytes, stamps left out (they hold times)."""
    if path.is_file():
        return {path.name: path.read_bytes()}
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*"))
            if p.is_file() and not p.name.endswith("stage.json")}


def same_run(killed: Path, clean: Path) -> None:
    """Two run folders of one training: the same files, the same final step, every step logged once."""
    assert _run_files(killed) == _run_files(clean)
    assert checkpoint.read(killed / "last.pt")["step"] == checkpoint.read(clean / "last.pt")["step"] == 16
    assert [r["step"] for r in read_csv(killed / "losses.csv")] == [str(s) for s in range(1, 17)]


def _run_files(run: Path) -> list[str]:
    """A run folder's files, TensorBoard's event files left out: their names hold a time and a process id,
    and each session of a resumed run writes its own."""
    return sorted(p.relative_to(run).as_posix() for p in run.rglob("*") if ".tfevents." not in p.name)


def same_score(killed: Path, clean: Path) -> None:
    """The same MiFID, and one leaderboard row each (where the images were is all that differs)."""
    a, b = json.loads(killed.read_text()), json.loads(clean.read_text())
    numbers, where = ("fid", "distance", "mifid"), ("time", "images", "real", "weights")
    assert {k: v for k, v in a.items() if k not in numbers + where} == \
        {k: v for k, v in b.items() if k not in numbers + where}
    # approx: the killed run's real-feature cache came from a one-thread process, which rounds differently
    assert [a[k] for k in numbers] == pytest.approx([b[k] for k in numbers], rel=1e-5)
    for folder in (killed.parent, clean.parent):
        assert len(table.read(folder / "leaderboard.csv")) == 1


def _photos_and_generator(base: Path, settings: tuple[str, ...], request: pytest.FixtureRequest) -> None:
    make_jpegs(base / "data" / "raw" / "photo_jpg", 30, size=32, prefix="photo")
    save_generator(tiny_config(base, *settings))


def _competition_on_fake_kaggle(base: Path, settings: tuple[str, ...],
                                request: pytest.FixtureRequest) -> None:
    fake = request.getfixturevalue("fake_kaggle")
    if not fake.competition_zip:
        folder = base.parent / "competition"
        make_jpegs(folder / "monet_jpg", 8, size=32, prefix="m")
        make_jpegs(folder / "photo_jpg", 40, size=32, seed=1, prefix="p")
        fake.competition_zip = zip_bytes(folder)


def _submission_images(base: Path, settings: tuple[str, ...], request: pytest.FixtureRequest) -> None:
    make_jpegs(base / "submissions" / "images", 100, size=256)


def _images_and_monets(base: Path, settings: tuple[str, ...], request: pytest.FixtureRequest) -> None:
    make_jpegs(base / "submissions" / "images", 8, size=32)
    make_jpegs(base / "data" / "raw" / "monet_jpg", 4, size=32, seed=5)


@dataclass(frozen=True)
class KillCase:
    name: str
    stage: str
    settings: tuple[str, ...]
    pause: tuple[str, int]  # where it is killed: once this function ("module:name") has returned so often
    busy: str  # a path (glob, under the base folder) that exists only while the stage is mid-work
    output: str  # the stage's output, under the base folder
    prepare: Callable[[Path, tuple[str, ...], pytest.FixtureRequest], None] = (
        lambda base, settings, request: None)
    same: Callable[[Path, Path], None] = field(default=lambda a, b: None)  # more checks than equal bytes

    @property
    def deterministic(self) -> bool:
        return self.stage not in ("train", "score")


KILL_CASES = {c.name: c for c in [
    KillCase("download-demo", "download",
             ("download.demo_monet=8", "download.demo_photos=30", "download.image_size=64"),
             pause=("pipeline.data.download:check_image", 20), busy="data/.raw.tmp-*/*/*.jpg",
             output="data/raw"),
    KillCase("download-kaggle", "download",
             ("download.source=kaggle", "download.image_size=32", "download.expect_monet=8",
              "download.expect_photos=40"),
             pause=("pipeline.data.download:check_image", 20), busy="data/.raw.tmp-*/*/*.jpg",
             output="data/raw", prepare=_competition_on_fake_kaggle),
    # one worker process: it is the one paused, so nothing writes on into the killed run's temp folder
    KillCase("augment", "augment", ("augment.variants=4", "hardware.workers=1"),
             pause=("pipeline.data.augment:augment_image", 5), busy="data/.augmented.tmp-*/monet/*.jpg",
             output="data/augmented",
             prepare=lambda base, s, r: make_jpegs(base / "data" / "raw" / "monet_jpg", 8, size=64)),
    KillCase("train", "train",
             # checkpoints by step alone: one by the clock lands where the machine's speed puts it
             (*TINY, "train.epochs=4", "train.checkpoint_every=4", "train.checkpoint_every_s=3600",
              "train.sample_every=1000"),
             pause=("pipeline.training.log:TrainLog.row", 6), busy="data/runs/demo/ckpt_*.pt",
             output="data/runs/demo", prepare=lambda base, s, r: make_data(base), same=same_run),
    KillCase("generate", "generate",
             ("zip.image_size=32", "zip.min_images=1", "zip.max_images=500", "generate.count=20",
              "generate.batch_size=4", "cyclegan.ngf=4", "cyclegan.n_blocks=1", "hardware.workers=2",
              "hardware.device=cpu"),
             pause=("pipeline.generate.render:encode_jpeg", 10), busy="submissions/.images.tmp-*/*.jpg",
             output="submissions/images", prepare=_photos_and_generator),
    KillCase("zip", "zip",
             ("zip.min_images=1", "zip.max_images=1000", "zip.image_size=256", "generate.count=100",
              "zip.decode_sample=1000"),
             pause=("zipfile:ZipFile.writestr", 40), busy="submissions/.images.zip.tmp-*",
             output="submissions/images.zip", prepare=_submission_images),
    KillCase("score", "score", ("hardware.device=cpu", "score.batch_size=4"),
             pause=("pipeline.metrics.feature_cache:FeatureCache.store", 1),
             busy="data/.cache/features/*/*.npz", output="submissions/score.json", prepare=_images_and_monets,
             same=same_score),
]}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(KILL_CASES))
def test_kill_9_mid_stage_then_a_rerun_equals_an_uninterrupted_run(tmp_path, request, capsys, start, name):
    case = KILL_CASES[name]
    settings = case.settings
    if case.stage == "score":
        settings += (f'score.weights="{request.getfixturevalue("inception_weights")}"',)
    killed, clean = tmp_path / "killed ✓", tmp_path / "clean"
    for base in (killed, clean):
        base.mkdir()
        case.prepare(base, settings, request)

    proc = start(killed, case.stage, settings, Pause(*case.pause, killed / "paused"))
    assert list(killed.glob(case.busy)), f"paused before {case.busy} was written"
    kill_9(proc)
    out = killed / case.output
    assert "key" not in read_stamp(out)  # nothing half-done is marked done...
    assert case.stage == "train" or not out.exists()  # ...and an atomic stage left no output at all
    if name == "download-kaggle":  # as a kill in the middle of the download itself leaves it
        (killed / "data" / ".cache" / "downloads" / ".gan-getting-started.zip.tmp-killed").mkdir(parents=True)

    assert main(cli(killed, case.stage, *settings)) == 0
    rerun = capsys.readouterr().out
    assert "up to date" not in rerun and (case.stage != "train" or "resuming from step" in rerun)
    # no temp left anywhere
    assert not [p for p in killed.rglob("*") if ".tmp-" in p.name or ".old-" in p.name]
    assert "key" in read_stamp(out)

    assert main(cli(clean, case.stage, *settings)) == 0
    if case.deterministic:
        assert contents(out) == contents(clean / case.output)
    case.same(out, clean / case.output)


# ---------------------------------------------------------------- a full disk
@pytest.mark.slow
def test_disk_full_while_writing_a_checkpoint_keeps_the_last_one(tmp_path, capsys, monkeypatch):
    make_data(tmp_path)
    assert main(cli(tmp_path, "train", *TINY)) == 0  # 4 steps, checkpoints at 2 and 4
    run = tmp_path / "data" / "runs" / "demo"
    before = {p.name: p.read_bytes() for p in run.glob("*.pt")}
    real_save = torch.save

    def save_on_a_full_disk(obj, f, *args, **kwargs) -> None:
        """torch.save onto a disk that fills up half-way through the file."""
        if isinstance(f, (str, os.PathLike)):
            return real_save(obj, "/dev/full", *args, **kwargs)  # torch's own writer meets ENOSPC
        buf = io.BytesIO()
        real_save(obj, buf, *args, **kwargs)
        f.write(buf.getvalue()[:buf.tell() // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # what write() raises: no file name

    monkeypatch.setattr(torch, "save", save_on_a_full_disk)
    capsys.readouterr()
    assert main(cli(tmp_path, "train", *TINY, "train.epochs=2")) == 2  # resumes at 4, checkpoints at 6
    assert one_line_error(capsys).startswith(
        f"train: error: disk full while writing {run / 'ckpt_000006.pt'}; free some space")
    assert {p.name: p.read_bytes() for p in run.glob("*.pt")} == before  # last.pt and its history intact
    assert not [p for p in run.iterdir() if ".tmp-" in p.name] and "key" not in read_stamp(run)

    monkeypatch.setattr(torch, "save", real_save)  # space freed: the same command goes on
    assert main(cli(tmp_path, "train", *TINY, "train.epochs=2")) == 0
    assert checkpoint.read(run / "last.pt")["step"] == 8


def test_disk_full_while_writing_the_zip_keeps_the_previous_zip(tmp_path, capsys, monkeypatch):
    settings = ("zip.min_images=3", "zip.max_images=20", "zip.image_size=32", "generate.count=5")
    images = tmp_path / "submissions" / "images"
    make_jpegs(images, 6)
    assert main(cli(tmp_path, "zip", *settings)) == 0
    zip_path = tmp_path / "submissions" / "images.zip"
    before = zip_path.read_bytes()
    make_jpegs(images, 1, seed=3, prefix="new")  # a changed set: the zip must be written again
    real_writestr = zipfile.ZipFile.writestr

    def fills_the_disk(self, info, data, *args, **kwargs) -> None:
        if len(self.filelist) == 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_writestr(self, info, data, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "writestr", fills_the_disk)
    capsys.readouterr()
    assert main(cli(tmp_path, "zip", *settings)) == 2
    err = one_line_error(capsys)
    assert err.startswith(f"zip: error: disk full while writing {zip_path}; free some space and re-run")
    assert zip_path.read_bytes() == before
    assert not [p for p in zip_path.parent.iterdir() if ".tmp-" in p.name]

    monkeypatch.setattr(zipfile.ZipFile, "writestr", real_writestr)
    assert main(cli(tmp_path, "zip", *settings)) == 0
    assert len(zipfile.ZipFile(zip_path).namelist()) == 7


# ---------------------------------------------------------------- two runs on one output
@pytest.mark.slow
def test_a_second_train_on_the_same_run_folder_refuses_while_the_first_goes_on(tmp_path, capsys, start):
    make_data(tmp_path)
    settings = (*TINY, "train.epochs=8", "train.checkpoint_every=4", "train.sample_every=1000")
    run = tmp_path / "data" / "runs" / "demo"
    pause = after_step(6, tmp_path / "paused")  # past the checkpoint at step 4
    first = start(tmp_path, "train", settings, pause)
    assert (run.parent / ".demo.lock").read_text() == f"pid {first.pid}"

    assert main(cli(tmp_path, "train", *settings)) == 2
    err = one_line_error(capsys)
    assert f"train: error: train: {run} is being written by pid {first.pid}; wait for it to finish" in err
    assert first.poll() is None, "the first run should still have been training"
    pause.release()

    assert first.wait(timeout=300) == 0, (tmp_path / "train.stderr").read_text()[-2000:]
    assert checkpoint.read(run / "last.pt")["step"] == 32  # 8 epochs x 4 steps, untouched by the second run
    assert [r["step"] for r in read_csv(run / "losses.csv")] == [str(s) for s in range(1, 33)]
    assert main(cli(tmp_path, "train", *settings)) == 0
    assert "train: up to date" in capsys.readouterr().out


# ---------------------------------------------------------------- Kaggle failing
@pytest.mark.parametrize("route", ["direct", "dead-proxy"])
def test_network_down_is_retried_then_one_clear_line_and_nothing_is_pushed(tmp_path, fake_kaggle, monkeypatch,
                                                                           capsys, route):
    for name in ("http_proxy", "HTTP_PROXY"):
        if route == "direct":
            monkeypatch.delenv(name)  # http://localhost:80: connection refused
        else:
            monkeypatch.setenv(name, "http://127.0.0.1:9")  # a proxy that is not there
    assert main(cli(tmp_path, "push", *TINY_SUBMIT, "submit.retries=2")) == 2
    err = capsys.readouterr().err.splitlines()
    assert any("retrying in 0s (try 2 of 2)" in line for line in err)  # refused: it never reached Kaggle
    # the first request (the GPU quota, read before any push) is the one that says so
    assert err[-1].startswith("push: error: read the GPU quota: Kaggle still failing after 2 tries (")
    assert err[-1].endswith("check your connection and try again later")
    assert fake_kaggle.pushes == [] and not any("Traceback" in line for line in err)


def test_a_rate_limited_submission_is_retried_and_made_once(tmp_path, fake_kaggle, capsys):
    fake_kaggle.output_files = {"images.zip": images_zip(tmp_path)}
    fake_kaggle.fail("CreateCodeSubmission", 429, 429)  # 429: Kaggle did not act on the request
    assert main(cli(tmp_path, "submit", *TINY_SUBMIT)) == 0
    assert len(fake_kaggle.submissions) == 1 and fake_kaggle.calls.count("CreateCodeSubmission") == 3
    assert capsys.readouterr().err.count("HTTP 429; retrying") == 2


# ---------------------------------------------------------------- secrets
@pytest.mark.slow
def test_the_key_is_in_no_file_log_or_message(tmp_path, fake_kaggle, monkeypatch, capfd, inception_weights):
    key = fake_kaggle.key
    competition = tmp_path / "competition"
    make_jpegs(competition / "monet_jpg", 8, size=32, prefix="m")
    make_jpegs(competition / "photo_jpg", 6, size=32, seed=1, prefix="p")
    fake_kaggle.competition_zip = zip_bytes(competition)
    settings = ("download.source=kaggle", "download.image_size=32", "download.expect_monet=8",
                "download.expect_photos=6", "augment.variants=1", *TINY, "zip.image_size=32",
                "zip.min_images=3", "zip.max_images=10", "generate.count=6", "generate.batch_size=3",
                f'score.weights="{inception_weights}"', "submit.poll_interval_s=0.01",
                "submit.retry_delay_s=0")
    for stage in ("download", "augment", "train", "generate", "score", "zip", "kernel"):
        assert main(cli(tmp_path, stage, *settings)) == 0, stage
    fake_kaggle.output_files = {"images.zip": (tmp_path / "submissions" / "images.zip").read_bytes()}
    assert main(cli(tmp_path, "submit", *settings)) == 0
    assert len(fake_kaggle.submissions) == 1
    monkeypatch.setenv("KAGGLE_USERNAME", fake_kaggle.username)
    monkeypatch.setenv("KAGGLE_KEY", "wrong" + key)  # refused: the error must not quote it either
    assert main(cli(tmp_path, "push", *settings)) == 2

    out, err = capfd.readouterr()
    assert "HTTP 401" in err and key not in out + err
    kaggle_json = Path(os.environ["KAGGLE_CONFIG_DIR"]) / "kaggle.json"
    written = [p for p in tmp_path.rglob("*") if p.is_file() and not p.is_symlink() and p != kaggle_json]
    folders = {p.relative_to(tmp_path).parts[0] for p in written}
    assert {"data", "submissions", "kernels"} <= folders and len(written) > 50
    assert [p for p in written if key.encode() in p.read_bytes()] == []
