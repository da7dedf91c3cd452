"""The gan family: the original GAN's fully connected networks on small flattened images (gan.image_size,
not train.image_size), BCE; trains, resumes to the uninterrupted losses and weights, runs under fp16, and
generates submission-size JPEGs that the memorisation guard watches as it does DCGAN's."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import (
    assert_same_weights,
    make_jpegs,
    planted_copy_is_made_again,
    resume_from_step,
    tiny_config,
    tiny_settings,
)

from pipeline.config import TrainConfig
from pipeline.engine.errors import UserError
from pipeline.images import check_image, list_images
from pipeline.stages import STAGES
from pipeline.training import checkpoint
from pipeline.training import loop as train
from pipeline.training.families.gan.networks import make_discriminator
from pipeline.training.family import get_family
from pipeline.training.log import read_csv
from pipeline.training.runtime import Runtime

# train.image_size=64 on purpose: gan.image_size=32 must win. 8 paintings, batch 2: 4 steps an epoch.
TINY = tiny_settings("gan")


def test_the_networks_are_mlps_on_flattened_images_of_gan_image_size():
    family = get_family("gan")
    t, s = TrainConfig(model="gan", image_size=256), family.settings(z_dim=8, hidden=8, image_size=24)
    assert family.data_size(t, s) == 24 and family.architecture(t, s)["image_size"] == 24
    G, D = family.build_generator(t, s), make_discriminator(t, s)
    for net in (G, D):
        assert not any(isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)) for m in net.modules())
        assert any(isinstance(m, torch.nn.LeakyReLU) for m in net.modules())
    assert [m.out_features for m in G.modules() if isinstance(m, torch.nn.Linear)] == [8, 16, 32, 3 * 24 * 24]
    assert [m.in_features for m in D.modules() if isinstance(m, torch.nn.Linear)] == [3 * 24 * 24, 32, 16, 8]
    with torch.no_grad():
        x = G(torch.randn(5, 8) * 10)
        assert x.shape == (5, 3, 24, 24) and x.abs().max() <= 1  # tanh
        assert D(x.contiguous(memory_format=torch.channels_last)).shape == (5, 1)  # logits, any layout
        assert not torch.equal(D(x), torch.sigmoid(D(x)))


def test_settings_are_checked():
    with pytest.raises(UserError, match="setting gan.image_size must be in 8..256"):
        tiny_config(Path("/nonexistent"), *TINY, "gan.image_size=4")


def test_it_trains_on_images_loaded_at_gan_image_size(config):
    cfg = config()
    cpu = Runtime(device=torch.device("cpu"))
    data = train.load_data(cfg, get_family(cfg.train.model), cfg.model_settings, cpu)
    assert data.batch(0)["monet"].shape == (2, 3, 32, 32)  # not train.image_size's 64 (nor the data's 40)
    assert "8/8 steps" in train.build(cfg, cfg.run_dir)
    rows = read_csv(cfg.run_dir / "losses.csv")
    assert [int(r["step"]) for r in rows] == list(range(1, 9)) and set(rows[0]) >= {"G", "D"}
    for name in ("config.toml", "losses.csv", "loss_plot.png", "samples.gif", "last.pt"):
        assert (cfg.run_dir / name).is_file(), name
    loaded = checkpoint.load_generator(cfg.run_dir / "last.pt")
    assert loaded.kind == "gan" and loaded.z_dim == 8 and loaded.step == 8
    with torch.no_grad():
        assert loaded.generator(torch.randn(2, 8)).shape == (2, 3, 32, 32)


def test_resumed_training_repeats_the_uninterrupted_losses_and_weights(config, capsys):
    resumed = resume_from_step(config(), capsys)
    assert_same_weights(resumed.uninterrupted, resumed.resumed)


def test_fp16_with_a_grad_scaler_steps_both_optimizers():
    family = get_family("gan")
    rt = Runtime(device=torch.device("cpu"), amp_dtype=torch.float16)
    t, s = TrainConfig(model="gan", batch_size=2), family.settings(z_dim=8, hidden=8, image_size=16)
    fam = family.trainer_class()(family, t, s, rt)
    assert fam.scaler.is_enabled()
    before = {n: [p.detach().clone() for p in net.parameters()] for n, net in fam.nets.items()}
    for i in range(3):
        assert all(torch.isfinite(v) for v in fam.train_step({"monet": torch.rand(2, 3, 16, 16) * 2 - 1},
                                                             i / 10).values())
    for n, net in fam.nets.items():
        assert any(not torch.equal(a, b) for a, b in zip(before[n], net.parameters(), strict=True)), n


@pytest.mark.slow
def test_generate_scales_to_the_submission_size_and_the_guard_watches_it(config, inception_weights, capsys):
    settings = ("generate.count=6", "zip.min_images=1", "zip.max_images=10",
                f"score.weights={inception_weights}", "train.epochs=1")
    cfg = config(*settings)
    train.build(cfg, cfg.run_dir)
    make_jpegs(cfg.raw_dir / "monet_jpg", 2, size=32, seed=5, prefix="monet")
    planted_copy_is_made_again(cfg, config(*settings, "generate.max_memorization=0.0001"), capsys)
    assert len(list_images(cfg.images_dir)) == 6
    assert all(check_image(p, 256) is None for p in list_images(cfg.images_dir))
    assert STAGES["zip"].run(cfg).is_file()