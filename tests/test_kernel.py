"""The kernel stage: the built folder, and the built notebook run (nbclient) in a folder laid out like
Kaggle's."""
from __future__ import annotations

import base64
import importlib.metadata
import io
import json
import re
import shutil
import zipfile
from pathlib import Path

import nbformat
import pytest
import pytorch_fid
from helpers import TINY_KAGGLE, kernel_set, tiny_config, write_competition
from kaggle_image import NotebookRun, run_kaggle_notebook

from pipeline.cli import main
from pipeline.config import to_toml
from pipeline.engine.errors import UserError
from pipeline.engine.fingerprint import iter_files
from pipeline.engine.keys import PACKAGE_ROOT
from pipeline.kernels.builder import kernel_settings
from pipeline.notebook import runtime as notebook
from pipeline.stages import KERNEL
from pipeline.training.clock import STEP_CLOCK_ENV

KERNEL_FOLDER = Path("kernels") / "monet-pipeline"
# The tiny kaggle preset, one short epoch.
TINY_KERNEL = (*TINY_KAGGLE, "train.epochs=1", "train.log_every=2", "train.sample_every=4")


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the stage writes kernels/<slug> in the working folder
    for name in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN", "KAGGLE_CONFIG_DIR"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def build(tmp_path: Path, *overrides: str, force: bool = False) -> Path:
    return KERNEL.run(tiny_config(tmp_path, "kernel.username=alice", *overrides), force=force)


def cells(folder: Path) -> list:
    nb = nbformat.read(folder / "monet-pipeline.ipynb", as_version=4)
    nbformat.validate(nb)
    return nb.cells


def test_metadata_is_what_kaggle_expects(tmp_path):
    folder = build(tmp_path, "kernel.weights_dataset=alice/fid-weights")
    assert folder == KERNEL_FOLDER
    meta = json.loads((folder / "kernel-metadata.json").read_text())
    assert meta == {"id": "alice/monet-pipeline", "title": "Monet pipeline",
                    "code_file": "monet-pipeline.ipynb", "language": "python", "kernel_type": "notebook",
                    "is_private": True, "enable_gpu": True,
                    "enable_tpu": False, "enable_internet": False, "dataset_sources": ["alice/fid-weights"],
                    "competition_sources": ["gan-getting-started"], "kernel_sources": [], "model_sources": [],
                    "machine_shape": "NvidiaTeslaT4"}  # T4 x2: without a shape Kaggle has handed out P100s


@pytest.mark.parametrize("preset, model", [("kaggle", "cyclegan"), ("kaggle-cut", "cut"),
                                           ("kaggle-unsb", "unsb")])
def test_each_kaggle_preset_builds_a_notebook_that_trains_its_model_within_kaggles_1_mb(preset, model):
    assert main(["kernel", "--config", preset, "--set", "kernel.username=alice"]) == 0
    notebook = KERNEL_FOLDER / "monet-pipeline.ipynb"
    settings = next(c.source for c in cells(KERNEL_FOLDER) if c.source.startswith("SETTINGS"))
    assert f'model = "{model}"\n' in settings
    assert notebook.stat().st_size < 1_000_000  # Kaggle refuses a notebook of 1 MB or more


def test_accelerator_none_and_the_old_enable_gpu_key(tmp_path, capsys):
    meta = json.loads((build(tmp_path, "kernel.accelerator=none") / "kernel-metadata.json").read_text())
    assert meta["enable_gpu"] is False and "machine_shape" not in meta
    old = json.loads((build(tmp_path, "kernel.enable_gpu=false", force=True)
                      / "kernel-metadata.json").read_text())
    assert old == meta
    assert "kernel.enable_gpu is deprecated: use kernel.accelerator (read as kernel.accelerator='none')" in \
        capsys.readouterr().err
    with pytest.raises(UserError, match="kernel.accelerator must be one of: t4x2, none .*P100"):
        build(tmp_path, "kernel.accelerator=p100", force=True)


def test_notebook_carries_the_pipeline_code_and_is_reproducible(tmp_path):
    folder = build(tmp_path)
    first = (folder / "monet-pipeline.ipynb").read_bytes()
    source = "\n".join(c.source for c in cells(folder) if c.cell_type == "code")
    payload = re.search(r'CODE = "([A-Za-z0-9+/=]+)"', source).group(1)
    carried = zipfile.ZipFile(io.BytesIO(base64.b64decode(payload)))
    expected = {f"pipeline/{p.relative_to(PACKAGE_ROOT).as_posix()}": p.read_bytes()
                for p in iter_files(PACKAGE_ROOT) if p.suffix in (".py", ".toml")}
    # Kaggle's image lacks it: the notebook carries the installed copy
    fid = Path(pytorch_fid.__file__).parent
    expected.update({f"pytorch_fid/{p.name}": p.read_bytes() for p in fid.glob("*.py")})
    version = importlib.metadata.version("pytorch-fid")
    names = set(carried.namelist())
    assert {f"pytorch_fid-{version}.dist-info/METADATA", f"pytorch_fid-{version}.dist-info/LICENSE"} <= names
    assert {name: carried.read(name) for name in names if ".dist-info/" not in name} == expected
    assert "pipeline/kernels/builder.py" in expected and "pipeline/config/presets/kaggle.toml" in expected
    assert "pip install" not in source
    markdown = [c.source for c in cells(folder) if c.cell_type == "markdown"]
    for stage in ("download", "augment", "train", "generate", "score"):
        assert any(stage in m.split("\n")[0] for m in markdown), stage  # one heading per stage
    assert build(tmp_path, force=True) == folder and (folder / "monet-pipeline.ipynb").read_bytes() == first


def test_kernel_settings_are_resolved_and_checked_when_building(tmp_path):
    folder = build(tmp_path, kernel_set("train.epochs=3", "cyclegan.ngf=8"))
    settings = next(c.source for c in cells(folder) if c.source.startswith("SETTINGS"))
    assert "epochs = 3\n" in settings and "ngf = 8\n" in settings
    assert 'submissions = "/kaggle/working"' in settings
    with pytest.raises(UserError, match="train.nope"):
        build(tmp_path, kernel_set("train.nope=1"))
    with pytest.raises(UserError, match="/kaggle/working"):
        build(tmp_path, kernel_set("paths.submissions=/tmp/elsewhere"))
    with pytest.raises(UserError, match="kernel.slug"):
        build(tmp_path, "kernel.title=Something else")
    # Kaggle's own rule (python-slugify) names the notebook: an accented title still makes monet-pipeline
    accented = build(tmp_path, "kernel.title=Monét pipeline", force=True) / "kernel-metadata.json"
    assert json.loads(accented.read_text())["title"] == "Monét pipeline"


def test_the_notebooks_texts_name_the_chosen_family_and_its_settings(tmp_path, capsys):
    cfg = tiny_config(tmp_path, "kernel.username=alice",
                      kernel_set("train.model=progan", "train.epoch_over=paintings", "progan.max_size=64",
                                 "generate.count=7500"))
    folder = KERNEL.run(cfg)
    markdown = "\n".join(c.source for c in cells(folder) if c.cell_type == "markdown")
    assert "train a progan (4 -> 64 px, 800,000 images a phase, z 512, width 64-512)" in markdown
    assert "sample 7,500 new paintings from noise" in markdown and "fixed noise → Monet" in markdown
    assert "7,500 noise vectors go through the trained generator" in markdown
    assert "cyclegan" not in markdown.lower() and "every photo" not in markdown.lower()
    notebook.describe(kernel_settings(cfg))  # what the settings cell prints on Kaggle
    described = capsys.readouterr().out
    assert "model:       progan (4 -> 64 px" in described and "steps in 9 phases" in described
    assert "epochs" not in described  # its schedule, not train.epochs, decides its length
    photos = "\n".join(c.source for c in cells(build(tmp_path, force=True)) if c.cell_type == "markdown")
    assert "train a cyclegan" in photos and "turn every photo into a Monet-style painting" in photos


def test_a_scoring_that_fails_in_the_notebook_is_reported_and_the_notebook_goes_on(tmp_path, caplog):
    weights = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    weights.write_bytes(b"attached")
    notebook.score(tiny_config(tmp_path, f"score.weights={weights}"))  # nothing generated: the stage fails
    failed = [r for r in caplog.records if r.levelname == "ERROR"]
    assert [r.getMessage() for r in failed] == [
        "score: failed (UserError); images.zip is written and unaffected"]
    assert "submissions/images is missing" in str(failed[0].exc_info[1])  # its traceback goes with it


def test_username_comes_from_the_credentials_and_none_are_written(tmp_path, monkeypatch):
    key = "k0123456789abcdef0123456789abcdef"
    monkeypatch.setenv("KAGGLE_USERNAME", "bob")
    monkeypatch.setenv("KAGGLE_KEY", key)
    folder = KERNEL.run(tiny_config(tmp_path))
    assert json.loads((folder / "kernel-metadata.json").read_text())["id"] == "bob/monet-pipeline"
    assert not [p for p in folder.rglob("*") if p.is_file() and key.encode() in p.read_bytes()]


def test_without_credentials_or_username_the_message_says_both_ways(tmp_path):
    with pytest.raises(UserError, match=r"kaggle\.json.*KAGGLE_USERNAME.*kernel\.username"):
        KERNEL.run(tiny_config(tmp_path))


def test_settings_follow_kaggle_root_and_find_attached_weights(tmp_path, monkeypatch):
    root = tmp_path / "kaggle"
    weights = root / "input" / WEIGHTS_DATASET / "pt_inception-2015-12-05-6726825d.pth"
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"w")
    monkeypatch.setenv("KAGGLE_ROOT", str(root))
    cfg = notebook.settings(to_toml(kernel_settings(tiny_config(tmp_path))), "kaggle")
    assert cfg.download.source == "kaggle-input"  # found among the inputs by what it holds, not by a path
    assert cfg.zip_path == root / "working" / "images.zip" and cfg.data_dir == root / "working" / "data"
    assert cfg.score.weights == str(weights)


WEIGHTS_DATASET = "datasets/alice/fid-weights"  # where Kaggle mounts the dataset alice/fid-weights today


def kaggle_folder(tmp_path: Path, *, with_input: bool = True, weights: Path | None = None) -> Path:
    """A folder laid out like a Kaggle notebook's /kaggle today: the competition's images (made here, 32 px)
    only at input/competitions/gan-getting-started/, optionally the FID weights as an attached dataset
    (input/datasets/<owner>/<slug>/), and an empty working/."""
    root = tmp_path / "kaggle"
    if with_input:
        write_competition(root / "input" / "competitions" / "gan-getting-started")
    if weights is not None:
        (root / "input" / WEIGHTS_DATASET).mkdir(parents=True)
        shutil.copy(weights, root / "input" / WEIGHTS_DATASET / "pt_inception-2015-12-05-6726825d.pth")
    (root / "working").mkdir(parents=True)
    return root


def run_on_kaggles_image(tmp_path: Path, root: Path, items: tuple[str, ...], *overrides: str) -> NotebookRun:
    """Build the kernel (for the CPU) and run its notebook in the Python built from
    kernels/kaggle-image.toml, training on a clock that moves 0.5 s a step (the same plan however loaded
    this machine is)."""
    folder = build(tmp_path, "kernel.accelerator=none", kernel_set(*items), *overrides)
    return run_kaggle_notebook(folder / "monet-pipeline.ipynb", root, timeout=600,
                               env={STEP_CLOCK_ENV: "0.5"})


def cell_text(run: NotebookRun, source_start: str) -> str:
    cell = next(c for c in run.notebook.cells if c.cell_type == "code" and c.source.startswith(source_start))
    return "".join(o.get("text", "") for o in cell.outputs)


@pytest.mark.slow
def test_notebook_runs_on_kaggles_image_and_writes_a_valid_zip(tmp_path):
    """Half a minute of training on the step clock, on Kaggle's package set (no pytorch-fid), then images.zip;
    the train cell's text stays small (progress lines, not redrawn bars)."""
    root = kaggle_folder(tmp_path)
    run = run_on_kaggles_image(tmp_path, root,
                               (*TINY_KERNEL, "train.epochs=1000", "train.time_budget_min=0.5"))
    assert run.ok, run.log_text()[-3000:]
    assert main(["zip", "--check", str(root / "working" / "images.zip"), "--config", "demo",
                 "--set", "zip.min_images=5", "--set", "zip.image_size=32"]) == 0
    train = cell_text(run, "run_dir = notebook.train")
    assert "clock: training until " in train and "generate+zip estimated" in train
    # the half minute was planned by the clock and trained to its end: the rate decayed, nothing cut short
    assert "train: planned" in train and "(measured 2.00 steps/s at step 4)" in train
    assert "stopped by" not in train and "steps at 2.0 steps/s" in train
    assert len(train.encode()) <= 8000 and "\r" not in train, len(train.encode())
    assert len(run.log_text().encode()) <= 16_000  # the whole notebook: no per-file listings, no redrawn bars
    assert "preflight: ok" in run.log_text() and "score: skipped" in run.log_text()
    images = [o for c in run.notebook.cells if c.cell_type == "code" for o in c.outputs if "image/png" in
              o.get("data", {})]
    assert len(images) == 2  # the loss plot and a sample grid
    left = [p for p in (root / "working").rglob("*") if p.is_file()]
    assert not (root / "working" / "data").exists() and not (root / "working" / "images").exists()
    assert (all(p.stat().st_size < 2**20 for p in left)
            and (root / "working" / "run" / "config.toml").is_file())
    assert not [p for p in left if p.name.endswith((".lock", ".stage.json"))]  # no pipeline bookkeeping


@pytest.mark.slow
def test_notebook_scores_with_weights_attached_and_trains_under_torchrun(tmp_path, inception_weights):
    """Stand-in FID weights attached: the carried pytorch-fid scores inside the notebook; two CPU processes
    train under torchrun, launched by the notebook, their output streamed into the cell."""
    root = kaggle_folder(tmp_path, weights=inception_weights)
    run = run_on_kaggles_image(tmp_path, root, (*TINY_KERNEL, "train.time_budget_min=0.1"),
                               "kernel.launcher=torchrun", "kernel.processes=2")
    assert run.ok, run.log_text()[-3000:]
    train = cell_text(run, "run_dir = notebook.train")
    assert "train: 2 processes under torchrun" in train and " x2 cpu;" in train
    score = json.loads((root / "working" / "score.json").read_text())
    assert score["n_gen"] == 10 and score["mifid"] > 0
    assert (root / "working" / "leaderboard.csv").is_file()


@pytest.mark.slow
def test_preflight_stops_a_notebook_without_its_input_in_one_line(tmp_path, inception_weights):
    root = kaggle_folder(tmp_path, with_input=False, weights=inception_weights)
    run = run_on_kaggles_image(tmp_path, root, TINY_KERNEL)
    assert not run.ok
    assert run.failure.startswith("PreflightError: the competition data is not attached")
    [error] = [o for c in run.notebook.cells if c.cell_type == "code" for o in c.outputs
               if o.output_type == "error"]
    assert (len(error.traceback) == 1 and f"(found: {WEIGHTS_DATASET})" in error.traceback[0]
            and "Add Input → Competitions → gan-getting-started" in error.traceback[0])
    assert not (root / "working" / "data").exists()  # stopped before any work
