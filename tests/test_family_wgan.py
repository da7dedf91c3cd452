"""The wgan family: DCGAN's networks as a weight-clipped Wasserstein critic and generator, RMSprop, n_critic
critic steps per generator step; trains, resumes exactly after a kill -9, runs under fp16 and two gloo
processes, and generates submission-size JPEGs."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import (
    assert_same_weights,
    killed_and_reference,
    make_jpegs,
    tiny_config,
    tiny_settings,
    train_two_ranks,
)
from PIL import Image

from pipeline.config import TrainConfig
from pipeline.engine.errors import UserError
from pipeline.stages import STAGES
from pipeline.training import checkpoint
from pipeline.training import loop as train
from pipeline.training.families.wgan.networks import make_critic
from pipeline.training.family import get_family
from pipeline.training.log import read_csv
from pipeline.training.runtime import Runtime

REPO = Path(__file__).resolve().parents[1]
# 8 paintings of 40 px cropped to 32; 2 critic steps of 2 images per step: 2 steps an epoch.
TINY = tiny_settings("wgan")


def make_trainer(rt: Runtime, clip: float = 0.01, **train):
    family = get_family("wgan")
    t = TrainConfig(model="wgan", image_size=32, batch_size=2, **train)
    s = family.settings(width=4, z_dim=8, n_critic=3, clip=clip, lr=5e-5)
    return family.trainer_class()(family, t, s, rt), family.images_per_step(t, s)


def test_every_critic_weight_stays_clipped_and_the_optimisers_are_rmsprop():
    torch.manual_seed(0)
    fam, per_step = make_trainer(Runtime(device=torch.device("cpu")), clip=0.005)
    assert per_step == {"monet": 6}  # a fresh real batch for each of the 3 critic steps
    critic = fam.nets["D"]
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in critic.modules())
    assert all(isinstance(o, torch.optim.RMSprop) for o in fam.optimizers.values())
    assert fam.optimizers["D"].param_groups[0]["lr"] == pytest.approx(5e-5 * 2 ** 0.5)  # sqrt(batch 2)
    batch = {"monet": torch.rand(6, 3, 32, 32) * 2 - 1}
    before = [p.detach().clone() for p in critic.parameters()]
    critic_steps = []
    real_step = fam.optimizers["D"].step

    def step_then_check(*args, **kwargs):  # the bound must hold after every critic step, not only the last
        out = real_step(*args, **kwargs)
        critic_steps.append(max(p.abs().max().item() for p in critic.parameters()))
        return out

    fam.optimizers["D"].step = step_then_check
    for i in range(4):
        losses = fam.train_step(batch, i / 10)
        assert set(losses) == {"G", "D", "W"} and all(torch.isfinite(v) for v in losses.values())
        assert max(p.abs().max().item() for p in critic.parameters()) <= 0.005
    assert len(critic_steps) == 12  # 3 critic steps x 4 steps
    assert any(m > 0.005 for m in critic_steps)  # RMSprop did step past the bound: the clamp brought it back
    after = list(critic.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))  # the critic did learn
    hit = sum((p.abs() == 0.005).sum().item() for p in after)
    assert hit > 0  # weights sit on the bound: the clamp acted


def test_fp16_with_a_grad_scaler_keeps_the_clip_and_finite_losses():
    torch.manual_seed(0)
    fam, per_step = make_trainer(Runtime(device=torch.device("cpu"), amp_dtype=torch.float16))
    assert fam.scaler.is_enabled()
    batch = {"monet": torch.rand(per_step["monet"], 3, 32, 32) * 2 - 1}
    for i in range(3):
        assert all(torch.isfinite(v) for v in fam.train_step(batch, i / 10).values())
    assert max(p.abs().max().item() for p in fam.nets["D"].parameters()) <= 0.01


def test_settings_are_checked():
    with pytest.raises(UserError, match="setting wgan.clip must be > 0"):
        tiny_config(Path("/nonexistent"), *TINY, "wgan.clip=0")
    with pytest.raises(UserError, match="setting wgan.n_critic must be >= 1"):
        tiny_config(Path("/nonexistent"), *TINY, "wgan.n_critic=0")


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_same_weights_as_an_uninterrupted_one(tmp_path):
    make_jpegs(tmp_path / "data" / "augmented" / "monet", 8, size=40)
    long = ("train.epochs=12", "train.checkpoint_every=3", "train.sample_every=1000")
    run_dir, reference = killed_and_reference(tmp_path, (*TINY, *long), total=24)
    ours, theirs = checkpoint.read(run_dir / "last.pt"), checkpoint.read(reference / "last.pt")
    assert_same_weights(theirs["models"], ours["models"])
    assert max(v.abs().max().item() for v in ours["models"]["D"].values()) <= 0.01
    rows, ref_rows = read_csv(run_dir / "losses.csv"), read_csv(reference / "losses.csv")
    assert [r["W"] for r in rows[-10:]] == [r["W"] for r in ref_rows[-10:]]


def test_a_trained_run_generates_submission_size_jpegs(tmp_path):
    make_jpegs(tmp_path / "data" / "augmented" / "monet", 8, size=40)
    cfg = tiny_config(tmp_path, *TINY, "generate.count=5", "zip.min_images=1", "zip.max_images=10")
    assert "4/4 steps" in train.build(cfg, cfg.run_dir)
    loaded = checkpoint.load_generator(cfg.run_dir / "last.pt")
    assert loaded.kind == "wgan" and loaded.z_dim == 8 and loaded.step == 4
    out = STAGES["generate"].run(cfg)
    made = sorted(out.glob("*.jpg"))
    assert len(made) == 5
    with Image.open(made[0]) as img:
        assert img.size == (256, 256) and img.format == "JPEG"  # 32 px made, scaled to the submission's
    assert STAGES["zip"].run(cfg).is_file()


def built_params(name: str):
    family = get_family("wgan")
    t, s = TrainConfig(model="wgan", image_size=32), family.settings(width=4, z_dim=8)
    net = family.build_generator(t, s) if name == "G" else make_critic(t, s)
    return net.named_parameters()


@pytest.mark.slow
def test_two_gloo_processes_train_in_sync(tmp_path):
    make_jpegs(tmp_path / "data" / "augmented" / "monet", 8, size=40)
    ranks = train_two_ranks(tmp_path, (*TINY, "train.batch_size=1"))
    # The parameters: gradients are averaged, clipping is the same on both. (G's batch-norm running
    # statistics follow each rank's own noise, as DCGAN's do; rank 0's are the ones saved.)
    for name, weights in ranks[0].items():
        params = dict(built_params(name))
        assert all(torch.equal(v, ranks[1][name][k]) for k, v in weights.items() if k in params), name
    saved = checkpoint.read(tiny_config(tmp_path, *TINY, "train.batch_size=1").run_dir / "last.pt")
    assert saved["step"] == 4  # 8 paintings / (2 critic steps x batch 1 x 2 ranks) = 2 steps an epoch
    assert all(torch.equal(v, ranks[0]["D"][k]) for k, v in saved["models"]["D"].items())
    assert max(v.abs().max().item() for v in saved["models"]["D"].values()) <= 0.01
