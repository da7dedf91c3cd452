"""The Kaggle-like Python (tests/kaggle_image.py) is what kernels/kaggle-image.toml says Kaggle's image is."""
from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

import pytest
from kaggle_image import (
    IMAGE_TOML,
    VENV,
    image_spec,
    inspect,
    kaggle_kernelspec,
    kaggle_python,
    problems,
    run_kaggle_notebook,
    satisfies,
)

pytestmark = pytest.mark.slow  # every test here builds or uses the Kaggle-like Python


@pytest.fixture(scope="module")
def report():
    """What the Kaggle-like Python has of every listed package (one subprocess)."""
    return inspect(kaggle_python(), image_spec())


def test_every_installed_package_imports_at_the_listed_version(report):
    spec = image_spec()
    for name in spec.installed:
        entry = report["packages"][name]
        assert entry["importable"], f"{name}: {entry['error']}"
        assert satisfies(entry["version"], spec.expected(name)), (
            f"{name} {entry['version']}, want {spec.expected(name)}")
        if entry["file"]:
            assert VENV.resolve() in Path(entry["file"]).resolve().parents, entry["file"]
    assert problems(report, spec) == []


def test_what_kaggle_lacks_cannot_be_imported(report):
    spec = image_spec()
    assert "pytorch-fid" in spec.absent  # installed in the project's own venv: it must not leak in
    for name in spec.absent:
        entry = report["packages"][name]
        assert entry["version"] is None and not entry["importable"], f"{name} found at {entry['file']}"
    own_venv = str(importlib.metadata.distribution("pytorch-fid").locate_file(""))
    assert not [p for p in report["sys_path"] if p.startswith(own_venv)]


def test_torch_is_this_machines(report):
    for name in image_spec().local:
        assert report["packages"][name]["version"] == importlib.metadata.version(name)
    assert report["packages"]["numpy"]["version"] == "2.0.2"  # Kaggle's, not the project venv's


def test_the_spec_reads_the_toml():
    spec = image_spec()
    assert spec.requirement("kaggle") == "kaggle==2.0.*" and spec.requirement("tqdm") == "tqdm"
    assert spec.requirement("torch") == f"torch=={importlib.metadata.version('torch')}"
    assert spec.requirement("albumentations") == "albumentations==2.0.8"
    assert (VENV / "kaggle-image.stamp").read_text().strip() == spec.digest
    assert IMAGE_TOML.is_file()
    assert satisfies("2.0.3", "2.0.*") and not satisfies("2.10.0", "2.1.*") and not satisfies(None, "*")


def test_a_notebook_runs_there_like_on_kaggle(tmp_path, monkeypatch):
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    root = tmp_path / "kaggle"
    (root / "working").mkdir(parents=True)
    (root / "input").mkdir()
    path = tmp_path / "probe.ipynb"
    nbformat.write(new_notebook(cells=[
        new_code_cell("import json, os, sys\n"
                      "print(json.dumps({'cwd': os.getcwd(), 'root': os.environ.get('KAGGLE_ROOT'),\n"
                      "    'run_type': os.environ.get('KAGGLE_KERNEL_RUN_TYPE'), 'prefix': sys.prefix,\n"
                      "    'pythonpath': os.environ.get('PYTHONPATH'), 'key': os.environ.get('KAGGLE_KEY'),\n"
                      "    'extra': os.environ.get('EXTRA')}))"),
        new_code_cell("import sys; print('to stderr', file=sys.stderr)"),
        new_code_cell("raise ValueError('boom')"),
        new_code_cell("print('never')"),
    ]), str(path))
    monkeypatch.setenv("KAGGLE_KEY", "k-secret")  # credentials never reach the notebook
    monkeypatch.setenv("PYTHONPATH", str(Path.cwd()))
    run = run_kaggle_notebook(path, root, timeout=120, env={"EXTRA": "yes"})
    assert not run.ok and run.failure == "ValueError: boom" and "boom" in run.error
    seen = json.loads(run.log[0]["data"])
    assert seen == {"cwd": str(root / "working"), "root": str(root), "run_type": "Batch",
                    "prefix": str(VENV), "pythonpath": None, "key": None, "extra": "yes"}
    assert {"stream_name": "stderr", "data": "to stderr\n"}.items() <= run.log[1].items()
    assert all(set(e) == {"stream_name", "time", "data"} and isinstance(e["time"], float) for e in run.log)
    assert "ValueError: boom" in run.log_text() and "never" not in run.log_text()
    assert kaggle_kernelspec(tmp_path / "jupyter") == "kaggle-python"
    assert json.loads((tmp_path / "jupyter" / "kernels" / "kaggle-python"
                       / "kernel.json").read_text())["argv"][0] == str(kaggle_python())
