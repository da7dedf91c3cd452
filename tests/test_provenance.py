"""The provenance record: generate leaves it beside the images, the zip carries it, and it names the run."""
from __future__ import annotations

import json
import zipfile

import pytest
from helpers import TINY_GENERATE, make_jpegs, save_generator, tiny_config

from pipeline.engine.fingerprint import fingerprint
from pipeline.generate import provenance
from pipeline.stages import STAGES
from pipeline.submission.archive import check_zip
from pipeline.training import checkpoint
from pipeline.training.family import get_family


@pytest.fixture
def generated(tmp_path):
    cfg = tiny_config(tmp_path, *TINY_GENERATE, "generate.count=12", "zip.min_images=3")
    make_jpegs(cfg.raw_dir / "photo_jpg", 4, size=32, prefix="photo")
    save_generator(cfg)
    return cfg, STAGES["generate"].run(cfg)


def test_generate_names_the_run_its_checkpoint_and_weights(generated):
    cfg, images = generated
    record = json.loads((images / provenance.RECORD).read_text())
    assert {k: record[k] for k in ("run", "family", "config_hash", "checkpoint", "step", "weights", "kaggle",
                                   "kernel")} == {
        "run": "demo", "family": "cyclegan", "config_hash": cfg.train_hash()[:8], "checkpoint": "last.pt",
        "step": 0, "weights": "raw", "kaggle": False, "kernel": ""}
    assert provenance.read(images).label == "demo"
    # hidden: not one of the images, not in the folder's fingerprint
    assert provenance.RECORD.startswith(".") and len(list(images.glob("*.jpg"))) == 4


def test_the_record_says_ema_when_the_averaged_weights_made_the_images(tmp_path, monkeypatch):
    cfg = tiny_config(tmp_path, *TINY_GENERATE, "generate.count=12")
    make_jpegs(cfg.raw_dir / "photo_jpg", 2, size=32, prefix="photo")
    G = save_generator(cfg)
    payload = checkpoint.read(cfg.checkpoint_path)
    key = get_family(cfg.train.model).generator_key
    checkpoint.save(cfg.checkpoint_path, {**payload, "step": 7, "ema": {key: G.state_dict()}})
    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Batch")  # as inside a Kaggle notebook
    made = provenance.read(STAGES["generate"].run(cfg))
    assert (made.weights, made.step, made.kaggle) == ("ema", 7, True)
    raw = tiny_config(tmp_path, *TINY_GENERATE, "generate.count=12", "generate.use_ema=false")
    assert provenance.read(STAGES["generate"].run(raw)).weights == "raw"


def test_the_zip_carries_the_record_in_its_comment_and_still_passes_the_rules(generated):
    cfg, images = generated
    out = STAGES["zip"].run(cfg)
    with zipfile.ZipFile(out) as zf:
        assert all(n.endswith(".jpg") for n in zf.namelist())  # the members are the images, only
    assert provenance.read(out) == provenance.read(images)
    assert check_zip(out, cfg.zip).images == 4
    # a new record (the same images from another run's checkpoint, say) makes a new zip
    before, folder = fingerprint(out), fingerprint(images)
    provenance.write(images, provenance.Provenance(run="another", family="cyclegan"))
    assert fingerprint(images) == folder  # the images' own fingerprint ignores the record
    assert provenance.read(STAGES["zip"].run(cfg)).run == "another" and fingerprint(out) != before


def test_a_record_beside_a_zip_wins_and_a_foreign_comment_is_no_record(tmp_path):
    path = tmp_path / "images.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.comment = b"made with some other tool"
        zf.writestr("a.jpg", b"x")
    assert provenance.read(path) is None
    provenance.write_beside(path, provenance.Provenance(run="kaggle", kernel="me/monet-pipeline v4"))
    assert provenance.read(path).label == "kaggle (me/monet-pipeline v4)"
    assert provenance.read(tmp_path) is None  # a folder without a record


def test_a_record_from_a_newer_pipeline_still_reads(tmp_path):
    (tmp_path / provenance.RECORD).write_text(json.dumps({"run": "r", "family": "dcgan", "future_key": 1}))
    assert provenance.read(tmp_path) == provenance.Provenance(run="r", family="dcgan")
