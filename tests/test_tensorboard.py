"""TensorBoard event files of a run (pipeline/training/tensorboard.py), read back with TensorBoard's own
reader: every losses.csv column at its step and the sample grids, a resumed run's events past its checkpoint
hidden, the run's settings with its local MiFID as hparams once its images are scored; without the package,
no event files and one line."""
from __future__ import annotations

import io
import json
import sys

import numpy as np
import pytest
from helpers import TINY, make_jpegs, resume_from_step
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import metadata, plugin_data_pb2

from pipeline.stages import STAGES
from pipeline.training import loop as train
from pipeline.training import tensorboard
from pipeline.training.log import TrainLog, read_csv

# The config fixture's: 8 paintings, 10 photos: 4 steps an epoch at batch 2, a grid every 2 steps.
TINY = (*TINY, "train.run=tiny")


def events(run_dir) -> EventAccumulator:
    return EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "images": 0}).Reload()


def assert_scalars_match_losses_csv(run_dir) -> EventAccumulator:
    """Every column of losses.csv but the step is the scalar train/<column>, at each row's step, once."""
    rows, found = read_csv(run_dir / "losses.csv"), events(run_dir)
    columns = [c for c in rows[0] if c != "step"]
    assert {"lr", "G_adv", "cycle", "D_monet"} <= set(columns)
    assert sorted(t for t in found.Tags()["scalars"] if t.startswith("train/")) == sorted(f"train/{c}"
                                                                                           for c in columns)
    for column in columns:
        scalars = found.Scalars(f"train/{column}")
        assert [e.step for e in scalars] == [int(r["step"]) for r in rows], column
        assert [e.value for e in scalars] == pytest.approx([float(r[column]) for r in rows], rel=1e-6), column
    return found


def assert_images_are_the_grids(found: EventAccumulator, run_dir) -> None:
    grids = sorted((run_dir / "samples").glob("step_*.png"))
    images = found.Images("samples")
    assert [e.step for e in images] == [int(p.stem.removeprefix("step_")) for p in grids] == [2, 4]
    for event, grid in zip(images, grids, strict=True):
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(event.encoded_image_string))),
                              np.asarray(Image.open(grid)))


def test_a_training_run_leaves_event_files_whose_scalars_match_losses_csv(config):
    cfg = config()
    train.build(cfg, cfg.run_dir)
    found = assert_scalars_match_losses_csv(cfg.run_dir)
    assert_images_are_the_grids(found, cfg.run_dir)


def test_a_resumed_run_hides_the_events_of_the_steps_it_trains_again(config, capsys):
    cfg = config()
    resume_from_step(cfg, capsys, step=2)  # steps 3 and 4 are logged by both sessions
    assert len(list(cfg.run_dir.glob("events.out.tfevents.*"))) == 2
    found = assert_scalars_match_losses_csv(cfg.run_dir)  # steps 1..4, each once
    assert_images_are_the_grids(found, cfg.run_dir)


def hparams(run_dir) -> tuple[dict, EventAccumulator]:
    """The run's session start info (the settings) as {name: value}, and its events."""
    found = events(run_dir)
    content = found.PluginTagToContent(metadata.PLUGIN_NAME)[metadata.SESSION_START_INFO_TAG]
    values = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
    return {k: v.WhichOneof("kind") and getattr(v, v.WhichOneof("kind")) for k, v in values.items()}, found


@pytest.mark.slow
def test_scoring_a_runs_images_records_its_settings_with_the_local_mifid(config, inception_weights):
    cfg = config(f"score.weights={inception_weights}", "score.limit=4")
    make_jpegs(cfg.raw_dir / "monet_jpg", 4, size=40, seed=4)  # the reference paintings
    train.build(cfg, cfg.run_dir)
    STAGES["generate"].run(cfg)
    STAGES["score"].run(cfg)
    score = json.loads((cfg.submissions_dir / "score.json").read_text())
    settings, found = hparams(cfg.run_dir)
    print({k: settings[k] for k in ("train.model", "train.batch_size", "cyclegan.ngf", "train.run")})
    assert (settings["train.model"], settings["train.batch_size"], settings["cyclegan.ngf"],
            settings["train.run"]) == ("cyclegan", 2, 4, "tiny")
    assert [(e.step, e.value) for e in found.Scalars("score/mifid")] == [(4, pytest.approx(score["mifid"]))]
    assert [e.value for e in found.Scalars("score/fid")] == [pytest.approx(score["fid"])]
    assert_scalars_match_losses_csv(cfg.run_dir)  # the curves beside it, untouched
    # scored again (another subset): the record is replaced, not added to
    STAGES["score"].run(config(f"score.weights={inception_weights}", "score.limit=3"))
    again = json.loads((cfg.submissions_dir / "score.json").read_text())
    assert again["mifid"] != score["mifid"]
    assert len(list(cfg.run_dir.glob(f"events.out.tfevents.*{tensorboard.HPARAMS_SUFFIX}"))) == 1
    replaced = hparams(cfg.run_dir)[1].Scalars("score/mifid")
    assert [e.value for e in replaced] == [pytest.approx(again["mifid"])]
    # a folder of the same name holding another run's settings gets nothing
    assert not tensorboard.record_score(cfg.run_dir, "0123abcd", 4, {"mifid": 1.0})


@pytest.fixture
def without_tensorboard(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # what an import finds: nothing
    tensorboard.writer_class.cache_clear()
    yield
    tensorboard.writer_class.cache_clear()


def test_without_the_package_training_writes_no_event_files_and_says_so_once(config, without_tensorboard,
                                                                              capsys):
    cfg = config()
    assert "4/4 steps" in train.build(cfg, cfg.run_dir)
    TrainLog(cfg.run_dir, True, 4)  # another session in the same process
    out = capsys.readouterr().out
    assert out.count("TensorBoard: no event files: the tensorboard package is not installed (pip install "
                     "tensorboard") == 1
    assert not list(cfg.run_dir.rglob("*tfevents*"))
    assert len(read_csv(cfg.run_dir / "losses.csv")) == 4 and (cfg.run_dir / "loss_plot.png").is_file()
