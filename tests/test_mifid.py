"""The metric against independent references: pytorch-fid, torchmetrics and Kaggle's formula written out.

Features come from a calibrated random FID Inception (the `inception_weights` fixture) loaded through
the real loading code. The FID references are compared on the first 256 feature columns (and on 4
columns, where both sets outnumber the dimensions): pytorch-fid's `sqrtm` needs ~30 s at 2048 on
this CPU, and the formula does not care how many columns there are. `bench_score` compares the
full 2048-d FID with pytorch-fid's own command.
"""
from __future__ import annotations

import urllib.error
import zipfile

import numpy as np
import pytest
import torch
from helpers import make_jpegs, tiny_config
from pytorch_fid.fid_score import calculate_frechet_distance, get_activations
from pytorch_fid.inception import FID_WEIGHTS_URL
from torchmetrics.image.fid import FrechetInceptionDistance

from pipeline.engine.errors import StageSkipped, UserError
from pipeline.metrics import features as features_mod
from pipeline.metrics.features import (
    WEIGHTS_FILE,
    InceptionFeatures,
    decode_rgb,
    find_weights,
    load_inception,
    open_images,
)
from pipeline.metrics.mifid import (
    fid_from_features,
    frechet_distance,
    memorization_distance,
    mifid,
    nearest_real_distance,
    real_features,
    score_features,
)
from pipeline.training.selection import make_selector


def kaggle_distance(gen: np.ndarray, real: np.ndarray) -> float:
    """Kaggle's memorisation distance, written out: for each generated image its nearest real one."""
    g, r = gen[gen.sum(axis=1) != 0], real[real.sum(axis=1) != 0]
    g = g / np.linalg.norm(g, axis=1, keepdims=True)
    r = r / np.linalg.norm(r, axis=1, keepdims=True)
    return float(np.mean(np.min(1.0 - np.abs(g @ r.T), axis=1)))


def pytorch_fid(gen: np.ndarray, real: np.ndarray) -> float:
    return float(calculate_frechet_distance(gen.mean(0), np.cov(gen, rowvar=False),
                                            real.mean(0), np.cov(real, rowvar=False)))


def torchmetrics_fid(gen: np.ndarray, real: np.ndarray) -> float:
    class Features(torch.nn.Module):  # hands torchmetrics our features as if its network made them
        num_features = gen.shape[1]

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    metric = FrechetInceptionDistance(feature=Features())
    metric.update(torch.from_numpy(real), real=True)
    metric.update(torch.from_numpy(gen), real=False)
    return float(metric.compute())


@pytest.fixture(scope="module")
def extractor(inception_weights) -> InceptionFeatures:
    return InceptionFeatures(inception_weights, "cpu", batch_size=8, progress=False)


@pytest.fixture(scope="module")
def feats(extractor, tmp_path_factory) -> tuple[np.ndarray, np.ndarray]:
    """Features of 7 'generated' and 5 'real' JPEGs (sets of different sizes)."""
    root = tmp_path_factory.mktemp("sets")
    make_jpegs(root / "gen", 7, size=48, seed=1)
    make_jpegs(root / "real", 5, size=48, seed=2)
    with open_images(root / "gen") as g, open_images(root / "real") as r:
        return extractor.of_set(g), extractor.of_set(r)


def test_features_are_pytorch_fids_from_a_folder_a_zip_or_tensors(extractor, tmp_path):
    files = make_jpegs(tmp_path / "imgs", 3, size=40, seed=3)
    with zipfile.ZipFile(tmp_path / "imgs.zip", "w") as zf:
        for p in files:
            zf.write(p, p.name)
    # pytorch-fid's own pipeline with our network (batch norms folded, channels_last): the same convolutions,
    # so any difference would come from decoding, scaling, resizing or batching.
    reference = get_activations(files, extractor.model, batch_size=3, num_workers=0)
    with open_images(tmp_path / "imgs") as folder, open_images(tmp_path / "imgs.zip") as archive:
        from_folder, from_zip = extractor.of_set(folder), extractor.of_set(archive)
    arrays = np.stack([decode_rgb(p.read_bytes()) for p in files])
    from_tensor = extractor(torch.from_numpy(arrays).permute(0, 3, 1, 2))
    assert from_folder.shape == (3, 2048)
    for ours in (from_folder, from_zip, from_tensor):
        np.testing.assert_allclose(ours, reference, rtol=1e-6, atol=1e-7)
    assert np.ptp(reference, axis=0).mean() > 0.01  # the test network tells images apart


@pytest.mark.slow
def test_the_folded_network_gives_pytorch_fids_features_and_fid(extractor, feats, tmp_path):
    """Batch norms folded into the convolutions round differently from pytorch-fid's network, far below
    FID's 1e-4 tolerance: the images of `feats` through pytorch-fid's pipeline and its network as built."""
    model = load_inception(extractor.weights)
    theirs = [get_activations(make_jpegs(tmp_path / name, n, size=48, seed=seed), model, batch_size=8,
                              num_workers=0) for name, n, seed in (("gen", 7, 1), ("real", 5, 2))]
    for ours, reference in zip(feats, theirs, strict=True):
        assert np.abs(ours - reference).max() <= 1e-4 * np.abs(reference).max()
    assert fid_from_features(*feats) == pytest.approx(fid_from_features(*theirs), rel=1e-5)


@pytest.mark.parametrize("columns", [256, 4])  # fewer images than dimensions; more images than dimensions
def test_fid_equals_pytorch_fid_and_torchmetrics(feats, columns):
    gen, real = (f[:, :columns] for f in feats)
    ours = fid_from_features(gen, real)
    assert ours > 1e-3  # far from zero, so that the relative comparisons mean something
    assert ours == pytest.approx(pytorch_fid(gen, real), rel=1e-4)
    assert ours == pytest.approx(torchmetrics_fid(gen, real), rel=1e-4)
    from_stats = frechet_distance(gen.mean(0), np.cov(gen, rowvar=False),
                                  real.mean(0), np.cov(real, rowvar=False))
    assert from_stats == pytest.approx(ours, rel=1e-6)


def test_fid_of_a_set_with_itself_is_zero(feats):
    gen, _ = feats
    assert abs(fid_from_features(gen, gen)) < 1e-6 * np.trace(np.cov(gen, rowvar=False))
    assert abs(fid_from_features(gen[:, :4], gen[:, :4])) < 1e-9
    assert memorization_distance(gen, gen) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("swap", [False, True])
def test_distance_and_mifid_equal_kaggles_formula(feats, swap):
    gen, real = feats[::-1] if swap else feats  # 7 vs 5 and 5 vs 7: the nearest neighbour's direction matters
    assert memorization_distance(gen, real) == pytest.approx(kaggle_distance(gen, real), rel=1e-12)
    gen, real = gen[:, :256], real[:, :256]
    d = kaggle_distance(gen, real)
    for epsilon in (0.1, d + 1e-3):  # d at or above epsilon: MiFID is the FID; just below: FID / d
        expected = pytorch_fid(gen, real) / ((d if d < epsilon else 1.0) + 1e-14)
        score = score_features(gen, real, epsilon)
        assert (score.n_gen, score.n_real) == (len(gen), len(real))
        assert score.distance == pytest.approx(d, rel=1e-12)
        assert score.mifid == pytest.approx(expected, rel=1e-4)


def test_distance_drops_zero_rows_and_per_image_distances(feats):
    gen, real = feats
    with_zeros = np.vstack([gen, np.zeros((2, gen.shape[1]))])
    assert memorization_distance(with_zeros, real) == pytest.approx(kaggle_distance(gen, real), rel=1e-12)
    per_image = nearest_real_distance(np.vstack([real[3], with_zeros]),
                                      np.vstack([real, np.zeros(gen.shape[1])]))
    assert per_image.shape == (len(gen) + 3,)
    assert per_image[0] == pytest.approx(0.0, abs=1e-12)  # an exact copy of a real image
    assert per_image[-1] == 1.0  # an all-zero feature is near nothing
    assert (per_image[1:-2] > 0).all()


def test_threshold_at_and_around_epsilon():
    fid = 40.0
    assert mifid(fid, 0.1 - 1e-9, 0.1) == pytest.approx(fid / (0.1 - 1e-9))
    assert mifid(fid, 0.1, 0.1) == pytest.approx(fid, rel=1e-12)  # FID / (1 + 1e-14)
    assert mifid(fid, 0.1 + 1e-9, 0.1) == pytest.approx(fid, rel=1e-12)
    assert mifid(fid, 0.02, 0.1) == pytest.approx(fid / 0.02)
    assert mifid(fid, 0.0, 0.1) == pytest.approx(fid * 1e14)
    assert mifid(fid, 0.05, 0.04) == pytest.approx(fid, rel=1e-12)


def test_weights_setting_then_hub_cache_then_skip_with_one_line(tmp_path, monkeypatch):
    attempts = []

    def offline(url, dst, **_kwargs):
        attempts.append((url, dst))
        raise urllib.error.URLError("no network in tests")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(StageSkipped) as skipped:
        find_weights("")
    message = str(skipped.value)
    assert WEIGHTS_FILE in message and "score.weights" in message and "\n" not in message
    assert str(tmp_path / "torch" / "hub" / "checkpoints" / WEIGHTS_FILE) in message
    assert attempts == [(FID_WEIGHTS_URL, str(features_mod.hub_weights_path()))]
    # the name is kept here so that pytorch-fid is imported late
    assert FID_WEIGHTS_URL.endswith("/" + WEIGHTS_FILE)
    with pytest.raises(UserError, match="score.weights"):
        find_weights(str(tmp_path / "absent.pth"))
    hub = features_mod.hub_weights_path()
    hub.parent.mkdir(parents=True, exist_ok=True)
    hub.write_bytes(b"x")
    assert find_weights("") == hub and len(attempts) == 1
    with pytest.raises(UserError, match="not the FID Inception weights"):
        load_inception(hub)


@pytest.mark.slow
def test_selector_scores_a_fixed_photo_subset(inception_weights, extractor, tmp_path):
    cfg = tiny_config(tmp_path, f"score.weights={inception_weights}", "train.select_photos=2",
                      "hardware.workers=1")
    make_jpegs(cfg.raw_dir / "photo_jpg", 7, size=40, seed=6, prefix="photo")
    make_jpegs(cfg.raw_dir / "monet_jpg", 3, size=40, seed=7, prefix="monet")
    select = make_selector(cfg, "cpu")
    identity = select(lambda x: x)
    monets = real_features(cfg.raw_dir / "monet_jpg", extractor, cfg.cache_dir)  # cached by make_selector
    with open_images(cfg.raw_dir / "photo_jpg") as photos:
        subset = photos.sample(2, cfg.score.seed)
        expected = score_features(extractor.of_set(subset), monets, cfg.score.epsilon)
    assert len(subset.names) == 2
    assert identity == pytest.approx(expected.mifid, rel=1e-5)
    assert select(lambda x: x) == identity  # the same photos every time
    assert select(lambda x: -x) != pytest.approx(identity, rel=1e-3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_half_precision_inception_keeps_mifid_within_a_thousandth(inception_weights, tmp_path):
    """score.half runs Inception in fp16 on the GPU; it is only worth having if the score stays put."""
    make_jpegs(tmp_path / "gen", 40, size=64, seed=1)
    make_jpegs(tmp_path / "real", 40, size=64, seed=2)
    scores = {}
    for half in (False, True):
        extractor = InceptionFeatures(inception_weights, "cuda", batch_size=16, half=half, progress=False)
        with open_images(tmp_path / "gen") as g, open_images(tmp_path / "real") as r:
            scores[half] = score_features(extractor.of_set(g), extractor.of_set(r))
    assert scores[True].mifid == pytest.approx(scores[False].mifid, rel=1e-3)
    assert scores[True].distance == pytest.approx(scores[False].distance, rel=1e-3)
