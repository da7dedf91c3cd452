"""The offline demo data set: shape, names, determinism, and a style a GAN can learn from crops."""
from __future__ import annotations

import re

import numpy as np
from PIL import Image

from pipeline.data.demo import demo_names, render_painting, render_photo, write_demo


def _texture(img: np.ndarray) -> float:
    """Mean absolute Laplacian of the luminance: how much fine, local structure an image has."""
    lum = img.astype(float) @ [0.299, 0.587, 0.114] / 255
    lap = 4 * lum[1:-1, 1:-1] - lum[:-2, 1:-1] - lum[2:, 1:-1] - lum[1:-1, :-2] - lum[1:-1, 2:]
    return float(np.abs(lap).mean())


def test_renders_are_rgb_images_fixed_by_their_seed():
    for render in (render_photo, render_painting):
        a, b = render(np.random.default_rng(7), 48), render(np.random.default_rng(7), 48)
        assert a.shape == (48, 48, 3) and a.dtype == np.uint8
        assert np.array_equal(a, b)
        assert not np.array_equal(a, render(np.random.default_rng(8), 48))
        assert a.std() > 5  # a picture, not a flat colour


def test_paintings_differ_from_photos_in_local_cues():
    """What a 64 px crop can see: brush texture and lifted (never black) shadows, on every image."""
    photos = [render_photo(np.random.default_rng([0, 1, i]), 64) for i in range(12)]
    paintings = [render_painting(np.random.default_rng([0, 0, i]), 64) for i in range(12)]
    assert max(map(_texture, photos)) < min(map(_texture, paintings))
    darkest = [np.percentile(img.astype(float) @ [0.299, 0.587, 0.114], 2) for img in photos + paintings]
    assert np.mean(darkest[12:]) > np.mean(darkest[:12]) + 20


def test_names_look_like_the_competitions_and_are_distinct():
    names = demo_names("photo_jpg", 500, seed=3)
    assert len(set(names)) == 500 and all(re.fullmatch(r"[0-9a-f]{10}", n) for n in names)
    assert names == demo_names("photo_jpg", 500, seed=3) and names != demo_names("photo_jpg", 500, seed=4)


def test_write_demo_is_the_same_bytes_however_the_work_is_split(tmp_path):
    write_demo(tmp_path / "a", 3, 40, 32, seed=5, workers=2)
    write_demo(tmp_path / "b", 3, 40, 32, seed=5, workers=1)
    for folder, n in (("monet_jpg", 3), ("photo_jpg", 40)):
        files = sorted((tmp_path / "a" / folder).iterdir())
        assert len(files) == n
        assert [f.name for f in files] == sorted(f.name for f in (tmp_path / "b" / folder).iterdir())
        assert all(f.read_bytes() == (tmp_path / "b" / folder / f.name).read_bytes() for f in files)
        with Image.open(files[0]) as img:
            assert (img.format, img.mode, img.size) == ("JPEG", "RGB", (32, 32))
