"""Inception features cached by image content: re-scoring pays for the changed images only.

The network's batch call is counted (InceptionFeatures.__call__, which every image goes through), so
the tests see how many images were extracted, not how long it took.
"""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from helpers import make_jpegs, tiny_config

from pipeline.metrics.feature_cache import FeatureCache
from pipeline.metrics.features import InceptionFeatures, open_images
from pipeline.metrics.mifid import real_features
from pipeline.scoring.score import score_images


@pytest.fixture
def extracted(monkeypatch) -> list[int]:
    """The number of images of each call of the network, from any extractor."""
    counts: list[int] = []
    call = InceptionFeatures.__call__

    def counting(self, images):
        counts.append(len(images))
        return call(self, images)

    monkeypatch.setattr(InceptionFeatures, "__call__", counting)
    return counts


@pytest.mark.slow
def test_rescoring_after_changing_10_images_extracts_those_10_only(inception_weights, tmp_path, extracted):
    cfg = tiny_config(tmp_path, f"score.weights={inception_weights}")
    images = make_jpegs(cfg.images_dir, 16, size=40, seed=1)
    make_jpegs(cfg.raw_dir / "monet_jpg", 4, size=40, seed=2)
    first = score_images(cfg, cfg.images_dir)
    assert sum(extracted) == 16 + 4
    changed = make_jpegs(tmp_path / "new", 10, size=40, seed=3)
    for new, old in zip(changed, images[3:13], strict=True):
        new.replace(old)
    extracted.clear()
    warm = score_images(cfg, cfg.images_dir)
    assert sum(extracted) == 10  # the real set and the 6 unchanged images come from the cache
    shutil.rmtree(cfg.cache_dir / "features")
    extracted.clear()
    cold = score_images(cfg, cfg.images_dir)
    assert sum(extracted) == 16 + 4
    numbers = ("fid", "distance", "mifid")
    assert [warm[k] for k in numbers] == pytest.approx([cold[k] for k in numbers], rel=1e-6)
    assert warm["fid"] != pytest.approx(first["fid"], rel=1e-3)


@pytest.mark.slow
def test_cached_rows_equal_fresh_ones_and_follow_content_not_names(inception_weights, tmp_path, extracted):
    extractor = InceptionFeatures(inception_weights, batch_size=4, workers=2, progress=False)
    make_jpegs(tmp_path / "a", 6, size=40, seed=4)
    with open_images(tmp_path / "a") as images:
        fresh = extractor.of_set(images)
        assert np.array_equal(extractor.of_set(images, cache_dir=tmp_path / "cache"), fresh)
    (tmp_path / "a").rename(tmp_path / "b")  # the same images under another folder and names
    for i, path in enumerate(sorted((tmp_path / "b").iterdir())):
        path.rename(path.with_name(f"renamed{i}.jpg"))
    extracted.clear()
    with open_images(tmp_path / "b") as images:
        assert np.array_equal(real_features(images, extractor, tmp_path / "cache"), fresh)
    assert np.array_equal(real_features(tmp_path / "b", extractor, tmp_path / "cache"), fresh)
    assert extracted == []


def test_a_damaged_shard_is_deleted_and_its_images_computed_again(inception_weights, tmp_path, extracted,
                                                                  capsys):
    extractor = InceptionFeatures(inception_weights, batch_size=4, workers=2, progress=False)
    make_jpegs(tmp_path / "a", 3, size=40, seed=5)
    make_jpegs(tmp_path / "b", 2, size=40, seed=6)
    cache = tmp_path / "cache"
    expected = real_features(tmp_path / "a", extractor, cache)
    real_features(tmp_path / "b", extractor, cache)
    shards = sorted(FeatureCache(cache, extractor.context).folder.glob("*.npz"))
    assert len(shards) == 2
    for shard, damage in zip(shards, (b"not a zip", shards[0].read_bytes()[:200]), strict=True):
        shard.write_bytes(damage)
    extracted.clear()
    assert np.array_equal(real_features(tmp_path / "a", extractor, cache), expected)
    assert sum(extracted) == 3
    err = capsys.readouterr().err
    assert err.count("unreadable cache shard") == 2 and all(str(s) in err for s in shards)
    assert len(list(FeatureCache(cache, extractor.context).folder.glob("*.npz"))) == 1


def test_the_cache_is_kept_apart_per_weights_and_precision(tmp_path):
    folders = {FeatureCache(tmp_path, {"weights": w, "precision": p}).folder
               for w in ("a", "b") for p in ("fp16", "fp32")}
    assert len(folders) == 4 and all(f.parent == tmp_path / "features" for f in folders)
