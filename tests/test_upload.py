"""From your own GPU to the leaderboard: a run trained here goes to Kaggle as a private dataset through the
client's dataset calls (against the fake Kaggle, which keeps them to the SDK), then as new versions; a submit
kernel attaches it and generates from its checkpoint; the FID weights go up once and kernels attach them
unless told otherwise; a run or a weights file that is not there is a one-line error."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO, TINY, TINY_KAGGLE, cli, kernel_set, make_data, one_line_error, tiny_config

from pipeline.cli import main
from pipeline.datasets.store import WEIGHTS, Uploads, run_record
from pipeline.generate import provenance
from pipeline.metrics.features import WEIGHTS_FILE
from pipeline.notebook.preflight import PreflightError, check_attached, find_run
from pipeline.search.study import existing
from pipeline.search.variants import variant_rows
from pipeline.stages import KERNEL, STAGES
from pipeline.training import checkpoint
from pipeline.training.clock import STEP_CLOCK_ENV

RUN_DATASET = "tester/monet-pipeline-demo"  # kernel.slug and the run's name (the demo preset's: demo)
WEIGHTS_DATASET = "tester/monet-pipeline-fid-weights"
FAST = ("submit.poll_interval_s=0.01", "submit.retry_delay_s=0")


@pytest.fixture
def trained(tmp_path: Path) -> Path:
    """The run folder data/runs/demo of a tiny run trained here."""
    make_data(tmp_path)
    return STAGES["train"].run(tiny_config(tmp_path, *TINY))


def upload(tmp_path: Path, *args: str, sets: tuple[str, ...] = ()) -> int:
    return main([*cli(tmp_path, "upload", *FAST, *sets), *args])


@pytest.mark.slow
def test_a_run_goes_up_as_a_private_dataset_then_as_new_versions(tmp_path, fake_kaggle, trained, capsys):
    assert upload(tmp_path) == 0
    out = capsys.readouterr().out
    [created] = fake_kaggle.datasets[RUN_DATASET]
    assert created["isPrivate"] is True and created["title"] == "Monet pipeline demo"
    # a run folder to the notebook: the checkpoint generate uses beside the settings it was trained with
    assert fake_kaggle.dataset_files[RUN_DATASET] == ["config.toml", "last.pt"]
    on_kaggle = fake_kaggle.uploads[RUN_DATASET]
    assert (on_kaggle / "last.pt").read_bytes() == (trained / "last.pt").read_bytes()
    assert (on_kaggle / "config.toml").read_text() == (trained / "config.toml").read_text()
    record = Uploads(tmp_path / "submissions").get(run_record("demo"))
    step = checkpoint.read(trained / "last.pt")["step"]
    assert (record.ref, record.version, record.file, record.step) == (RUN_DATASET, 1, "last.pt", step)
    assert f"Kaggle is processing {RUN_DATASET}" in out and f"{RUN_DATASET} version 1 is ready" in out
    assert "make submit RUN=demo" in out
    # the same files again: nothing is sent
    assert upload(tmp_path, "--run", "demo") == 0
    assert "is on Kaggle already" in capsys.readouterr().out and len(fake_kaggle.datasets[RUN_DATASET]) == 1
    # trained further: the next version, through CreateDatasetVersion
    STAGES["train"].run(tiny_config(tmp_path, *TINY, "train.epochs=2"))
    assert upload(tmp_path, "--run", "demo") == 0
    later = Uploads(tmp_path / "submissions").get(run_record("demo"))
    assert (later.version, len(fake_kaggle.datasets[RUN_DATASET])) == (2, 2) and later.step > record.step
    assert [fake_kaggle.calls.count(m) for m in ("CreateDataset", "CreateDatasetVersion")] == [1, 1]
    second = fake_kaggle.uploads[RUN_DATASET] / "last.pt"
    assert second != on_kaggle / "last.pt" and second.read_bytes() == (trained / "last.pt").read_bytes()
    # a run that kept best.pt sends that one alone: generate's choice, and a run folder to the notebook
    shutil.copy(trained / "last.pt", trained / "best.pt")
    assert upload(tmp_path) == 0
    assert fake_kaggle.dataset_files[RUN_DATASET] == ["best.pt", "config.toml"]
    inputs = tmp_path / "input"  # as Kaggle mounts it, beside another input's run (first in name order)
    shutil.copytree(fake_kaggle.uploads[RUN_DATASET], inputs / "datasets" / RUN_DATASET)
    shutil.copytree(trained, inputs / "archive" / "runs" / "demo")
    assert find_run(inputs, "tester/archive") == inputs / "archive" / "runs" / "demo"
    assert find_run(inputs, f"dataset:{RUN_DATASET}") == inputs / "datasets" / RUN_DATASET


def test_a_kernel_attaches_an_uploaded_run_and_by_default_the_uploaded_weights(tmp_path, fake_kaggle,
                                                                                inception_weights, capsys):
    assert upload(tmp_path, "--weights", sets=(f"score.weights={inception_weights}",)) == 0
    assert fake_kaggle.dataset_files[WEIGHTS_DATASET] == [WEIGHTS_FILE]  # the name the notebook looks for
    assert Uploads(tmp_path / "submissions").get(WEIGHTS).ref == WEIGHTS_DATASET
    capsys.readouterr()
    folder = KERNEL.run(tiny_config(tmp_path, f"kernel.checkpoint_from=dataset:{RUN_DATASET}"))
    meta = json.loads((folder / "kernel-metadata.json").read_text())
    assert meta["dataset_sources"] == [WEIGHTS_DATASET, RUN_DATASET] and meta["kernel_sources"] == []
    assert f"attaching the FID weights of make upload-weights ({WEIGHTS_DATASET})" in capsys.readouterr().out
    # a dataset named in the settings wins over the uploaded one
    folder = KERNEL.run(tiny_config(tmp_path, "kernel.weights_dataset=someone/weights"))
    assert json.loads((folder / "kernel-metadata.json").read_text())["dataset_sources"] == ["someone/weights"]
    # make doctor checks the uploaded one
    assert main(cli(tmp_path, "doctor")) in (0, 1)
    assert f"{WEIGHTS_DATASET}: visible, holds {WEIGHTS_FILE}" in capsys.readouterr().out


def test_what_is_not_there_is_a_one_line_error_and_nothing_goes_up(tmp_path, fake_kaggle, capsys):
    runs = tmp_path / "data" / "runs"
    assert upload(tmp_path, "--run", "nothing") == 2
    assert one_line_error(capsys) == (f"upload: error: no run folder {runs / 'nothing'}: train one first "
                                      f"(make train), or name a folder of {runs} with RUN=<name>")
    (runs / "stopped").mkdir(parents=True)
    (runs / "stopped" / "config.toml").write_text("")
    assert upload(tmp_path, "--run", "stopped") == 2
    assert f"upload: error: {runs / 'stopped'} holds no last.pt: not a trained run" in one_line_error(capsys)
    assert upload(tmp_path, "--weights") == 2  # TORCH_HOME is the test's: no weights there
    hub = tmp_path / "torch" / "hub" / "checkpoints" / WEIGHTS_FILE
    assert one_line_error(capsys).startswith(
        f"upload: error: no FID weights file at {hub}: put {WEIGHTS_FILE} there")
    assert main([*cli(tmp_path, "submit", *FAST), "--run", "demo"]) == 2
    assert one_line_error(capsys) == (
        f"submit: error: run demo was never uploaded from here (no record in "
        f"{tmp_path / 'submissions' / 'kaggle' / 'uploads.json'}): make upload RUN=demo first")
    assert main([*cli(tmp_path, "submit", "kernel.checkpoint_from=you/run-train-3"), "--run", "demo"]) == 2
    assert "--run demo and kernel.checkpoint_from=you/run-train-3 both say" in one_line_error(capsys)
    assert main(cli(tmp_path, "kernel", "kernel.checkpoint_from=dataset:nothing")) == 2
    assert "kernel.checkpoint_from" in one_line_error(capsys)
    # in the notebook, before any work: the dataset is not attached
    (tmp_path / "input").mkdir()
    notebook = tiny_config(tmp_path, f"kernel.checkpoint_from=dataset:{RUN_DATASET}")
    with pytest.raises(PreflightError) as refused:
        check_attached(notebook, tmp_path / "input")
    assert str(refused.value).startswith(f"no run of dataset:{RUN_DATASET} is attached (kernel.checkpoint_"
                                         f"from): add it with Add Input → Datasets → {RUN_DATASET}")
    assert fake_kaggle.datasets == {} and fake_kaggle.pushes == []


def make(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """make with the repository's Makefile in tmp_path, with the venv running the tests (none built)."""
    venv = Path(sys.executable).parents[1]
    return subprocess.run(["make", "-f", str(REPO / "Makefile"), f"VENV={venv}", "-o",
                           str(venv / ".installed-stamp"), *args],
                          cwd=tmp_path, capture_output=True, text=True, check=False, timeout=600)


def test_make_passes_run_to_upload_and_submit_and_keeps_its_own_commands(tmp_path):
    def dry(*args: str) -> str:
        proc = make(tmp_path, "-n", *args)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    assert "-m pipeline upload --config default --run demo" in " ".join(dry("upload", "RUN=demo").split())
    assert "-m pipeline upload --weights" in dry("upload-weights")
    assert " --run demo" in dry("submit", "RUN=demo") and "--run" not in dry("submit")
    assert "-m pipeline train --config default" in " ".join(dry("train", "RUN=demo").split())


@pytest.mark.slow
def test_an_uploaded_run_is_generated_from_on_kaggle_and_submitted(tmp_path, fake_kaggle, trained,
                                                                  competition):
    local = f"paths.data={tmp_path / 'data'} paths.submissions={tmp_path / 'submissions'}"
    proc = make(tmp_path, "upload", "RUN=demo", "CONFIG=demo", f"SET={local} {' '.join(FAST)}")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    record = Uploads(tmp_path / "submissions").get(run_record("demo"))
    fake_kaggle.execute_with(competition)
    sets = (f"paths.data={tmp_path / 'data'}", f"paths.submissions={tmp_path / 'submissions'}",
            "zip.min_images=5", "zip.max_images=20", "zip.image_size=32", "generate.count=10",
            "submit.poll_interval_s=1", "submit.retry_delay_s=0", kernel_set(*TINY_KAGGLE),
            "kernel.accelerator=none")
    # what `make submit RUN=demo` runs
    proc = subprocess.run([sys.executable, "-m", "pipeline", "submit", "--config", "demo", "--run", "demo",
                           *[arg for s in sets for arg in ("--set", s)]],
                          check=False, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    [push] = fake_kaggle.pushes
    assert push["datasetDataSources"] == [RUN_DATASET] and not push.get("kernelDataSources")
    log = "".join(e["data"] for e in fake_kaggle.runs[(push["slug"], 1)].log)
    assert f"datasets/{RUN_DATASET}/last.pt" in log and "train:" not in log  # generated, trained nothing
    made = provenance.read(tmp_path / "submissions" / "kaggle" / "1" / "images.zip")
    assert (made.run, made.checkpoint, made.step) == ("demo", "last.pt", record.step)
    assert made.trained_by == f"dataset:{RUN_DATASET}"
    assert [s["kernelSlug"] for s in fake_kaggle.submissions] == ["monet-pipeline"]


@pytest.mark.slow
def test_after_upload_weights_a_kaggle_sweep_scores_its_variants(tmp_path, fake_kaggle, competition,
                                                                inception_weights, monkeypatch):
    monkeypatch.setenv(STEP_CLOCK_ENV, "0.5")  # the notebooks train 12 steps however loaded the machine is
    assert upload(tmp_path, "--weights", sets=(f"score.weights={inception_weights}",)) == 0
    fake_kaggle.execute_with(competition)
    sweep = tmp_path / "solo.toml"
    base = [*TINY_KAGGLE, "train.epochs=1000", "train.time_budget_min=0.1", "sweep.score_images=6"]
    sweep.write_text(f'preset = "kaggle"\nset = {json.dumps(base)}\n'
                     '[[variant]]\nname = "slow"\nset = ["train.lr=0.0001"]\n')
    sets = (f"paths.data={tmp_path / 'data'}", f"paths.submissions={tmp_path / 'submissions'}",
            "kernel.accelerator=none", "kernel.margin_min=0", "submit.poll_interval_s=1",
            "submit.retry_delay_s=0")
    proc = subprocess.run([sys.executable, "-m", "pipeline", "sweep", str(sweep), "--config", "demo",
                           *[arg for s in sets for arg in ("--set", s)]],
                          check=False, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    # no kernel.weights_dataset given: each variant's kernel attached the uploaded weights and scored
    assert [p["datasetDataSources"] for p in fake_kaggle.pushes] == [[WEIGHTS_DATASET]] * 2
    variants = variant_rows(existing(tmp_path / "submissions" / "sweeps" / "solo", "solo"))
    assert [(v.state, v.n_images) for v in variants] == [("done", 6)] * 2
    assert all(v.mifid is not None for v in variants)
