"""The generate stage: one JPEG per photo (or generate.count from noise), each what the generator makes
of its input."""
from __future__ import annotations

import dataclasses
import io
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from helpers import TINY_GENERATE, make_jpegs, planted_copy_is_made_again, save_generator, tiny_config
from PIL import Image, JpegImagePlugin

from pipeline.config import Config
from pipeline.engine.errors import UserError
from pipeline.generate import render as generate
from pipeline.generate.render import PREVIEW, Renderer, near_copies, perturb
from pipeline.images import check_image, list_images
from pipeline.metrics.features import InceptionFeatures, open_images
from pipeline.stages import STAGES
from pipeline.training import runtime as device
from pipeline.training.checkpoint import load_generator


def decode(source: Path | io.BytesIO) -> np.ndarray:
    with Image.open(source) as img:
        return np.asarray(img, dtype=np.float32)


@pytest.fixture
def cyclegan(tmp_path):
    cfg = tiny_config(tmp_path, *TINY_GENERATE, "generate.count=12")
    photos = make_jpegs(cfg.raw_dir / "photo_jpg", 12, size=32, prefix="photo")
    return cfg, photos, save_generator(cfg)


def test_cyclegan_translates_every_photo_under_its_own_name(cyclegan):
    cfg, photos, G = cyclegan
    out = STAGES["generate"].run(cfg)
    written = list_images(out)
    assert [p.name for p in written] == [p.name for p in photos]
    assert all(check_image(p, 32) is None for p in written)
    # Independent reference: the generator applied to each photo alone in fp32, saved by PIL at quality 95.
    expected = []
    with torch.no_grad():
        for photo in photos:
            x = torch.from_numpy(decode(photo)).permute(2, 0, 1)[None] / 127.5 - 1
            y = ((G(x)[0].permute(1, 2, 0) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()
            buf = io.BytesIO()
            Image.fromarray(y).save(buf, "JPEG", quality=95, subsampling=0)
            expected.append(decode(buf))
    diffs = np.array([[np.abs(decode(made) - e).mean() for e in expected] for made in written])
    assert (diffs.diagonal() < 0.5).all()  # each output is its own photo's translation...
    assert (diffs.argmin(axis=1) == np.arange(12)).all() and diffs.max() > 5  # ...and no other photo's
    assert (out / PREVIEW).is_file() and not PREVIEW.endswith(".jpg")


def test_generate_is_cached_and_refuses_a_checkpoint_of_the_other_kind(cyclegan, tmp_path, capsys):
    cfg, _, _ = cyclegan
    STAGES["generate"].run(cfg)
    STAGES["generate"].run(cfg)
    assert "generate: up to date" in capsys.readouterr().out
    dcgan = tiny_config(tmp_path, *TINY_GENERATE, "generate.count=12", "train.model=dcgan",
                        "train.image_size=16", "train.run=demo")
    save_generator(dcgan)  # a dcgan checkpoint where the cyclegan settings look for one
    with pytest.raises(UserError, match="holds a dcgan but train.model is cyclegan"):
        STAGES["generate"].run(cfg, force=True)


@pytest.fixture
def dcgan(tmp_path):
    def make(*overrides: str) -> Config:
        cfg = tiny_config(tmp_path / "_".join(overrides), *TINY_GENERATE, "train.model=dcgan",
                          "train.image_size=16", "dcgan.width=4", "dcgan.z_dim=8", *overrides)
        save_generator(cfg)
        return cfg
    return make


def test_dcgan_count_and_seed_decide_the_images(dcgan):
    first = STAGES["generate"].run(dcgan("generate.count=11"))
    again = STAGES["generate"].run(dcgan("generate.count=11", "generate.batch_size=4"))
    other = STAGES["generate"].run(dcgan("generate.count=11", "generate.seed=1"))
    names = [p.name for p in list_images(first)]
    assert len(names) == len(set(names)) == 11
    assert all(check_image(p, 32) is None for p in list_images(first))  # 16 px model, resized to 32
    for name in names:  # same seed, other batch size: the same image (to float rounding)
        assert np.abs(decode(first / name) - decode(again / name)).max() <= 2
    assert min(np.abs(decode(first / n) - decode(other / n)).mean() for n in names) > 5  # another seed
    assert np.abs(decode(first / names[0]) - decode(first / names[1])).mean() > 5  # and another z


def test_perturb_mirrors_then_crops(tmp_path):
    photo = decode(make_jpegs(tmp_path, 1, size=40)[0]).astype(np.uint8)
    tensor = torch.from_numpy(photo).permute(2, 0, 1)
    def as_array(variant: int) -> np.ndarray:
        return perturb(tensor, variant).permute(1, 2, 0).numpy()
    assert np.array_equal(as_array(0), photo)
    assert np.array_equal(as_array(1), photo[:, ::-1])
    # Independent reference for the crop: PIL's bicubic resize of the central 36x36 back to 40x40.
    expected = np.asarray(Image.fromarray(photo[2:38, 2:38]).resize((40, 40), Image.BICUBIC), np.float32)
    assert as_array(2).shape == photo.shape and np.abs(as_array(2) - expected).mean() < 1.5
    assert np.abs(as_array(2).astype(np.float32) - photo).mean() > 3 * np.abs(as_array(2) - expected).mean()
    assert np.array_equal(as_array(3), as_array(2)[:, ::-1])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_path_matches_the_cpu_path(cyclegan, tmp_path):
    cfg, photos, _ = cyclegan
    on_cpu = [decode(p) for p in list_images(STAGES["generate"].run(cfg))]
    gpu = dataclasses.replace(cfg, hardware=dataclasses.replace(cfg.hardware, device="cuda", amp=False))
    on_gpu = [decode(p) for p in list_images(STAGES["generate"].run(gpu, force=True))]
    # nvJPEG upsamples chroma a little differently from PIL and a random generator's instance norms amplify
    # that, so outputs differ by a few levels; still each is its own photo's translation and no other's.
    diffs = np.array([[np.abs(g - c).mean() for c in on_cpu] for g in on_gpu])
    assert (diffs.argmin(axis=1) == np.arange(len(photos))).all()
    # The codec alone, on 4:4:4 JPEGs (4:2:0 chroma may be upsampled either way): nvJPEG decodes them as
    # PIL does, and its own JPEGs (4:4:4, like pipeline.data.images.encode_jpeg's) hold the same pixels.
    renderer = Renderer(gpu, load_generator(gpu.checkpoint_path, "cuda"), device.setup(gpu.hardware))
    assert renderer.gpu_jpeg
    for i, p in enumerate(photos):
        Image.open(p).save(tmp_path / f"444-{i}.jpg", quality=95, subsampling=0)
    pil = np.stack([decode(tmp_path / f"444-{i}.jpg") for i in range(len(photos))])
    nv = renderer.decode([torchvision.io.read_file(str(tmp_path / f"444-{i}.jpg"))
                          for i in range(len(photos))])
    assert np.abs(nv.permute(0, 2, 3, 1).cpu().numpy() - pil).mean() < 1.0
    for i, write in enumerate(renderer.writers(torch.from_numpy(pil.astype(np.uint8)).permute(0, 3, 1,
                                                                                              2).cuda())):
        write(tmp_path / f"{i}.jpg")
        with Image.open(tmp_path / f"{i}.jpg") as img:
            assert JpegImagePlugin.get_sampling(img) == 0  # 4:4:4, as pipeline.data.images.encode_jpeg writes
        assert np.abs(decode(tmp_path / f"{i}.jpg") - pil[i]).mean() < 1.0


def test_preview_is_a_png_grid(cyclegan):
    cfg, _, _ = cyclegan
    out = STAGES["generate"].run(cfg)
    with Image.open(io.BytesIO((out / PREVIEW).read_bytes())) as img:
        assert img.format == "PNG" and img.size == (4 * 128, 4 * 128)  # 8 photo/painting pairs


# --- the memorisation guard -------------------------------------------------------------------------

def test_near_copies_finds_an_exact_copy_of_a_training_monet(tmp_path, inception_weights):
    monets = make_jpegs(tmp_path / "monet", 3, size=32, seed=5, prefix="monet")
    made = tmp_path / "made"
    make_jpegs(made, 3, size=32, seed=9)
    shutil.copy(monets[2], made / "planted.jpg")
    extractor = InceptionFeatures(inception_weights, progress=False)
    with open_images(tmp_path / "monet") as real_set, open_images(made) as made_set:
        real = extractor.of_set(real_set)
        # Own images sit 0.06-0.3 from the Monets under the test weights; a copy sits at 0 (to rounding).
        assert near_copies(made_set, extractor, real, 0.01) == ["planted.jpg"]


@pytest.mark.slow
@pytest.mark.parametrize("model", ["cyclegan", "dcgan"])
def test_guard_makes_a_planted_copy_again_and_leaves_the_rest(tmp_path, inception_weights, capsys, model):
    settings = (*TINY_GENERATE, "generate.count=6", f"score.weights={inception_weights}",
                f"train.model={model}", "train.image_size=16", "dcgan.width=4", "dcgan.z_dim=8")
    plain = tiny_config(tmp_path, *settings)
    make_jpegs(plain.raw_dir / "photo_jpg", 6, size=32, prefix="photo")
    make_jpegs(plain.raw_dir / "monet_jpg", 2, size=32, seed=5, prefix="monet")
    save_generator(plain)
    # Outputs of a random generator lie close together; an exact copy sits at 0 (to rounding).
    guarded = tiny_config(tmp_path, *settings, "generate.max_memorization=0.0001")
    copied = planted_copy_is_made_again(plain, guarded, capsys)
    assert check_image(plain.images_dir / copied, 32) is None


@pytest.mark.slow
def test_guard_removes_a_copy_it_cannot_escape(tmp_path, inception_weights, capsys, monkeypatch):
    settings = (*TINY_GENERATE, "generate.count=6", f"score.weights={inception_weights}")
    plain = tiny_config(tmp_path, *settings)
    make_jpegs(plain.raw_dir / "photo_jpg", 6, size=32, prefix="photo")
    make_jpegs(plain.raw_dir / "monet_jpg", 2, size=32, seed=5, prefix="monet")
    save_generator(plain)
    made = STAGES["generate"].run(plain)
    shutil.copy(made / "photo0005.jpg", plain.raw_dir / "monet_jpg" / "copy.jpg")
    monkeypatch.setattr(generate, "GUARD_ATTEMPTS", 0)
    out = STAGES["generate"].run(tiny_config(tmp_path, *settings, "generate.max_memorization=0.0001"))
    assert "0 near-copies made again, 1 removed" in capsys.readouterr().out
    assert len(list_images(out)) == 5 and not (out / "photo0005.jpg").exists()


def test_guard_without_weights_says_how_to_go_on(cyclegan, tmp_path, monkeypatch):
    cfg, _, _ = cyclegan
    make_jpegs(cfg.raw_dir / "monet_jpg", 2, size=32)
    # no cached weights; the network is off
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch-home"))
    guarded = tiny_config(tmp_path, *TINY_GENERATE, "generate.count=12", "generate.max_memorization=0.05")
    with pytest.raises(UserError,
                       match="max_memorization needs the FID Inception weights.*max_memorization=0"):
        STAGES["generate"].run(guarded)
