"""The CLI and settings: help, presets, overrides, and one-line errors for every mistake."""
from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from helpers import one_line_error

from pipeline.bench.command import PARTS
from pipeline.cli import COMMANDS, main
from pipeline.config import Config, available_presets, build_config, load_config, to_toml
from pipeline.engine.errors import UserError


def test_help_lists_every_stage_with_a_line():
    out = subprocess.run([sys.executable, "-m", "pipeline", "--help"], capture_output=True, text=True,
                         check=True).stdout
    for name in ("download", "augment", "train", "generate", "score", "zip", "kernel", "push", "submit",
                 "families"):
        assert name in COMMANDS
        assert f"    {name}" in out


def test_presets_load_and_differ():
    assert {"default", "demo", "kaggle"} <= set(available_presets())
    demo, default = load_config("demo"), load_config("default")
    assert demo.download.source == "demo" and demo.train.run == "demo"
    assert default.families.cyclegan.n_blocks == 9 and default.families.cyclegan.ngf == 64
    assert demo.model_settings is demo.families.cyclegan and demo.families.cyclegan.generator == "unet"
    assert load_config("kaggle").download.source == "kaggle-input"


def test_overrides_are_typed():
    cfg = load_config("demo", ["train.epochs=3", "train.lr=0.001", "augment.crop_scale=0.5,1.0",
                               "download.skip_bad=true", "train.diffaugment=color,translation"])
    assert cfg.train.epochs == 3 and cfg.train.lr == 0.001
    assert cfg.augment.crop_scale == (0.5, 1.0)
    assert cfg.download.skip_bad is True
    assert cfg.train.diffaugment == "color,translation"


@pytest.mark.parametrize("override, message", [
    ("train.epoch=3", "unknown setting 'train.epoch'; valid keys in [train]: model, run"),
    ("trian.epochs=3", "unknown settings section 'trian'; valid sections: paths"),
    ("train.epochs=abc", "setting train.epochs expects an integer, got 'abc'"),
    ("train.epochs=-1", "setting train.epochs must be >= 1"),
    ("train.model=nosuch",
     "setting train.model must be one of: cgan, cut, cyclegan, dcgan, gan, pix2pix, progan, unsb, wgan"),
    ("cyclegan.generator=vit", "setting cyclegan.generator must be one of: resnet, unet"),
    ("dcgan.loss=hinge", "setting dcgan.loss must be one of: bce, lsgan, wgan-gp"),
    ("cyclegan.ngff=3", "unknown setting 'cyclegan.ngff'; valid keys in [cyclegan]: generator, ngf"),
    ("generate.count=6999", "setting generate.count must be in 7000..10000"),
    ("generate.count=10001", "setting generate.count must be in 7000..10000"),
    ("epochs=3", "--set expects section.key=value"),
])
def test_bad_settings_are_refused_with_the_valid_ones(override, message):
    with pytest.raises(UserError, match=message.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        load_config("demo", [override])


def test_cli_error_is_one_line_without_traceback(capsys):
    assert main(["download", "--config", "demo", "--set", "train.epoch=3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and "train.epoch" in err


def test_unknown_preset(capsys):
    assert main(["download", "--config", "nope"]) == 2
    assert "choose one of: default, demo, kaggle" in capsys.readouterr().err


def test_resolved_settings_round_trip_through_toml():
    cfg = load_config("demo", ["train.epochs=5", "augment.crop_scale=0.6,0.9"])
    again = build_config(tomllib.loads(to_toml(cfg)), preset="demo")
    assert again == cfg


def test_run_folder_follows_the_train_settings():
    a = Config()
    b = load_config("default", ["train.epochs=21"])
    assert a.run_dir != b.run_dir and a.run_dir.name.startswith("cyclegan-")
    assert load_config("default", ["hardware.device=cpu"]).run_dir == a.run_dir


def test_a_kaggle_preset_as_config_is_what_the_notebook_runs_and_paths_stay_local(tmp_path, monkeypatch,
                                                                                   capsys):
    """`make kernel CONFIG=kaggle-cut`: the notebook trains cut, this machine writes under its own folders."""
    monkeypatch.chdir(tmp_path)
    assert main(["kernel", "--config", "kaggle-cut", "--set", "kernel.username=alice"]) == 0
    notebook = (tmp_path / "kernels" / "monet-pipeline" / "monet-pipeline.ipynb").read_text()
    assert 'model = \\"cut\\"' in notebook and 'submissions = \\"/kaggle/working\\"' in notebook
    assert "settings kaggle-cut" in capsys.readouterr().out
    assert not Path("/kaggle").exists()  # nothing of this machine's went to a notebook's paths
    assert main(["kernel", "--config", "kaggle-cut", "--set", "kernel.username=alice",
                 "--set", "kernel.preset=kaggle"]) == 2
    assert one_line_error(capsys) == (
        "kernel: error: --config kaggle-cut is what the notebook runs, and kernel.preset=kaggle names "
        "another preset: give one of them (CONFIG=kaggle-cut, or CONFIG=default with kernel.preset=kaggle)")


def test_bench_is_a_command_of_the_one_cli_with_its_errors(capsys):
    """`python -m pipeline bench` takes the CLI's --config, --set and --yes, and refuses a bad setting, a bad
    preset or an unknown part in one line, before any work."""
    assert "bench" in COMMANDS
    assert main(["bench", "--config", "demo", "--yes", "--only", "train,nope"]) == 2
    assert one_line_error(capsys) == ("bench: error: --only: unknown part(s) nope; choose from "
                                      + ", ".join(PARTS))
    assert main(["bench", "--config", "demo", "--set", "train.epoch=3"]) == 2
    assert "bench: error: unknown setting 'train.epoch'" in one_line_error(capsys)
    assert main(["bench", "--config", "nope"]) == 2
    assert "choose one of: default, demo, kaggle" in one_line_error(capsys)
