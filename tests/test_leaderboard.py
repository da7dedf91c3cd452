"""The leaderboard page: one row per run after two real (tiny) runs, refreshed by train and score, every
picture it shows resolving beside it wherever the folder goes, and the headless-browser check."""
from __future__ import annotations

import csv
import html
import os
import shutil
import stat
import zipfile
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest
from helpers import make_jpegs, tiny_config
from PIL import Image

from pipeline.cli import main
from pipeline.engine.errors import UserError
from pipeline.engine.text import duration
from pipeline.generate import provenance
from pipeline.leaderboard import thumbs
from pipeline.leaderboard.browser import check_page, find_browser
from pipeline.leaderboard.page import COLUMNS, refresh
from pipeline.leaderboard.runs import Entry
from pipeline.scoring import table

TINY = ("train.image_size=32", "cyclegan.generator=resnet", "cyclegan.ngf=4", "cyclegan.ndf=4",
        "cyclegan.n_blocks=1", "dcgan.width=4", "dcgan.z_dim=8", "train.batch_size=2", "train.epochs=1",
        "train.log_every=1", "train.sample_every=2", "train.time_budget_min=0", "hardware.workers=1",
        "hardware.device=cpu", "zip.image_size=32", "zip.min_images=1", "zip.max_images=50",
        "generate.count=3", "score.limit=0")


def cli(base: Path, command: str, *sets: str, extra: tuple[str, ...] = ()) -> int:
    paths = (f'paths.data="{base / "data"}"', f'paths.submissions="{base / "submissions"}"')
    return main([command, "--config", "demo", *[a for s in (*paths, *TINY, *sets) for a in ("--set", s)],
                 *extra])


class Page(HTMLParser):
    """The page's header cells and its entry rows: each row's key, cell texts by class, images and links."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.header: list[str] = []
        self.rows: list[dict] = []
        self.images: list[str] = []  # every <img> src on the page
        self.links: list[str] = []  # every <a> href
        self._cell: str | None = None
        self._in_th = False
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "tr" and a.get("class") == "entry":
            self.rows.append({"key": a["data-key"], "cells": {}, "images": [], "links": []})
        elif tag == "th":
            self._in_th = True
            self.header.append("")
        elif tag == "td" and self.rows:
            self._cell = a.get("class") or ""
            self.rows[-1]["cells"][self._cell] = ""
        elif tag == "img":
            self.images.append(a["src"])
            if self._cell is not None:
                self.rows[-1]["images"].append((a["src"], a.get("class")))
        elif tag == "a":
            self.links.append(a["href"])
            if self._cell is not None:
                self.rows[-1]["links"].append(a["href"])

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._cell = None
        elif tag == "th":
            self._in_th = False

    def handle_data(self, data: str) -> None:
        if self._in_th:
            self.header[-1] += data
        elif self._cell is not None:
            self.rows[-1]["cells"][self._cell] += data

    def row(self, key: str) -> dict:
        return next(r for r in self.rows if r["key"] == key)


def read_page(folder: Path) -> Page:
    return Page((folder / "leaderboard.html").read_text())


def assert_every_reference_resolves(folder: Path) -> None:
    page = read_page(folder)
    for ref in page.images + page.links:
        assert not ref.startswith(("/", "file:", "http")) and ".." not in ref.split("/"), ref
        path = folder / ref
        assert path.is_file(), ref
    for src in page.images:
        with Image.open(folder / src) as img:
            img.verify()


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, inception_weights) -> Path:
    """Two tiny runs trained through the CLI (a CycleGAN and a DCGAN), the DCGAN's images generated and
    scored while the settings name the CycleGAN run, then `leaderboard` written without the FID weights."""
    base = tmp_path_factory.mktemp("leaderboard")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORCH_HOME", str(base / "torch"))  # no FID weights unless a command names them
        make_jpegs(base / "data" / "augmented" / "monet", 8, size=40)
        make_jpegs(base / "data" / "raw" / "monet_jpg", 3, size=40, seed=2)
        make_jpegs(base / "data" / "raw" / "photo_jpg", 10, size=40, seed=1, prefix="photo")
        assert cli(base, "train", "train.run=alpha", "train.epochs=2") == 0
        assert (base / "submissions" / "leaderboard.html").is_file()  # train refreshed the page
        assert [r["key"] for r in read_page(base / "submissions").rows] == ["alpha"]
        dcgan = ("train.run=beta", "train.model=dcgan")
        assert cli(base, "train", *dcgan) == 0
        assert cli(base, "generate", *dcgan) == 0
        assert cli(base, "score", "train.run=alpha", f"score.weights={inception_weights}") == 0
        assert cli(base, "leaderboard") == 0
    return base


@pytest.mark.slow
def test_the_page_has_a_row_per_run_best_first(two_runs):
    page = read_page(two_runs / "submissions")
    assert page.header == [html.unescape(c) for c in COLUMNS]
    # beta is scored (its images were filed under it, not under alpha that the settings named): it comes first
    assert [r["key"] for r in page.rows] == ["beta", "alpha"]
    beta, alpha = page.row("beta")["cells"], page.row("alpha")["cells"]
    assert beta["family"] == "dcgan" and alpha["family"] == "cyclegan"
    assert float(beta["mifid"]) > 0 and float(beta["fid"]) > 0 and 0 < float(beta["distance"]) < 1
    assert alpha["not-scored"] == "not scored: no FID weights" and "mifid" not in alpha
    assert "train.image_size=32" in alpha["settings"] and "train.epochs=2" not in alpha["settings"]
    assert "train.run" not in alpha["settings"] and "train.model=\"dcgan\"" in beta["settings"]
    for key in ("alpha", "beta"):
        with open(two_runs / "data" / "runs" / key / "losses.csv", newline="") as fh:
            last = list(csv.DictReader(fh))[-1]
        assert page.row(key)["cells"]["steps"] == last["step"]
        assert page.row(key)["cells"]["time"] == duration(float(last["seconds"]))  # as every time is written
        # the same four fixed inputs through each run's own checkpoint, and its loss plot and sample GIF
        assert [c for _, c in page.row(key)["images"]] == ["fixed"] * thumbs.FIXED
        assert [Path(h).name for h in page.row(key)["links"]] == ["loss_plot.png", "samples.gif"]
    assert len([s for s in page.images if "/_inputs/" in s]) == thumbs.FIXED  # the fixed photos themselves


def test_every_picture_resolves_beside_the_page_wherever_it_goes(two_runs, tmp_path):
    assert_every_reference_resolves(two_runs / "submissions")
    moved = tmp_path / "elsewhere" / "subs"
    shutil.copytree(two_runs / "submissions", moved)
    assert_every_reference_resolves(moved)


def test_pictures_are_made_again_only_when_their_source_changes(two_runs, monkeypatch):
    cfg = tiny_config(two_runs, *TINY)
    rendered: list[Path] = []
    real_render = thumbs.render_fixed
    monkeypatch.setattr(thumbs, "render_fixed",
                        lambda ckpt, fixed: rendered.append(ckpt) or real_render(ckpt, fixed))
    refresh(cfg)
    assert rendered == []
    last = two_runs / "data" / "runs" / "alpha" / "last.pt"
    os.utime(last, ns=(last.stat().st_atime_ns, last.stat().st_mtime_ns + 10**9))  # a new checkpoint
    refresh(cfg)
    assert [p.parent.name for p in rendered] == ["alpha"]


def test_a_run_without_a_checkpoint_shows_its_scored_images_or_its_sample_grid(tmp_path):
    photos = make_jpegs(tmp_path / "photo_jpg", 5, size=40, seed=1, prefix="photo")
    run_dir = tmp_path / "run"  # a Kaggle version's fetched run/: no checkpoint
    (run_dir / "samples").mkdir(parents=True)
    Image.new("RGB", (130, 66), "navy").save(run_dir / "samples" / "step_000004.png")
    record = provenance.Provenance(run="kaggle", family="cyclegan", kernel="tester/monet-pipeline v2")
    made = tmp_path / "images"
    made.mkdir()
    for p in photos:  # generate names each image after its photo
        Image.open(p).rotate(90).save(made / p.name)
    provenance.write(made, record)
    entry = Entry(key="kaggle (tester/monet-pipeline v2)", run="kaggle", kernel=record.kernel,
                  run_dir=run_dir, images=[made])
    names, kind = thumbs.pictures(entry, photos[:thumbs.FIXED], tmp_path / "out")
    assert kind == "fixed" and len(names) == thumbs.FIXED
    provenance.write(made, provenance.UNKNOWN)  # images of another origin are not this entry's
    names, kind = thumbs.pictures(entry, photos[:thumbs.FIXED], tmp_path / "out")
    assert kind == "grid" and len(names) == 1
    assert sorted(p.name for p in (tmp_path / "out").glob("*.jpg")) == names  # the old pictures are gone


def test_a_kaggle_version_gets_its_own_row_with_its_public_score(tmp_path, monkeypatch):
    """submit without the FID weights: a public-only row, and the version's fetched output (run/ files and
    images.zip with its record) give the row its pictures and links."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    cfg = tiny_config(tmp_path, *TINY)
    photos = make_jpegs(cfg.raw_dir / "photo_jpg", 5, size=40, seed=1, prefix="photo")
    fetched = cfg.submissions_dir / "kaggle" / "3"
    (fetched / "run" / "samples").mkdir(parents=True)
    Image.new("RGB", (64, 32), "navy").save(fetched / "run" / "loss_plot.png")
    with zipfile.ZipFile(fetched / "images.zip", "w") as zf:
        for p in photos:
            zf.write(p, p.name)
    made_by = provenance.Provenance(run="kaggle", family="cyclegan", kernel="me/monet-pipeline v3")
    provenance.write_beside(fetched / "images.zip", made_by)
    table.record_public(table.csv_path(cfg.submissions_dir), table.Row.filed_under(
        made_by, time=datetime(2026, 11, 30, 12), source="kaggle", submission=1001, public_mifid=41.2345))
    refresh(cfg)
    page = read_page(cfg.submissions_dir)
    [row] = page.rows
    assert row["key"] == "kaggle (me/monet-pipeline v3)" and row["cells"]["public"] == "41.2345"
    assert row["cells"]["run"] == "kaggle" + "me/monet-pipeline v3"  # the run, the version under it
    assert [c for _, c in row["images"]] == ["fixed"] * thumbs.FIXED
    assert [Path(h).name for h in row["links"]] == ["loss_plot.png"]
    assert_every_reference_resolves(cfg.submissions_dir)


def fake_browser(tmp_path: Path, dom: str) -> str:
    """An executable that prints `dom` as `chromium --dump-dom` would."""
    (tmp_path / "dom.html").write_text(dom)
    script = tmp_path / "fake-chromium"
    script.write_text(f"#!/bin/sh\ncat {tmp_path / 'dom.html'}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script)


def test_the_check_names_every_image_that_did_not_load(tmp_path):
    page = tmp_path / "leaderboard.html"
    page.write_text("<html></html>")
    ok = '<body data-images="2"><img src="a.jpg" data-loaded="yes"><img src="b.jpg" data-loaded="yes"></body>'
    summary = check_page(page, fake_browser(tmp_path, ok))
    assert summary.endswith("all 2 images loaded in headless fake-chromium")
    broken = ok.replace('b.jpg" data-loaded="yes', 'b.jpg" data-loaded="no')
    with pytest.raises(UserError, match=r"1 of 2 images did not load .*: b\.jpg"):
        check_page(page, fake_browser(tmp_path, broken))
    with pytest.raises(UserError, match="did not render the page or run its check script"):
        check_page(page, fake_browser(tmp_path, "<body><img src='a.jpg'></body>"))


def test_without_a_browser_the_check_says_how_to_get_one(monkeypatch):
    monkeypatch.delenv("CHROME", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(UserError, match="apt-get install chromium"):
        find_browser()


@pytest.mark.skipif(not any(shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome")),
                    reason="no Chromium on this machine (make check-page needs one)")
def test_chromium_loads_every_picture_and_sees_a_missing_one(two_runs, tmp_path):
    copy = tmp_path / "subs"
    shutil.copytree(two_runs / "submissions", copy)
    n = len(read_page(copy).images)
    assert check_page(copy / "leaderboard.html").endswith(f"all {n} images loaded in headless chromium")
    next((copy / "leaderboard_files").rglob("fixed-0.jpg")).write_bytes(b"not a jpeg")
    with pytest.raises(UserError, match=f"1 of {n} images did not load"):
        check_page(copy / "leaderboard.html")
