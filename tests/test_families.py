"""Model families as plug-ins: the registry, a family added as one folder, per-family settings and their old
names, run names and checkpoints from before the families had sections, and no model tested by name."""
from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import TINY, make_jpegs, resume_from_step, tiny_config

from pipeline.cli import main
from pipeline.config import build_config, load_config, models, to_toml, tomllib
from pipeline.engine.errors import UserError
from pipeline.training import checkpoint
from pipeline.training import loop as train
from pipeline.training.family import (
    NOISE,
    Family,
    families,
    get_family,
    option,
    register_family,
)

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "pipeline"
TINY = (*TINY, "train.epochs=2", "train.checkpoint_every=3")


# ---------------------------------------------------------------- the registry and the CLI
def test_the_registry_lists_both_families_and_the_cli_says_what_each_does(capsys):
    assert {"cyclegan", "dcgan"} <= set(families())
    assert get_family("cyclegan").takes_photos and not get_family("dcgan").takes_photos
    assert main(["families"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(re.match(r"cyclegan +photo -> monet +Zhu et al\. 2017", line) for line in lines)
    assert any(re.match(r"dcgan +noise -> monet +Radford et al\. 2016", line) for line in lines)


def test_settings_of_a_family_name_each_key_with_its_default_and_meaning(capsys):
    assert main(["families", "--settings", "cyclegan"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^ngf = 64 +# generator width", out, re.M)
    assert re.search(r'^generator = "resnet" +# resnet', out, re.M)
    # what it prints is a [cyclegan] table the settings loader reads back
    assert build_config(tomllib.loads(out)).families.cyclegan == load_config("default").families.cyclegan
    assert main(["families", "--settings", "nosuch"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown model family 'nosuch'; registered families: " in err
    assert ", ".join(families()) in err  # every registered family, sorted


@pytest.mark.parametrize("name", sorted(families()))
def test_every_familys_printed_settings_read_back_as_its_defaults(name, capsys):
    assert main(["families", "--settings", name]) == 0
    table = tomllib.loads(capsys.readouterr().out)  # a default another setting decides is commented out
    assert getattr(build_config(table).families, name) == getattr(load_config("default").families, name)


def test_settings_and_the_families_command_import_no_torch():
    code = ("import sys\nfrom pipeline import plugins\nfrom pipeline.cli import main\n"
            "from pipeline.config import load_config\nplugins.load()\n"
            "load_config('default', ['train.model=dcgan', 'dcgan.loss=lsgan']).run_dir\n"
            "main(['families', '--settings', 'dcgan'])\nprint('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=REPO).stdout
    assert out.strip().endswith("False")


# ---------------------------------------------------------------- a family registered in code
@dataclasses.dataclass(frozen=True)
class ToySettings:
    z_dim: int = option(4, "noise length")


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setattr(models, "_REGISTRY", dict(models._REGISTRY))  # the registry as it was after the test

    @register_family("toy")
    class Toy(Family):
        maps_from = NOISE
        description = "a test family that reuses DCGAN's networks and step."
        settings = ToySettings
        generator = f"{__name__}:toy_generator"
        trainer = f"{__name__}:ToyTrainer"
        generator_key = "G"
        # What the loop and generate ask, answered as DCGAN answers for the same noise length.
        images_per_step = _as_dcgan("images_per_step")
        architecture = _as_dcgan("architecture")
        noise_dim = _as_dcgan("noise_dim")

    return get_family("toy")


def _dcgan_settings(s: ToySettings):
    return get_family("dcgan").settings(z_dim=s.z_dim, width=4)


def _as_dcgan(method: str):
    def answer(self, *args):
        *train, settings = args
        return getattr(get_family("dcgan"), method)(*train, _dcgan_settings(settings))
    return answer


def toy_generator(train, settings):
    return get_family("dcgan").build_generator(train, _dcgan_settings(settings))


def _toy_trainer():
    from pipeline.training.families.dcgan.step import DCGANTrainer

    class ToyTrainer(DCGANTrainer):
        def __init__(self, family, t, settings, rt):
            super().__init__(family, t, _dcgan_settings(settings), rt)

    return ToyTrainer


def __getattr__(name: str):  # the registry imports "test_families:ToyTrainer" only when it trains
    if name == "ToyTrainer":
        return _toy_trainer()
    raise AttributeError(name)


def test_a_family_registered_anywhere_is_listed_configured_trained_and_loaded(toy, tmp_path, capsys):
    assert main(["families"]) == 0
    assert re.search(r"^toy +noise -> monet +a test family", capsys.readouterr().out, re.M)
    make_jpegs(tmp_path / "data" / "augmented" / "monet", 8, size=40)
    cfg = tiny_config(tmp_path, *TINY, "train.model=toy", "toy.z_dim=6", "train.run=")
    assert cfg.model_settings == ToySettings(z_dim=6) and "[toy]\nz_dim = 6\n" in to_toml(cfg)
    assert cfg.run_dir.name.startswith("toy-") and cfg.train.run == ""
    other = tiny_config(tmp_path, *TINY, "train.model=toy", "toy.z_dim=5", "train.run=")
    assert other.run_dir != cfg.run_dir  # a new family's own section is part of its run name
    assert "8/8 steps" in train.build(cfg, cfg.run_dir)
    loaded = checkpoint.load_generator(cfg.run_dir / "last.pt")
    assert loaded.kind == "toy" and loaded.z_dim == 6
    assert loaded.generator(torch.randn(2, 6)).shape == (2, 3, 32, 32)


# ---------------------------------------------------------------- a family added as one folder
FOLDER = {
    "__init__.py": '''"""Fake: noise -> Monet, the smallest family there is (a test's)."""
from ...family import NOISE, Family, register_family
from .settings import FakeSettings


@register_family("fake")
class Fake(Family):
    maps_from = NOISE
    description = "one transposed convolution from noise, for tests."
    settings = FakeSettings
    trainer = ".step:FakeTrainer"

    def images_per_step(self, train, settings):
        return {"monet": train.batch_size}

    def architecture(self, train, settings):
        return {"model": self.name, "z_dim": settings.z_dim, "image_size": train.image_size}
''',
    "settings.py": '''from dataclasses import dataclass

from ...family import option, require


@dataclass(frozen=True)
class FakeSettings:
    z_dim: int = option(8, "noise length")

    def __post_init__(self):
        require(self.z_dim >= 1, "fake.z_dim", "must be >= 1")
''',
    "networks.py": '''from torch import nn


class Generator(nn.Module):
    def __init__(self, z_dim, size):
        super().__init__()
        self.z_dim, self.net = z_dim, nn.Sequential(nn.ConvTranspose2d(z_dim, 3, size), nn.Tanh())

    def forward(self, z):
        return self.net(z.view(len(z), self.z_dim, 1, 1))


def make_generator(train, settings):
    return Generator(settings.z_dim, train.image_size)


def make_discriminator(train, settings):
    return nn.Sequential(nn.Conv2d(3, 1, train.image_size), nn.Flatten())
''',
    "step.py": '''import torch

from ...trainer import Trainer
from .networks import make_discriminator, make_generator


class FakeTrainer(Trainer):
    generators, discriminators = ("G",), ("D",)

    def make_generator(self):
        return make_generator(self.train, self.settings)

    def make_discriminator(self):
        return make_discriminator(self.train, self.settings)

    def noise(self, n):
        return torch.randn(n, self.settings.z_dim, device=self.rt.device)

    def train_step(self, batch, progress):
        real = batch["monet"]
        with torch.no_grad():
            fake = self.nets["G"](self.noise(len(real)))
        loss_d = ((self.train_nets["D"](real) - 1) ** 2).mean() + (self.train_nets["D"](fake) ** 2).mean()
        self.update(loss_d, "D")
        self.freeze_discriminators(True)
        loss_g = ((self.nets["D"](self.train_nets["G"](self.noise(len(real)))) - 1) ** 2).mean()
        self.update(loss_g, "G")
        self.freeze_discriminators(False)
        self.end_step()
        return {"G": loss_g.detach(), "D": loss_d.detach()}

    def sample_inputs(self, banks):
        gen = torch.Generator().manual_seed(0)
        return torch.randn(4, self.settings.z_dim, generator=gen).to(self.rt.device)

    def sample(self, z):
        with self.inference():
            return self.nets["G"](z).float(), 2

    def translate(self, g, photos):
        return g(self.noise(len(photos)))
''',
}


@pytest.mark.slow
def test_adding_a_family_is_one_new_folder(tmp_path):
    """README's "How to add a model family", followed: one folder in a copy of the package, nothing else
    touched; the CLI lists it, shows its settings, trains it and generates from it."""
    code = tmp_path / "code"
    shutil.copytree(PACKAGE, code / "pipeline", ignore=shutil.ignore_patterns("__pycache__"))
    folder = code / "pipeline" / "training" / "families" / "fake"
    folder.mkdir()
    for name, text in FOLDER.items():
        (folder / name).write_text(text)
    data, subs = tmp_path / "data", tmp_path / "submissions"
    make_jpegs(data / "augmented" / "monet", 8, size=16)
    settings = ["--set", f"paths.data={data}", "--set", f"paths.submissions={subs}", "--set",
                "train.model=fake",
                "--set", "train.image_size=16", "--set", "train.epochs=2", "--set", "train.batch_size=4",
                "--set", "fake.z_dim=5", "--set", "hardware.device=cpu", "--set", "generate.count=6",
                "--set", "zip.min_images=1", "--set", "zip.max_images=10", "--set", "zip.image_size=16"]
    env = {**os.environ, "PYTHONPATH": str(code)}

    def cli(*args: str) -> str:
        proc = subprocess.run([sys.executable, "-m", "pipeline", *args], capture_output=True, text=True,
                              cwd=tmp_path, env=env, timeout=300, check=False)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return proc.stdout

    assert re.search(r"^fake +noise -> monet +one transposed convolution", cli("families"), re.M)
    assert re.search(r"^z_dim = 8 +# noise length", cli("families", "--settings", "fake"), re.M)
    assert "fake 4/4 steps" in cli("train", *settings)
    assert "6 fake images" in cli("generate", *settings)
    assert len(list((subs / "images").glob("*.jpg"))) == 6


# ---------------------------------------------------------------- settings under their old names
def test_an_old_train_key_is_read_as_its_family_key_with_one_notice(capsys):
    cfg = load_config("default", ["train.ngf=32", "train.dcgan_width=16", "train.generator=unet"])
    assert cfg.families.cyclegan.ngf == 32 and cfg.families.dcgan.width == 16
    # an old key given as an override beats the preset's new one
    assert cfg.families.cyclegan.generator == "unet"
    err = capsys.readouterr().err.splitlines()
    assert "settings: train.ngf is deprecated: use cyclegan.ngf (read as cyclegan.ngf=32)" in err
    assert "settings: train.dcgan_width is deprecated: use dcgan.width (read as dcgan.width=16)" in err
    assert len(err) == 3
    both = load_config("default", ["cyclegan.ngf=8", "train.ngf=32"])
    assert both.families.cyclegan.ngf == 8
    assert "cyclegan.ngf is also set and wins" in capsys.readouterr().err


def test_an_old_preset_with_family_keys_in_train_still_loads(tmp_path, capsys):
    old = tmp_path / "old.toml"
    old.write_text('[train]\nmodel = "dcgan"\nloss = "wgan-gp"\nn_critic = 5\nz_dim = 64\n')
    cfg = load_config(str(old))
    assert (cfg.families.dcgan.loss, cfg.families.dcgan.n_critic, cfg.families.dcgan.z_dim) == ("wgan-gp", 5,
                                                                                                64)
    assert capsys.readouterr().err.count("is deprecated") == 3
    with pytest.raises(UserError, match="setting dcgan.n_critic must be >= 1"):
        load_config(str(old), ["train.n_critic=0"])


@pytest.mark.parametrize("preset, overrides, name", [
    ("default", [], "cyclegan-0593fc62"),
    ("demo", ["train.run="], "cyclegan-7ffbb1f4"),
    # the kaggle preset before its recipe took batch 4, epochs over the photos, DiffAugment and EMA
    ("kaggle", ["train.run=", "train.batch_size=1", "train.epoch_over=paintings", "train.diffaugment=",
                "train.ema=0"], "cyclegan-512eb93b"),
    ("default", ["train.model=dcgan"], "dcgan-54819c7c"),
    ("default", ["train.model=dcgan", "train.loss=wgan-gp", "train.z_dim=64"], "dcgan-6424c3f5"),
    ("default", ["train.model=dcgan", "dcgan.loss=wgan-gp", "dcgan.z_dim=64"], "dcgan-6424c3f5"),
    ("default", ["train.generator=unet", "train.ngf=32"], "cyclegan-8c505980"),
    ("default", ["cyclegan.generator=unet", "cyclegan.ngf=32"], "cyclegan-8c505980"),
])
def test_run_names_are_those_of_before_the_families_had_sections(preset, overrides, name):
    assert load_config(preset, overrides).run_dir.name == name


def test_another_model_on_a_preset_trains_in_a_run_of_its_own_not_in_the_presets():
    cut = load_config("demo", ["train.model=cut"])
    assert cut.run_dir.name == f"cut-{cut.train_hash()[:8]}"  # `make demo`'s run is not touched
    fastcut = load_config("demo", ["train.model=cut", "cut.mode=fastcut"])
    assert fastcut.run_dir.name not in (cut.run_dir.name, "demo")
    assert load_config("demo", ["train.model=cyclegan"]).run_dir.name == "demo"  # the preset's own model
    assert load_config("demo", ["train.model=cut", "train.run=mine"]).run_dir.name == "mine"


# ---------------------------------------------------------------- checkpoints of before
def old_format(payload: dict, cfg) -> dict:
    """A checkpoint as the pipeline wrote it before families had sections: one flat "train" dict, no
    "family"."""
    c, d = cfg.families.cyclegan, cfg.families.dcgan
    flat = {**dataclasses.asdict(cfg.train), "generator": c.generator, "ngf": c.ngf, "n_blocks": c.n_blocks,
            "ndf": c.ndf, "d_layers": c.d_layers, "lambda_cycle": c.lambda_cycle,
            "lambda_identity": c.lambda_identity, "pool_size": c.pool_size, "z_dim": d.z_dim,
            "dcgan_width": d.width, "loss": d.loss, "label_smoothing": d.label_smoothing,
            "spectral_norm": d.spectral_norm, "d_dropout": d.d_dropout, "instance_noise": d.instance_noise,
            "gp_weight": d.gp_weight, "n_critic": d.n_critic}
    if cfg.train.model == "cyclegan":
        depth = {"image_size": cfg.train.image_size} if c.generator == "unet" else {"n_blocks": c.n_blocks}
        arch = {"model": "cyclegan", "generator": c.generator, "ngf": c.ngf, **depth, "ndf": c.ndf,
                "d_layers": c.d_layers}
    else:
        arch = {"model": "dcgan", "z_dim": d.z_dim, "dcgan_width": d.width,
                "image_size": cfg.train.image_size,
                "spectral_norm": d.spectral_norm, "d_batch_norm": not d.spectral_norm and d.loss != "wgan-gp"}
    old = {k: v for k, v in payload.items() if k != "family"}
    return {**old, "train": flat, "architecture": arch}


@pytest.mark.parametrize("options", [("cyclegan.generator=unet",), ("train.model=dcgan", "dcgan.loss=lsgan")],
                         ids=["cyclegan", "dcgan"])
@pytest.mark.slow
def test_a_checkpoint_of_the_old_format_loads_in_generate_and_resumes(tmp_path, capsys, options):
    make_jpegs(tmp_path / "data" / "augmented" / "monet", 8, size=40)
    make_jpegs(tmp_path / "data" / "raw" / "photo_jpg", 10, size=40, seed=1, prefix="photo")
    cfg = tiny_config(tmp_path, *TINY, *options)

    def as_the_old_code_left_it(step3: Path) -> None:
        checkpoint.save(step3, old_format(checkpoint.read(step3), cfg))
        loaded = checkpoint.load_generator(step3)
        assert loaded.kind == cfg.train.model and loaded.settings == cfg.model_settings and loaded.step == 3
        saved = checkpoint.read(step3)["models"][get_family(cfg.train.model).generator_key]
        assert all(torch.equal(v, loaded.generator.state_dict()[k]) for k, v in saved.items())

    resume_from_step(cfg, capsys, meanwhile=as_the_old_code_left_it)
    assert "family" in checkpoint.read(cfg.run_dir / "last.pt")  # written in the new format from then on


# ---------------------------------------------------------------- nothing outside families/ tests a model's
# name
def test_no_model_name_is_compared_with_a_string_outside_the_families():
    names = "|".join(re.escape(n) for n in families())
    name = rf"""["']({names})["']"""
    compared = re.compile(rf"(==|!=|\bin)\s*[(\[{{]?\s*{name}|{name}\s*(==|!=|\bin\b)")
    found = [f"{path.relative_to(REPO)}:{i}: {line.strip()}"
             for path in sorted(PACKAGE.rglob("*.py")) if "families" not in path.relative_to(PACKAGE).parts
             for i, line in enumerate(path.read_text().splitlines(), 1) if compared.search(line)]
    assert found == []
