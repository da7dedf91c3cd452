"""The kernel stage: the built folder, and the built notebook run (nbclient) in a folder laid out like Kaggle's."""
from __future__ import annotations

import base64
import io
import json
import re
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest
from conftest import tiny_config

from pipeline import notebook
from pipeline.chain import PACKAGE_DIR, STAGES
from pipeline.config import ZipConfig, to_toml
from pipeline.errors import UserError
from pipeline.fingerprint import iter_files
from pipeline.kernel import kernel_settings

KERNEL = Path("kernels") / "monet-pipeline"
# The kaggle preset made tiny: 32 px demo data, a one-block ResNet CycleGAN, one short epoch on the CPU.
TINY_KERNEL = ("download.image_size=32;download.expect_monet=6;download.expect_photos=10;augment.variants=1;"
               "train.generator=resnet;train.ngf=4;train.n_blocks=1;train.ndf=4;train.d_layers=1;train.image_size=32;"
               "train.epochs=1;train.log_every=2;train.sample_every=4;hardware.device=cpu;"
               "zip.min_images=5;zip.max_images=20;zip.image_size=32;generate.count=10")


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the stage writes kernels/<slug> in the working folder
    for name in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN", "KAGGLE_CONFIG_DIR"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def build(tmp_path: Path, *overrides: str, force: bool = False) -> Path:
    return STAGES["kernel"].run(tiny_config(tmp_path, "kernel.username=alice", *overrides), force=force)


def cells(folder: Path) -> list:
    nb = nbformat.read(folder / "monet-pipeline.ipynb", as_version=4)
    nbformat.validate(nb)
    return nb.cells


def test_metadata_is_what_kaggle_expects(tmp_path):
    folder = build(tmp_path, "kernel.weights_dataset=alice/fid-weights")
    assert folder == KERNEL
    meta = json.loads((folder / "kernel-metadata.json").read_text())
    assert meta == {"id": "alice/monet-pipeline", "title": "Monet pipeline", "code_file": "monet-pipeline.ipynb",
                    "language": "python", "kernel_type": "notebook", "is_private": True, "enable_gpu": True,
                    "enable_tpu": False, "enable_internet": False, "dataset_sources": ["alice/fid-weights"],
                    "competition_sources": ["gan-getting-started"], "kernel_sources": [], "model_sources": []}


def test_notebook_carries_the_pipeline_code_and_is_reproducible(tmp_path):
    folder = build(tmp_path)
    first = (folder / "monet-pipeline.ipynb").read_bytes()
    source = "\n".join(c.source for c in cells(folder) if c.cell_type == "code")
    payload = re.search(r'CODE = "([A-Za-z0-9+/=]+)"', source).group(1)
    carried = zipfile.ZipFile(io.BytesIO(base64.b64decode(payload)))
    expected = {f"pipeline/{p.relative_to(PACKAGE_DIR).as_posix()}": p.read_bytes()
                for p in iter_files(PACKAGE_DIR) if p.suffix in (".py", ".toml")}
    assert {name: carried.read(name) for name in carried.namelist()} == expected
    assert "pipeline/kernel.py" in expected and "pipeline/configs/kaggle.toml" in expected
    assert "pip install" not in source
    markdown = [c.source for c in cells(folder) if c.cell_type == "markdown"]
    for stage in ("download", "augment", "train", "generate", "score"):
        assert any(stage in m.split("\n")[0] for m in markdown), stage  # one heading per stage
    assert build(tmp_path, force=True) == folder and (folder / "monet-pipeline.ipynb").read_bytes() == first


def test_kernel_settings_are_resolved_and_checked_when_building(tmp_path):
    folder = build(tmp_path, "kernel.set=train.epochs=3; train.ngf=8")
    settings = next(c.source for c in cells(folder) if c.source.startswith("SETTINGS"))
    assert "epochs = 3\n" in settings and "ngf = 8\n" in settings
    assert 'submissions = "/kaggle/working"' in settings
    with pytest.raises(UserError, match="train.nope"):
        build(tmp_path, "kernel.set=train.nope=1")
    with pytest.raises(UserError, match="/kaggle/working"):
        build(tmp_path, "kernel.set=paths.submissions=/tmp/elsewhere")
    with pytest.raises(UserError, match="kernel.slug"):
        build(tmp_path, "kernel.title=Something else")


def test_username_comes_from_the_credentials_and_none_are_written(tmp_path, monkeypatch):
    key = "k0123456789abcdef0123456789abcdef"
    monkeypatch.setenv("KAGGLE_USERNAME", "bob")
    monkeypatch.setenv("KAGGLE_KEY", key)
    folder = STAGES["kernel"].run(tiny_config(tmp_path))
    assert json.loads((folder / "kernel-metadata.json").read_text())["id"] == "bob/monet-pipeline"
    assert not [p for p in folder.rglob("*") if p.is_file() and key.encode() in p.read_bytes()]


def test_without_credentials_or_username_the_message_says_both_ways(tmp_path):
    with pytest.raises(UserError, match=r"kaggle\.json.*KAGGLE_USERNAME.*kernel\.username"):
        STAGES["kernel"].run(tiny_config(tmp_path))


def test_settings_follow_kaggle_root_and_find_attached_weights(tmp_path, monkeypatch):
    root = tmp_path / "kaggle"
    weights = root / "input" / "fid-weights" / "pt_inception-2015-12-05-6726825d.pth"
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"w")
    monkeypatch.setenv("KAGGLE_ROOT", str(root))
    cfg = notebook.settings(to_toml(kernel_settings(tiny_config(tmp_path))), "kaggle")
    assert cfg.download.source == f"dir:{root}/input/gan-getting-started"
    assert cfg.zip_path == root / "working" / "images.zip" and cfg.data_dir == root / "working" / "data"
    assert cfg.score.weights == str(weights)


@pytest.fixture
def python_kernel(tmp_path, monkeypatch):
    """A Jupyter kernelspec for this interpreter, so nbclient runs the notebook with the project's venv
    whatever kernels the machine has installed."""
    spec = tmp_path / "jupyter" / "kernels" / "pipeline-test"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "pipeline test", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    return "pipeline-test"


def test_notebook_runs_in_a_folder_laid_out_like_kaggle(tmp_path, monkeypatch, python_kernel):
    from nbclient import NotebookClient

    from pipeline.demo import write_demo
    from pipeline.submission import check_zip

    root = tmp_path / "kaggle"
    write_demo(root / "input" / "gan-getting-started", 6, 10, 32, seed=0, workers=1)
    (root / "working").mkdir()
    monkeypatch.setenv("KAGGLE_ROOT", str(root))
    folder = build(tmp_path, f"kernel.set={TINY_KERNEL}")
    nb = nbformat.read(folder / "monet-pipeline.ipynb", as_version=4)
    NotebookClient(nb, kernel_name=python_kernel, timeout=300,
                   resources={"metadata": {"path": str(root / "working")}}).execute()
    summary = check_zip(root / "working" / "images.zip", ZipConfig(min_images=5, max_images=20, image_size=32))
    assert summary.images == 10
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    text = "".join(o.get("text", "") for o in outputs)
    assert "pipeline code unpacked to" in text and "generate + zip took" in text and "score: skipped" in text
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 2  # the loss plot and a sample grid
    left = [p for p in (root / "working").rglob("*") if p.is_file()]
    assert not (root / "working" / "data").exists() and not (root / "working" / "images").exists()
    assert all(p.stat().st_size < 2**20 for p in left) and (root / "working" / "run" / "config.toml").is_file()
