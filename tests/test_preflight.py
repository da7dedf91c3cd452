"""The notebook's first cell and its clock: each refusal with the GPU facts faked, the inputs found where
Kaggle mounts them (today's layout and the old flat one), and the training budget plan."""
from __future__ import annotations

import importlib.metadata
import re
import shutil
import subprocess
import sys
import time
from collections import namedtuple
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from helpers import TINY, make_jpegs, tiny_config

from pipeline.config import tomllib
from pipeline.data import sources
from pipeline.data.demo import write_demo
from pipeline.kernels.builder import CARRIED_DISTRIBUTIONS
from pipeline.notebook import clock as notebook_clock
from pipeline.notebook import preflight
from pipeline.notebook import runtime as notebook
from pipeline.notebook.preflight import Gpu, PreflightError, TorchFacts
from pipeline.stages import STAGES
from pipeline.training import runtime as device

IMAGE_LIST = Path(__file__).resolve().parents[1] / "kernels" / "kaggle-image.toml"
# What torch 2.10.0+cu128 reports (Kaggle's image, 2026): code for Volta on, nothing for the P100's sm_60.
KAGGLE_TORCH = ("2.10.0+cu128",
                ("sm_70", "sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120", "compute_120"))
T4X2 = TorchFacts(*KAGGLE_TORCH, (Gpu("Tesla T4", (7, 5)), Gpu("Tesla T4", (7, 5))))
ONE_T4 = TorchFacts(*KAGGLE_TORCH, (Gpu("Tesla T4", (7, 5)),))  # a T4 x2 session that shows one
P100 = TorchFacts(*KAGGLE_TORCH, (Gpu("Tesla P100-PCIE-16GB", (6, 0)),))
NO_GPU = TorchFacts("2.10.0+cu128", (), ())
NO_INPUTS = Path("/nonexistent/input")  # nothing attached besides the competition


@pytest.fixture
def gpu_smoke_test(monkeypatch) -> None:
    """preflight's one real CUDA operation runs wherever torch has CUDA and is a no-op elsewhere: the facts
    these tests pass describe Kaggle's GPUs, not this machine's."""
    if not torch.cuda.is_available():
        monkeypatch.setattr(preflight, "gpu_smoke_test", lambda: None)


@pytest.fixture
def inputs(tmp_path, monkeypatch) -> Path:
    """A notebook's /kaggle/input (KAGGLE_ROOT points at its parent), empty."""
    monkeypatch.setenv("KAGGLE_ROOT", str(tmp_path / "kaggle"))
    (tmp_path / "kaggle" / "input").mkdir(parents=True)
    return tmp_path / "kaggle" / "input"


def kaggle_config(tmp_path: Path, *overrides: str):
    """The kaggle preset's source (kaggle-input) and accelerator (t4x2), everything else tiny."""
    return tiny_config(tmp_path, "download.source=kaggle-input", "zip.min_images=1", "generate.count=5",
                       *overrides)


@pytest.fixture
def kaggle_input(tmp_path, inputs):
    """Competition data mounted where Kaggle mounts it today (input/competitions/<competition>/)."""
    write_demo(inputs / "competitions" / "gan-getting-started", 3, 4, 32, seed=0, workers=1)
    return kaggle_config(tmp_path)


def test_t4x2_passes_every_check(kaggle_input, capsys, gpu_smoke_test):
    preflight.preflight(kaggle_input, NO_INPUTS, T4X2)
    out = capsys.readouterr().out
    assert "2 x Tesla T4 (sm_75) with torch 2.10.0+cu128\n" in out
    assert "input/competitions/gan-getting-started: 3 paintings, 4 photos" in out
    assert out.rstrip().endswith("preflight: ok")


def test_one_gpu_of_the_two_promised_is_said_and_training_runs_on_it(tmp_path, monkeypatch, capsys):
    """machine_shape NvidiaTeslaT4 promises T4 x2; a session showing one goes on, says so in its line, and the
    launcher starts one process (in this one), not torchrun for the two promised."""
    cfg = tiny_config(tmp_path, *TINY, "zip.min_images=1", "generate.count=2")
    assert cfg.kernel.accelerator == "t4x2" and cfg.kernel.processes == 0
    assert preflight.check_gpus(cfg, ONE_T4) == ("1 x Tesla T4 (sm_75) with torch 2.10.0+cu128; GPU T4 x2 "
                                                 "promises 2: training on the one there is")
    make_jpegs(tmp_path / "data" / "augmented" / "monet", 4, size=40)
    make_jpegs(tmp_path / "data" / "raw" / "photo_jpg", 4, size=40, seed=1, prefix="photo")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)  # what the session shows (training: the CPU)
    run_dir = notebook.train(cfg, started=time.time())
    assert (run_dir / "last.pt").is_file() and "torchrun" not in capsys.readouterr().out


def test_more_processes_than_visible_gpus_are_refused(tmp_path):
    cfg = tiny_config(tmp_path, "kernel.processes=2")
    with pytest.raises(PreflightError, match=r"kernel\.processes=2, but only 1 x Tesla T4 .* is visible: "
                                             r"build the kernel with kernel\.processes=0"):
        preflight.check_gpus(cfg, ONE_T4)
    assert "promises" not in preflight.check_gpus(cfg, T4X2)


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


def test_missing_input_is_refused(tmp_path, gpu_smoke_test):
    cfg = tiny_config(tmp_path, f"download.source=dir:{tmp_path / 'input' / 'gan-getting-started'}")
    with pytest.raises(PreflightError, match=r"competition data is not attached: no images in .*monet_jpg; "
                                             r"add it with Add Input → Competitions → gan-getting-started"):
        preflight.preflight(cfg, NO_INPUTS, T4X2)


def test_without_the_competition_the_line_lists_what_is_mounted(tmp_path, inputs, gpu_smoke_test):
    make_jpegs(inputs / "competitions" / "other-comp" / "train", 1)
    make_jpegs(inputs / "datasets" / "you" / "monet-only" / "monet_jpg", 1)  # no photo_jpg/: not the data
    (inputs / "datasets" / "you" / "fid-weights").mkdir(parents=True)
    (inputs / "notebooks" / "you" / "some-kernel" / "runs").mkdir(parents=True)
    (inputs / "old-flat-dataset").mkdir()
    with pytest.raises(PreflightError) as err:
        preflight.preflight(kaggle_config(tmp_path), NO_INPUTS, T4X2)
    assert str(err.value) == (
        f"the competition data is not attached: no folder holding monet_jpg/ and photo_jpg/ under {inputs} "
        "(found: competitions/other-comp, datasets/you/fid-weights, datasets/you/monet-only, "
        "notebooks/you/some-kernel, old-flat-dataset); add it with Add Input → Competitions → "
        "gan-getting-started")
    shutil.rmtree(inputs)
    inputs.mkdir()
    with pytest.raises(PreflightError, match=r"under .*input \(found: nothing\); add it with Add Input"):
        preflight.check_input(kaggle_config(tmp_path))


@pytest.mark.parametrize("mounts, found", [
    (["competitions/gan-getting-started", "gan-getting-started", "datasets/a/copy"],
     "competitions/gan-getting-started"),  # today's mount first
    (["gan-getting-started", "datasets/a/copy"], "gan-getting-started"),  # then the old flat one
    (["datasets/you/monet/deeper/still", "datasets/you/monet/deeper", "datasets/z/copy"],
     "datasets/z/copy"),  # then the shallowest anywhere
    (["datasets/you/a/b/c/too-deep"], None),  # the walk is bounded
])
def test_the_competition_is_found_by_what_it_holds(inputs, mounts, found):
    for mount in mounts:
        for sub in ("monet_jpg", "photo_jpg"):
            (inputs / mount / sub).mkdir(parents=True)
    hit = sources.find_competition(inputs, "gan-getting-started")
    assert (hit and hit.relative_to(inputs).as_posix()) == found


def test_the_old_flat_layout_still_works(tmp_path, inputs, capsys, gpu_smoke_test):
    """Older notebooks saw input/<competition>/ and input/<kernel-slug>/: the competition and an attached run
    there are found, and the run is the one of the kernel named even where another sorts first."""
    trainer = tiny_config(tmp_path / "trainer", *TINY)
    make_jpegs(trainer.augmented_dir / "monet", 4, size=40)
    make_jpegs(trainer.raw_dir / "photo_jpg", 4, size=40, seed=1, prefix="photo")
    run = STAGES["train"].run(trainer)
    write_demo(inputs / "gan-getting-started", 3, 4, 32, seed=0, workers=1)
    for slug in ("another-kernel", "monet-pipeline-train-3"):
        shutil.copytree(run, inputs / slug / "runs" / run.name)
    cfg = kaggle_config(tmp_path, *TINY, "kernel.checkpoint_from=alice/monet-pipeline-train-3")
    preflight.preflight(cfg, inputs, T4X2)
    out = capsys.readouterr().out
    assert f"{inputs / 'gan-getting-started'}: 3 paintings, 4 photos" in out
    assert f"{inputs / 'monet-pipeline-train-3' / 'runs' / run.name}: cyclegan at step 2" in out
    assert out.rstrip().endswith("preflight: ok")


@pytest.mark.parametrize("source", ["alice/monet-pipeline-train-1", "monet-pipeline-train-1"])
def test_an_attached_run_is_taken_from_the_named_kernels_folder(tmp_path, source):
    """Today's mount, input/notebooks/<owner>/<slug>/, is the named kernel's folder (any owner where the
    source is a bare slug, as a train session names its predecessor); another run anywhere is the fallback."""
    inputs = tmp_path / "input"
    first, mine = "datasets/bob/aaa/runs/kaggle", "notebooks/alice/monet-pipeline-train-1/runs/kaggle"
    for folder in (first, "notebooks/alice/bbb/runs/kaggle", mine):
        (inputs / folder).mkdir(parents=True)
        (inputs / folder / "last.pt").write_bytes(b"")
        (inputs / folder / "config.toml").write_text("")
    assert preflight.find_run(inputs, source) == inputs / mine
    for other in ("bob/not-attached", "carol/monet-pipeline-train-1"):  # not that kernel's folder
        assert preflight.find_run(inputs, other) == inputs / first


def test_missing_or_incompatible_packages_are_refused(monkeypatch):
    with pytest.raises(PreflightError, match="package no-such-package is missing from this image"):
        preflight.check_packages({"no-such-package": (1, 2)})
    real = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version",
                        lambda name: "1.4.18" if name == "albumentations" else real(name))
    with pytest.raises(PreflightError, match=r"albumentations 1\.4\.18 is here but this notebook runs with "
                                             r"albumentations 2\.x"):
        preflight.check_packages()


def test_too_little_disk_is_refused(kaggle_input, monkeypatch, gpu_smoke_test):
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


@pytest.mark.parametrize("elapsed, finish, user, expected, until", [
    (600, 360, 0, 300 * 60 - 600 - 360 - 20 * 60, "4h34m"),  # the clock decides
    (600, 360, 30 * 60, 30 * 60, "40m00s"),  # a smaller train.time_budget_min wins
    (290 * 60, 360, 0, notebook_clock.MIN_TRAIN_S, "4h50m"),  # slow data steps: only to a first checkpoint
])
def test_the_budget_gives_training_what_is_left(elapsed, finish, user, expected, until):
    budget = notebook_clock.Budget(limit_s=300 * 60, elapsed_s=elapsed, finish_s=finish, margin_s=20 * 60,
                                   user_budget_s=user)
    assert budget.train_s == pytest.approx(expected)
    assert f"training until {until} elapsed" in str(budget)
    assert "generate+zip estimated 6m00s, margin 20 min" in str(budget) and "of Kaggle's 5h00m" in str(budget)


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