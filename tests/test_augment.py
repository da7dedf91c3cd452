"""The augment stage: counts, sizes, originals kept, the recipe honoured, byte-identical re-runs."""
from __future__ import annotations

import numpy as np
import pytest
from helpers import make_jpegs, tiny_config
from PIL import Image

from pipeline.config import AugmentConfig
from pipeline.data.augment import augment_image, recipe
from pipeline.engine.errors import UserError
from pipeline.images import check_image, read_rgb
from pipeline.stages import STAGES

N = 5


@pytest.fixture
def paintings(tmp_path):
    return make_jpegs(tmp_path / "data" / "raw" / "monet_jpg", N, size=32, seed=3)


def _run(tmp_path, *overrides, force=False):
    return STAGES["augment"].run(tiny_config(tmp_path, *overrides), force=force)


def _bytes(folder):
    return {p.name: p.read_bytes() for p in sorted((folder / "monet").iterdir())}


def test_each_painting_kept_plus_its_variants(tmp_path, paintings, capsys):
    out = _run(tmp_path)
    files = _bytes(out)
    assert len(files) == N * 5
    for src in paintings:
        assert files[src.name] == src.read_bytes()  # the original, untouched
        variants = [files[f"{src.stem}_{k}.jpg"] for k in range(1, 5)]
        assert len(set(variants)) == 4 and src.read_bytes() not in variants
    assert all(check_image(data, 32) is None for data in files.values())
    with Image.open(out / "contact_sheet.png") as sheet:
        assert sheet.format == "PNG" and sheet.size == (5 * 132 + 4, N * 132 + 4)  # N rows of original + 4
    assert f"{N} paintings -> {N * 5} images" in capsys.readouterr().out


@pytest.mark.slow
def test_rerun_writes_the_same_bytes_whatever_the_workers(tmp_path, paintings, capsys):
    first = _bytes(_run(tmp_path, "hardware.workers=2"))
    capsys.readouterr()
    _run(tmp_path, "hardware.workers=1")
    assert "augment: up to date" in capsys.readouterr().out
    assert _bytes(_run(tmp_path, "hardware.workers=1", force=True)) == first
    other = _bytes(_run(tmp_path, "augment.seed=1"))
    assert [other[f"{p.stem}_1.jpg"] != first[f"{p.stem}_1.jpg"] for p in paintings] == [True] * N


def test_recipe_comes_from_the_settings(tmp_path, paintings):
    """Everything off but a certain flip: each variant is the mirrored painting (up to JPEG loss)."""
    out = _run(tmp_path, "augment.variants=2", "augment.hflip_p=1.0", "augment.rotate_limit=0",
               "augment.crop_scale=1.0,1.0", "augment.crop_ratio=1.0,1.0", "augment.color_jitter=0",
               "augment.noise_std=0,0")
    assert len(list((out / "monet").iterdir())) == N * 3
    for src in paintings:
        mirrored = read_rgb(src)[:, ::-1].astype(int)
        for k in (1, 2):
            assert np.abs(read_rgb(out / "monet" / f"{src.stem}_{k}.jpg") - mirrored).mean() < 3


def test_no_variants_keeps_just_the_originals(tmp_path, paintings):
    assert sorted(_bytes(_run(tmp_path, "augment.variants=0"))) == sorted(p.name for p in paintings)


def test_a_bad_recipe_setting_is_named(tmp_path):
    with pytest.raises(UserError, match="augment.crop_scale"):
        tiny_config(tmp_path, "augment.crop_scale=0.9,0.5")


def test_the_transforms_draw_independent_random_numbers():
    """Seeding each transform alike (albumentations' Compose(seed=...)) would flip exactly the images
    rotated one way. Here a bright dot left of centre: a flip moves it right, a rotation up or down."""
    image = np.zeros((64, 64, 3), np.uint8)
    image[30:34, 10:14] = 255
    transform = recipe(AugmentConfig(rotate_limit=10, crop_scale=(1, 1), crop_ratio=(1, 1), color_jitter=0,
                                     noise_std=(0, 0)), (64, 64))
    flipped, turned_up = [], []
    for k in range(200):
        out = augment_image(image, transform, seed=0, name="dot.jpg", k=k).sum(axis=2).astype(float)
        ys, xs = np.indices(out.shape)
        flipped.append((out * xs).sum() / out.sum() > 32)
        turned_up.append((out * ys).sum() / out.sum() < 32)
    assert 0.35 < np.mean(flipped) < 0.65 and 0.35 < np.mean(turned_up) < 0.65
    assert abs(np.corrcoef(flipped, turned_up)[0, 1]) < 0.3
