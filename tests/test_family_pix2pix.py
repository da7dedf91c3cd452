"""The pix2pix family: the smooth pairing flattens brush texture but keeps the layout, deterministically; the
teacher pairing is a cyclegan run's Monet -> photo generator and part of the train stage's key; training,
generate and resuming work."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from helpers import (
    assert_same_weights,
    cli,
    one_line_error,
    resume_from_step,
    tiny_config,
    tiny_settings,
)

from pipeline.cli import main
from pipeline.engine.errors import UserError
from pipeline.stages import STAGES
from pipeline.training import checkpoint
from pipeline.training import loop as train
from pipeline.training.families.pix2pix.pairing import smooth
from pipeline.training.families.pix2pix.settings import Pix2PixSettings
from pipeline.training.family import get_family
from pipeline.training.log import read_csv
from pipeline.training.networks import PatchDiscriminator
from pipeline.training.runtime import Runtime

TINY = tiny_settings("pix2pix", "train.run=p2p")


def painting(n: int = 2, size: int = 64) -> torch.Tensor:
    """A smooth layout (coarse colour fields) plus brush texture (pixel-scale noise): [-1, 1] NCHW."""
    gen = torch.Generator().manual_seed(0)
    layout = F.interpolate(torch.rand(n, 3, 4, 4, generator=gen) * 1.6 - 0.8, size=size, mode="bilinear",
                           align_corners=False)
    texture = 0.15 * (torch.rand(n, 3, size, size, generator=gen) * 2 - 1)
    return (layout + texture).clamp(-1, 1), layout


def laplacian_energy(x: torch.Tensor) -> float:
    kernel = torch.tensor([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=x.dtype).expand(3, 1, 3, 3)
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel, groups=3).pow(2).mean().item()


def correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.flatten() - a.mean(), b.flatten() - b.mean()
    return (a @ b / (a.norm() * b.norm())).item()


# ---------------------------------------------------------------- the smooth pairing
def test_smooth_pairing_removes_texture_keeps_the_layout_and_is_deterministic():
    monet, layout = painting()
    s = Pix2PixSettings()
    made = smooth(monet, s)
    assert made.shape == monet.shape and made.abs().max() <= 1
    assert laplacian_energy(made) < 0.2 * laplacian_energy(monet)  # the brush texture is gone
    blurred = F.avg_pool2d(F.pad(monet, (2, 2, 2, 2), mode="replicate"), 5, stride=1)
    assert correlation(made, blurred) > 0.95 and correlation(made, layout) > 0.95  # the scene is kept
    assert torch.equal(made, smooth(monet.clone(), s))  # deterministic
    # photo colours: more saturated than the painting's smoothing alone
    flat = smooth(monet, Pix2PixSettings(saturation=1.0, contrast=1.0))
    spread = lambda x: (x - x.mean(1, keepdim=True)).abs().mean().item()  # noqa: E731
    assert spread(made) > 1.1 * spread(flat)
    assert laplacian_energy(smooth(monet, Pix2PixSettings(smooth_iterations=0))) > laplacian_energy(made)


def test_the_discriminator_judges_input_and_output_together():
    family = get_family("pix2pix")
    assert family.takes_photos and family.generator_key == "G"
    cfg = tiny_config(Path("/nonexistent"), *TINY)
    from pipeline.training.families.pix2pix.networks import make_discriminator

    d = make_discriminator(cfg.train, cfg.model_settings)
    assert d.model[0].in_channels == 6 and PatchDiscriminator().model[0].in_channels == 3
    g = family.build_generator(cfg.train, cfg.model_settings)
    assert g(torch.rand(2, 3, 40, 40) * 2 - 1).shape == (2, 3, 40, 40)  # any size, as generate needs


# ---------------------------------------------------------------- training
def test_the_l1_term_teaches_the_generator_to_paint_the_smoothed_painting_back():
    family = get_family("pix2pix")
    cfg = tiny_config(Path("/nonexistent"), *TINY, "train.lr=0.002")
    torch.manual_seed(0)
    trainer = family.trainer_class()(family, cfg.train, cfg.model_settings,
                                     Runtime(device=torch.device("cpu")))
    monet, _ = painting(2, 32)
    first = [trainer.train_step({"monet": monet}, i / 100)["L1"].item() for i in range(20)]
    assert first[-1] < 0.6 * first[0]


def test_pix2pix_trains_generates_and_zips(config):
    cfg = config("train.sample_every=2")
    summary = train.build(cfg, cfg.run_dir)
    assert "pix2pix 4/4 steps" in summary and "8 monet" in summary and "photo" not in summary
    rows = read_csv(cfg.run_dir / "losses.csv")
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4] and set(rows[0]) >= {"G_adv", "L1", "D"}
    for name in ("losses.csv", "loss_plot.png", "last.pt"):
        assert (cfg.run_dir / name).is_file()
    assert len(list((cfg.run_dir / "samples").glob("step_*.png"))) == 2
    loaded = checkpoint.load_generator(cfg.run_dir / "last.pt")
    assert loaded.kind == "pix2pix" and loaded.step == 4
    gen = config("zip.min_images=1", "zip.max_images=20", "generate.count=10")
    STAGES["generate"].run(gen)
    from PIL import Image

    images = sorted(gen.images_dir.glob("*.jpg"))
    assert len(images) == 10 and all(Image.open(p).size == (256, 256) for p in images)
    STAGES["zip"].run(gen)
    assert gen.zip_path.is_file()


def test_resumed_training_ends_with_the_uninterrupted_weights(config, capsys):
    cfg = config("train.epochs=2", "train.checkpoint_every=3", "train.sample_every=100",
                 "train.diffaugment=translation,cutout")
    resumed = resume_from_step(cfg, capsys)
    assert checkpoint.read(cfg.run_dir / "last.pt")["step"] == 8
    assert_same_weights(resumed.uninterrupted, resumed.resumed)


# ---------------------------------------------------------------- the teacher pairing
@pytest.mark.slow
def test_teacher_pairing_uses_the_cyclegan_monet_to_photo_generator(config, tmp_path):
    teacher_cfg = tiny_config(tmp_path, *TINY, "train.model=cyclegan", "cyclegan.generator=unet",
                              "cyclegan.ngf=4", "cyclegan.ndf=4", "train.run=teacher")
    train.build(teacher_cfg, teacher_cfg.run_dir)
    cfg = config("pix2pix.pairing=teacher", "pix2pix.teacher_run=teacher")
    teacher_ckpt = teacher_cfg.run_dir / "last.pt"
    assert teacher_ckpt in STAGES["train"].inputs(cfg)
    key = STAGES["train"].key(cfg)

    family = get_family("pix2pix")
    trainer = family.trainer_class()(family, cfg.train, cfg.model_settings,
                                     Runtime(device=torch.device("cpu")))
    trainer.extra_inputs = family.extra_inputs(cfg)
    monet, _ = painting(2, 32)
    loaded = checkpoint.read(teacher_ckpt)
    expected_net = get_family("cyclegan").build_generator(*checkpoint.train_settings(loaded))
    expected_net.load_state_dict(loaded["models"]["G_monet2photo"])
    with torch.no_grad():
        expected = expected_net.eval()(monet)
    assert torch.allclose(trainer.pair(monet), expected, atol=1e-6)
    assert not torch.allclose(trainer.pair(monet), smooth(monet, cfg.model_settings), atol=1e-2)
    STAGES["train"].run(cfg)
    assert checkpoint.read(cfg.run_dir / "last.pt")["step"] == 4

    # another teacher checkpoint is another train stage
    loaded["models"]["G_monet2photo"] = {k: v + 0.01 if v.is_floating_point() else v
                                          for k, v in loaded["models"]["G_monet2photo"].items()}
    checkpoint.save(teacher_ckpt, loaded)
    assert STAGES["train"].key(cfg) != key


def test_a_missing_teacher_run_is_a_one_line_error_naming_it(config, tmp_path, capsys):
    cfg = config("pix2pix.pairing=teacher", "pix2pix.teacher_run=nope")
    with pytest.raises(UserError, match=r"pix2pix.teacher_run='nope'.*runs/nope/last.pt"):
        STAGES["train"].run(cfg)
    with pytest.raises(UserError, match="pix2pix.teacher_run='nope'"):
        train.build(cfg, cfg.run_dir)
    assert main(cli(tmp_path, "train", *TINY, "pix2pix.pairing=teacher", "pix2pix.teacher_run=nope")) != 0
    assert re.search(r"teacher_run='nope'", one_line_error(capsys))
    with pytest.raises(UserError, match="pix2pix.teacher_run must name"):
        config("pix2pix.pairing=teacher")


def test_fp16_with_a_grad_scaler_stays_finite():
    family = get_family("pix2pix")
    cfg = tiny_config(Path("/nonexistent"), *TINY)
    rt = Runtime(device=torch.device("cpu"), amp_dtype=torch.float16)
    trainer = family.trainer_class()(family, cfg.train, cfg.model_settings, rt)
    assert trainer.scaler.is_enabled()
    monet, _ = painting(2, 32)
    for i in range(3):  # the first steps may overflow and be skipped by the scaler, never go non-finite
        assert all(torch.isfinite(v) for v in trainer.train_step({"monet": monet}, i / 10).values())
