"""Leaving the training paintings out of another reference set: the perceptual hash and the rule."""
from __future__ import annotations

import zipfile

import numpy as np
import pytest
from helpers import make_jpegs
from PIL import Image, ImageEnhance

from pipeline.engine.errors import UserError
from pipeline.metrics.features import open_images
from pipeline.metrics.reference import HAMMING_MAX, difference_hash, hamming, without_training


def bits(a: Image.Image, b: Image.Image) -> int:
    one, other = (np.array([difference_hash(image)], np.uint64) for image in (a, b))
    return int(hamming(one, other)[0, 0])


def test_the_hash_knows_a_painting_again_and_tells_paintings_apart(tmp_path):
    paintings = [Image.open(p).convert("RGB") for p in make_jpegs(tmp_path, 12, size=64, seed=3)]
    original = paintings[0]
    again = {"resized up and back": original.resize((256, 256)).resize((64, 64), Image.LANCZOS),
             "10% brighter": ImageEnhance.Brightness(original).enhance(1.1),
             "re-encoded at quality 60": _reencoded(original, tmp_path / "q60.jpg")}
    for how, copy in again.items():
        assert bits(original, copy) <= HAMMING_MAX, how
    distinct = [bits(a, b) for i, a in enumerate(paintings) for b in paintings[i + 1:]]
    assert min(distinct) > HAMMING_MAX


def _reencoded(image: Image.Image, path) -> Image.Image:
    image.save(path, "JPEG", quality=60)
    return Image.open(path).convert("RGB")


def test_a_zipped_reference_set_loses_only_its_training_paintings(tmp_path):
    training = make_jpegs(tmp_path / "monet_jpg", 5, size=48, seed=1)
    others = make_jpegs(tmp_path / "others", 4, size=48, seed=2, prefix="other")
    with zipfile.ZipFile(tmp_path / "reference.zip", "w") as zf:
        for p in others + training[:3]:
            zf.write(p, f"trainA/{p.name}")
    with open_images(tmp_path / "reference.zip") as reference:
        kept = without_training(reference, tmp_path / "monet_jpg", workers=1)
    assert kept.images.names == tuple(f"trainA/{p.name}" for p in others)
    assert (kept.left_out, kept.same_pixels) == (3, 3) and "left out 3 reference images" in kept.note


def test_the_training_set_itself_is_not_emptied_and_a_set_too_small_is_refused(tmp_path):
    training = make_jpegs(tmp_path / "monet_jpg", 4, size=48, seed=1)
    with open_images(tmp_path / "monet_jpg") as reference:
        itself = without_training(reference, tmp_path / "monet_jpg", workers=1)
    assert itself.images.names == reference.names and itself.left_out == 0
    assert "is the training set" in itself.note
    almost = tmp_path / "almost"
    almost.mkdir()
    for p in training:
        (almost / p.name).write_bytes(p.read_bytes())
    make_jpegs(almost, 1, size=48, seed=9, prefix="new")
    with open_images(almost) as reference, pytest.raises(UserError, match="only 1 of its 5 images"):
        without_training(reference, tmp_path / "monet_jpg", workers=1)
