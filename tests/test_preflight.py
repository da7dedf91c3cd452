"""The notebook's first cell and its clock: each refusal with the GPU facts faked, and the training budget
plan."""
from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
from collections import namedtuple
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from helpers import tiny_config

from pipeline.config import tomllib
from pipeline.data.demo import write_demo
from pipeline.kernels.builder import CARRIED_DISTRIBUTIONS
from pipeline.notebook import clock as notebook_clock
from pipeline.notebook import preflight
from pipeline.notebook.preflight import Gpu, PreflightError, TorchFacts
from pipeline.training import runtime as device

IMAGE_LIST = Path(__file__).resolve().parents[1] / "kernels" / "kaggle-image.toml"
# What torch 2.10.0+cu128 reports (Kaggle's image, 2026): code for Volta on, nothing for the P100's sm_60.
KAGGLE_TORCH = ("2.10.0+cu128",
                ("sm_70", "sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120", "compute_120"))
T4X2 = TorchFacts(*KAGGLE_TORCH, (Gpu("Tesla T4", (7, 5)), Gpu("Tesla T4", (7, 5))))
P100 = TorchFacts(*KAGGLE_TORCH, (Gpu("Tesla P100-PCIE-16GB", (6, 0)),))
NO_GPU = TorchFacts("2.10.0+cu128", (), ())
NO_INPUTS = Path("/nonexistent/input")  # nothing attached besides the competition


@pytest.fixture
def kaggle_input(tmp_path):
    """Competition data attached where download.source points, and the kaggle preset's accelerator (t4x2)."""
    folder = tmp_path / "input" / "gan-getting-started"
    write_demo(folder, 3, 4, 32, seed=0, workers=1)
    return tiny_config(tmp_path, f"download.source=dir:{folder}", "zip.min_images=1", "generate.count=5")


def test_t4x2_passes_every_check(kaggle_input, capsys, monkeypatch):
    monkeypatch.setattr(preflight, "gpu_smoke_test", lambda: None)  # no CUDA here to run it on
    preflight.preflight(kaggle_input, NO_INPUTS, T4X2)
    out = capsys.readouterr().out
    assert "2 x Tesla T4 (sm_75) with torch 2.10.0+cu128" in out and "3 paintings, 4 photos" in out
    assert out.rstrip().endswith("preflight: ok")


@pytest.mark.parametrize("facts, message", [
    (P100, re.escape("Tesla P100-PCIE-16GB (sm_60) is not supported by torch 2.10.0+cu128 "
                     "(it has code for sm_70 ")
     + ".*" + re.escape("): choose GPU T4 x2 in Settings → Accelerator")),
    (NO_GPU, ("no GPU: this notebook was built for GPU T4 x2 .*choose GPU T4 x2 in Settings → Accelerator, "
              "or build it with kernel.accelerator=none")),
])
def test_a_gpu_torch_cannot_use_is_refused_in_one_line(kaggle_input, facts, message):
    with pytest.raises(PreflightError, match=message) as err:
        preflight.preflight(kaggle_input, NO_INPUTS, facts)
    assert "\n" not in str(err.value)


def test_cpu_kernels_need_no_gpu(kaggle_input, capsys):
    cfg = replace(kaggle_input, kernel=replace(kaggle_input.kernel, accelerator="none"))
    preflight.preflight(cfg, NO_INPUTS, NO_GPU)
    assert "training on the CPU" in capsys.readouterr().out


@pytest.mark.parametrize("gpu, arch_list, runs", [
    ((7, 5), ("sm_70", "sm_80"), True),  # a 7.0 cubin runs on 7.5
    ((8, 6), ("sm_80",), True),
    ((6, 0), ("sm_70", "sm_75"), False),
    ((9, 0), ("sm_80", "compute_80"), True),  # PTX is compiled for newer GPUs at load time
    ((9, 0), ("sm_90a",), True),
    ((9, 1), ("sm_90a",), False),  # arch-specific code runs on exactly that GPU
    ((12, 0), ("sm_100", "sm_120"), True),
])
def test_which_builds_run_on_which_gpus(gpu, arch_list, runs):
    assert preflight.runs_on(Gpu("x", gpu), arch_list) is runs


def test_missing_input_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(preflight, "gpu_smoke_test", lambda: None)
    cfg = tiny_config(tmp_path, f"download.source=dir:{tmp_path / 'input' / 'gan-getting-started'}")
    with pytest.raises(PreflightError, match=r"competition data is not attached: no images in .*monet_jpg; "
                                             r"add it with Add Input → Competitions → gan-getting-started"):
        preflight.preflight(cfg, NO_INPUTS, T4X2)


def test_missing_or_incompatible_packages_are_refused(monkeypatch):
    with pytest.raises(PreflightError, match="package no-such-package is missing from this image"):
        preflight.check_packages({"no-such-package": (1, 2)})
    real = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version",
                        lambda name: "1.4.18" if name == "albumentations" else real(name))
    with pytest.raises(PreflightError, match=r"albumentations 1\.4\.18 is here but this notebook runs with "
                                             r"albumentations 2\.x"):
        preflight.check_packages()


def test_too_little_disk_is_refused(kaggle_input, monkeypatch):
    monkeypatch.setattr(preflight, "gpu_smoke_test", lambda: None)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(preflight.shutil, "disk_usage", lambda path: usage(2**34, 2**34 - 2**20, 2**20))
    with pytest.raises(PreflightError, match=r"only 0\.0 GB free in .*submissions, and this run writes about "
                                             r"1\.0 GB: delete earlier outputs"):
        preflight.preflight(kaggle_input, NO_INPUTS, T4X2)


def test_the_memorisation_guard_without_weights_is_refused(tmp_path):
    cfg = tiny_config(tmp_path, "generate.max_memorization=0.05")
    with pytest.raises(PreflightError, match="generate.max_memorization=0.05 needs the FID weights"):
        preflight.check_weights(cfg)


def test_the_kaggle_image_list_satisfies_what_the_notebook_imports():
    image = tomllib.loads(IMAGE_LIST.read_text())
    installed = {name.lower(): version for name, version in image["installed"].items()}
    for dist, (low, high) in preflight.REQUIRED.items():
        version = installed[dist]
        assert version == "*" or low <= int(re.match(r"\d+", version)[0]) < high, (dist, version)
    assert set(CARRIED_DISTRIBUTIONS) <= set(image["absent"]["packages"])  # carried because Kaggle lacks them


@pytest.mark.slow
def test_the_stages_a_notebook_runs_import_without_pytorch_fid():
    """Kaggle's image has no pytorch-fid: importing every stage a notebook runs must not need it."""
    blocker = ("import sys\nclass Block:\n    def find_spec(self, name, path=None, target=None):\n"
               "        if name.split('.')[0] == 'pytorch_fid': raise ModuleNotFoundError(name)\n"
               "sys.meta_path.insert(0, Block())\n"
               "import pipeline.data.download, pipeline.data.augment, pipeline.training.loop, "
               "pipeline.generate.render, pipeline.submission.archive\n"
               "import pipeline.notebook.runtime, pipeline.notebook.preflight, pipeline.notebook.clock\n"
               "print('ok')")
    proc = subprocess.run([sys.executable, "-c", blocker], check=False, capture_output=True, text=True,
                          timeout=120)
    assert proc.stdout.strip() == "ok", proc.stderr


def test_t4_trains_in_fp16_and_ampere_in_bf16(monkeypatch):
    for capability, bf16 in (((7, 5), False), ((8, 0), True), ((9, 0), True)):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None, c=capability: c)
        assert device.native_bf16(torch.device("cuda")) is bf16


@pytest.mark.parametrize("elapsed, finish, user, expected", [
    (600, 360, 0, 300 * 60 - 600 - 360 - 20 * 60),  # the clock decides
    (600, 360, 30 * 60, 30 * 60),  # a smaller train.time_budget_min wins
    (290 * 60, 360, 0, notebook_clock.MIN_TRAIN_S),  # slow data steps: train only to a first checkpoint
])
def test_the_plan_gives_training_what_is_left(elapsed, finish, user, expected):
    plan = notebook_clock.Plan(limit_s=300 * 60, elapsed_s=elapsed, finish_s=finish, margin_s=20 * 60,
                               user_budget_s=user)
    assert plan.train_s == pytest.approx(expected)
    assert f"training until {notebook_clock._clock(elapsed + expected)} elapsed" in str(plan)
    assert "generate+zip estimated 6 min" in str(plan)


def test_the_finish_estimate_is_measured_on_this_machine(tmp_path, monkeypatch):
    """The estimate follows what rendering costs here, read on the clock it is given: a generator that takes
    0.25 s an image on that clock puts exactly that, with the safety factor, on every image to make."""
    from pipeline.generate.render import Renderer

    cfg = tiny_config(tmp_path, "cyclegan.generator=resnet", "cyclegan.ngf=4", "cyclegan.n_blocks=1",
                      "generate.batch_size=4", "hardware.device=cpu", "zip.min_images=1", "zip.image_size=32",
                      "generate.count=5")
    write_demo(cfg.raw_dir, 2, 40, 32, seed=0, workers=1)
    now = [0.0]
    forward = Renderer.forward

    def slow(self, jobs, batch):
        now[0] += 0.25 * len(jobs)  # the fake clock moves only while the model runs
        return forward(self, jobs, batch)

    monkeypatch.setattr(Renderer, "forward", slow)
    estimate = notebook_clock.measure_finish_s(cfg, clock=lambda: now[0])
    assert estimate == pytest.approx(notebook_clock.FIXED_S + notebook_clock.SAFETY * 0.25 * 40)  # 40 photos
    assert notebook_clock.measure_finish_s(cfg) < estimate  # the real clock: this tiny model is far faster