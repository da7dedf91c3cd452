"""The train stage: every family and option trains, checkpoints round-trip exactly, interrupted and damaged
runs resume, two gloo processes stay in sync, the time budget stops cleanly, best.pt follows the selector."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import (
    TINY,
    assert_same_weights,
    kill_then_resume,
    losses,
    make_data,
    make_trainer,
    resume_from_step,
    tiny_config,
    train_two_ranks,
)
from PIL import Image

from pipeline.config import Config
from pipeline.engine.errors import StageSkipped, UserError
from pipeline.stages import STAGES
from pipeline.training import checkpoint, selection
from pipeline.training import loop as train
from pipeline.training.families.cyclegan.step import CycleGANTrainer
from pipeline.training.family import get_family
from pipeline.training.runtime import Runtime

REPO = Path(__file__).resolve().parents[1]
def last_step(cfg: Config) -> int:
    return checkpoint.read(cfg.run_dir / "last.pt")["step"]


@pytest.mark.parametrize("options", [
    ("cyclegan.generator=resnet",),
    ("cyclegan.generator=unet", "train.diffaugment=color,translation,cutout"),
    ("train.model=dcgan", "dcgan.loss=bce", "dcgan.instance_noise=0.1"),
    ("train.model=dcgan", "dcgan.loss=lsgan", "dcgan.spectral_norm=true", "dcgan.d_dropout=0.3"),
    ("train.model=dcgan", "dcgan.loss=wgan-gp", "dcgan.n_critic=2", "train.diffaugment=translation"),
], ids=["resnet", "unet-diffaugment", "dcgan-bce-noise", "dcgan-lsgan-sn-dropout", "dcgan-wgan-gp"])
def test_each_family_trains_and_leaves_a_usable_run(config, options):
    cfg = config(*options)
    summary = train.build(cfg, cfg.run_dir)
    per_step = get_family(cfg.train.model).images_per_step(cfg.train, cfg.model_settings)
    total = 8 // per_step["monet"]  # 8 paintings
    assert f"{total}/{total} steps" in summary
    rows = losses(cfg)
    assert [int(r["step"]) for r in rows] == list(range(1, total + 1))
    assert all(torch.isfinite(torch.tensor(list(r.values()))).all() for r in rows)
    for name in ("config.toml", "losses.csv", "loss_plot.png", "samples.gif", "last.pt"):
        assert (cfg.run_dir / name).is_file(), name
    grids = sorted((cfg.run_dir / "samples").iterdir())
    assert grids[0].name == "step_000002.png"
    with Image.open(cfg.run_dir / "samples.gif") as gif:
        assert gif.n_frames == len(grids)
    loaded = checkpoint.load_generator(cfg.run_dir / "last.pt")
    assert loaded.kind == cfg.train.model and loaded.step == total and not loaded.generator.training
    noise = not loaded.family.takes_photos
    x = torch.randn(2, loaded.z_dim) if noise else torch.rand(2, 3, 40, 40) * 2 - 1
    with torch.no_grad():
        assert loaded.generator(x).shape == (2, 3, 32 if noise else 40, 32 if noise else 40)


@pytest.mark.parametrize("options", [
    ("train.diffaugment=color,translation,cutout",),
    ("train.model=dcgan", "dcgan.d_dropout=0.2", "dcgan.instance_noise=0.1"),
], ids=["cyclegan", "dcgan"])
@pytest.mark.slow
def test_resumed_training_repeats_the_uninterrupted_losses(config, capsys, options):
    cfg = config("train.epochs=2", "train.checkpoint_every=3", *options)
    resumed = resume_from_step(cfg, capsys)
    assert_same_weights(resumed.uninterrupted, resumed.resumed)


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_full_step_count(tmp_path):
    make_data(tmp_path)
    kill_then_resume(tmp_path / "data", tmp_path / "data" / "runs" / "demo",
                     (*TINY, "train.epochs=4", "train.checkpoint_every=5", "train.sample_every=1000"),
                     total=16, kill_after=7)  # 4 epochs x 4 steps, killed 2 steps past the checkpoint at 5


def test_a_truncated_checkpoint_falls_back_to_the_previous_one(config, capsys):
    cfg = config()
    train.build(cfg, cfg.run_dir)
    last = cfg.run_dir / "last.pt"
    with open(last, "r+b") as fh:  # a copy cut short (last.pt shares its file with ckpt_000004.pt)
        fh.truncate(last.stat().st_size // 2)
    capsys.readouterr()
    train.build(cfg, cfg.run_dir)
    out = capsys.readouterr().out
    assert f"checkpoint {last} is damaged" in out
    assert "resuming from step 2" in out
    assert last_step(cfg) == 4
    with pytest.raises(UserError, match="ckpt_000002.pt"):
        (cfg.run_dir / "ckpt_000002.pt").write_bytes(b"PK\x03\x04 not really")
        checkpoint.load_generator(cfg.run_dir / "ckpt_000002.pt")


@pytest.mark.slow
def test_other_model_settings_are_refused_and_force_starts_over(config, capsys):
    cfg = config()
    STAGES["train"].run(cfg)
    with pytest.raises(UserError, match="ngf=4 -> 8.*--force"):
        STAGES["train"].run(config("cyclegan.ngf=8"))
    capsys.readouterr()
    STAGES["train"].run(config("cyclegan.ngf=8"), force=True)
    assert "resuming" not in capsys.readouterr().out
    assert checkpoint.read(cfg.run_dir / "last.pt")["family"]["ngf"] == 8


@pytest.mark.slow
def test_the_time_budget_stops_with_a_checkpoint_and_a_larger_one_continues(config, capsys, step_clock):
    cfg = config("train.epochs=3", "train.time_budget_min=0.0001")  # 6 ms: spent by the first step's 0.1 s
    summary = train.build(cfg, cfg.run_dir, clock=step_clock)
    assert "stopped by train.time_budget_min" in summary
    assert last_step(cfg) == 1
    assert (cfg.run_dir / "loss_plot.png").is_file() and (cfg.run_dir / "samples.gif").is_file()
    cfg = config("train.epochs=3", "train.time_budget_min=10")
    summary = train.build(cfg, cfg.run_dir, clock=step_clock)
    assert "resuming from step 1" in capsys.readouterr().out
    assert "12/12 steps" in summary and "stopped" not in summary
    assert last_step(cfg) == 12


def test_ctrl_c_saves_a_checkpoint(config, monkeypatch):
    cfg = config("train.epochs=2", "train.checkpoint_every=100")
    real_step = CycleGANTrainer.train_step

    def interrupted(self, batch, progress):
        if progress >= 0.5:  # step 5 of 8
            raise KeyboardInterrupt
        return real_step(self, batch, progress)

    monkeypatch.setattr(CycleGANTrainer, "train_step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train.build(cfg, cfg.run_dir)
    assert last_step(cfg) == 4


def test_best_checkpoint_follows_the_selector(config, monkeypatch):
    scores = iter([5.0, 3.0, 4.0, 6.0])
    seen = []

    def make_selector(cfg, device):
        def select(translate):
            photos = torch.rand(3, 3, 40, 40) * 2 - 1
            out = translate(photos)
            seen.append(out.shape)
            assert out.dtype == torch.float32 and out.abs().max() <= 1
            return next(scores)
        return select

    monkeypatch.setattr(selection, "make_selector", make_selector)
    cfg = config("train.select_by_mifid=1", "train.checkpoint_every=1")
    train.build(cfg, cfg.run_dir)
    assert seen == [(3, 3, 40, 40)] * 4
    best = checkpoint.read(cfg.run_dir / "best.pt")
    assert best["step"] == 2 and best["mifid"] == 3.0 and set(best["models"]) == {"G_photo2monet",
                                                                                  "G_monet2photo"}
    at_step_2 = checkpoint.read(cfg.run_dir / "ckpt_000002.pt")["models"]["G_photo2monet"]
    assert all(torch.equal(at_step_2[k], v) for k, v in best["models"]["G_photo2monet"].items())
    assert checkpoint.load_generator(cfg.run_dir / "best.pt").step == 2
    assert checkpoint.read(cfg.run_dir / "last.pt")["best_mifid"] == 3.0


def test_training_goes_on_without_selection_when_mifid_cannot_run(config, monkeypatch, capsys):
    def make_selector(cfg, device):
        raise StageSkipped("no FID weights (pt_inception-2015-12-05-6726825d.pth)")

    monkeypatch.setattr(selection, "make_selector", make_selector)
    cfg = config("train.select_by_mifid=1")
    assert "4/4 steps" in train.build(cfg, cfg.run_dir)
    assert "select_by_mifid is off for this run: no FID weights" in capsys.readouterr().out
    assert not (cfg.run_dir / "best.pt").exists()


@pytest.mark.parametrize("name, options", [
    ("cyclegan", {"generator": "unet", "ngf": 4, "ndf": 4}),
    ("dcgan", {"loss": "wgan-gp", "n_critic": 2, "width": 4, "z_dim": 8}),
], ids=["cyclegan", "dcgan-wgan-gp"])
def test_fp16_with_a_grad_scaler_steps_every_optimizer(name, options):
    # The T4/P100 path (fp16 + GradScaler), run on the CPU: one scaler serves several optimizer steps per
    # step.
    rt = Runtime(device=torch.device("cpu"), amp_dtype=torch.float16)
    fam, per_step = make_trainer(name, rt, options, image_size=32, batch_size=2)
    assert fam.scaler.is_enabled()
    batch = {k: torch.rand(n, 3, 32, 32) * 2 - 1 for k, n in per_step.items()}
    for i in range(3):
        assert all(torch.isfinite(v) for v in fam.train_step(batch, i / 10).values())


@pytest.mark.parametrize("scaling, factor", [("sqrt", 2.0), ("linear", 4.0), ("none", 1.0)])
def test_learning_rates_grow_with_the_global_batch_as_set(scaling, factor):
    fam, _ = make_trainer("cyclegan", Runtime(device=torch.device("cpu")), {"ngf": 4, "ndf": 4,
                                                                            "n_blocks": 1},
                          image_size=32, batch_size=4, lr=1e-4, lr_d=3e-4, lr_scaling=scaling)
    t = fam.train
    assert fam.optimizers["G"].param_groups[0]["lr"] == pytest.approx(1e-4 * factor)
    assert fam.optimizers["D"].param_groups[0]["lr"] == pytest.approx(3e-4 * factor)
    # Under torchrun the global batch counts every process's: 4 x 2 processes = 8.
    assert t.lr_factor(world_size=2) == pytest.approx({"sqrt": 8 ** 0.5, "linear": 8.0, "none": 1.0}[scaling])


@pytest.mark.slow
def test_two_gloo_processes_train_in_sync(tmp_path):
    make_data(tmp_path)
    options = ("train.batch_size=1", "train.epochs=2", "train.diffaugment=color,translation")
    ranks = train_two_ranks(tmp_path, (*TINY, *options))
    for name, weights in ranks[0].items():
        assert all(torch.equal(v, ranks[1][name][k]) for k, v in weights.items()), name
    cfg = tiny_config(tmp_path, *TINY, *options)
    saved = checkpoint.read(cfg.run_dir / "last.pt")
    assert saved["step"] == 8  # 8 paintings / (batch 1 x 2 ranks) = 4 steps an epoch
    assert len(saved["training"]["ranks"]) == 2
    assert all(torch.equal(v, ranks[0]["G_photo2monet"][k]) for k,
               v in saved["models"]["G_photo2monet"].items())
    assert (cfg.run_dir / ".stage.json").is_file()
