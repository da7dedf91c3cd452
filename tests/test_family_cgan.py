"""The cgan family: the label conditions both networks, generate gets a noise-only Monet generator under the
checkpoint's key, the batch mixes photos and Monets as photo_fraction says, and training resumes exactly."""
from __future__ import annotations

import pytest
import torch
from helpers import (
    assert_same_weights,
    losses,
    make_data,
    resume_from_step,
    tiny_config,
    tiny_settings,
    train_two_ranks,
)

from pipeline.engine.errors import UserError
from pipeline.training import checkpoint
from pipeline.training import loop as train
from pipeline.training.families.cgan.networks import (
    MONET_LABEL,
    PHOTO_LABEL,
    MonetGenerator,
    ProjectionDiscriminator,
    make_conditional_generator,
    make_generator,
)
from pipeline.training.families.cgan.settings import CGANSettings
from pipeline.training.family import get_family
from pipeline.training.runtime import Runtime

TINY = tiny_settings("cgan")
DATA = (8, 12)  # the config fixture's paintings and photos


def labels(label, n):
    return torch.full((n,), label, dtype=torch.long)


def test_the_batch_mixes_photos_and_monets_as_photo_fraction_says(config):
    cfg = config("train.batch_size=8", "cgan.photo_fraction=0.25")
    family = get_family("cgan")
    assert family.images_per_step(cfg.train, cfg.model_settings) == {"monet": 6, "photo": 2}
    cfg = config("cgan.photo_fraction=0")
    assert get_family(cfg.train.model).images_per_step(cfg.train, cfg.model_settings) == {"monet": 4}
    with pytest.raises(UserError, match="cgan.photo_fraction"):
        config("train.batch_size=1", "cgan.photo_fraction=0.6")
    with pytest.raises(UserError, match="cgan.loss"):
        config("cgan.loss=wgan-gp")


def test_same_noise_under_the_two_labels_gives_different_images_and_the_monet_wrapper_is_label_one():
    train_cfg = tiny_config_train()
    s = CGANSettings(z_dim=8, width=4)
    torch.manual_seed(0)
    g = make_conditional_generator(train_cfg, s).eval()
    z = torch.randn(3, 8)
    with torch.no_grad():
        photo, monet = g(z, labels(PHOTO_LABEL, 3)), g(z, labels(MONET_LABEL, 3))
        assert photo.shape == monet.shape == (3, 3, 32, 32)
        # the label reaches the output (fresh weights make small images: compare with their size)
        assert (photo - monet).abs().mean() > 0.1 * photo.abs().mean()
        # generate's generator: noise only, the same weights under the same keys, the Monet label
        wrapped = make_generator(train_cfg, s).eval()
        assert isinstance(wrapped, MonetGenerator)
        assert wrapped.state_dict().keys() == g.state_dict().keys()
        wrapped.load_state_dict(g.state_dict())
        assert torch.equal(wrapped(z), monet)
        assert not torch.equal(wrapped(z), photo)


def test_the_projection_discriminator_scores_the_label():
    torch.manual_seed(0)
    d = ProjectionDiscriminator(width=4, image_size=32).eval()  # eval: spectral norm's power step stays put
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        a, b = d(x, labels(PHOTO_LABEL, 2)), d(x, labels(MONET_LABEL, 2))
        # the two logits differ by exactly the projection term <embed(1) - embed(0), pooled features>
        h = d.body.model[:-1](x).sum((2, 3))
        e = d.embed.weight
        assert torch.allclose(b - a, (h * (e[MONET_LABEL] - e[PHOTO_LABEL])).sum(1, keepdim=True), atol=1e-5)
    assert a.shape == (2, 1) and not torch.allclose(a, b)


def tiny_config_train():
    from pipeline.config import load_config
    return load_config("demo", ["train.model=cgan", "train.image_size=32"]).train


def test_a_run_trains_samples_both_labels_and_generate_loads_the_monet_generator(config):
    cfg = config()
    summary = train.build(cfg, cfg.run_dir)
    assert "4/4 steps" in summary and "8 monet" in summary and "photo" in summary  # 8 Monets / 2 per step
    assert [int(r["step"]) for r in losses(cfg)] == [1, 2, 3, 4]
    grids = sorted((cfg.run_dir / "samples").glob("step_*.png"))
    assert grids and (cfg.run_dir / "loss_plot.png").is_file()
    from PIL import Image
    with Image.open(grids[-1]) as grid:  # two rows (photo label, Monet label) of 8 columns of 32 px
        assert grid.height < grid.width and grid.height >= 64
    loaded = checkpoint.load_generator(cfg.run_dir / "last.pt")
    assert loaded.kind == "cgan" and loaded.z_dim == 8 and isinstance(loaded.generator, MonetGenerator)
    state = checkpoint.read(cfg.run_dir / "last.pt")["models"]["G"]
    z = torch.randn(2, 8)
    g = make_conditional_generator(cfg.train, cfg.model_settings).eval()
    g.load_state_dict(state)
    with torch.no_grad():
        assert torch.equal(loaded.generator(z), g(z, labels(MONET_LABEL, 2)))


def test_the_monet_label_learns_the_paintings_colour(tmp_path):
    """Red paintings, blue photos: after a few steps the Monet label's samples are redder than the photo
    label's from the same noise."""
    from PIL import Image
    for folder, colour, n in (("augmented/monet", (220, 40, 40), 8), ("raw/photo_jpg", (40, 40, 220), 8)):
        (tmp_path / "data" / folder).mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (40, 40), tuple(max(0, c - 10 * i) for c in colour)).save(
                tmp_path / "data" / folder / f"x{i:03d}.jpg")
    cfg = tiny_config(tmp_path, *TINY, "train.epochs=10", "train.sample_every=1000", "train.lr=0.001",
                      "train.lr_d=0.001", "train.checkpoint_every=1000")
    train.build(cfg, cfg.run_dir)
    g = checkpoint.load_generator(cfg.run_dir / "last.pt").generator
    z = torch.randn(16, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        monet = g(z).mean((0, 2, 3))
        photo = g(z, labels(PHOTO_LABEL, 16)).mean((0, 2, 3))
    painting, blue = torch.tensor([220, 40, 40]) / 127.5 - 1, torch.tensor([40, 40, 220]) / 127.5 - 1
    assert (monet - painting).norm() < (photo - painting).norm()
    assert (photo - blue).norm() < (monet - blue).norm()


def test_resumed_training_repeats_the_uninterrupted_losses_and_weights(config, capsys):
    cfg = config("train.epochs=2", "train.checkpoint_every=3")
    resumed = resume_from_step(cfg, capsys)
    assert_same_weights(resumed.uninterrupted, resumed.resumed)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16-scaler", "bf16"])
def test_a_step_under_autocast_steps_both_optimizers(config, dtype):
    cfg = config()
    rt = Runtime(device=torch.device("cpu"), amp_dtype=dtype)
    family = get_family("cgan")
    trainer = family.trainer_class()(family, cfg.train, cfg.model_settings, rt)
    assert trainer.scaler.is_enabled() == (dtype == torch.float16)
    before = {n: [p.detach().clone() for p in net.parameters()] for n, net in trainer.nets.items()}
    batch = {k: torch.rand(n, 3, 32, 32) * 2 - 1
             for k, n in family.images_per_step(cfg.train, cfg.model_settings).items()}
    for i in range(3):
        assert all(torch.isfinite(v) for v in trainer.train_step(batch, i / 10).values())
    for n, net in trainer.nets.items():
        if dtype == torch.float16 and n == "D":
            continue  # fp16's scaler may skip D's first steps while it finds its scale
        assert any(not torch.equal(a, b) for a, b in zip(before[n], net.parameters(), strict=True)), n


@pytest.mark.slow
def test_two_gloo_processes_train_in_sync(tmp_path):
    make_data(tmp_path, *DATA)
    ranks = train_two_ranks(tmp_path, (*TINY, "train.batch_size=2", "train.epochs=2"))
    same = [torch.equal(v, ranks[1]["G"][k]) for k, v in ranks[0]["G"].items() if "running" not in k
            and "num_batches" not in k]  # parameters; batch-norm statistics follow each rank's own noise
    assert same and all(same)
    cfg = tiny_config(tmp_path, *TINY, "train.batch_size=2", "train.epochs=2")
    saved = checkpoint.read(cfg.run_dir / "last.pt")
    assert saved["step"] == 8  # 8 paintings / (1 Monet a batch x 2 ranks) = 4 steps an epoch
    assert len(saved["training"]["ranks"]) == 2
