"""The score stage and command: JSON results, the local leaderboard (rows filed under the run that made the
images), another reference set without the training paintings, and skipping without weights."""
from __future__ import annotations

import csv
import json
import urllib.error
import zipfile

import pytest
import torch
from helpers import make_jpegs, tiny_config

from pipeline.cli import EXIT_SKIPPED, EXIT_USER_ERROR, main
from pipeline.generate import provenance
from pipeline.metrics.features import WEIGHTS_FILE
from pipeline.metrics.mifid import mifid
from pipeline.scoring.score import result_path, score_images
from pipeline.scoring.table import COLUMNS, PRINTED, Row, format_table, standing
from pipeline.stages import STAGES

KEYS = {"fid", "distance", "mifid", "n_gen", "n_real", "weights", "subset", "n_available"}


def cli(tmp_path, *args: str) -> int:
    return main([args[0], "--config", "demo", "--set", f'paths.data="{tmp_path / "data"}"',
                 "--set", f'paths.submissions="{tmp_path / "submissions"}"', *args[1:]])


def leaderboard(tmp_path) -> list[dict[str, str]]:
    with open(tmp_path / "submissions" / "leaderboard.csv", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.slow
def test_cli_scores_any_two_sets_folder_or_zip(tmp_path, inception_weights, capsys):
    make_jpegs(tmp_path / "gen", 5, size=40, seed=1)
    real = make_jpegs(tmp_path / "real", 4, size=40, seed=2)
    with zipfile.ZipFile(tmp_path / "real.zip", "w") as zf:
        for p in real:
            zf.write(p, f"nested/{p.name}")
    weights = f"score.weights={inception_weights}"
    assert cli(tmp_path, "score", "--set", weights, "--images", str(tmp_path / "gen"),
               "--real", str(tmp_path / "real.zip"), "--out", str(tmp_path / "out.json")) == 0
    result = json.loads((tmp_path / "out.json").read_text())
    assert KEYS <= result.keys()
    assert (result["n_gen"], result["n_real"], result["subset"], result["weights"]) == (5, 4, False,
                                                                                      str(inception_weights))
    assert result["mifid"] == pytest.approx(mifid(result["fid"], result["distance"], result["epsilon"]))
    assert result["fid"] > 0 and 0 < result["distance"] < 1
    # The other way round, without --out: the JSON lands beside the scored zip, never inside a folder.
    assert cli(tmp_path, "score", "--set", weights, "--images", str(tmp_path / "real.zip"),
               "--real", str(tmp_path / "gen")) == 0
    swapped = json.loads(result_path(tmp_path / "real.zip").read_text())
    assert result_path(tmp_path / "real.zip").name == "real.zip.score.json"
    assert (swapped["n_gen"], swapped["n_real"]) == (4, 5)
    assert swapped["fid"] == pytest.approx(result["fid"], rel=1e-6)  # FID is symmetric; d is not
    assert not (tmp_path / "gen" / "score.json").exists()
    rows = leaderboard(tmp_path)
    assert [r["source"] for r in rows] == ["local", "local"]
    assert "local leaderboard" in capsys.readouterr().out


MADE_BY = provenance.Provenance(run="dcgan-1234abcd", family="dcgan", config_hash="1234abcd",
                                 checkpoint="last.pt", step=300)


@pytest.mark.slow
def test_stage_writes_json_appends_rows_and_sorts_by_mifid(tmp_path, inception_weights, capsys):
    cfg = tiny_config(tmp_path, f"score.weights={inception_weights}")
    make_jpegs(cfg.images_dir, 6, size=40, seed=3)
    provenance.write(cfg.images_dir, MADE_BY)  # as generate leaves it
    make_jpegs(cfg.raw_dir / "monet_jpg", 4, size=40, seed=4)
    STAGES["score"].run(cfg)
    full = json.loads((cfg.submissions_dir / "score.json").read_text())
    assert KEYS <= full.keys() and full["n_gen"] == 6 and full["subset"] is False
    STAGES["score"].run(cfg)  # up to date: no new row
    assert len(leaderboard(tmp_path)) == 1

    subset_cfg = tiny_config(tmp_path, f"score.weights={inception_weights}", "score.limit=3")
    STAGES["score"].run(subset_cfg)
    part = json.loads((cfg.submissions_dir / "score.json").read_text())
    assert (part["n_gen"], part["n_available"], part["subset"]) == (3, 6, True)

    with zipfile.ZipFile(tmp_path / "images.zip", "w") as zf:  # what a Kaggle kernel returns
        for p in sorted(cfg.images_dir.glob("*.jpg")):
            zf.write(p, p.name)
    kaggle = score_images(cfg, tmp_path / "images.zip", source="kaggle")
    assert kaggle["fid"] == pytest.approx(full["fid"], rel=1e-9)

    rows = leaderboard(tmp_path)
    assert list(rows[0].keys()) == list(COLUMNS)
    assert [(r["source"], r["scope"], r["n_images"], r["n_real"], r["left_out"]) for r in rows] == [
        ("local", "full", "6", "4", "0"), ("local", "subset", "3", "4", "0"),
        ("kaggle", "full", "6", "4", "0")]
    assert (rows[0]["run"], rows[0]["model"], rows[0]["config_hash"], rows[0]["step"]) == (
        "dcgan-1234abcd", "dcgan", "1234abcd", "300")
    assert rows[2]["run"] == "unknown" and rows[2]["model"] == ""  # a zip without a record: never "demo"
    assert float(rows[0]["mifid"]) == pytest.approx(full["mifid"], rel=1e-4)
    printed = capsys.readouterr().out.split("local leaderboard")[-1].splitlines()[2:]
    shown = [float(line.split()[PRINTED.index("mifid") + 1]) for line in printed]
    assert shown == sorted(float(r["mifid"]) for r in rows)


@pytest.mark.slow
def test_rows_name_the_run_that_made_the_images(tmp_path, inception_weights, capsys):
    """A folder or zip with a provenance record is filed under its run (a zip under the kernel version
    written beside it), one without under `unknown`, whatever run the current settings name."""
    weights = f"score.weights={inception_weights}"
    make_jpegs(tmp_path / "data" / "raw" / "monet_jpg", 4, size=40, seed=4)
    made = make_jpegs(tmp_path / "other-run", 5, size=40, seed=1)
    provenance.write(tmp_path / "other-run", MADE_BY)
    make_jpegs(tmp_path / "stray", 5, size=40, seed=2)
    with zipfile.ZipFile(tmp_path / "images.zip", "w") as zf:
        zf.comment = provenance.as_comment(MADE_BY)  # as the zip stage carries the record
        for p in made:
            zf.write(p, p.name)
    for images in ("other-run", "stray", "images.zip"):
        assert cli(tmp_path, "score", "--set", weights, "--images", str(tmp_path / images)) == 0
    provenance.write_beside(tmp_path / "images.zip", provenance.Provenance(
        **{**MADE_BY.as_dict(), "kernel": "tester/monet-pipeline v3"}))  # as submit leaves it
    assert cli(tmp_path, "score", "--set", weights, "--images", str(tmp_path / "images.zip")) == 0
    rows = leaderboard(tmp_path)
    assert [(r["run"], r["model"], r["kernel"]) for r in rows] == [
        ("dcgan-1234abcd", "dcgan", ""), ("unknown", "", ""), ("dcgan-1234abcd", "dcgan", ""),
        ("dcgan-1234abcd", "dcgan", "tester/monet-pipeline v3")]
    out = capsys.readouterr().out
    assert "filed under run unknown" in out
    assert "filed under run dcgan-1234abcd (tester/monet-pipeline v3)" in out


@pytest.mark.slow
def test_another_reference_set_is_scored_without_the_training_paintings(tmp_path, inception_weights, capsys):
    """Reference images that are training paintings (the same pixels, or re-encoded) are left out and
    counted; the training paintings themselves, or a copy of them, are the reference as they are."""
    from PIL import Image

    weights = f"score.weights={inception_weights}"
    training = make_jpegs(tmp_path / "data" / "raw" / "monet_jpg", 4, size=40, seed=4)
    make_jpegs(tmp_path / "gen", 5, size=40, seed=1)
    berkeley = tmp_path / "berkeley"
    make_jpegs(berkeley, 3, size=40, seed=7, prefix="other")
    for p in training[:2]:
        (berkeley / f"copy-{p.name}").write_bytes(p.read_bytes())
    with Image.open(training[2]) as img:  # the same painting encoded again
        img.save(berkeley / "reencoded.jpg", "JPEG", quality=70)
    assert cli(tmp_path, "score", "--set", weights, "--images", str(tmp_path / "gen"),
               "--real", str(berkeley), "--out", str(tmp_path / "out.json")) == 0
    result = json.loads((tmp_path / "out.json").read_text())
    assert (result["n_real"], result["left_out"], result["same_pixels"]) == (3, 3, 2)
    assert ("left out 3 reference images that are training paintings (2 with the same pixels, "
            "1 near-duplicates)") in capsys.readouterr().out
    assert leaderboard(tmp_path)[-1]["left_out"] == "3"

    copy = tmp_path / "copy-of-training"
    copy.mkdir()
    for p in training:
        (copy / p.name).write_bytes(p.read_bytes())
    assert cli(tmp_path, "score", "--set", weights, "--set", f"score.real={copy}",
               "--images", str(tmp_path / "gen"), "--out", str(tmp_path / "copy.json")) == 0
    whole = json.loads((tmp_path / "copy.json").read_text())
    assert (whole["n_real"], whole["left_out"]) == (4, 0)
    assert "is the training set, scored as it is" in capsys.readouterr().out


@pytest.mark.slow
def test_an_old_leaderboard_file_still_loads_and_gains_the_new_columns(tmp_path, inception_weights):
    old = ("time,source,run,model,config_hash,n_images,fid,distance,mifid,scope,images\n"
           "2026-11-01T10:00:00,local,demo,cyclegan,abcd1234,7038,80.1,0.3,80.1,full,submissions/images\n")
    (tmp_path / "submissions").mkdir()
    (tmp_path / "submissions" / "leaderboard.csv").write_text(old)
    make_jpegs(tmp_path / "data" / "raw" / "monet_jpg", 4, size=40, seed=4)
    make_jpegs(tmp_path / "gen", 5, size=40, seed=1)
    assert cli(tmp_path, "score", "--set", f"score.weights={inception_weights}",
               "--images", str(tmp_path / "gen")) == 0
    rows = leaderboard(tmp_path)
    assert list(rows[0]) == list(COLUMNS) and len(rows) == 2
    assert (rows[0]["run"], rows[0]["mifid"], rows[0]["kernel"], rows[0]["public_mifid"]) == (
        "demo", "80.1", "", "")


def test_leaderboard_table_sorts_numerically_and_survives_bad_cells():
    rows = [Row.from_cells({"mifid": m, "run": r})
            for m, r in [("100.5", "a"), ("", "empty"), ("9.25", "b"), ("x1", "broken"), ("55", "c")]]
    lines = format_table(rows).splitlines()[2:]
    assert [line.split()[0] for line in lines] == ["1", "2", "3", "4", "5"]
    assert [r for line in lines for r in ("a", "b", "c", "empty", "broken") if f" {r} " in f" {line} "] == [
        "b", "c", "a", "empty", "broken"]


def test_the_scoring_that_stands_for_a_set_is_its_latest_full_one_by_time_not_by_text():
    """12:00 at UTC+5 is 07:00 UTC, earlier than 10:00 UTC though its text sorts later; a subset never
    stands for a set that has a full scoring, however late it is."""
    rows = [Row.from_cells({"time": t, "scope": scope, "mifid": m}) for t, scope, m in [
        ("2026-12-07T10:00:00+00:00", "full", "50"), ("2026-12-07T12:00:00+05:00", "full", "60"),
        ("2026-12-08T00:00:00", "subset", "70"), ("not a time", "full", "80")]]
    assert standing(rows).mifid == 50.0
    assert standing(rows[2:3]).mifid == 70.0 and standing([Row(run="public only")]) is None


def test_no_weights_offline_is_a_skip_with_one_line(tmp_path, monkeypatch, capsys):
    def offline(url, dst, **_kwargs):
        raise urllib.error.URLError("no network in tests")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    make_jpegs(tmp_path / "submissions" / "images", 3, size=32)
    make_jpegs(tmp_path / "data" / "raw" / "monet_jpg", 3, size=32)
    assert cli(tmp_path, "score") == EXIT_SKIPPED
    err = capsys.readouterr().err.strip()
    assert err.startswith("score: skipped:") and WEIGHTS_FILE in err and "score.weights" in err
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "submissions" / "score.json").exists()
    assert not (tmp_path / "submissions" / "leaderboard.csv").exists()


def test_options_need_images_and_existing_paths(tmp_path, inception_weights, capsys):
    assert cli(tmp_path, "score", "--real", str(tmp_path)) == EXIT_USER_ERROR
    assert "--images" in capsys.readouterr().err
    assert cli(tmp_path, "score", "--set", f"score.weights={inception_weights}",
               "--images", str(tmp_path / "nowhere")) == EXIT_USER_ERROR
    assert "nowhere" in capsys.readouterr().err
